"""The frame interface every camera backend implements: :class:`Frame` and :class:`FrameSource`.

Every source follows picamera2's lifecycle — ``start()`` → ``read()`` … → ``stop()`` →
``close()`` — and hands out :class:`Frame` objects whose arrays the consumer owns (never a
live camera buffer). Every failure is a :class:`~pi_facegate.exc.CameraError`; a consumer
that gets one has no frame, so the door stays locked.

Also the small helpers the backends share: the detection-image size (:func:`lores_size`,
:func:`downscale`) and the checks of a lores width and a frame rate.
"""

from __future__ import annotations

import abc
import logging
import math
import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np

from pi_facegate.exc import CameraError, ConfigError

log = logging.getLogger("pi_facegate.camera")  # journal name: stable across moves


@dataclass(frozen=True, eq=False)
class Frame:
    """One captured picture.

    ``image`` is RGB ``uint8`` ``(H, W, 3)`` and belongs to whoever holds the frame: the
    source made a copy, so mutating it cannot change another frame. ``lores`` is an optional
    smaller RGB copy for face detection (the Pi camera's second stream, or a downscale).
    ``timestamp`` is :func:`time.monotonic` seconds at capture; ``index`` counts frames from
    the source's start (0, 1, 2, … across replay loops). ``position`` is, for a video
    replay, the frame's time in seconds within the recording, else ``None``.
    """

    image: np.ndarray
    timestamp: float
    index: int
    lores: np.ndarray | None = None
    position: float | None = None

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def lores_scale(self) -> float:
        """Factor from ``lores`` pixel coordinates to ``image`` ones (1.0 without lores).

        Faces found on ``lores`` map back with ``face.scaled(frame.lores_scale)``.
        """
        if self.lores is None:
            return 1.0
        return self.image.shape[1] / self.lores.shape[1]


