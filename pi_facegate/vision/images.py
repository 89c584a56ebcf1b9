"""Reading image files into the RGB ``uint8`` arrays the pipeline works on.

OpenCV decodes JPEG, PNG, PGM and (from 4.11) GIF; Pillow, where installed, is the
fallback for anything else it can open. Either way the result is ``(H, W, 3)`` RGB: grey
images are expanded, alpha is dropped. An unreadable file is an :class:`ImageError` naming
the file, never a ``None`` that fails later.

A file's pixel count is read from its header before anything decodes it: a 30000x30000 PNG
is under 1 MB on disk, 2.7 GB decoded, and crashed the detector (SIGSEGV inside MediaPipe).
Images over :data:`MAX_IMAGE_PIXELS` are refused with their size.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pi_facegate.exc import ImageError

#: the largest image accepted, in pixels: 50 megapixels (a 48 MP phone photo fits; the
#: pipeline scales everything down to a few hundred pixels anyway)
MAX_IMAGE_PIXELS = 50_000_000

_PNG = b"\x89PNG\r\n\x1a\n"
#: JPEG start-of-frame markers (baseline, progressive, lossless, ...), which carry the size
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def header_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a PNG, JPEG, GIF or BMP header, or ``None`` if not one of those.

    Reads only the header bytes: nothing is decoded, so a decompression bomb costs nothing.
    """
    if data[:8] == _PNG and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    if data[:2] == b"BM" and len(data) >= 26:
        width = int.from_bytes(data[18:22], "little", signed=True)
        height = int.from_bytes(data[22:26], "little", signed=True)
        return abs(width), abs(height)
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Walk the JPEG segments to the first start-of-frame marker."""
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in _JPEG_SOF:
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            return width, height
        i += 2 + length
    return None


def check_pixels(path: Path, data: bytes) -> None:
    """:class:`ImageError` if the header says the image is larger than the limit."""
    size = header_size(data[:65536])
    if size is None:
        return
    width, height = size
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageError(
            f"{path}: the image is {width}x{height} = {width * height / 1e6:.0f} megapixels, "
            f"more than the {MAX_IMAGE_PIXELS / 1e6:.0f}-megapixel limit: scale it down first"
        )


def to_rgb(array: np.ndarray) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 RGB view of a grey, RGB or RGBA array (already RGB order)."""
    if array.ndim == 2:
        return np.ascontiguousarray(np.repeat(array[:, :, None], 3, axis=2))
    if array.ndim == 3 and array.shape[2] == 4:
        return np.ascontiguousarray(array[:, :, :3])
    if array.ndim == 3 and array.shape[2] == 3:
        return np.ascontiguousarray(array)
    raise ImageError(f"unsupported image shape {array.shape}")


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as RGB uint8, or raise :class:`ImageError` saying why not."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such image file")
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise ImageError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    check_pixels(path, data[:65536].tobytes())
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is not None:
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    rgb = _load_with_pillow(path)
    if rgb is None:
        raise ImageError(f"{path}: not an image file OpenCV or Pillow can decode")
    return rgb


def _load_with_pillow(path: Path) -> np.ndarray | None:
    try:
        from PIL import Image
    except ImportError:
        return None
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS  # its own bomb check, for the other formats
    try:
        with Image.open(path) as img:
            return to_rgb(np.asarray(img.convert("RGB")))
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{path}: {exc}") from None
    except (OSError, ValueError):
        return None
