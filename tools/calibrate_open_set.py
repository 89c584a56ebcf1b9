"""Calibrate the embedder's open-set table (``embedding.impostor_far``) on the calibration split.

    .venv/bin/python tools/calibrate_open_set.py [--manifest PATH ...] [--embeddings-per-person K]
                                                 [--facedata DIR] [--write]

The door thresholds the distance from a face to a *person*: the minimum over that person's
enrolled embeddings (``pi_facegate.core.matcher``). This tool measures how often a stranger's
distance to one person is at most d -- the per-person false-accept rate FAR(d) -- on the
calibration split of ``tools/measure_far_point.py`` (``five_celebrity_faces``, train and test,
through the full pipeline) plus the calibration set ``extended_yaleb_calib`` in moderate light
(:data:`DOOR_LIGHT`), never on the people accuracy is reported on. Why both: five celebrities
photographed in five different places look nothing alike, and their impostor tail alone was
far too light (the door let in 2.5 % of ``facegate eval strangers``' strangers at a promised
0.1 %); ten people under one camera and one lab's light are what a door's gallery is like. With ``--write`` it
stores ~30 rows ``[distance, far]`` (FAR 1e-5 .. 1e-1, log-spaced) and their provenance
(``embedding.calibration``) in each manifest; ``pi_facegate.core.open_set`` then picks the
threshold for a gallery's size from it.

How FAR(d) is measured: every photo is a probe against every *other* person, enrolled with K
embeddings (default: the door enrolment's ``enrolment.embeddings``). Rather than drawing
random enrolments, the expectation over all K-subsets of that person's photos is exact: if m
of the person's n photos lie within d of the probe, the K-subset's minimum does with
probability 1 - C(n-m, K)/C(n, K).

Below the resolution of the split (fewer than ``MIN_EVENTS`` probe-person pairs) nothing can
be counted: there the table continues the measured tail as a straight line on the normal
probability scale (a Gaussian tail fitted between that floor and 1e-1) and the provenance says
so. Five people are few: the extrapolated rows are an estimate, to be checked against
``facegate eval strangers`` (which never uses these people).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _p in (str(HERE), str(REPO)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from measure_far_point import (  # noqa: E402
    CALIBRATION_PEOPLE,
    calibration_photos,
    embed_calibration_split,
)

from pi_facegate.config.schema import EnrolmentConfig  # noqa: E402
from pi_facegate.devtools.impostor_table import person_impostor_cdf, tail_table  # noqa: E402
from pi_facegate.paths import facedata_dir  # noqa: E402

DEFAULT_MANIFESTS = ("dlib_resnet_v1_int8", "dlib_resnet_v1_float32")
#: the one-camera calibration people, and the light they are taken in: the light source at
#: most this many degrees off the camera's axis (|azimuth|, |elevation|), as at a door in
#: daylight; harder light is the hard-light evaluation's, not the open-set table's
DOOR_LIGHT_PEOPLE = "extended_yaleb_calib"
DOOR_LIGHT = (25, 20)


def door_light_photos(root: Path) -> list[tuple[Path, str]]:
    """``(photo, person)`` of ``extended_yaleb_calib`` lit within :data:`DOOR_LIGHT`."""
    photos = []
    for path in sorted((root / DOOR_LIGHT_PEOPLE).glob("yaleB*/*.pgm")):
        match = re.search(r"A([+-]\d+)E([+-]\d+)", path.name)
        if match and abs(int(match[1])) <= DOOR_LIGHT[0] and abs(int(match[2])) <= DOOR_LIGHT[1]:
            photos.append((path, path.parent.name))
    return photos


def calibrate(
    manifest: Path, k: int, facedata: Path | None = None
) -> tuple[list[list[float]], dict]:
    """Embed the split with the embedder of ``manifest``; the table and its provenance."""
    root = facedata_dir() if facedata is None else facedata
    photos = calibration_photos(root) + door_light_photos(root)
    vectors, people, no_face = embed_calibration_split(model=str(manifest), photos=photos)
    distances, cdf, pairs = person_impostor_cdf(vectors, people, k)
    rows, floor, slope = tail_table(distances, cdf, pairs)
    upper = np.triu_indices(len(vectors), 1)
    photo_pairs = int((people[:, None] != people[None])[upper].sum())
    provenance = {
        "tool": "tools/calibrate_open_set.py",
        "what": "impostor_far rows [distance, far]: the rate at which a stranger's distance to "
        f"one enrolled person (minimum over that person's {k} embeddings: the distance the "
        "matcher thresholds) is <= distance",
        "people": [CALIBRATION_PEOPLE, DOOR_LIGHT_PEOPLE],
        "split": f"{CALIBRATION_PEOPLE} train+test and {DOOR_LIGHT_PEOPLE} lit within "
        f"{DOOR_LIGHT[0]} degrees azimuth and {DOOR_LIGHT[1]} elevation: "
        f"{len(np.unique(people))} people, {len(vectors)} photos ({no_face} without a detected "
        "face: centred fallback), full pipeline; the reported sets never",
        "embeddings_per_person": k,
        "probe_person_pairs": pairs,
        "impostor_photo_pairs": photo_pairs,
        "measured_down_to": float(f"{floor:.3g}"),
        "below_that": "extrapolated: the tail measured between measured_down_to and 0.1 "
        f"continued as a Gaussian (normal-quantile slope {slope:.4f} per unit distance)",
        "smallest_impostor_distance": round(float(distances[0]), 4),
        "measured": str(np.datetime64("today")),
    }
    return rows, provenance


def write(manifest: Path, rows: list[list[float]], provenance: dict) -> None:
    """Put the table and its provenance into the manifest's ``embedding`` section.

    The rest of the manifest keeps its layout (``json.dumps(indent=2)``, as the build
    writes it); the table is written one ``[distance, far]`` row a line, to stay readable.
    """
    data = json.loads(manifest.read_text())
    data["embedding"]["impostor_far"] = _PLACEHOLDER
    data["embedding"]["calibration"] = provenance
    text = json.dumps(data, indent=2) + "\n"
    table = ",\n".join(f"      {json.dumps(row)}" for row in rows)
    manifest.write_text(text.replace(json.dumps(_PLACEHOLDER), f"[\n{table}\n    ]"))


_PLACEHOLDER = "@impostor_far@"


def _manifest_path(name: str) -> Path:
    path = Path(name)
    return path if path.suffix == ".json" else REPO / "models" / f"{name}.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--manifest", action="append", help="embedder manifest name or path (default: both)"
    )
    parser.add_argument(
        "--embeddings-per-person",
        type=int,
        default=EnrolmentConfig().embeddings,
        help="embeddings of each enrolled person (default: enrolment.embeddings' default)",
    )
    parser.add_argument("--facedata", type=Path, help="shared face photos root")
    parser.add_argument("--write", action="store_true", help="store the table in the manifest")
    args = parser.parse_args(argv)
    for name in args.manifest or DEFAULT_MANIFESTS:
        path = _manifest_path(name)
        rows, provenance = calibrate(path, args.embeddings_per_person, args.facedata)
        print(f"{path.name}: {json.dumps(provenance, indent=2)}")
        for d, far in rows:
            print(f"  FAR {far:<9g} distance {d:.4f}")
        if args.write:
            write(path, rows, provenance)
            print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
