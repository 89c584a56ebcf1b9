"""Camera faults: a camera that hangs mid-stream, a camera unplugged mid-stream.

The camera is ``camera.type: opencv`` reading a FIFO that ``fifo_camera.py`` feeds with
Lin-Manuel Miranda's frames (he is enrolled, so the door opens for him first: the daemon
works until the fault). Then the feeder either stops writing and keeps the pipe open -- the
daemon's read blocks in the kernel, as in a hung camera driver -- or the FIFO is removed and
the feeder killed, as a USB camera that is unplugged (its device node goes too). Either way
the daemon must stop pinging the watchdog (hung) or keep pinging while visibly retrying
(unplugged), then exit 1 after ``service.max_camera_outage_seconds`` so that systemd
restarts it, with the door locked and a message naming the camera.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faultkit import (
    HERE,
    LIN,
    WAIT,
    assert_clear,
    data_verdict,
    door_verdict,
    events_snapshot,
    gallery_snapshot,
)

pytestmark = [pytest.mark.faults, pytest.mark.slow]

OUTAGE = 5  # service.max_camera_outage_seconds (its minimum)
FRAME_AGE = 2  # service.watchdog_frame_age_seconds


@pytest.fixture
def camera(state: Path, examples: Path, tmp_path: Path, enrol):
    """``start(seconds) -> feeder``: the FIFO camera, Lin-Manuel Miranda enrolled."""
    fifo = tmp_path / "camera.mjpeg"
    os.mkfifo(fifo, 0o600)
    (state / "config.yaml").write_text(
        f"camera:\n  type: opencv\n  device: {fifo}\n  detect_width: 320\n"
        "  retry_initial_seconds: 0.2\n  retry_max_seconds: 1\n"
        f"service:\n  max_camera_outage_seconds: {OUTAGE}\n"
        f"  watchdog_frame_age_seconds: {FRAME_AGE}\n  status_interval_seconds: 1\n"
    )
    enrol(state, LIN)
    feeders: list[subprocess.Popen] = []

    def start(seconds: float) -> subprocess.Popen:
        clip = examples / "short_hamilton_clip.mp4"
        feeder = subprocess.Popen(
            [sys.executable, str(HERE / "fifo_camera.py"), str(clip), str(fifo), str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        feeders.append(feeder)
        return feeder

    start.fifo = fifo
    yield start
    for feeder in feeders:
        if feeder.poll() is None:
            feeder.kill()
        feeder.communicate()


def stalled_at(feeder: subprocess.Popen) -> float:
    """When the feeder wrote its last byte (its ``STALLED <unix time>`` line)."""
    for line in feeder.stdout:
        if line.startswith("STALLED"):
            return float(line.split()[1])
    raise AssertionError("the camera feeder ended before it stalled")


def watch(daemon, timeout: float = WAIT) -> float:
    """Wait for the daemon to exit; the time it did (within 0.05 s)."""
    deadline = time.monotonic() + timeout
    while daemon.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return time.time()


def test_a_camera_hung_mid_stream_stops_the_watchdog_and_ends_the_daemon(
    state, camera, daemons, notify, fault
):
    fault.fault = "hung camera: the FIFO's writer stops mid-stream and keeps it open"
    gallery = gallery_snapshot(state / "gallery.db")
    feeder = camera(2.5)
    daemon = daemons(state, notify=notify)
    notify.wait_for("READY=1")
    daemon.wait_for("granted", lambda e: e.person == LIN)  # the camera works, until...
    before = events_snapshot(daemon.events_db)
    stalled = stalled_at(feeder)
    exited = watch(daemon)
    status = daemon.wait()

    last_ping = notify.last("WATCHDOG=1")
    assert status == 1
    assert last_ping is not None and last_ping - stalled < FRAME_AGE + 2.0, (last_ping, stalled)
    assert exited - last_ping > 2.0  # silent watchdog well before the exit: systemd acts
    assert OUTAGE <= exited - stalled < OUTAGE + 20
    notify.wait_for("STOPPING=1", timeout=5)
    events = daemon.events()
    outage = [e for e in events if e.kind == "camera_error" and e.detail.get("error") == "outage"]
    assert outage and events[-1].kind == "stopped"
    message = assert_clear(
        daemon.stderr,
        "no frame from the camera for",
        "max_camera_outage_seconds",
        "camera read hung",
    )
    fault.door = door_verdict(daemon.relay(), events, {LIN})
    assert all(t < stalled + 1 for t, energised in daemon.relay() if energised)
    fault.data = data_verdict(
        gallery, gallery_snapshot(state / "gallery.db"), before, events_snapshot(daemon.events_db)
    )
    fault.happened = (
        f"watchdog pings stopped {last_ping - stalled:.1f} s after the last frame; exit 1 "
        f"{exited - stalled:.0f} s after it: {message}"
    )


def test_a_camera_unplugged_mid_stream_is_retried_then_ends_the_daemon(
    state, camera, daemons, notify, fault
):
    fault.fault = "camera lost mid-stream: its device (FIFO) removed, its writer killed"
    gallery = gallery_snapshot(state / "gallery.db")
    feeder = camera(120.0)
    daemon = daemons(state, notify=notify)
    notify.wait_for("READY=1")
    daemon.wait_for("granted", lambda e: e.person == LIN)
    before = events_snapshot(daemon.events_db)
    camera.fifo.unlink()  # the device node goes first, as with a USB camera
    feeder.send_signal(signal.SIGKILL)
    unplugged = time.time()
    exited = watch(daemon)
    status = daemon.wait()

    assert status == 1
    assert OUTAGE <= exited - unplugged < OUTAGE + 20
    # retrying visibly: the watchdog is still fed until the outage limit ends the daemon
    assert (notify.last("WATCHDOG=1") or 0) > unplugged + 1
    events = daemon.events()
    errors = [e for e in events if e.kind == "camera_error"]
    assert errors[0].detail["reason"].startswith("opencv camera")
    assert errors[-1].detail.get("error") == "outage" and events[-1].kind == "stopped"
    message = assert_clear(
        daemon.stderr, "no frame from the camera for", "cannot open", "retrying in"
    )
    fault.door = door_verdict(daemon.relay(), events, {LIN})
    assert all(t < unplugged + 1 for t, energised in daemon.relay() if energised)
    fault.data = data_verdict(
        gallery, gallery_snapshot(state / "gallery.db"), before, events_snapshot(daemon.events_db)
    )
    fault.happened = (
        f"camera_error ({errors[0].detail['reason']}), reopened with back-off, exit 1 "
        f"{exited - unplugged:.0f} s later: {message}"
    )
