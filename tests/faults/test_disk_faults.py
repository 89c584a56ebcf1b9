"""A full disk under the running daemon: a real, small tmpfs as its state dir, filled up.

The unit test (``tests/storage/test_event_backlog.py``) makes the disk "full" with
RLIMIT_FSIZE inside a child; here the daemon's own state dir is a 16 MB tmpfs that a filler
file fills to the last byte (ENOSPC for every write, the gallery's and the event log's
directory alike) while Lin-Manuel Miranda keeps walking up, then the filler is deleted.
Mounting needs root (CAP_SYS_ADMIN); elsewhere the test is skipped with that reason.
"""

from __future__ import annotations

import errno
import re
import subprocess
import time
from pathlib import Path

import pytest
from faultkit import (
    LIN,
    assert_clear,
    data_verdict,
    door_verdict,
    events_snapshot,
    gallery_snapshot,
    replay_config,
)

pytestmark = [pytest.mark.faults, pytest.mark.slow]

GRANTED = re.compile(r"pi_facegate\.events: granted ")  # a grant's journal line


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 16 MB tmpfs mounted at ``tmp_path/state`` (mode 0700), unmounted afterwards."""
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {mounted.stderr.strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> Path:
    """Write a filler file until the disk refuses even one more byte."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as out:
        for size in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    out.write(b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    return filler


def test_a_full_disk_under_the_running_daemon_loses_no_event(
    small_disk, lin_frames, examples, daemons, fault, enrol
):
    fault.fault = "disk full while running (its state dir a 16 MB tmpfs, filled to the last byte)"
    state = small_disk
    replay_config(state, lin_frames, "access:\n  cooldown_seconds: 2\n")
    enrol(state, LIN)
    gallery = gallery_snapshot(state / "gallery.db")
    daemon = daemons(state)
    daemon.wait_for("granted", lambda e: e.person == LIN)
    before = events_snapshot(daemon.events_db)
    filler = fill(state)
    full_at = time.time()
    granted = len(GRANTED.findall(daemon.stderr))
    deadline = time.monotonic() + 60
    # he keeps coming in: the journal shows grants while nothing can be written to the log
    while time.monotonic() < deadline and not (
        "cannot write" in daemon.stderr and len(GRANTED.findall(daemon.stderr)) > granted + 1
    ):
        time.sleep(0.2)
    filler.unlink()
    freed_at = time.time()
    deadline = time.monotonic() + 30
    while "writable again" not in daemon.stderr and time.monotonic() < deadline:
        time.sleep(0.2)
    assert daemon.stop() == 0
    events = daemon.events()
    during = [e for e in events if e.kind == "granted" and full_at < e.time < freed_at]
    assert during, "no grant while the disk was full: nothing was proven"
    # every decision the journal got is in the log too: nothing was lost
    journal = len(GRANTED.findall(daemon.stderr))
    assert journal == sum(1 for e in events if e.kind == "granted")
    assert "events_lost" not in [e.kind for e in events] and events[-1].kind == "stopped"
    held = re.search(r"writable again; (\d+) held event\(s\) written", daemon.stderr)
    assert held, daemon.stderr[-3000:]
    assert_clear(daemon.stderr, "cannot write: database or disk is full", "writable again")
    message = re.search(
        r"cannot write: [^;]+; \d+ event\(s\) held for a retry, \d+ lost so far", daemon.stderr
    )
    fault.door = door_verdict(daemon.relay(), events, {LIN})
    fault.data = data_verdict(
        gallery, gallery_snapshot(state / "gallery.db"), before, events_snapshot(daemon.events_db)
    )
    fault.data += f"; the {held.group(1)} events held in memory while full were written after"
    fault.happened = (
        f"{len(during)} grant(s) while full (the door works on), events held in memory: "
        f"'{message.group(0)}'; once freed: '{held.group(0)}'"
    )
