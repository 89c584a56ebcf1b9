"""The Raspberry Pi camera through picamera2 (libcamera).

picamera2 exists only on a Pi, from apt (``python3-picamera2``, into a venv made with
``--system-site-packages``), so it is imported when a :class:`Picamera2Source` starts and
nowhere else; the rest of the package imports without it.

Two streams come from one request, so they show the same instant:

- ``main``: the recognition image, format ``RGB888``. libcamera names formats by the
  order of a little-endian word, so ``RGB888`` is stored as **B, G, R** bytes — OpenCV's
  BGR (picamera2's own ``make_image`` maps it to PIL's ``"BGR"`` mode). It is converted to
  RGB here.
- ``lores`` (optional): the detection image, ``YUV420`` because that is the only lores
  format the Pi 4's ISP produces (the Pi 5 accepts it too). picamera2 hands it over as a
  ``(height * 3 / 2, stride)`` array of planar I420 with the row padding left in; it is
  converted with OpenCV and the padding is cut off. The video configuration picks the
  SMPTE 170M (BT.601, limited range) colour space for frames this small, which is what
  OpenCV's YUV conversion assumes.

``capture_arrays`` already copies out of the camera's buffers (``make_buffer``), so no
camera memory escapes into a :class:`~pi_facegate.camera.source.Frame`.
"""

from __future__ import annotations

import logging
from typing import Any

import cv2
import numpy as np

from pi_facegate.camera.source import Frame, FrameSource, check_fps, lores_size
from pi_facegate.exc import CameraError, CameraTimeoutError, ConfigError

log = logging.getLogger("pi_facegate.camera_picamera2")  # journal name: stable across moves

#: main stream format: B, G, R bytes per pixel in memory (libcamera naming)
MAIN_FORMAT = "RGB888"
#: lores stream format: planar I420, the only lores format of the Pi 4
LORES_FORMAT = "YUV420"

_MAIN_CONVERSIONS = {
    "RGB888": cv2.COLOR_BGR2RGB,  # bytes B, G, R
    "XRGB8888": cv2.COLOR_BGRA2RGB,  # bytes B, G, R, A
    "XBGR8888": cv2.COLOR_RGBA2RGB,  # bytes R, G, B, A
}
_YUV_CONVERSIONS = {
    "YUV420": cv2.COLOR_YUV2RGB_I420,  # Y plane, then U, then V
    "YVU420": cv2.COLOR_YUV2RGB_YV12,  # Y plane, then V, then U
}

INSTALL_HINT = (
    "on Raspberry Pi OS install it with `sudo apt install python3-picamera2` and make the "
    "venv with --system-site-packages (keep numpy < 2 there: apt's picamera2 is built "
    "against Debian's numpy 1.x)"
)


def import_picamera2() -> Any:
    """The ``Picamera2`` class, or a :class:`CameraError` that says how to get it."""
    try:
        from picamera2 import Picamera2
    except ImportError as exc:
        raise CameraError(f"picamera2 is not installed: {INSTALL_HINT}") from exc
    except Exception as exc:  # e.g. "numpy.dtype size changed" under numpy 2
        raise CameraError(f"picamera2 cannot be imported ({exc}); {INSTALL_HINT}") from exc
    return Picamera2


def main_to_rgb(array: np.ndarray, fmt: str = MAIN_FORMAT) -> np.ndarray:
    """A new RGB ``(H, W, 3)`` array from a picamera2 main-stream array of format ``fmt``."""
    if fmt == "BGR888":  # bytes R, G, B: already RGB order
        return np.array(array, dtype=np.uint8, copy=True)
    code = _MAIN_CONVERSIONS.get(fmt)
    if code is None:
        raise CameraError(f"unsupported picamera2 main format {fmt!r} (use {MAIN_FORMAT})")
    return cv2.cvtColor(np.ascontiguousarray(array), code)


def yuv420_to_rgb(
    array: np.ndarray, width: int, height: int, fmt: str = LORES_FORMAT
) -> np.ndarray:
    """RGB ``(height, width, 3)`` from picamera2's ``(height*3/2, stride)`` YUV420 array.

    Each plane keeps its stride (the chroma planes half of it), so converting the whole
    stride-wide image and cropping to ``width`` afterwards is exact.
    """
    code = _YUV_CONVERSIONS.get(fmt)
    if code is None:
        raise CameraError(f"unsupported picamera2 lores format {fmt!r} (use {LORES_FORMAT})")
    if array.ndim != 2 or array.shape[0] != height * 3 // 2 or array.shape[1] < width:
        raise CameraError(
            f"lores array of shape {array.shape} does not hold a {width}x{height} {fmt} image"
        )
    rgb = cv2.cvtColor(np.ascontiguousarray(array), code)
    return np.ascontiguousarray(rgb[:, :width])


