"""Reading image files into the RGB ``uint8`` arrays the pipeline works on.

OpenCV decodes JPEG, PNG, PGM and (from 4.11) GIF; Pillow, where installed, is the
fallback for anything else it can open. Either way the result is ``(H, W, 3)`` RGB: grey
images are expanded, alpha is dropped. An unreadable file is an :class:`ImageError` naming
the file, never a ``None`` that fails later.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pi_facegate.exc import ImageError


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
    try:
        with Image.open(path) as img:
            return to_rgb(np.asarray(img.convert("RGB")))
    except (OSError, ValueError):
        return None
