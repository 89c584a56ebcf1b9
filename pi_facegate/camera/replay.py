"""Recorded frames played back as a camera: :class:`ReplaySource`.

A folder of images, a single image or a video file, as fast as possible or paced to a
frame rate. The stand-in for a camera in tests and demos; read directly (not grabbed) it
delivers every frame in order, which is what a test or an evaluation needs.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pi_facegate.camera.source import Frame, FrameSource, check_fps
from pi_facegate.exc import CameraError, CameraTimeoutError, ConfigError, ImageError
from pi_facegate.vision.images import load_image, to_rgb

log = logging.getLogger("pi_facegate.camera")  # journal name: stable across moves

#: file name endings read as video by :class:`ReplaySource` (anything else is tried as an image)
VIDEO_SUFFIXES = frozenset(
    ".mp4 .m4v .mov .avi .mkv .webm .mpg .mpeg .ts .wmv .flv .h264 .264 .mjpeg .mjpg".split()
)


def natural_key(name: str) -> list[Any]:
    """Sort key that puts ``2.pgm`` before ``10.pgm`` (digit runs compare as numbers)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


class ReplaySource(FrameSource):
    """Recorded frames played back: a folder of images, one image, or a video file.

    A folder is read in natural name order (``2.png`` before ``10.png``); hidden files and
    sub-folders are ignored; any file :func:`~pi_facegate.vision.images.load_image` can decode is
    a frame (JPEG, PNG, PGM, GIF with or without extension…), others are skipped with one
    warning each. A path ending in a video suffix (:data:`VIDEO_SUFFIXES`) is decoded with
    ``cv2.VideoCapture``. At the end ``read()`` returns ``None`` (for good), unless ``loop``.
    A source that yields no frame at all in a pass is a ``CameraError``, so a loop over
    unreadable files never spins.

    :param fps: 0 = as fast as the consumer reads; N = at most N frames per second in real
        time (a slow consumer gets the next frame at once, never a burst to catch up).
    :param size: ``(width, height)`` to resize every frame to, or ``None`` to keep it.
    :param lores_width: also give each frame a downscaled copy this wide (or ``None``).
    """

    kind = "replay"

    def __init__(
        self,
        path: str | Path,
        fps: float = 0.0,
        loop: bool = False,
        size: tuple[int, int] | None = None,
        lores_width: int | None = None,
    ) -> None:
        super().__init__(lores_width=lores_width)
        self._capture: Any = None
        self._files: list[Path] = []
        self._unreadable: set[Path] = set()
        self.path = Path(path)
        self.fps = check_fps(fps)
        self.loop = bool(loop)
        if size is not None:
            if len(size) != 2 or min(size) < 1:
                raise ConfigError(f"replay size must be (width, height) in pixels (got {size!r})")
            size = (int(size[0]), int(size[1]))
        self.size = size
        self.is_video = self.path.suffix.lower() in VIDEO_SUFFIXES
        self._wake = threading.Event()
        self._check_exists()
        self._reset()

    def describe(self) -> str:
        return f"replay {str(self.path)!r}"

    @property
    def skipped(self) -> list[Path]:
        """Files of the folder that could not be decoded (each was warned about once)."""
        return sorted(self._unreadable)

    def _check_exists(self) -> None:
        if not self.path.exists():
            raise CameraError(f"{self.describe()}: no such file or folder")

    def _reset(self) -> None:
        self._cursor = 0
        self._index = 0  # frames delivered since start
        self._in_pass = 0  # frames delivered since the current pass began
        self._ended = False
        self._pending: Frame | None = None
        self._next_due: float | None = None
        self._video_fps = 0.0

    def _open(self) -> None:
        self._check_exists()
        self._reset()
        self._wake.clear()
        if self.is_video:
            self._open_video()
        elif self.path.is_dir():
            self._files = sorted(
                (p for p in self.path.iterdir() if not p.name.startswith(".") and p.is_file()),
                key=lambda p: natural_key(p.name),
            )
            if not self._files:
                raise CameraError(f"{self.describe()}: the folder holds no files")
        else:
            self._files = [self.path]

    def _open_video(self) -> None:
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            capture.release()
            raise CameraError(
                f"{self.describe()}: cannot open as a video (unknown format or codec)"
            )
        self._capture = capture
        fps = capture.get(cv2.CAP_PROP_FPS)
        self._video_fps = float(fps) if fps and math.isfinite(fps) and fps > 0 else 0.0

    def _release(self) -> None:
        self._wake.set()  # ends a paced wait in progress
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()

    def _read(self, timeout: float | None) -> Frame | None:
        if self._ended:
            return None
        if self._pending is None:
            image, position = self._next_image()
            if image is None:
                self._ended = True
                return None
            self._pending = self._frame(image, self._index, position=position)
        self._pace(timeout)
        frame, self._pending = self._pending, None
        # timestamp = delivery time (the moment a camera would have captured it)
        frame = Frame(frame.image, time.monotonic(), frame.index, frame.lores, frame.position)
        self._index += 1
        self._in_pass += 1
        return frame

    def _pace(self, timeout: float | None) -> None:
        """Wait until the pending frame is due (``fps`` > 0); no wait at ``fps`` = 0."""
        if not self.fps:
            return
        now = time.monotonic()
        if self._next_due is None:
            self._next_due = now
        delay = self._next_due - now
        if delay > 0:
            if timeout is not None and timeout < delay:
                if self._wake.wait(timeout):
                    raise CameraError(f"{self.describe()}: stopped while waiting for a frame")
                raise CameraTimeoutError(
                    f"{self.describe()}: no frame within {timeout:g} s (paced to {self.fps:g} fps)"
                )
            if self._wake.wait(delay):
                raise CameraError(f"{self.describe()}: stopped while waiting for a frame")
        self._next_due = max(self._next_due, now) + 1.0 / self.fps

    def _next_image(self) -> tuple[np.ndarray | None, float | None]:
        """The next decoded RGB image of the stream (looping if asked), or ``(None, None)``."""
        while True:
            image, position = self._next_video_frame() if self.is_video else self._next_file()
            if image is not None:
                if self.size is not None and (image.shape[1], image.shape[0]) != self.size:
                    shrink = self.size[0] < image.shape[1]
                    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
                    image = cv2.resize(image, self.size, interpolation=interp)
                return image, position
            if self._in_pass == 0:
                what = (
                    "video has no decodable frame"
                    if self.is_video
                    else "no file could be read as an image"
                )
                raise CameraError(f"{self.describe()}: {what}")
            if not self.loop:
                return None, None
            self._rewind()

    def _rewind(self) -> None:
        self._cursor = 0
        self._in_pass = 0
        if self.is_video:
            if self._capture is not None:
                self._capture.release()
                self._capture = None
            self._open_video()

    def _next_video_frame(self) -> tuple[np.ndarray | None, float | None]:
        if self._capture is None:
            raise CameraError(f"{self.describe()}: video is not open")
        ok, bgr = self._capture.read()
        if not ok or bgr is None:
            return None, None
        position = self._in_pass / self._video_fps if self._video_fps else None
        if bgr.ndim == 2:
            return to_rgb(bgr), position
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), position

    def _next_file(self) -> tuple[np.ndarray | None, float | None]:
        while self._cursor < len(self._files):
            path = self._files[self._cursor]
            self._cursor += 1
            try:
                return load_image(path), None
            except ImageError as exc:
                if path not in self._unreadable:
                    self._unreadable.add(path)
                    log.warning("replay: skipping %s", exc)
        return None, None