class Picamera2Source(FrameSource):
    """The Pi camera: an RGB main stream for recognition, optionally a small one for detection.

    :param width: main stream width in pixels (``height`` likewise).
    :param lores_width: width of the detection stream (even; its height keeps the aspect
        ratio), or ``None``/0 for none; then ``Frame.lores`` is ``None``.
    :param fps: frame rate asked of the sensor.
    :param camera_num: which camera, for boards with two.
    """

    kind = "picamera2"

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        lores_width: int | None = None,
        fps: float = 15.0,
        *,
        camera_num: int = 0,
        buffer_count: int = 4,
    ) -> None:
        super().__init__()  # lores comes from the camera's own stream, not a downscale
        self._camera: Any = None
        if int(width) < 2 or int(height) < 2:
            raise ConfigError(f"camera size must be positive (got {width}x{height})")
        self.width, self.height = int(width), int(height)
        self.lores = lores_size(self.width, self.height, lores_width)
        self.fps = check_fps(fps)
        self.camera_num = int(camera_num)
        self.buffer_count = int(buffer_count)
        self._streams: dict[str, tuple[str, int, int]] = {}
        self._index = 0

    def describe(self) -> str:
        return f"picamera2 camera {self.camera_num} ({self.width}x{self.height})"

    def _open(self) -> None:
        picamera2_class = import_picamera2()
        self._index = 0
        try:
            self._camera = picamera2_class(self.camera_num)
        except Exception as exc:  # IndexError/RuntimeError when absent or busy
            raise CameraError(
                f"{self.describe()}: cannot open ({exc}); is it connected, enabled and not "
                f"used by another process?"
            ) from exc
        camera = self._camera
        main = {"size": (self.width, self.height), "format": MAIN_FORMAT}
        lores = {"size": self.lores, "format": LORES_FORMAT} if self.lores else None
        # The video configuration presets FrameDurationLimits (30 fps); override that key.
        period_us = int(round(1e6 / self.fps)) if self.fps else 0
        controls = {"FrameDurationLimits": (period_us, period_us)} if period_us else {}
        config = camera.create_video_configuration(
            main=main, lores=lores, controls=controls, buffer_count=self.buffer_count
        )
        camera.configure(config)
        self._streams = self._configured_streams(camera)
        camera.start()
        log.info("%s started: %s", self.describe(), self._streams)

    def _configured_streams(self, camera: Any) -> dict[str, tuple[str, int, int]]:
        """``{stream: (format, width, height)}`` as libcamera actually configured them."""
        streams = {}
        config = getattr(camera, "camera_config", None) or {}
        wanted = {"main": (MAIN_FORMAT, self.width, self.height)}
        if self.lores:
            wanted["lores"] = (LORES_FORMAT, *self.lores)
        for name, (fmt, w, h) in wanted.items():
            stream = config.get(name) or {}
            size = stream.get("size") or (w, h)
            streams[name] = (str(stream.get("format") or fmt), int(size[0]), int(size[1]))
        return streams

    def _read(self, timeout: float | None) -> Frame | None:
        camera = self._camera
        names = list(self._streams)
        job = camera.capture_arrays(names, wait=False)
        try:
            arrays, _metadata = camera.wait(job, timeout)
        except TimeoutError as exc:
            raise CameraTimeoutError(f"{self.describe()}: no frame within {timeout:g} s") from exc
        image = main_to_rgb(arrays[0], self._streams["main"][0])
        lores = None
        if "lores" in self._streams:
            fmt, w, h = self._streams["lores"]
            lores = yuv420_to_rgb(arrays[1], w, h, fmt)
        frame = self._frame(image, self._index, lores=lores)
        self._index += 1
        return frame

    def _release(self) -> None:
        camera, self._camera = self._camera, None
        if camera is None:
            return
        for step in (camera.stop, camera.close):
            try:
                step()
            except Exception:  # noqa: BLE001 - releasing a failed camera: log and go on
                log.warning("%s: %s() failed", self.describe(), step.__name__, exc_info=True)
