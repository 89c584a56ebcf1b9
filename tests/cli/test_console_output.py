"""What the console shows people: numbers in event details rounded (JSON and the journal's
DETAIL field keep every digit), and the progress bar only on a terminal."""

from __future__ import annotations

import io
import json
import logging
import os
import sys

import pytest

from pi_facegate.cli.progress import Progress
from pi_facegate.cli.table import format_detail
from pi_facegate.storage.event_record import make_event, rounded
from pi_facegate.storage.events import EventWriter


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (3.0004558310000107, 3.0),
        (1.2866380929990555, 1.29),
        (0.98861, 0.989),
        (0.064812, 0.0648),
        (22.74, 22.7),
        (1234.567, 1235.0),
        (0.0, 0.0),
        (-0.5555, -0.555),
        (7, 7),
        (True, True),
        ("3.14159", "3.14159"),
        (None, None),
        ([0.12345, {"a": 2.71828}], [0.123, {"a": 2.72}]),
    ],
)
def test_rounded_keeps_three_significant_digits_and_whole_units(value, shown):
    assert rounded(value) == shown


def test_event_details_are_rounded_for_people_only(tmp_path, caplog):
    detail = {"reason": "timeout", "unlocked_for": 3.0004558310000107, "votes": 3}
    assert format_detail(detail) == "reason=timeout unlocked_for=3.0 votes=3"
    event = make_event("relocked", detail=detail)
    assert event.message() == "relocked reason=timeout unlocked_for=3.0 votes=3"
    assert json.loads(event.detail_json())["unlocked_for"] == 3.0004558310000107
    assert event.to_dict()["detail"]["unlocked_for"] == 3.0004558310000107  # --json
    with caplog.at_level(logging.INFO, logger="pi_facegate.events"):
        with EventWriter(tmp_path / "events.db") as writer:
            writer.record("relocked", detail=detail)
    (record,) = [r for r in caplog.records if getattr(r, "EVENT_KIND", "") == "relocked"]
    assert record.getMessage() == "relocked reason=timeout unlocked_for=3.0 votes=3"
    assert json.loads(record.DETAIL)["unlocked_for"] == 3.0004558310000107  # journal field


def test_progress_is_silent_off_a_terminal(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    progress = Progress(3, "embedding", enabled=True)
    for _ in range(3):
        progress.step()
    assert progress.done == 3 and stream.getvalue() == ""


def test_progress_draws_a_bar_on_a_terminal_unless_quiet(monkeypatch):
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns
    with open(follower, "w", closefd=True) as terminal:
        monkeypatch.setattr(sys, "stderr", terminal)
        quiet = Progress(2, "quiet", enabled=False)
        quiet.step()
        progress = Progress(4, "embedding", enabled=True)
        for _ in range(4):
            progress.step()
        progress.close()  # idempotent after the last step closed it
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal's other end is closed: all read
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    text = shown.decode("utf-8", "replace")
    assert "embedding" in text and "4/4" in text
    assert "quiet" not in text
