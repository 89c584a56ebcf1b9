"""The embedder's pair FAR points on the calibration split: where ``loosest_threshold`` comes from.

    .venv/bin/python tools/measure_far_point.py [--config CONFIG]

Embeds every face of ``five_celebrity_faces`` (train and test) with the configured embedder in
the full pipeline (detector, alignment, embedder: ``facegate eval``'s photo embedder), forms all
pairs, and prints the distance at which a pair FAR of 1e-3, 1e-2 and 5e-2 is reached and the
genuine accept rate there. Measured 2026-12-02: FAR 1e-2 at 0.6616 (INT8) and 0.6643
(``embedder.model: dlib_resnet_v1_float32``), 3,434 impostor pairs: the manifests' 0.66.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pi_facegate.cli.photo_embedder import PhotoEmbedder  # noqa: E402
from pi_facegate.paths import facedata_dir  # noqa: E402

#: The calibration split: the people thresholds are measured on, never the ones accuracy is
#: reported on (``facegate eval`` excludes them; tools/calibrate_open_set.py reuses it).
CALIBRATION_PEOPLE = "five_celebrity_faces"
CALIBRATION_GLOB = f"{CALIBRATION_PEOPLE}/*/*/*.jpg"


def calibration_photos(root: Path | None = None) -> list[tuple[Path, str]]:
    """``(photo, person)`` of the calibration split, train and test together."""
    root = facedata_dir() if root is None else root
    return [(path, path.parent.name) for path in sorted(root.glob(CALIBRATION_GLOB))]


def embed_calibration_split(
    config: Path | None = None,
    model: str | None = None,
    root: Path | None = None,
    photos: list[tuple[Path, str]] | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """``(vectors, people, photos without a face)``: the split through the full pipeline.

    ``model`` overrides the config's ``embedder.model`` (a manifest name or path); ``root``
    is the face data (default: the shared folder); ``photos`` other ``(photo, person)`` pairs
    than :func:`calibration_photos` (tools/calibrate_open_set.py adds its own).
    """
    embedder = PhotoEmbedder(argparse.Namespace(config=config, threads=None, model=model))
    vectors, people = [], []
    try:
        for path, person in calibration_photos(root) if photos is None else photos:
            vectors.append(embedder.embed(path))
            people.append(person)
    finally:
        embedder.close()
    return np.stack(vectors), np.array(people), len(embedder.no_face)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path)
    args = parser.parse_args(argv)
    v, who, _ = embed_calibration_split(args.config)
    upper = np.triu_indices(len(v), 1)
    distances = np.linalg.norm(v[:, None] - v[None], axis=2)[upper]
    same = (who[:, None] == who[None])[upper]
    impostors, genuine = np.sort(distances[~same]), distances[same]
    print(f"{len(v)} faces, {len(impostors)} impostor and {len(genuine)} genuine pairs")
    for far in (1e-3, 1e-2, 5e-2):
        threshold = impostors[min(int(far * len(impostors)), len(impostors) - 1)]
        print(f"FAR {far:g}: distance {threshold:.4f}, TAR {np.mean(genuine < threshold):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
