"""End to end: the real daemon as a subprocess, on replayed video, with simulated GPIO.

These runs use the real models, MediaPipe, SQLite files and a real ``NOTIFY_SOCKET``
datagram socket; what the door did is read back from the event log the daemon wrote.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pi_facegate.cli import main
from pi_facegate.storage.events import EventLog

pytestmark = pytest.mark.slow


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    env.update(extra)
    return env


def _run_daemon(args: list[str], timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pi_facegate", "run", *args],
        capture_output=True, text=True, timeout=timeout, env=_env(**env), check=False,
    )


def _kinds(events_db: Path) -> list[str]:
    return [e.kind for e in EventLog(events_db).query()]


@pytest.fixture
def state(tmp_path: Path) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text("camera:\n  detect_width: 320\n")
    return tmp_path


def test_enrolled_person_walks_up_and_the_door_opens(facedata, state):
    examples = facedata / "face_recognition_examples" / "examples"
    assert main(["enroll", "--config", str(state / "config.yaml"), "--state-dir", str(state),
                 "Lin-Manuel Miranda", str(examples / "lin-manuel-miranda.png")]) == 0
    result = _run_daemon(["--config", str(state / "config.yaml"), "--state-dir", str(state),
                          "--replay", str(examples / "short_hamilton_clip.mp4"), "--simulate-gpio"])
    assert result.returncode == 0, result.stderr[-3000:]
    events = EventLog(state / "events.db").query()
    granted = [e for e in events if e.kind == "granted"]
    assert granted and {e.person for e in granted} == {"Lin-Manuel Miranda"}
    assert granted[0].distance <= 0.6 and granted[0].detail["latency_ms"] < 1000
    kinds = [e.kind for e in events]
    assert kinds[0] == "started" and kinds[-1] == "stopped"
    assert kinds.index("unlocked") < len(kinds) - 1 and "relocked" in kinds
    assert "SIMULATED" in result.stderr


@pytest.mark.parametrize(
    "replay",
    ["facenet_pytorch_samples/examples/video.mp4", "no_face_and_multi_face_misc/data"],
)
def test_strangers_and_empty_scenes_never_open_the_door(facedata, state, replay):
    # somebody is enrolled, but nobody in these recordings; the walkers are 2-4 m away, so
    # this door uses the full-range detector (config's documented choice for distant faces)
    (state / "config.yaml").write_text(
        "camera:\n  detect_width: 640\ndetector:\n  model: face_detection_full_range\n  min_score: 0.5\n"
    )
    examples = facedata / "face_recognition_examples" / "examples"
    assert main(["enroll", "--config", str(state / "config.yaml"), "--state-dir", str(state),
                 "Lin-Manuel Miranda", str(examples / "lin-manuel-miranda.png")]) == 0
    result = _run_daemon(["--config", str(state / "config.yaml"), "--state-dir", str(state),
                          "--replay", str(facedata / replay), "--simulate-gpio"])
    assert result.returncode == 0, result.stderr[-3000:]
    kinds = _kinds(state / "events.db")
    assert "granted" not in kinds and "unlocked" not in kinds
    if replay.endswith("video.mp4"):
        assert "denied" in kinds  # the strangers walking up were seen and turned away


class NotifyListener:
    """A real NOTIFY_SOCKET: what a systemd service manager would receive."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.received: list[str] = []

    def wait_for(self, line: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while line not in self.received:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {line!r} from the daemon; got {self.received}")
            self.sock.settimeout(remaining)
            data = self.sock.recv(4096).decode()
            self.received.extend(data.splitlines())

    def close(self) -> None:
        self.sock.close()


def _wait_for_event(db: Path, kind: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists() and kind in _kinds(db):
            return
        time.sleep(0.05)
    raise AssertionError(f"no {kind!r} event in {db}")


def test_reload_keeps_the_last_good_config_and_sigterm_locks(facedata, state):
    config = state / "config.yaml"
    frames = facedata / "att_faces" / "s1"
    config.write_text(f"camera:\n  type: replay\n  replay:\n    path: {frames}\n    fps: 20\n    loop: true\n")
    listener = NotifyListener(state / "notify.sock")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pi_facegate", "run", "--config", str(config), "--state-dir", str(state),
         "--simulate-gpio"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=_env(NOTIFY_SOCKET=str(listener.path)),
    )
    try:
        listener.wait_for("READY=1")
        listener.received.clear()
        config.write_text("access:\n  votes_required: 9\n  window_frames: 3\n")  # N > M: invalid
        proc.send_signal(signal.SIGHUP)
        listener.wait_for("RELOADING=1")
        listener.wait_for("READY=1")
        _wait_for_event(state / "events.db", "config_rejected")
        assert proc.poll() is None  # still running on the old config

        listener.received.clear()
        config.write_text(
            f"camera:\n  type: replay\n  replay:\n    path: {frames}\n    fps: 20\n    loop: true\n"
            "access:\n  cooldown_seconds: 7\n"
        )
        proc.send_signal(signal.SIGHUP)
        listener.wait_for("RELOADING=1")
        listener.wait_for("READY=1")
        _wait_for_event(state / "events.db", "config_reloaded")

        proc.send_signal(signal.SIGTERM)
        listener.wait_for("STOPPING=1")
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        stderr = proc.communicate()[1]
        listener.close()
    events = EventLog(state / "events.db").query()
    rejected = next(e for e in events if e.kind == "config_rejected")
    assert "window_frames" in rejected.detail["error"] or "votes_required" in rejected.detail["error"]
    assert events[-1].kind == "stopped"
    assert "unlocked" not in [e.kind for e in events]
    assert "Traceback" not in stderr


def _start_daemon(config: Path, state: Path, listener: NotifyListener) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pi_facegate", "run", "--config", str(config), "--state-dir", str(state),
         "--simulate-gpio"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=_env(NOTIFY_SOCKET=str(listener.path)),
    )