def lores_size(width: int, height: int, lores_width: int | None) -> tuple[int, int] | None:
    """``(w, h)`` of the detection image for a ``width`` x ``height`` frame, or ``None``.

    ``None`` when no lores is wanted (0/None) or it would not be smaller than the frame.
    Both sides are even, as YUV420 streams need, and the aspect ratio is kept.
    """
    if not lores_width or lores_width >= width:
        return None
    lw = max(2, int(lores_width) // 2 * 2)
    lh = max(2, int(round(height * lw / width / 2)) * 2)
    return lw, lh


def downscale(image: np.ndarray, lores_width: int | None) -> np.ndarray | None:
    """A smaller copy of ``image`` ``lores_width`` pixels wide, or ``None`` (see :func:`lores_size`)."""
    size = lores_size(image.shape[1], image.shape[0], lores_width)
    if size is None:
        return None
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def check_lores_width(lores_width: int | None) -> int | None:
    """``lores_width`` as an int, ``None`` for no lores (0/None); a ``ConfigError`` if invalid."""
    if lores_width is None or lores_width == 0:
        return None
    if int(lores_width) != lores_width or lores_width < 2:
        raise ConfigError(
            f"lores width must be 0, None or a width >= 2 pixels (got {lores_width!r})"
        )
    return int(lores_width)


def check_fps(fps: float, name: str = "fps") -> float:
    """``fps`` as a float (0 = unpaced); a ``ConfigError`` naming ``name`` if not a number >= 0."""
    if (
        isinstance(fps, bool)
        or not isinstance(fps, int | float)
        or not math.isfinite(fps)
        or fps < 0
    ):
        raise ConfigError(f"{name} must be a number >= 0 (got {fps!r})")
    return float(fps)


# --------------------------------------------------------------------------- interface


class FrameSource(abc.ABC):
    """A source of :class:`Frame` objects with picamera2's lifecycle.

    ``start()`` acquires the device (again after a ``stop()``), ``read(timeout)`` returns the
    next frame, ``None`` at the end of a finite source, or raises
    :class:`~pi_facegate.exc.CameraError` (:class:`~pi_facegate.exc.CameraTimeoutError` when
    ``timeout`` seconds passed without a frame). ``stop()`` releases the device; ``close()``
    ends the object for good. Repeated ``start``/``stop``/``close`` calls are quiet;
    ``read`` outside start/stop is a ``CameraError`` naming the mistake. As a context
    manager it is started on entry and closed on exit.

    A source is read by one thread at a time; :class:`~pi_facegate.camera.grabber.FrameGrabber` is the thread-safe
    hand-over. Subclasses implement ``_open``, ``_read`` and ``_release`` (the last must be
    safe on a half-opened device); the base class keeps the state and turns unexpected
    backend exceptions into ``CameraError``.
    """

    #: how config and logs name the backend
    kind: str = ""

    def __init__(self, *, lores_width: int | None = None) -> None:
        # First, before anything can raise: close() relies on these (gpiozero's habit).
        self._state = "new"  # new | started | stopped | closed
        self._lifecycle = threading.RLock()
        self._lores_width = check_lores_width(lores_width)

    # -- lifecycle --------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return getattr(self, "_state", None) == "started"

    @property
    def closed(self) -> bool:
        return getattr(self, "_state", "closed") == "closed"

    def start(self) -> None:
        """Acquire the device and begin capturing; a no-op if already started."""
        with self._lifecycle:
            if self._state == "closed":
                raise CameraError(f"{self.describe()}: start() after close(); make a new source")
            if self._state == "started":
                return
            try:
                self._open()
            except BaseException as exc:
                self._release_quietly()
                if isinstance(exc, CameraError) or not isinstance(exc, Exception):
                    raise
                raise CameraError(f"{self.describe()}: cannot start: {error_reason(exc)}") from exc
            self._state = "started"

    def read(self, timeout: float | None = None) -> Frame | None:
        """The next frame; ``None`` at the end of a finite source.

        :param timeout: seconds to wait at most, ``None`` for as long as it takes.
        :raises CameraTimeoutError: no frame within ``timeout``.
        :raises CameraError: not started, or the device failed.
        """
        state = getattr(self, "_state", "closed")
        if state != "started":
            what = {"new": "before start()", "stopped": "after stop()", "closed": "after close()"}
            raise CameraError(f"{self.describe()}: read() {what.get(state, state)}")
        if timeout is not None:
            timeout = max(0.0, float(timeout))
        try:
            return self._read(timeout)
        except CameraError:
            raise
        except Exception as exc:  # a backend's own exception: still "no frame, door locked"
            raise CameraError(f"{self.describe()}: read failed: {error_reason(exc)}") from exc

    def stop(self) -> None:
        """Stop capturing and release the device; quiet if not started."""
        lock = getattr(self, "_lifecycle", None)
        if lock is None:
            return
        with lock:
            if self._state != "started":
                return
            try:
                self._release()
            finally:
                self._state = "stopped"

    def close(self) -> None:
        """Release everything for good. Idempotent and safe on a half-built object."""
        lock = getattr(self, "_lifecycle", None)
        if lock is None or self._state == "closed":
            return
        with lock:
            if self._state == "closed":
                return
            try:
                self.stop()
                self._close()
            finally:
                self._state = "closed"

    def __enter__(self) -> FrameSource:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> str:
        """A short name for messages, e.g. ``replay 'clip.mp4'``."""
        return self.kind or type(self).__name__

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()} {getattr(self, '_state', '?')}>"

    # -- for subclasses ---------------------------------------------------------------

    @abc.abstractmethod
    def _open(self) -> None:
        """Acquire the device. Raise ``CameraError`` saying why it cannot be used."""

    @abc.abstractmethod
    def _read(self, timeout: float | None) -> Frame | None:
        """The next frame (``timeout`` is ``None`` or >= 0)."""

    @abc.abstractmethod
    def _release(self) -> None:
        """Release the device; must cope with a half-done ``_open``."""

    def _close(self) -> None:  # noqa: B027 - optional hook
        """Release what outlives stop() (wrapped sources); called once by close()."""

    def _release_quietly(self) -> None:
        try:
            self._release()
        except Exception:  # noqa: BLE001 - already failing; the first error is the one to report
            log.debug(
                "%s: error while releasing after a failed start", self.describe(), exc_info=True
            )

    def _frame(
        self,
        image: np.ndarray,
        index: int,
        lores: np.ndarray | None = None,
        position: float | None = None,
    ) -> Frame:
        """Wrap an RGB image the caller no longer uses, adding the lores copy if wanted."""
        if lores is None and self._lores_width:
            lores = downscale(image, self._lores_width)
        return Frame(
            image=image, timestamp=time.monotonic(), index=index, lores=lores, position=position
        )


def error_reason(exc: BaseException) -> str:
    """``"TypeName: message"`` (or just the type name) for a message about ``exc``."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
