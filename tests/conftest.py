"""Shared fixtures.

The face photos live outside the repository (``../shared/facedata``, or wherever
``FACEGATE_TESTDATA`` points): they are third-party research data that must not be
committed. Tests that need them take the ``facedata`` fixture, which skips with a clear
reason where the folder is absent; ``.ci/run`` sets ``FACEGATE_REQUIRE_TESTDATA=1`` so that
in CI a missing folder is a failure, not a silent skip.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pi_facegate.paths import facedata_dir


def _facedata_or_skip() -> Path:
    root = facedata_dir()
    if root.is_dir() and any(root.iterdir()):
        return root
    reason = (
        f"shared face data not found at {root} "
        "(set FACEGATE_TESTDATA to the folder holding att_faces/, yalefaces/, ...)"
    )
    if os.environ.get("FACEGATE_REQUIRE_TESTDATA") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def facedata() -> Path:
    """Root of the shared face photos (skips, or fails in CI, where absent)."""
    return _facedata_or_skip()


@pytest.fixture
def held_up_photo(facedata: Path):
    """``make(folder, count) -> folder``: a SIMULATED photo attack as a frame folder.

    One frame (index 100: Lin-Manuel Miranda close, alone and frontal) of the Hamilton
    clip, shifted and turned by a few pixels and degrees per frame, as a photo held up to the
    camera moves: pixel-perfect (texture may call it live), never turning in depth.
    """
    import cv2
    import numpy as np

    def make(folder: Path, count: int, index: int = 100) -> Path:
        capture = cv2.VideoCapture(
            str(facedata / "face_recognition_examples/examples/short_hamilton_clip.mp4")
        )
        for _ in range(index):
            capture.read()
        ok, still = capture.read()
        capture.release()
        assert ok, "the Hamilton clip is shorter than expected"
        folder.mkdir()
        h, w = still.shape[:2]
        for i in range(count):
            matrix = cv2.getRotationMatrix2D((w / 2, h / 2), 3 * np.sin(i / 5), 1.0)
            matrix[:, 2] += (4 * np.sin(i / 3), 3 * np.cos(i / 4))
            frame = cv2.warpAffine(still, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)
            cv2.imwrite(str(folder / f"{i:04d}.png"), frame)
        return folder

    return make
