"""Would an eye-blink cue help liveness? The eye aspect ratio over each presentation.

    .venv/bin/python tools/measure_eye_motion.py ROOT [ROOT ...] [--fps 10] [--json FILE]

ROOT is any material ``facegate eval liveness`` reads (a NUAA folder, a manifest, live/ and
attack/ folders). For each presentation, the largest face's eye aspect ratio (EAR: the two
lid-to-lid distances over the corner-to-corner width, both eyes averaged; Soukupova and
Cech 2016) is read from the same face mesh the door aligns with, and the presentation's
lowest EAR is compared with its median. A blink closes the eye to well under 60 % of its
open EAR for 1-2 frames; a print or a screen cannot blink, but a bent or tilted sheet
deforms the mesh. The question is whether the ``min / median`` ratio separates live from
attack presentations.

Measured (2026-12-02): NUAA 0001-0003, no live session (4) shows a blink (lowest ratio
0.87; sampled about every 4th webcam frame, and a blink lasts 1-2 frames at 10-15 fps),
while of 30 print sessions two bent ones dip to 0.65 and 0.72; the two talking-head clips
and the Hamilton walk-up (8-9 s at 25-30 fps) show no blink either (lowest 0.74-0.84,
talking moves the lids a little). The ratios overlap (live 0.74-0.97, prints 0.65-0.96):
prints dip lower than any live face, and a blink threshold (0.6) catches nothing on either
side. On this material the cue carries no evidence, so it is not fused.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pi_facegate.config.loader import load_config  # noqa: E402
from pi_facegate.daemon import wiring  # noqa: E402
from pi_facegate.devtools import pad_material  # noqa: E402

#: (outer corner, inner corner), (upper, lower lid), (upper, lower lid): mesh indices
RIGHT_EYE = ((33, 133), (160, 144), (158, 153))
LEFT_EYE = ((362, 263), (385, 380), (387, 373))
#: a blink: the EAR below this share of the presentation's median
BLINK_RATIO = 0.6


def eye_aspect_ratio(mesh: np.ndarray) -> float:
    """Mean EAR of both eyes from (468, 2) face-mesh points."""

    def one(eye) -> float:
        (a, b), (u1, l1), (u2, l2) = eye
        lids = np.linalg.norm(mesh[u1] - mesh[l1]) + np.linalg.norm(mesh[u2] - mesh[l2])
        return float(lids / (2 * np.linalg.norm(mesh[a] - mesh[b])))

    return (one(RIGHT_EYE) + one(LEFT_EYE)) / 2


def measure(p: pad_material.Presentation, recognizer, fps: float, clock: list[int]) -> dict:
    """The presentation's EAR series summary (largest face per frame)."""
    values = []
    start = clock[0]
    for t, image in pad_material.frames(p, fps):
        clock[0] = max(clock[0] + 1, start + int(t * 1000))
        faces = recognizer.detect(image, timestamp_ms=clock[0])
        if not faces:
            continue
        face = max(faces, key=lambda f: f.box[2] * f.box[3])
        (analysis,) = recognizer.analyse(image, [face])
        if analysis.mesh is not None:
            values.append(eye_aspect_ratio(analysis.mesh))
    clock[0] += 10_000
    ear = np.array(values)
    median = float(np.median(ear)) if len(ear) else None
    ratio = float(ear.min() / median) if median else None
    return {
        "name": p.name,
        "label": p.label,
        "species": p.species,
        "simulated": p.simulated,
        "frames": len(ear),
        "ear_median": median,
        "min_over_median": ratio,
        "blink": ratio is not None and ratio < BLINK_RATIO,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("roots", type=Path, nargs="+")
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    material = pad_material.Material()
    for root in args.roots:
        material.extend(pad_material.load(root))
    recognizer = wiring.build_recognizer(load_config(REPO / "config.yaml"), video=True)
    clock = [0]
    try:
        rows = [measure(p, recognizer, args.fps, clock) for p in material.presentations]
    finally:
        recognizer.close()
    for label in ("live", "attack"):
        ratios = [r["min_over_median"] for r in rows if r["label"] == label and r["frames"] >= 3]
        blinks = sum(r["blink"] for r in rows if r["label"] == label)
        if ratios:
            print(
                f"{label:6} presentations {len(ratios):3}  lowest EAR / median: "
                f"min {min(ratios):.2f}  median {np.median(ratios):.2f}  "
                f"with a blink (< {BLINK_RATIO}): {blinks}"
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
