"""A USB camera, an RTSP stream or a video file via ``cv2.VideoCapture``: :class:`OpenCVSource`."""

from __future__ import annotations

import logging
import sys
from typing import Any

import cv2

from pi_facegate.camera.source import Frame, FrameSource, check_fps
from pi_facegate.exc import CameraError, ConfigError
from pi_facegate.vision.images import to_rgb

log = logging.getLogger("pi_facegate.camera")  # journal name: stable across moves


class OpenCVSource(FrameSource):
    """A USB camera, an RTSP/HTTP stream or a video file through ``cv2.VideoCapture``.

    ``device`` is a camera index (``0`` = ``/dev/video0``; a string of digits counts as an
    index), a device path, a URL or a file. ``width``/``height``/``fps`` are requests: the
    camera may deliver another size, which is logged once and passed on unchanged. A failed
    open or read is a ``CameraError``; unlike :class:`~pi_facegate.camera.replay.ReplaySource`, the end of a video file
    is an error too, because a live camera does not end.

    ``read(timeout)`` cannot interrupt OpenCV's blocking read: streams get ``read_timeout``
    as FFmpeg's own read timeout, V4L2 cameras have the driver's (about 10 s). Wrap the
    source in a :class:`~pi_facegate.camera.grabber.FrameGrabber` to bound the wait for the consumer.
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
        self.fps = check_fps(fps)
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
