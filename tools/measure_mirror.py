"""Test-time mirror augmentation (issue 16): does embedding the chip and its mirror image and
averaging the two separate people better? Measured, threshold-free, on the pooled evaluation
photos of ``facegate eval strangers`` (the embedder's calibration people left out): every pair
of photos, TAR at pair FAR 1e-3 and 1e-2 and the equal error rate, without and with the mirror.

    .venv/bin/python tools/measure_mirror.py [--config PATH]

The cost is one more embedding per face (the embed stage: 2.8-5 ms on this machine).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from pi_facegate import paths  # noqa: E402
from pi_facegate.cli.photo_embedder import PhotoEmbedder, centred_face  # noqa: E402
from pi_facegate.devtools import strangers  # noqa: E402
from pi_facegate.vision.images import load_image  # noqa: E402


def embed_both(pe: PhotoEmbedder, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The largest face's embedding, and the mean of it and its mirror image's."""
    image = load_image(path)
    faces = pe.recognizer.detect_still(image)
    if faces:
        face = max(faces, key=lambda f: f.box[2] * f.box[3])
        chip = pe.recognizer.aligner.align(image, face)
    else:
        chip = pe.recognizer.aligner.align(
            image, centred_face(image, pe.recognizer.aligner.template)
        )
    both = pe.embedder.embed(np.stack([chip, chip[:, ::-1].copy()]))
    return both[0], both.mean(axis=0)


def pair_metrics(vectors: np.ndarray, people: np.ndarray) -> dict[str, float]:
    upper = np.triu_indices(len(vectors), 1)
    d = np.linalg.norm(vectors[:, None] - vectors[None], axis=2)[upper]
    same = (people[:, None] == people[None])[upper]
    imp, gen = np.sort(d[~same]), np.sort(d[same])
    out = {}
    for far in (1e-3, 1e-2):
        t = imp[int(far * len(imp))]
        out[f"TAR@FAR{far:g}"] = float(np.mean(gen < t))
    ts = np.linspace(min(gen[0], imp[0]), max(gen[-1], imp[-1]), 2000)
    frr = np.searchsorted(gen, ts, side="right")
    far_ = np.searchsorted(imp, ts, side="right") / len(imp)
    frr = 1 - frr / len(gen)
    k = int(np.argmin(np.abs(frr - far_)))
    out["EER"] = float((frr[k] + far_[k]) / 2)
    out["pairs"] = f"{len(gen)} genuine / {len(imp)} impostor"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path)
    args = parser.parse_args(argv)
    pe = PhotoEmbedder(argparse.Namespace(config=args.config, threads=None, model=None))
    try:
        left_out = pe.embedder.manifest["embedding"].get("calibration", {}).get("people", [])
        identities, _ = strangers.pooled_identities(paths.facedata_dir(), exclude=left_out)
        plain, mirrored, people = [], [], []
        for identity in identities:
            for photo in identity.photos:
                a, b = embed_both(pe, photo)
                plain.append(a)
                mirrored.append(b)
                people.append(identity.key)
    finally:
        pe.close()
    people_arr = np.array(people)
    print(f"{len(people)} photos of {len(identities)} people (left out: {', '.join(left_out)})")
    for label, vecs in (("plain", plain), ("mirror-averaged", mirrored)):
        m = pair_metrics(np.stack(vecs), people_arr)
        print(f"{label:16} TAR@FAR1e-3 {m['TAR@FAR0.001']:.4f}  TAR@FAR1e-2 {m['TAR@FAR0.01']:.4f}"
              f"  EER {m['EER']:.4f}  ({m['pairs']} pairs)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
