"""What a benchmarked pipeline takes and gives: frames in, one :class:`FrameResult` each.

Frames come from a video file, an image or an image folder (the camera's replay source),
optionally letterboxed to one size; :class:`Reference` photos are enrolled in every
pipeline of a run so that their answers can be compared.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pi_facegate.camera.replay import ReplaySource
from pi_facegate.exc import MultipleFacesError, NoFaceError, UsageError


def parse_size(text: str) -> tuple[int, int]:
    """``"640x480"`` as ``(640, 480)``; a :class:`UsageError` for anything else."""
    width, sep, height = text.lower().partition("x")
    try:
        size = (int(width), int(height)) if sep else None
    except ValueError:
        size = None
    if size is None or min(size) < 16 or max(size) > 8192:
        raise UsageError(f"--size must be WIDTHxHEIGHT in pixels, 16..8192 each (got {text!r})")
    return size


def letterbox(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` scaled to fit ``size`` (width, height) without distortion, centred on black.

    A camera frame of another shape becomes a ``size`` frame whose faces keep their
    proportions (stretching would change what identity the embedder sees).
    """
    width, height = size
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    scale = min(width / w, height / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    scaled = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    out = np.zeros((height, width) + image.shape[2:], dtype=image.dtype)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    out[top : top + new_h, left : left + new_w] = scaled
    return out


def read_frames(
    path: Path, size: tuple[int, int] | None = None, limit: int | None = None
) -> Iterator[np.ndarray]:
    """RGB frames of a video file, an image or an image folder, in order, at most ``limit``."""
    count = 0
    with ReplaySource(path) as source:
        while limit is None or count < limit:
            frame = source.read()
            if frame is None:
                return
            count += 1
            yield letterbox(frame.image, size) if size else frame.image


@dataclass(frozen=True)
class FrameResult:
    """One frame through a pipeline: stage and total milliseconds, faces, identities."""

    stages_ms: dict[str, float]
    total_ms: float
    cpu_ms: float
    faces: int
    embedded: int
    names: frozenset[str]


@dataclass(frozen=True)
class Reference:
    """A photo enrolled for the run (in both pipelines, so their answers can be compared)."""

    name: str
    path: Path


def check_one_face(reference: Reference, count: int, who: str) -> None:
    """Refuse a reference photo in which ``who`` (a detector) finds no face or several."""
    if count == 0:
        raise NoFaceError(f"{reference.path}: {who} finds no face to enrol {reference.name!r} from")
    if count > 1:
        raise MultipleFacesError(
            f"{reference.path}: {who} finds {count} faces; a reference photo must show one"
        )
