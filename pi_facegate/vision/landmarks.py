"""Precise face landmarks: MediaPipe's face mesh, run on the crop a detection gives.

BlazeFace's six keypoints are coarse (an eye *centre*, the nose *tip*), while the embedder
was trained on chips aligned on dlib's eye corners and nose base. The face-mesh model
(``models/face_landmark.tflite``, 468 points) finds those points precisely, so the aligner
can use them instead. The crop follows MediaPipe's graph exactly, as the model's manifest
records it: the detection box made square on its longer side, enlarged 1.5x, rotated so the
eyes are level, warped to 192x192, pixels scaled to [0, 1]. Landmarks come back in the
crop's pixels and are mapped to the frame with the inverse of that warp.

Pure numpy + OpenCV + the LiteRT interpreter: no MediaPipe, no TensorFlow.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from pi_facegate.core.faces import Face
from pi_facegate.exc import ModelError
from pi_facegate.vision.litert import make_interpreter
from pi_facegate.vision.manifest import Manifest, load_manifest

#: the bundled face-mesh model
DEFAULT_LANDMARKS = "face_landmark"


@dataclass(frozen=True)
class Mesh:
    """The landmarks of one face: ``points`` ``(468, 2)`` frame pixels, ``score`` 0..1."""

    points: np.ndarray
    score: float


def roi_transform(
    face: Face, size: int, scale: float = 1.5, rotation_keypoints: tuple[int, int] = (0, 1)
) -> np.ndarray:
    """The 2x3 matrix taking frame coordinates to the model's ``size`` x ``size`` crop.

    Continuous coordinates (a pixel's centre at +0.5), like the model's outputs: MediaPipe's
    ROI is the box centre, a square of ``scale`` x the longer box side, turned by the angle
    of the line from keypoint 0 to keypoint 1 (the eyes) so that they come out level.
    """
    x, y, w, h = face.box
    centre = np.array([x + w / 2.0, y + h / 2.0])
    side = max(w, h) * scale
    if side <= 0:
        raise ValueError(f"face box {face.box} has no area")
    a, b = face.keypoints[rotation_keypoints[0]], face.keypoints[rotation_keypoints[1]]
    angle = float(np.arctan2(b[1] - a[1], b[0] - a[0]))
    c, s = np.cos(angle), np.sin(angle)
    k = size / side
    rot = k * np.array([[c, s], [-s, c]])  # rotates by -angle: the eye line becomes horizontal
    matrix = np.empty((2, 3))
    matrix[:, :2] = rot
    matrix[:, 2] = size / 2.0 - rot @ centre
    return matrix


def _pixel_centred(matrix: np.ndarray) -> np.ndarray:
    """``matrix`` for OpenCV's convention, where a pixel's centre sits at an integer."""
    out = matrix.copy()
    out[:, 2] += matrix[:, :2] @ np.array([0.5, 0.5]) - 0.5
    return out


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """The inverse of a 2x3 affine matrix."""
    return cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64))


class LandmarkRefiner:
    """Runs the face-mesh model on each detected face of a frame.

    :param manifest: the model's manifest (kind ``landmarks``)
    :param num_threads: CPU threads for the interpreter

    The interpreter is not thread-safe, so calls hold a lock; ``close()`` is idempotent.
    """

    def __init__(self, manifest: Manifest, num_threads: int = 1) -> None:
        self._interpreter: Any = None
        self._lock = threading.Lock()
        self.manifest = manifest
        if manifest.kind != "landmarks":
            raise ModelError(f"{manifest.path} describes a {manifest.kind!r}, not a landmark model")
        try:
            inp, roi = manifest["input"], manifest["roi"]
            self.size = int(inp["width"])
            self._mean, self._std = float(inp["mean"]), float(inp["std"])
            self._scale = float(roi["scale"])
            self._rotation = tuple(int(i) for i in roi["rotation_keypoints"])
            self.num_landmarks = int(manifest["num_landmarks"])
            self.min_score = float(manifest.get("min_score", 0.5))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"landmark manifest {manifest.path} is incomplete: {exc}") from exc
        if int(inp["height"]) != self.size or len(self._rotation) != 2:
            raise ModelError(
                f"landmark manifest {manifest.path}: only square crops and two rotation keypoints"
            )
        interpreter = make_interpreter(manifest.model_path, num_threads)
        inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
        if tuple(inputs[0]["shape"]) != (1, self.size, self.size, 3) or len(outputs) != 2:
            raise ModelError(
                f"{manifest.model_path} does not have the inputs/outputs its manifest describes"
            )
        by_size = {int(np.prod(o["shape"])): o["index"] for o in outputs}
        if self.num_landmarks * 3 not in by_size or 1 not in by_size:
            raise ModelError(
                f"{manifest.model_path}: expected {self.num_landmarks} x 3 landmarks and a score"
            )
        self._input = inputs[0]["index"]
        self._points_out = by_size[self.num_landmarks * 3]
        self._score_out = by_size[1]
        self._interpreter = interpreter

    @classmethod
    def load(cls, name: str = DEFAULT_LANDMARKS, num_threads: int = 1) -> LandmarkRefiner:
        """The bundled (or named) landmark model, its manifest checked against the file."""
        return cls(load_manifest(name), num_threads)

    def crop(self, image: np.ndarray, face: Face) -> tuple[np.ndarray, np.ndarray]:
        """(the model's float input ``(1, size, size, 3)``, the frame-to-crop matrix)."""
        matrix = roi_transform(face, self.size, self._scale, self._rotation)
        pixels = cv2.warpAffine(
            image,
            _pixel_centred(matrix),
            (self.size, self.size),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0),
        )
        tensor = (pixels.astype(np.float32) - np.float32(self._mean)) / np.float32(self._std)
        return tensor[None], matrix

    def mesh(self, image: np.ndarray, face: Face) -> Mesh:
        """The 468 landmarks of ``face`` in ``image`` pixels, and the model's face score."""
        if self._interpreter is None:
            raise ModelError("the landmark model is closed")
        tensor, matrix = self.crop(image, face)
        with self._lock:
            self._interpreter.set_tensor(self._input, tensor)
            self._interpreter.invoke()
            raw = (
                self._interpreter.get_tensor(self._points_out)
                .reshape(-1, 3)[:, :2]
                .astype(np.float64)
            )
            logit = float(self._interpreter.get_tensor(self._score_out).reshape(-1)[0])
        inverse = invert_affine(matrix)
        points = raw @ inverse[:, :2].T + inverse[:, 2]
        return Mesh(points, float(1.0 / (1.0 + np.exp(-np.clip(logit, -80.0, 80.0)))))

    def refine(self, image: np.ndarray, faces: list[Face]) -> list[np.ndarray]:
        """The ``(468, 2)`` landmark points of each face, in ``image`` pixels."""
        return [self.mesh(image, f).points for f in faces]

    def close(self) -> None:
        """Drop the interpreter; safe to call twice."""
        self._interpreter = None

    def __enter__(self) -> LandmarkRefiner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
