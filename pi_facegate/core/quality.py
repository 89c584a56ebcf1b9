"""The quality gate: is this face worth embedding (and, at enrolment, worth storing)?

Embedding a blurred, tiny, turned-away or badly lit face costs time and gives a vector that
matches nobody well, so such faces are skipped before the embedder. Each check returns a
reason a person at the door can act on ("too small", "too blurred", ...). All measures are
computed on the aligned chip, so they do not depend on the camera's resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pi_facegate.core.faces import Face

# positions in the detector's keypoint order (see pi_facegate.core.faces.KEYPOINT_NAMES)
_RIGHT_EYE, _LEFT_EYE, _NOSE = 0, 1, 2


@dataclass(frozen=True)
class QualityLimits:
    """Thresholds of the gate; ``0`` disables a check."""

    min_face_size: float = 60.0  # shorter side of the detector box, frame pixels
    min_sharpness: float = 15.0  # variance of the Laplacian of the grey chip
    max_yaw: float = 0.4  # |nose offset from the eyes' midpoint| / eye distance
    min_brightness: float = 40.0  # mean grey level of the chip, 0..255
    max_brightness: float = 220.0


@dataclass(frozen=True)
class QualityReport:
    """The measures of one face and the first reason it failed, if it did."""

    face_size: float
    sharpness: float
    yaw: float
    brightness: float
    reason: str | None  # None = good enough

    @property
    def ok(self) -> bool:
        return self.reason is None


def sharpness(chip: np.ndarray) -> float:
    """Variance of the Laplacian of the grey chip: low for blur (Pech-Pacheco et al. 2000)."""
    grey = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY) if chip.ndim == 3 else chip
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def yaw_ratio(keypoints: np.ndarray) -> float:
    """How far the nose sits from the eyes' midpoint, in eye distances (0 = frontal)."""
    right, left, nose = keypoints[_RIGHT_EYE], keypoints[_LEFT_EYE], keypoints[_NOSE]
    axis = left - right
    eye_distance = float(np.hypot(*axis))
    if eye_distance < 1e-6:
        return float("inf")
    offset = float(np.dot(nose - (right + left) / 2.0, axis) / eye_distance)
    return abs(offset) / eye_distance


def brightness(chip: np.ndarray) -> float:
    """Mean grey level of the chip, 0..255."""
    grey = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY) if chip.ndim == 3 else chip
    return float(grey.mean())


def assess(face: Face, chip: np.ndarray, limits: QualityLimits) -> QualityReport:
    """Measure ``face`` (and its aligned ``chip``) against ``limits``."""
    size = face.size
    sharp = sharpness(chip)
    yaw = yaw_ratio(face.keypoints)
    light = brightness(chip)
    reason = None
    if limits.min_face_size and size < limits.min_face_size:
        reason = "too small"
    elif limits.min_brightness and light < limits.min_brightness:
        reason = "too dark"
    elif limits.max_brightness and light > limits.max_brightness:
        reason = "too bright"
    elif limits.max_yaw and yaw > limits.max_yaw:
        reason = "not facing the camera"
    elif limits.min_sharpness and sharp < limits.min_sharpness:
        reason = "too blurred"
    return QualityReport(size, sharp, yaw, light, reason)
