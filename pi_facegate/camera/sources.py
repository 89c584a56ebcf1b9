"""Where frames come from: one :class:`FrameSource` interface and its implementations.

Every source follows picamera2's lifecycle — ``start()`` → ``read()`` … → ``stop()`` →
``close()`` — and hands out :class:`Frame` objects whose arrays the consumer owns (never a
live camera buffer). Implementations:

- :class:`ReplaySource`: a folder of images, a single image or a video file, as fast as
  possible or paced to a frame rate. The stand-in for a camera in tests and demos.
- :class:`OpenCVSource`: a USB camera, an RTSP stream or a video file via ``cv2.VideoCapture``.
- :class:`~pi_facegate.camera.picamera.Picamera2Source`: the Pi camera (imports picamera2
  only when started, so nothing else needs it).

Two wrappers make a live camera fit a door:

- :class:`FrameGrabber` reads a live source on its own thread and keeps only the newest
  frame, so the recogniser never works on a stale queue. A replay source is *not* grabbed:
  read directly it delivers every frame in order, which is what a test or an evaluation
  needs. :func:`create_camera` makes that choice.
- :class:`SupervisedSource` closes a camera that failed or stalled and reopens it with
  exponential back-off, reporting ``camera_error`` / ``camera_recovered`` events.

Every failure is a :class:`~pi_facegate.exc.CameraError`; a consumer that gets one has no
frame, so the door stays locked.
"""

from __future__ import annotations

import abc
import logging
import math
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pi_facegate.exc import CameraError, CameraTimeoutError, ConfigError, ImageError
from pi_facegate.vision.images import load_image, to_rgb

log = logging.getLogger("pi_facegate.camera")  # journal name: stable across moves

CAMERA_TYPES = ("picamera2", "opencv", "replay")

#: file name endings read as video by :class:`ReplaySource` (anything else is tried as an image)
VIDEO_SUFFIXES = frozenset(
    ".mp4 .m4v .mov .avi .mkv .webm .mpg .mpeg .ts .wmv .flv .h264 .264 .mjpeg .mjpg".split()
)

#: seconds without a frame after which :class:`SupervisedSource` treats a camera as stalled
DEFAULT_STALL_SECONDS = 5.0
#: seconds a :class:`FrameGrabber` waits for one frame from its source before retrying
DEFAULT_GRAB_TIMEOUT = 2.0

#: seconds of clock jitter tolerated when deciding that a wait reached a limit
_CLOCK_SLACK = 1e-3

#: ``on_event(name, details)``: ``camera_error`` / ``camera_recovered`` and their details
EventCallback = Callable[[str, dict[str, Any]], None]


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


def _check_lores_width(lores_width: int | None) -> int | None:
    if lores_width is None or lores_width == 0:
        return None
    if int(lores_width) != lores_width or lores_width < 2:
        raise ConfigError(
            f"lores width must be 0, None or a width >= 2 pixels (got {lores_width!r})"
        )
    return int(lores_width)


def _check_fps(fps: float, name: str = "fps") -> float:
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

    A source is read by one thread at a time; :class:`FrameGrabber` is the thread-safe
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
        self._lores_width = _check_lores_width(lores_width)

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
                raise CameraError(f"{self.describe()}: cannot start: {_reason(exc)}") from exc
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
            raise CameraError(f"{self.describe()}: read failed: {_reason(exc)}") from exc

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


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --------------------------------------------------------------------------- replay


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
        self.fps = _check_fps(fps)
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


# --------------------------------------------------------------------------- OpenCV


