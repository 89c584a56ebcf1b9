"""The running daemon applies, and logs, the threshold for its gallery's size.

A real :class:`DoorService` (real models, a replayed camera of real photos) in a thread: at
start its log names the threshold for the people enrolled; people added to the gallery
while it runs tighten it at the next gallery poll (and the log says so again); a reload
with an explicit ``matching.threshold`` fixes it whatever the gallery's size.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from pi_facegate.config.loader import load_config
from pi_facegate.daemon import wiring
from pi_facegate.daemon.service import DoorService, RunOptions
from pi_facegate.storage.gallery import Gallery

pytestmark = pytest.mark.slow

WAIT = 120.0  # start-up on a slow, busy machine loads every model


def _threshold_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("threshold ")]


def _wait_for_line(caplog, pattern: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in _threshold_lines(caplog):
            if re.fullmatch(pattern, line):
                return line
        time.sleep(0.05)
    raise AssertionError(f"no log line {pattern!r}; threshold lines: {_threshold_lines(caplog)}")


def _add_people(gallery_path: Path, fingerprint: str, names: list[str]) -> None:
    rng = np.random.default_rng(len(names))
    with Gallery.open(gallery_path, fingerprint) as gallery:
        for name in names:
            gallery.add_person(name, rng.standard_normal((3, gallery.embedding_size)))


def test_the_threshold_tightens_as_people_are_enrolled_and_the_log_says_so(
    facedata, tmp_path, caplog, monkeypatch
):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    caplog.set_level(logging.INFO)
    frames = facedata / "att_faces" / "s1"
    config = tmp_path / "config.yaml"
    config.write_text(
        f"camera:\n  type: replay\n  detect_width: 320\n  replay:\n    path: {frames}\n"
        "    fps: 20\n    loop: true\nliveness:\n  enabled: false\n"
    )
    state = tmp_path / "var"
    state.mkdir(mode=0o700)
    manifest = wiring.load_manifest(load_config(config).embedder.model)
    fingerprint = wiring.embedder_fingerprint(manifest)
    _add_people(state / "gallery.db", fingerprint, ["Ada"])
    options = RunOptions(config_path=config, state_dir=state, simulate_gpio=True)
    service = DoorService(options, load_config(config))
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(service.run()), daemon=True)
    thread.start()
    try:
        assert service.ready_event.wait(WAIT), "the daemon did not start"
        first = _wait_for_line(
            caplog, r"threshold 0\.\d{3} for 1 person \(false accepts per attempt ≤ 0\.01\)"
        )
        one = service.threshold
        assert one <= manifest["embedding"]["threshold"]
        _add_people(state / "gallery.db", fingerprint, [f"P{i}" for i in range(49)])
        fifty = _wait_for_line(caplog, r"threshold 0\.\d{3} for 50 people \(.*\)")
        assert service.threshold < one, (first, fifty)
        assert f"{service.threshold:.3f}" in fifty
        config.write_text(config.read_text() + "matching:\n  threshold: 0.58\n")
        service.request_reload()
        _wait_for_line(caplog, r"threshold 0\.580 for 50 people \(matching\.threshold, fixed\)")
        assert service.threshold == 0.58
    finally:
        service.request_stop()
        thread.join(WAIT)
    assert result == [0]
