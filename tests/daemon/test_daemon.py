"""End to end: the real daemon on replayed video, with simulated GPIO.

These runs use the real models, MediaPipe, SQLite files and a real ``NOTIFY_SOCKET``
datagram socket; what the door did is read back from the event log the daemon wrote.

One test runs the daemon as systemd does, a real ``python -m pi_facegate run`` subprocess:
READY and WATCHDOG over ``NOTIFY_SOCKET``, SIGHUP reloads, SIGTERM exits 0 with the door
locked. The others run it in this process, which spares each an interpreter start and the
imports of MediaPipe, OpenCV and LiteRT (the service still loads its own models): ``facegate
run --replay`` through the CLI's ``main`` where the replay ends by itself, or a
:class:`DoorService` in a thread, stopped the way SIGTERM stops it, where the test acts while
it runs.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pi_facegate.cli import main
from pi_facegate.config.loader import load_config
from pi_facegate.daemon.service import DoorService, RunOptions
from pi_facegate.storage.events import EventLog

pytestmark = pytest.mark.slow

WAIT = 120.0  # seconds the daemon may take to start or stop on a slow, busy 2-core machine


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    env.update(extra)
    return env


def _kinds(events_db: Path) -> list[str]:
    return [e.kind for e in EventLog(events_db).query()]


@pytest.fixture
def state(tmp_path: Path) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text("camera:\n  detect_width: 320\n")
    return tmp_path


def test_enrolled_person_walks_up_and_the_door_opens(facedata, state, in_process, capfd):
    examples = facedata / "face_recognition_examples" / "examples"
    assert (
        main(
            [
                "enroll",
                "--config",
                str(state / "config.yaml"),
                "--state-dir",
                str(state),
                "Lin-Manuel Miranda",
                str(examples / "lin-manuel-miranda.png"),
            ]
        )
        == 0
    )
    status = main(
        [
            "run",
            "--config",
            str(state / "config.yaml"),
            "--state-dir",
            str(state),
            "--replay",
            str(examples / "short_hamilton_clip.mp4"),
            "--simulate-gpio",
        ]
    )
    stderr = capfd.readouterr().err
    assert status == 0, stderr[-3000:]
    events = EventLog(state / "events.db").query()
    granted = [e for e in events if e.kind == "granted"]
    assert granted and {e.person for e in granted} == {"Lin-Manuel Miranda"}
    assert granted[0].distance <= 0.6 and granted[0].detail["latency_ms"] < 1000
    kinds = [e.kind for e in events]
    assert kinds[0] == "started" and kinds[-1] == "stopped"
    assert kinds.index("unlocked") < len(kinds) - 1 and "relocked" in kinds
    assert "SIMULATED" in stderr


@pytest.mark.parametrize(
    "replay",
    ["facenet_pytorch_samples/examples/video.mp4", "no_face_and_multi_face_misc/data"],
)
def test_strangers_and_empty_scenes_never_open_the_door(facedata, state, in_process, capfd, replay):
    # somebody is enrolled, but nobody in these recordings; the walkers are 2-4 m away, so
    # this door uses the full-range detector (config's documented choice for distant faces)
    (state / "config.yaml").write_text(
        "camera:\n  detect_width: 640\ndetector:\n  model: face_detection_full_range\n  min_score: 0.5\n"
    )
    examples = facedata / "face_recognition_examples" / "examples"
    assert (
        main(
            [
                "enroll",
                "--config",
                str(state / "config.yaml"),
                "--state-dir",
                str(state),
                "Lin-Manuel Miranda",
                str(examples / "lin-manuel-miranda.png"),
            ]
        )
        == 0
    )
    status = main(
        [
            "run",
            "--config",
            str(state / "config.yaml"),
            "--state-dir",
            str(state),
            "--replay",
            str(facedata / replay),
            "--simulate-gpio",
        ]
    )
    assert status == 0, capfd.readouterr().err[-3000:]
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


@pytest.fixture
def listener(state: Path) -> Iterator[NotifyListener]:
    listener = NotifyListener(state / "notify.sock")
    yield listener
    listener.close()


@pytest.fixture
def notify_socket(listener: NotifyListener, monkeypatch: pytest.MonkeyPatch) -> NotifyListener:
    """``listener`` as this process's NOTIFY_SOCKET, for an in-process daemon's Notifier."""
    monkeypatch.setenv("NOTIFY_SOCKET", str(listener.path))
    return listener


def _wait_for_event(db: Path, kind: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists() and kind in _kinds(db):
            return
        time.sleep(0.05)
    raise AssertionError(f"no {kind!r} event in {db}")


def test_reload_keeps_the_last_good_config_and_sigterm_locks(facedata, state, listener):
    """The real subprocess, as systemd runs it: READY, WATCHDOG, SIGHUP and SIGTERM."""
    config = state / "config.yaml"
    frames = facedata / "att_faces" / "s1"
    config.write_text(
        f"camera:\n  type: replay\n  replay:\n    path: {frames}\n    fps: 20\n    loop: true\n"
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pi_facegate",
            "run",
            "--config",
            str(config),
            "--state-dir",
            str(state),
            "--simulate-gpio",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(NOTIFY_SOCKET=str(listener.path)),
    )
    try:
        listener.wait_for("READY=1")
        listener.wait_for("WATCHDOG=1", timeout=30)  # frames flow through the loop
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
    events = EventLog(state / "events.db").query()
    rejected = next(e for e in events if e.kind == "config_rejected")
    assert (
        "window_frames" in rejected.detail["error"] or "votes_required" in rejected.detail["error"]
    )
    assert events[-1].kind == "stopped"
    assert "unlocked" not in [e.kind for e in events]
    assert "Traceback" not in stderr


class RunningService:
    """A :class:`DoorService` running in a thread, as ``facegate run --simulate-gpio`` would."""

    def __init__(self, config: Path, state: Path) -> None:
        options = RunOptions(config_path=config, state_dir=state, simulate_gpio=True)
        self.service = DoorService(options, load_config(config))
        self.result: list[int] = []
        self.thread = threading.Thread(
            target=lambda: self.result.append(self.service.run()), name="DoorService", daemon=True
        )
        self.thread.start()

    def is_running(self) -> bool:
        return self.thread.is_alive()

    def terminate(self) -> int | None:
        """What SIGTERM does: ask the loop to stop, then wait; the exit status, if it ended."""
        self.service.request_stop()
        self.thread.join(WAIT)
        return None if self.thread.is_alive() else self.result[0] if self.result else None


@contextmanager
def running(config: Path, state: Path) -> Iterator[RunningService]:
    runner = RunningService(config, state)
    try:
        yield runner
    finally:
        runner.terminate()
    assert not runner.is_running()


def _tracebacks(records: list[logging.LogRecord]) -> list[str]:
    """What would have printed a traceback on the daemon's stderr."""
    return [r.getMessage() for r in records if r.exc_info or "Traceback" in r.getMessage()]