class OpenCVSource(FrameSource):
    """A USB camera, an RTSP/HTTP stream or a video file through ``cv2.VideoCapture``.

    ``device`` is a camera index (``0`` = ``/dev/video0``; a string of digits counts as an
    index), a device path, a URL or a file. ``width``/``height``/``fps`` are requests: the
    camera may deliver another size, which is logged once and passed on unchanged. A failed
    open or read is a ``CameraError``; unlike :class:`ReplaySource`, the end of a video file
    is an error too, because a live camera does not end.

    ``read(timeout)`` cannot interrupt OpenCV's blocking read: streams get ``read_timeout``
    as FFmpeg's own read timeout, V4L2 cameras have the driver's (about 10 s). Wrap the
    source in a :class:`FrameGrabber` to bound the wait for the consumer.
    """

    kind = "opencv"

    def __init__(
        self,
        device: int | str = 0,
        width: int = 640,
        height: int = 480,
        fps: float = 15.0,
        *,
        lores_width: int | None = None,
        open_timeout: float = 10.0,
        read_timeout: float = 5.0,
    ) -> None:
        super().__init__(lores_width=lores_width)
        self._capture: Any = None
        if isinstance(device, str) and device.strip().isdigit():
            device = int(device)
        if isinstance(device, bool) or not isinstance(device, int | str) or device == "":
            raise ConfigError(f"camera device must be an index, a path or a URL (got {device!r})")
        self.device = device
        self.width, self.height = int(width), int(height)
        self.fps = _check_fps(fps)
        self.open_timeout = float(open_timeout)
        self.read_timeout = float(read_timeout)
        self._index = 0
        self._size_logged = False

    def describe(self) -> str:
        return f"opencv camera {self.device!r}"

    def _open(self) -> None:
        self._index = 0
        self._size_logged = False
        if isinstance(self.device, int):
            api = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
            capture = cv2.VideoCapture(self.device, api)
        else:
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                int(self.open_timeout * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                int(self.read_timeout * 1000),
            ]
            capture = cv2.VideoCapture(self.device, cv2.CAP_ANY, params)
            if not capture.isOpened():  # a backend that rejects the timeout parameters
                capture.release()
                capture = cv2.VideoCapture(self.device)
        self._capture = capture
        if not capture.isOpened():
            raise CameraError(
                f"{self.describe()}: cannot open (no such camera, busy, or unreadable)"
            )
        if isinstance(self.device, int):
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            if self.fps:
                capture.set(cv2.CAP_PROP_FPS, self.fps)
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # fewer stale frames in the driver

    def _release(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()

    def _read(self, timeout: float | None) -> Frame | None:
        ok, bgr = self._capture.read()
        if not ok or bgr is None:
            raise CameraError(f"{self.describe()}: no frame (unplugged, stream ended or timed out)")
        rgb = to_rgb(bgr) if bgr.ndim == 2 else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if not self._size_logged:
            self._size_logged = True
            if (rgb.shape[1], rgb.shape[0]) != (self.width, self.height):
                log.info(
                    "%s delivers %dx%d (asked for %dx%d)",
                    self.describe(),
                    rgb.shape[1],
                    rgb.shape[0],
                    self.width,
                    self.height,
                )
        frame = self._frame(rgb, self._index)
        self._index += 1
        return frame


# --------------------------------------------------------------------------- grabber


class FrameGrabber(FrameSource):
    """Reads a live source on a worker thread and keeps only the newest frame.

    A camera delivers frames at its own rate while recognition may take longer than one
    frame period; queuing would make the door act on what happened seconds ago. The
    grabber's thread reads continuously, overwriting the one frame it holds (counting the
    overwritten ones in :attr:`dropped`); :meth:`latest` hands out each frame at most once.

    The grabber owns ``source``: ``start``/``stop``/``close`` pass through to it. Errors
    reach the consumer: a source error ends the thread and :meth:`latest` raises it (after
    the frame still held, if any); a timeout of one read is only retried, because the
    consumer's own timeout (and :class:`SupervisedSource`'s stall limit) judge a stall.
    Not for replay: a grabbed replay drops frames whenever the consumer is slower.
    """

    kind = "grabber"

    def __init__(
        self,
        source: FrameSource,
        read_timeout: float = DEFAULT_GRAB_TIMEOUT,
        join_timeout: float | None = None,
    ) -> None:
        super().__init__()
        self._thread: threading.Thread | None = None
        self._zombie: threading.Thread | None = None
        self.source = source
        self.read_timeout = float(read_timeout)
        #: seconds stop() waits for the thread; a read can block that long, plus slack
        self.join_timeout = self.read_timeout + 2.0 if join_timeout is None else float(join_timeout)
        self._changed = threading.Condition()
        self._halt = threading.Event()
        self._reset()

    def describe(self) -> str:
        source = getattr(self, "source", None)
        return f"grabber of {source.describe()}" if source is not None else "grabber"

    def _reset(self) -> None:
        self._latest: Frame | None = None
        self._error: BaseException | None = None
        self._ended = False
        self._frames_read = 0
        self._dropped = 0

    @property
    def frames_read(self) -> int:
        """Frames the thread has read from the source since start."""
        return self._frames_read

    @property
    def dropped(self) -> int:
        """Frames overwritten by a newer one before any consumer took them."""
        return self._dropped

    def _open(self) -> None:
        with self._changed:
            self._reset()
        self._halt.clear()
        self.source.start()
        self._thread = threading.Thread(target=self._run, name="FrameGrabber", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        """The worker thread: the only reader of ``source`` while started."""
        try:
            while not self._halt.is_set():
                try:
                    frame = self.source.read(self.read_timeout)
                except CameraTimeoutError:
                    continue
                with self._changed:
                    if frame is None:
                        self._ended = True
                        self._changed.notify_all()
                        return
                    if self._latest is not None:
                        self._dropped += 1
                    self._latest = frame
                    self._frames_read += 1
                    self._changed.notify_all()
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, never lost
            if self._halt.is_set():
                return
            if not isinstance(exc, CameraError):
                log.error("%s: unexpected error", self.describe(), exc_info=True)
            with self._changed:
                self._error = exc
                self._changed.notify_all()

    def latest(self, timeout: float | None = None) -> Frame | None:
        """The newest frame not handed out yet, waiting up to ``timeout`` seconds for one.

        :returns: the frame, or ``None`` once a finite source has ended.
        :raises CameraTimeoutError: no new frame within ``timeout``.
        :raises CameraError: the source failed, or the grabber was stopped.
        """
        return self.read(timeout)

    def wait_until_read(self, count: int, timeout: float | None = None) -> bool:
        """Wait until the thread has read ``count`` frames (e.g. to let exposure settle).

        :returns: whether it had, within ``timeout``; ``False`` early if the source ended or failed.
        """
        with self._changed:
            self._changed.wait_for(
                lambda: (
                    self._frames_read >= count
                    or self._ended
                    or self._error is not None
                    or self._halt.is_set()
                ),
                timeout,
            )
            return self._frames_read >= count

    def _read(self, timeout: float | None) -> Frame | None:
        with self._changed:
            self._changed.wait_for(
                lambda: (
                    self._latest is not None
                    or self._ended
                    or self._error is not None
                    or self._halt.is_set()
                ),
                timeout,
            )
            if self._latest is not None:
                frame, self._latest = self._latest, None
                return frame
            if self._error is not None:  # a fresh exception each time, chained to the cause
                error = self._error
                text = str(error) if isinstance(error, CameraError) else _reason(error)
                raise CameraError(text) from error
            if self._ended:
                return None
            if self._halt.is_set():
                raise CameraError(f"{self.describe()}: stopped")
            raise CameraTimeoutError(f"{self.source.describe()}: no frame within {timeout:g} s")

    def _release(self) -> None:
        self._halt.set()
        with self._changed:
            self._changed.notify_all()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.join_timeout)
            if thread.is_alive():
                # Like gpiozero's ZombieThread: closing a device a thread is inside of is worse.
                self._zombie = thread
                raise CameraError(
                    f"{self.describe()}: the reading thread did not stop within "
                    f"{self.join_timeout:g} s (camera read hung); the device is left open"
                )
        self.source.stop()

    def _close(self) -> None:
        zombie = self._zombie
        if zombie is not None and zombie.is_alive():
            log.error("%s: not closing the source, a thread is still reading it", self.describe())
            return
        self.source.close()


# --------------------------------------------------------------------------- supervision


class SupervisedSource(FrameSource):
    """Keeps a camera going: a source that fails or stalls is closed and made anew.

    ``factory`` makes a fresh, unstarted source (say ``lambda: FrameGrabber(OpenCVSource(0))``).
    When opening it fails, a read raises a ``CameraError`` other than a timeout, or no frame
    arrived for ``stall_seconds``, the source is logged, closed, and reopened after
    ``retry_initial`` seconds, doubling after each failed attempt up to ``retry_max``; the
    first frame afterwards resets the delay. Waiting is never a busy loop and a stop
    request ends it at once.

    ``read(timeout)`` keeps the usual contract: during an outage it raises ``CameraError``
    when ``timeout`` passes (so the consumer can keep the door locked and go on pinging
    its watchdog), or with ``timeout=None`` blocks until the camera is back. The end of a
    finite source (``None``) is passed on, not retried.

    :param on_event: called ``on_event("camera_error", {"reason", "failures", "retry_in"})``
        once per outage and ``on_event("camera_recovered", {"down_seconds", "failures"})``
        when frames flow again. Exceptions it raises are logged and ignored.
    :param stop_event: an Event (e.g. the daemon's shutdown event) that, once set, ends any
        wait and makes ``read`` raise; never set or cleared here. Without one a private
        event is used, which ``stop()`` sets and ``start()`` clears.
    :param clock: seconds, monotonic (injectable for tests).
    :param wait: ``wait(seconds) -> bool`` sleeps unless stopped, returning ``True`` if it
        was (default: the stop event's ``wait``). Tests inject a fake to run instantly.
    """

    kind = "supervised"

    def __init__(
        self,
        factory: Callable[[], FrameSource],
        *,
        retry_initial: float = 1.0,
        retry_max: float = 30.0,
        stall_seconds: float = DEFAULT_STALL_SECONDS,
        on_event: EventCallback | None = None,
        stop_event: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[float], bool] | None = None,
        name: str = "camera",
    ) -> None:
        super().__init__()
        self._source: FrameSource | None = None
        if not retry_initial > 0 or not retry_max > 0:
            raise ConfigError(
                f"retry delays must be > 0 seconds (got {retry_initial!r}, {retry_max!r})"
            )
        if not stall_seconds > 0:
            raise ConfigError(f"stall_seconds must be > 0 (got {stall_seconds!r})")
        self.factory = factory
        self.retry_initial = float(retry_initial)
        self.retry_max = float(retry_max)
        self.stall_seconds = float(stall_seconds)
        self.name = name
        self._on_event = on_event
        self._owns_event = stop_event is None
        self._stop_event = stop_event if stop_event is not None else threading.Event()
        self._clock = clock
        self._wait = wait if wait is not None else self._stop_event.wait
        self._failures = 0
        self._reason = ""
        self._down_since: float | None = None
        self._next_attempt = 0.0
        # when the consumer began waiting for a frame that has not come yet (None: not waiting)
        self._silent_since: float | None = None
        self._state_text = "stopped"

    def describe(self) -> str:
        return self.name

    @property
    def state(self) -> str:
        """``"ok"``, ``"failed: <reason>"`` or ``"stopped"``."""
        return self._state_text

    @property
    def failures(self) -> int:
        """Failed attempts in the current outage (0 while frames flow)."""
        return self._failures

    @property
    def retry_delay(self) -> float:
        """Seconds the next reopen waits after the current number of failures."""
        if self._failures == 0:
            return 0.0
        return min(self.retry_initial * 2.0 ** (self._failures - 1), self.retry_max)

    @property
    def source(self) -> FrameSource | None:
        """The source currently open, if any."""
        return self._source

    # -- lifecycle ----------------------------------------------------------------------

    def _open(self) -> None:
        """First attempt; a failure here is an outage like any other, not an exception."""
        if self._owns_event:
            self._stop_event.clear()
        self._failures = 0
        self._down_since = None
        self._try_open()

    def _release(self) -> None:
        if self._owns_event:
            self._stop_event.set()
        self._drop_source()
        self._state_text = "stopped"

    def _read(self, timeout: float | None) -> Frame | None:
        deadline = None if timeout is None else self._clock() + timeout
        while True:
            if self._stop_event.is_set():
                raise CameraError(f"{self.name}: stopped")
            if self._source is None:
                self._wait_and_reopen(deadline)
                continue
            now = self._clock()
            if self._silent_since is None:
                self._silent_since = now
            # Never wait past the stall limit, so a silent camera is noticed even when the
            # consumer waits forever (timeout=None). Time the consumer spends elsewhere
            # between reads does not count: only waiting in vain does.
            limit = self._silent_since + self.stall_seconds - now
            if deadline is not None:
                limit = min(limit, deadline - now)
            try:
                frame = self._source.read(max(0.0, limit))
            except CameraError as exc:
                if self._stop_event.is_set():  # closed under us by stop(): not an outage
                    raise CameraError(f"{self.name}: stopped") from exc
                if not isinstance(exc, CameraTimeoutError):
                    self._fail(str(exc), exc)
                    continue
                stalled = self._clock() - self._silent_since
                if stalled < self.stall_seconds - _CLOCK_SLACK:
                    raise
                self._fail(f"no frame for {stalled:.1f} s", exc)
                continue
            self._silent_since = None
            if frame is not None and self._failures:
                self._recovered()
            return frame

    def _wait_and_reopen(self, deadline: float | None) -> None:
        """Wait for the next attempt (or raise at ``deadline``), then try to reopen."""
        now = self._clock()
        if deadline is not None and deadline < self._next_attempt:
            if self._wait(max(0.0, deadline - now)):
                raise CameraError(f"{self.name}: stopped")
            raise CameraError(
                f"{self.name} unavailable ({self._reason}); "
                f"retrying in {max(0.0, self._next_attempt - self._clock()):.1f} s"
            )
        if self._next_attempt > now and self._wait(self._next_attempt - now):
            raise CameraError(f"{self.name}: stopped")
        self._try_open()

    def _try_open(self) -> None:
        source: FrameSource | None = None
        try:
            source = self.factory()
            source.start()
        except Exception as exc:  # noqa: BLE001 - any failure to open is an outage
            if source is not None:
                _close_quietly(source)
            self._fail(f"cannot open: {exc}" if not isinstance(exc, CameraError) else str(exc), exc)
            return
        self._source = source
        self._silent_since = None
        if not self._failures:
            self._state_text = "ok"
        log.info("%s: opened %s", self.name, source.describe())

    def _fail(self, reason: str, exc: BaseException) -> None:
        self._drop_source()
        now = self._clock()
        self._failures += 1
        self._reason = reason
        self._state_text = f"failed: {reason}"
        delay = self.retry_delay
        self._next_attempt = now + delay
        first = self._down_since is None
        if first:
            self._down_since = now
        log.warning(
            "%s failed (%s); attempt %d, retrying in %.1f s",
            self.name,
            reason,
            self._failures,
            delay,
            exc_info=not isinstance(exc, CameraError),
        )
        if first:
            self._emit(
                "camera_error", {"reason": reason, "failures": self._failures, "retry_in": delay}
            )

    def _recovered(self) -> None:
        down = self._clock() - (self._down_since if self._down_since is not None else self._clock())
        failures = self._failures
        self._failures = 0
        self._down_since = None
        self._reason = ""
        self._state_text = "ok"
        log.info("%s recovered after %.1f s (%d failed attempts)", self.name, down, failures)
        self._emit("camera_recovered", {"down_seconds": down, "failures": failures})

    def _drop_source(self) -> None:
        source, self._source = self._source, None
        if source is not None:
            _close_quietly(source)

    def _emit(self, name: str, details: dict[str, Any]) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(name, details)
        except Exception:  # noqa: BLE001 - a broken listener must not stop the camera
            log.exception("%s: %s listener failed", self.name, name)


