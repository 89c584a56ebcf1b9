"""A full disk (issue 15 bug 10): events wait in a bounded backlog, nothing is lost while it
holds, the writer says what is wrong, and a lost tail is recorded once space returns.

The "full disk" is real: a child process lowers its own RLIMIT_FSIZE to 0, so every write
that would grow a file fails in the kernel (EFBIG) and SQLite reports a disk I/O error, as
with ENOSPC; raising the limit again is space returning. Done in a child so that the test
process's own files are never limited.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

SCRIPT = r"""
import json, resource, signal, sys, time
from pathlib import Path
from pi_facegate.storage.events import EventLog, EventWriter
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
db, backlog = Path(sys.argv[1]), int(sys.argv[2])
EventWriter.retry_interval = 0.2
EventWriter.backlog_size = backlog
out = {}
with EventWriter(db) as w:
    for i in range(20):
        w.record("granted", person="alice", track=i)
    assert w.flush(10)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))  # disk full
    for i in range(30):
        w.record("denied", reason="unknown", track=100 + i, blob="x" * 2000)
    w.flush(10)
    time.sleep(0.6)  # a few retries fail too
    out["trouble"], out["backlog"] = w.trouble, w.backlog
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)  # space again
    deadline = time.monotonic() + 10
    while w.backlog and time.monotonic() < deadline:
        time.sleep(0.05)
    out["after"], out["failed"] = w.trouble, w.failed
events = EventLog(db).query()
out["kinds"] = [e.kind for e in events]
out["tracks"] = [e.detail.get("track") for e in events if e.kind == "denied"]
out["lost"] = [e.detail for e in events if e.kind == "events_lost"]
print(json.dumps(out))
"""


def _run(tmp_path: Path, backlog: int) -> dict:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(state / "events.db"), str(backlog)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=repo,
        env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_events_written_while_the_disk_is_full_are_written_once_it_is_not(tmp_path):
    out = _run(tmp_path, backlog=10_000)
    assert out["trouble"] and "cannot write the event log" in out["trouble"]
    assert out["backlog"] == 30
    assert out["after"] is None and out["failed"] == 0
    assert Counter(out["kinds"]) == {"granted": 20, "denied": 30}  # nothing lost
    assert out["tracks"] == list(range(100, 130))  # in order
    assert out["lost"] == []


def test_a_backlog_that_overflows_keeps_the_newest_and_records_the_loss(tmp_path):
    out = _run(tmp_path, backlog=10)
    assert out["backlog"] == 10 and out["failed"] == 20
    assert out["tracks"] == list(range(120, 130))  # the newest 10 of the 30
    assert out["lost"] == [{"events": 20}]
    assert out["kinds"][-1] == "events_lost"


@pytest.mark.parametrize("size", [0, -1])
def test_the_writer_still_refuses_a_bad_queue_size(tmp_path, size):
    from pi_facegate.storage.events import EventWriter

    with pytest.raises(ValueError):
        EventWriter(tmp_path / "e.db", queue_size=size)
