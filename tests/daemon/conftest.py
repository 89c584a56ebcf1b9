"""Fixtures shared by the daemon tests."""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest


@pytest.fixture
def in_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process as a daemon leaves it: signal handlers and root logging restored.

    ``facegate run`` installs SIGTERM/SIGINT/SIGHUP handlers and its own stderr handler on
    the root logger; afterwards Ctrl-C must stop pytest again and no later test may log into
    this test's closed capture stream. No ``NOTIFY_SOCKET`` is inherited from outside.
    """
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    signals = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for signum, handler in signals.items():
        signal.signal(signum, handler)
    for handler in [h for h in root.handlers if h not in handlers]:
        if getattr(handler, "_pi_facegate_handler", False):
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


def hamilton_frames(facedata: Path, folder: Path) -> Path:
    """The frames of the Hamilton clip where Lin-Manuel Miranda is close and alone (82..210)."""
    folder.mkdir(parents=True, exist_ok=True)
    capture = cv2.VideoCapture(
        str(facedata / "face_recognition_examples/examples/short_hamilton_clip.mp4")
    )
    index = 0
    while True:
        ok, frame = capture.read()
        if not ok or index > 210:
            break
        if index >= 82:
            cv2.imwrite(str(folder / f"{index:04d}.png"), frame)
        index += 1
    capture.release()
    return folder


@pytest.fixture(scope="module")
def lin_frames(facedata: Path, tmp_path_factory) -> Path:
    return hamilton_frames(facedata, tmp_path_factory.mktemp("hamilton"))
