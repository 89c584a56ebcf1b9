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

from pi_facegate.cli.eval_cmd import PhotoEmbedder  # noqa: E402
from pi_facegate.paths import facedata_dir  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path)
    args = parser.parse_args(argv)
    embedder = PhotoEmbedder(argparse.Namespace(config=args.config, threads=None))
    vectors, people = [], []
    try:
        for path in sorted((facedata_dir() / "five_celebrity_faces").glob("*/*/*.jpg")):
            vectors.append(embedder.embed(path))
            people.append(path.parent.name)
    finally:
        embedder.close()
    v, who = np.stack(vectors), np.array(people)
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