def test_a_person_enrolled_while_the_daemon_runs_is_let_in(facedata, state, notify_socket, caplog):
    caplog.set_level(logging.INFO)
    examples = facedata / "face_recognition_examples" / "examples"
    frames = state / "frames"
    frames.mkdir()
    for name in ("obama.jpg", "obama2.jpg", "obama-480p.jpg"):
        (frames / name).symlink_to(examples / name)
    config = state / "config.yaml"
    # still photos stand in for a person walking up: this test is about the gallery refresh,
    # so liveness (which refuses photos, see tests/daemon/test_liveness_daemon.py) is off
    config.write_text(
        f"camera:\n  type: replay\n  replay:\n    path: {frames}\n    fps: 10\n    loop: true\n"
        "liveness:\n  enabled: false\n"
    )
    assert (
        main(
            [
                "enroll",
                "--config",
                str(config),
                "--state-dir",
                str(state),
                "Joe Biden",
                str(examples / "biden.jpg"),
            ]
        )
        == 0
    )
    with running(config, state) as daemon:
        notify_socket.wait_for("READY=1")
        _wait_for_event(state / "events.db", "denied")  # Obama is a stranger to this door
        assert "granted" not in _kinds(state / "events.db")
        assert (
            main(
                [
                    "enroll",
                    "--config",
                    str(config),
                    "--state-dir",
                    str(state),
                    "Barack Obama",
                    str(examples / "knn_examples" / "train" / "obama" / "obama.jpg"),
                ]
            )
            == 0
        )
        enrolled_at = time.time()
        _wait_for_event(state / "events.db", "granted")
    assert daemon.result == [0]
    granted = next(e for e in EventLog(state / "events.db").query() if e.kind == "granted")
    assert granted.person == "Barack Obama"
    # the gallery is polled twice a second; three votes at 10 fps take another 0.3 s
    assert granted.time - enrolled_at < 2.5, caplog.text[-2000:]


def test_a_camera_that_cannot_be_opened_keeps_the_door_locked_and_the_daemon_up(
    state, notify_socket, caplog
):
    caplog.set_level(logging.INFO)
    config = state / "config.yaml"
    config.write_text(
        f"camera:\n  type: opencv\n  device: {state / 'no-such-camera.mp4'}\n"
        "  retry_initial_seconds: 0.2\n  retry_max_seconds: 1\n"
    )
    with running(config, state) as daemon:
        notify_socket.wait_for("READY=1")
        _wait_for_event(state / "events.db", "camera_error")
        notify_socket.wait_for("WATCHDOG=1", timeout=30)  # alive, and says so while retrying
        assert daemon.is_running()
        assert daemon.terminate() == 0
    notify_socket.wait_for("STOPPING=1", timeout=5)
    kinds = _kinds(state / "events.db")
    assert "unlocked" not in kinds and kinds[-1] == "stopped"
    assert _tracebacks(caplog.records) == []


def test_a_camera_out_for_too_long_ends_the_daemon_with_an_error(state, notify_socket):
    """Retrying for ever never frees a camera hung in its driver: after
    service.max_camera_outage_seconds the daemon exits 1 (systemd restarts it), locked."""
    config = state / "config.yaml"
    config.write_text(
        f"camera:\n  type: opencv\n  device: {state / 'no-such-camera.mp4'}\n"
        "  retry_initial_seconds: 0.2\n  retry_max_seconds: 1\n"
        "service:\n  max_camera_outage_seconds: 5\n"
    )
    runner = RunningService(config, state)
    notify_socket.wait_for("READY=1")
    runner.thread.join(30)
    assert not runner.is_running() and runner.result == [1]
    notify_socket.wait_for("STOPPING=1", timeout=5)
    events = EventLog(state / "events.db").query()
    outage = [e for e in events if e.kind == "camera_error" and e.detail.get("error") == "outage"]
    assert outage and outage[0].detail["seconds"] >= 5
    assert "unlocked" not in [e.kind for e in events] and events[-1].kind == "stopped"