def _close_quietly(source: FrameSource) -> None:
    try:
        source.close()
    except Exception:  # noqa: BLE001 - closing a failed camera: nothing more to do
        log.warning("closing %s failed", source.describe(), exc_info=True)


# --------------------------------------------------------------------------- factory

_KEYS = (
    "type",
    "device",
    "width",
    "height",
    "fps",
    "detect_width",
    "lores_width",
    "replay",
    "replay_path",
    "replay_fps",
    "replay_loop",
    "retry_initial_seconds",
    "retry_max_seconds",
)


def _setting(camera: Any, key: str, default: Any) -> Any:
    if camera is None:
        return default
    if isinstance(camera, Mapping):
        value = camera.get(key, default)
    else:
        value = getattr(camera, key, default)
    return default if value is None else value


def _settings(camera: Any, overrides: dict[str, Any]) -> dict[str, Any]:
    """Known camera keys from a config section (mapping or object) plus keyword overrides."""
    unknown = sorted(set(overrides) - set(_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown camera setting(s) {', '.join(unknown)} (valid: {', '.join(_KEYS)})"
        )
    settings = {key: _setting(camera, key, None) for key in _KEYS}
    settings.update(overrides)
    replay = settings["replay"]
    for key in ("path", "fps", "loop"):
        if settings[f"replay_{key}"] is None:
            settings[f"replay_{key}"] = _setting(replay, key, None)
    return settings


def create_source(camera: Any = None, /, **overrides: Any) -> FrameSource:
    """The bare backend a camera config section describes (not started, not grabbed).

    ``camera`` is the config's ``camera`` section — the pydantic model, or a mapping — and
    keywords override or replace it: ``type`` (picamera2 | opencv | replay), ``device``,
    ``width``, ``height``, ``fps``, ``detect_width`` (or ``lores_width``; 0 = none),
    ``replay`` (with ``path``, ``fps``, ``loop``) or ``replay_path``/``replay_fps``/
    ``replay_loop``. Keys it does not use are ignored in ``camera`` (newer config fields)
    but rejected as keywords (typos). A replay keeps its recording's size.
    """
    s = _settings(camera, overrides)
    kind = s["type"] or "picamera2"
    lores = s["lores_width"] if s["lores_width"] is not None else s["detect_width"]
    lores = lores or None
    width, height, fps = int(s["width"] or 640), int(s["height"] or 480), float(s["fps"] or 15.0)
    if kind == "replay":
        if not s["replay_path"]:
            raise ConfigError("camera.type is replay but camera.replay.path is not set")
        return ReplaySource(
            s["replay_path"],
            fps=float(s["replay_fps"] or 0.0),
            loop=bool(s["replay_loop"]),
            lores_width=lores,
        )
    if kind == "opencv":
        device = s["device"] if s["device"] is not None else 0
        return OpenCVSource(device, width, height, fps, lores_width=lores)
    if kind == "picamera2":
        from pi_facegate.camera.picamera import Picamera2Source

        return Picamera2Source(width, height, lores_width=lores, fps=fps)
    raise ConfigError(f"camera.type {kind!r} is not one of {', '.join(CAMERA_TYPES)}")


def create_camera(
    camera: Any = None,
    /,
    *,
    on_event: EventCallback | None = None,
    stop_event: threading.Event | None = None,
    stall_seconds: float = DEFAULT_STALL_SECONDS,
    **overrides: Any,
) -> FrameSource:
    """The source the door loop reads, for the config's ``camera`` section.

    A live camera (picamera2, opencv) becomes ``SupervisedSource(FrameGrabber(backend))``:
    always the newest frame, and reopened with back-off (``retry_initial_seconds`` …
    ``retry_max_seconds``) when it fails. A replay is returned bare, so every frame arrives
    in order and a bad path is an immediate ``CameraError`` at ``start()``. Either way the
    loop just calls ``read(timeout)``. (A recording given as an opencv ``device`` is read
    as a live camera: newest frame only, and its end is a failure; use replay for files.)
    """
    s = _settings(camera, overrides)
    if (s["type"] or "picamera2") == "replay":
        return create_source(camera, **overrides)
    create_source(camera, **overrides).close()  # check the settings now, not at the first retry
    return SupervisedSource(
        lambda: FrameGrabber(create_source(camera, **overrides)),
        retry_initial=float(s["retry_initial_seconds"] or 1.0),
        retry_max=float(s["retry_max_seconds"] or 30.0),
        stall_seconds=stall_seconds,
        on_event=on_event,
        stop_event=stop_event,
        name=f"camera ({s['type'] or 'picamera2'})",
    )


def __getattr__(name: str) -> Any:
    """``Picamera2Source`` lives in its own module; reaching it here does not import picamera2."""
    if name == "Picamera2Source":
        from pi_facegate.camera.picamera import Picamera2Source

        return Picamera2Source
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
