"""The daemon's status file and ``facegate status``: written atomically and privately while
the real daemon runs, marked stopped when it stops, taken for "not running" when stale or
when its process is gone."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pi_facegate.cli import main
from pi_facegate.config.loader import load_config
from pi_facegate.daemon.service import DoorService, RunOptions
from pi_facegate.daemon.status_file import (
    MIN_STALE_SECONDS,
    StatusFileError,
    StatusWriter,
    not_running_reason,
    read_status,
    status_path,
)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    (tmp_path / "config.yaml").write_text(
        "camera:\n  detect_width: 320\nservice:\n  status_interval_seconds: 0.2\n"
    )
    return tmp_path


def cli(state: Path, *args: str) -> int:
    return main([*args, "--config", str(state / "config.yaml"), "--state-dir", str(state)])


def test_the_running_daemon_writes_its_status_and_marks_it_stopped(
    facedata, state, in_process, lin_frames, capsys
):
    photo = facedata / "face_recognition_examples/examples/lin-manuel-miranda.png"
    assert cli(state, "enroll", "Lin-Manuel Miranda", str(photo)) == 0
    path = status_path(state)
    seen: list[dict] = []

    def on_event(kind: str, fields: dict) -> None:
        if kind == "granted":  # the file as `facegate status` reads it mid-run
            seen.append(read_status(path))

    options = RunOptions(
        config_path=state / "config.yaml", state_dir=state, replay=lin_frames, simulate_gpio=True
    )
    service = DoorService(options, load_config(options.config_path), on_event=on_event)
    assert service.run() == 0
    running = seen[0]
    assert running["state"] == "running" and running["pid"] == os.getpid()
    assert running["people"] == 1 and running["camera"]["state"] == "ok"
    assert running["storage"]["dropped"] == 0 and running["storage"]["alive"] is True
    assert running["frames"] > 0
    stopped = read_status(path)
    assert stopped["state"] == "stopped"
    assert stopped["frames"] == service.frames and stopped["grants"] == 1
    decision = stopped["last_decision"]
    assert decision["text"] == "granted Lin-Manuel Miranda" and decision["kind"] == "granted"
    assert stopped["liveness"]["state"] == "live" and stopped["liveness"]["reason"] == "texture+3d"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not list(state.glob(".status.json.*"))  # no temporary file left behind

    capsys.readouterr()
    assert cli(state, "status") == 1
    out = capsys.readouterr().out
    assert out.startswith("pi-facegate is NOT RUNNING: stopped")
    assert "last decision:     granted Lin-Manuel Miranda" in out


def test_a_daemon_that_never_started_leaves_no_status_file(state, in_process, tmp_path):
    (state / "gallery.db").write_text("not a gallery")
    options = RunOptions(
        config_path=state / "config.yaml", state_dir=state, replay=tmp_path, simulate_gpio=True
    )
    service = DoorService(options, load_config(options.config_path))
    with pytest.raises(Exception, match="not a pi-facegate gallery"):
        service.run()
    assert not status_path(state).exists()


def test_status_says_running_with_what_the_daemon_does(state, capsys):
    writer = StatusWriter(status_path(state))
    writer.note("presentation_attack", {"detail": {"reason": "texture"}})
    writer.note("unlocked", {"detail": {"reason": "face"}})  # not a decision
    writer.write(
        {
            "interval_seconds": 5.0,
            "fps": 14.96,
            "frames": 1200,
            "grants": 3,
            "camera": {"source": "picamera2", "state": "ok"},
            "people": 4,
            "liveness": {
                "track": 7,
                "state": "waiting",
                "reason": "waiting for 3-d (unsure)",
                "texture": 0.93,
                "planarity": "unsure",
                "waited_seconds": 1.25,
            },
            "storage": {"event_log": "/x/events.db", "alive": True, "written": 9, "pending": 0},
        }
    )
    capsys.readouterr()
    assert cli(state, "status") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"pi-facegate is running (pid {os.getpid()}, version {_version()})"
    text = "\n".join(lines)
    assert "frames:            15.0 fps, 1200 frames, 3 grants" in text
    assert "people enrolled:   4" in text
    assert "last decision:     presentation_attack (reason: texture), " in text
    assert "face at the door:  track 7: waiting (waiting for 3-d (unsure); texture 0.93" in text
    assert "event log:         ok: 9 written, 0 pending (/x/events.db)" in text
    assert cli(state, "status", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["running"] is True and data["fps"] == 14.96  # JSON keeps full precision


def test_not_running_when_stale_stopped_or_its_process_is_gone(tmp_path):
    now = time.time()
    fresh = {"state": "running", "pid": os.getpid(), "interval_seconds": 5.0, "updated_at": now}
    assert not_running_reason(fresh, now + 14) is None
    assert "no update for 16 s" in not_running_reason(fresh, now + 16)
    quick = {**fresh, "interval_seconds": 0.2}  # never stale sooner than MIN_STALE_SECONDS
    assert not_running_reason(quick, now + MIN_STALE_SECONDS - 1) is None
    assert not_running_reason({**fresh, "state": "stopped"}, now + 3) == "stopped 3 s ago"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    gone = {**fresh, "pid": int(dead.stdout)}
    assert "is gone" in not_running_reason(gone, now + 1)
    assert "no status file" in not_running_reason(None)


def test_a_status_file_that_is_not_one_is_refused(tmp_path, capsys):
    path = status_path(tmp_path)
    path.write_text("{broken")
    with pytest.raises(StatusFileError):
        read_status(path)
    path.unlink()
    path.symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(StatusFileError):
        read_status(path)
    (tmp_path / "config.yaml").write_text("{}\n")
    assert cli(tmp_path, "status") == 1
    assert "status file" in capsys.readouterr().err


def test_a_status_file_that_cannot_be_written_never_stops_the_door(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    writer = StatusWriter(status_path(blocker))  # its folder is a file
    assert writer.write({}) is False
    assert writer.write({}) is False
    assert len([r for r in caplog.records if "cannot write the status file" in r.message]) == 1
    writer.close()  # nothing was written: nothing to mark


def _version() -> str:
    import pi_facegate

    return pi_facegate.__version__
