"""Face detection: the :class:`Face` every backend returns and the :class:`Detector` ABC.

Backends live in their own modules and are imported only when chosen, because importing
MediaPipe on a CPU it was not built for (the Pi 4's Cortex-A72) kills the process with
SIGILL, which cannot be caught. :func:`create_detector` (in ``factory``) decides first.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np

# BlazeFace's six keypoints, in the order the model emits them. "Right"/"left" are the
# subject's own: the right eye appears on the left of a non-mirrored image.
KEYPOINT_NAMES = (
    "right_eye",
    "left_eye",
    "nose_tip",
    "mouth_center",
    "right_ear_tragion",
    "left_ear_tragion",
)


@dataclass(frozen=True)
class Face:
    """One detected face, in pixel coordinates of the frame it was found in.

    ``box`` is ``(x, y, width, height)``; ``keypoints`` is a ``(6, 2)`` float array of
    ``(x, y)`` in :data:`KEYPOINT_NAMES` order; ``score`` is the detector's confidence 0..1.
    """

    box: tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray = field(repr=False)

    @property
    def size(self) -> float:
        """The shorter side of the box in pixels (what a minimum face size compares to)."""
        return float(min(self.box[2], self.box[3]))

    def scaled(self, factor: float) -> Face:
        """This face with coordinates multiplied by ``factor`` (detect small, align full)."""
        x, y, w, h = self.box
        return Face(
            (x * factor, y * factor, w * factor, h * factor),
            self.score,
            self.keypoints * factor,
        )


class Detector(abc.ABC):
    """Finds faces in an RGB ``uint8`` image of shape ``(H, W, 3)``."""

    #: the backend's name as config and logs spell it ("mediapipe", "litert")
    backend: str = ""

    @abc.abstractmethod
    def detect(self, image: np.ndarray, timestamp_ms: int | None = None) -> list[Face]:
        """Faces in ``image``, best first. ``timestamp_ms`` marks a video frame."""

    def close(self) -> None:  # noqa: B027 - optional hook, idempotent
        """Release the model; safe to call twice."""

    def __enter__(self) -> Detector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