def _stop(proc: subprocess.Popen, listener: NotifyListener) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    listener.close()
    return proc.communicate()[1]


def test_a_person_enrolled_while_the_daemon_runs_is_let_in(facedata, state):
    examples = facedata / "face_recognition_examples" / "examples"
    frames = state / "frames"
    frames.mkdir()
    for name in ("obama.jpg", "obama2.jpg", "obama-480p.jpg"):
        (frames / name).symlink_to(examples / name)
    config = state / "config.yaml"
    config.write_text(f"camera:\n  type: replay\n  replay:\n    path: {frames}\n    fps: 10\n    loop: true\n")
    assert main(["enroll", "--config", str(config), "--state-dir", str(state), "Joe Biden",
                 str(examples / "biden.jpg")]) == 0
    listener = NotifyListener(state / "notify.sock")
    proc = _start_daemon(config, state, listener)
    try:
        listener.wait_for("READY=1")
        _wait_for_event(state / "events.db", "denied")  # Obama is a stranger to this door
        assert "granted" not in _kinds(state / "events.db")
        assert main(["enroll", "--config", str(config), "--state-dir", str(state), "Barack Obama",
                     str(examples / "knn_examples" / "train" / "obama" / "obama.jpg")]) == 0
        enrolled_at = time.time()
        _wait_for_event(state / "events.db", "granted")
    finally:
        stderr = _stop(proc, listener)
    granted = next(e for e in EventLog(state / "events.db").query() if e.kind == "granted")
    assert granted.person == "Barack Obama"
    # the gallery is polled twice a second; three votes at 10 fps take another 0.3 s
    assert granted.time - enrolled_at < 2.5, stderr[-2000:]


def test_a_camera_that_cannot_be_opened_keeps_the_door_locked_and_the_daemon_up(state):
    config = state / "config.yaml"
    config.write_text(
        f"camera:\n  type: opencv\n  device: {state / 'no-such-camera.mp4'}\n"
        "  retry_initial_seconds: 0.2\n  retry_max_seconds: 1\n"
    )
    listener = NotifyListener(state / "notify.sock")
    proc = _start_daemon(config, state, listener)
    try:
        listener.wait_for("READY=1")
        _wait_for_event(state / "events.db", "camera_error")
        listener.wait_for("WATCHDOG=1", timeout=30)  # the loop is alive and says so while retrying
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        stderr = _stop(proc, listener)
    kinds = _kinds(state / "events.db")
    assert "unlocked" not in kinds and kinds[-1] == "stopped"
    assert "Traceback" not in stderr
