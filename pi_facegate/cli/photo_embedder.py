"""The photo embedder of ``facegate eval`` and the calibration tools: one face per photo.

Each photo goes through the full pipeline (detector, aligner, embedder) as a still; a photo
where the detector finds no face falls back to a centred face box, counted, so that no pair
or probe is silently dropped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pi_facegate.cli import context
from pi_facegate.core.faces import Face
from pi_facegate.daemon import wiring as components
from pi_facegate.vision.images import load_image


class PhotoEmbedder:
    """Embeds one face per photo (the most central one, or the largest), counting photos
    with no face.

    ``threshold`` is the fixed bound (:func:`~pi_facegate.daemon.wiring.match_settings`),
    ``rule`` chooses the door's threshold for a gallery's size. ``args.model`` (optional)
    overrides the config's ``embedder.model``: the calibration tools measure each embedder.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        _, self.config = context.resolve_config(args)
        model = getattr(args, "model", None)
        if model:
            embedder_section = self.config.embedder.model_copy(update={"model": str(model)})
            self.config = self.config.model_copy(update={"embedder": embedder_section})
        self.embedder = components.build_embedder(self.config)
        if args.threads:
            self.embedder = components.Embedder(self.embedder.manifest, num_threads=args.threads)
        self.threshold, self.min_margin = components.match_settings(self.config, self.embedder)
        self.rule, _ = components.match_rule(self.config, self.embedder.manifest)
        self.recognizer = components.build_recognizer(self.config, embedder=self.embedder)
        self.no_face: list[str] = []

    def embed(self, path: Path, largest: bool = False) -> np.ndarray:
        image = load_image(path)
        faces = self.recognizer.detect_still(image)
        if faces and largest:
            face = max(faces, key=lambda f: f.box[2] * f.box[3])
        elif faces:
            face = min(faces, key=lambda f: _off_centre(f, image))
        else:
            self.no_face.append(str(path))
            face = centred_face(image, self.recognizer.aligner.template)
        chip = self.recognizer.aligner.align(image, face)
        return self.embedder.embed(chip[None])[0]

    def close(self) -> None:
        self.recognizer.close()


def _off_centre(face: Face, image: np.ndarray) -> float:
    x, y, w, h = face.box
    cy, cx = image.shape[0] / 2, image.shape[1] / 2
    return float(np.hypot(x + w / 2 - cx, y + h / 2 - cy))


def centred_face(image: np.ndarray, template) -> Face:
    """The standard fallback when no face is found: assume a face centred in the photo.

    The template's keypoints are placed so that the chip is the central square covering
    60 % of the shorter side (the usual framing of LFW-style photos).
    """
    h, w = image.shape[:2]
    side = 0.6 * min(h, w)
    scale = side / template.size
    offset = np.array([(w - side) / 2, (h - side) / 2])
    keypoints = np.zeros((6, 2))
    keypoints[list(template.indices)] = template.points * scale + offset
    return Face((offset[0], offset[1], side, side), 0.0, keypoints)
