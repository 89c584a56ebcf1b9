"""Alignment: warp a detected face to the embedder's chip with a similarity transform.

The embedder was trained on chips cut the dlib way (``get_face_chip_details(size=150,
padding=0.25)``). Our detector gives BlazeFace's six keypoints instead of dlib's landmarks,
so the embedder's manifest carries a *template*: where those keypoints sit, on average, in a
dlib-aligned chip (fitted by ``tools/fit_alignment_template.py`` on real faces). Aligning a
face is then a least-squares similarity fit (rotation, uniform scale, translation; no shear,
which would distort identity) from the detected keypoints to the template, and one warp.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pi_facegate.detection import KEYPOINT_NAMES, Face
from pi_facegate.exc import ModelError
from pi_facegate.manifest import Manifest


@dataclass(frozen=True)
class AlignmentTemplate:
    """Target keypoint positions in chip pixels, with a weight per keypoint."""

    size: int
    indices: tuple[int, ...]  # which of the detector's keypoints take part, by position
    points: np.ndarray  # (len(indices), 2) float64, chip pixel coordinates
    weights: np.ndarray  # (len(indices),) float64, relative trust in each keypoint

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> AlignmentTemplate:
        """Read ``alignment`` from an embedder manifest; ModelError if it has no template."""
        section = manifest.get("alignment") or {}
        template = section.get("template")
        if not template:
            raise ModelError(f"embedder manifest {manifest.path} has no alignment template")
        names = list(template["keypoints"])
        unknown = [n for n in names if n not in KEYPOINT_NAMES]
        if unknown:
            raise ModelError(f"alignment template names unknown keypoints {unknown}")
        points = np.asarray(template["points"], dtype=np.float64)
        weights = np.asarray(template.get("weights", [1.0] * len(names)), dtype=np.float64)
        if points.shape != (len(names), 2) or weights.shape != (len(names),):
            raise ModelError("alignment template: points/weights do not match its keypoints")
        return cls(
            size=int(section["size"]),
            indices=tuple(KEYPOINT_NAMES.index(n) for n in names),
            points=points,
            weights=weights,
        )


def similarity_transform(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """The 2x3 similarity matrix mapping ``src`` points onto ``dst`` in the weighted least-squares sense.

    Umeyama's closed form (1991), restricted to 2-D: no iteration, no randomness (unlike a
    RANSAC estimate), so the same keypoints always give the same chip.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    w = np.ones(len(src)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    mu_s = w @ src
    mu_d = w @ dst
    s = src - mu_s
    d = dst - mu_d
    cov = (d * w[:, None]).T @ s
    u, sig, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    rot = u @ np.diag(sign) @ vt
    var_s = float(w @ (s**2).sum(axis=1))
    scale = float((sig * sign).sum() / var_s) if var_s > 0 else 1.0
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rot
    matrix[:, 2] = mu_d - matrix[:, :2] @ mu_s
    return matrix


class Aligner:
    """Cuts embedder chips out of frames, as the embedder's manifest prescribes."""

    def __init__(self, template: AlignmentTemplate) -> None:
        self.template = template

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> Aligner:
        return cls(AlignmentTemplate.from_manifest(manifest))

    def transform(self, keypoints: np.ndarray) -> np.ndarray:
        """The 2x3 matrix taking frame pixels to chip pixels for these keypoints."""
        t = self.template
        return similarity_transform(keypoints[list(t.indices)], t.points, t.weights)

    def align(self, image: np.ndarray, face: Face) -> np.ndarray:
        """The ``(size, size, 3)`` uint8 chip of ``face`` in ``image`` (RGB in, RGB out)."""
        size = self.template.size
        return cv2.warpAffine(
            image,
            self.transform(face.keypoints),
            (size, size),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )

    def align_many(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        """Chips for several faces of one frame, stacked ``(N, size, size, 3)``."""
        size = self.template.size
        if not faces:
            return np.empty((0, size, size, 3), dtype=np.uint8)
        return np.stack([self.align(image, f) for f in faces])
