"""Hostile input while the daemon runs: a decompression bomb, another person's face.

The daemon runs with the door in use; an administrator (the test, over "ssh") hands the
CLI a 30000x30000 PNG to enrol and identify, one is among the camera's frames too, and an
``enroll arm --update`` for one person is answered at the door by somebody else.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faultkit import (
    LIN,
    REPO,
    _sibling,
    assert_clear,
    data_verdict,
    door_verdict,
    environment,
    events_snapshot,
    facegate,
    gallery_snapshot,
    replay_config,
)

pytestmark = [pytest.mark.faults, pytest.mark.slow]

# the image tests' decompression bomb: a PNG header claiming 30000x30000, 873 KB on disk
png_header_only = _sibling("vision/test_images.py", "faults_image_tests").png_header_only
BUTTON_PIN = 5


#: Started by a small launcher, whose own child it measures: Linux carries the parent's
#: peak RSS into a forked child's ``ru_maxrss`` (at exec, from the address space it leaves),
#: so a command forked straight from a pytest worker that has loaded TensorFlow "peaks" at
#: the worker's gigabytes, whatever it did itself.
_LAUNCHER = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
open(sys.argv[1], "w").write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def measured(state: Path, *words: str) -> tuple[int, str, int]:
    """``facegate WORDS...`` as a process: (exit status, its output, its peak RSS in MiB)."""
    out, peak = state.parent / "cli.out", state.parent / "cli.maxrss"
    command = [sys.executable, "-m", "pi_facegate", *words]
    command += ["--config", str(state / "config.yaml"), "--state-dir", str(state)]
    launcher = [sys.executable, "-c", _LAUNCHER, str(peak), *command]
    with open(out, "w") as sink:
        proc = subprocess.run(launcher, stdout=sink, stderr=sink, env=environment(), cwd=REPO)
    return proc.returncode, out.read_text(), int(peak.read_text()) // 1024


def test_a_30000x30000_png_is_refused_by_enroll_identify_and_the_camera(
    state, lin_frames, examples, tmp_path, daemons, fault, enrol
):
    fault.fault = "a huge image (30000x30000 PNG) given to enroll, identify and the camera"
    bomb = tmp_path / "huge.png"
    bomb.write_bytes(png_header_only(30000, 30000))
    frames = tmp_path / "frames"  # the bomb among the camera's frames as well
    frames.mkdir()
    for frame in sorted(lin_frames.iterdir()):
        (frames / frame.name).symlink_to(frame)
    (frames / "0150-huge.png").symlink_to(bomb)
    replay_config(state, frames)
    enrol(state, LIN)
    gallery = gallery_snapshot(state / "gallery.db")
    daemon = daemons(state)
    daemon.wait_for("granted", lambda e: e.person == LIN)
    before = events_snapshot(daemon.events_db)
    results = {}
    for command in (["enroll", "Alice", str(bomb)], ["identify", str(bomb)]):
        status, output, peak = measured(state, *command)
        assert status == 1, output
        assert_clear(output, "30000x30000 = 900 megapixels", "megapixel limit")
        # refused from the header: decoding alone would take 900 M x 3 bytes = 2.5 GiB
        assert peak < 2048, f"{command[0]} peaked at {peak} MiB"
        results[command[0]] = peak
    later = time.time()
    daemon.wait_for("granted", lambda e: e.person == LIN, since=later)  # the door works on
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0
    assert_clear(daemon.stderr, "replay: skipping", "900 megapixels")
    assert "Alice" not in gallery_snapshot(state / "gallery.db")
    fault.door = door_verdict(daemon.relay(), daemon.events(), {LIN})
    fault.data = data_verdict(
        gallery, gallery_snapshot(state / "gallery.db"), before, events_snapshot(daemon.events_db)
    )
    fault.happened = (
        f"enroll and identify exit 1 from the header alone (peak RSS {results['enroll']} and "
        f"{results['identify']} MiB): 'the image is 30000x30000 = 900 megapixels, more than "
        "the 50-megapixel limit'; nothing stored; as a camera frame it is skipped with that "
        "warning and the door works on"
    )


def test_an_update_armed_for_one_person_refuses_somebody_elses_face(
    state, lin_frames, examples, daemons, fault, enrol
):
    fault.fault = "enroll arm --update for Joe Biden, answered at the door by another face"
    replay_config(
        state,
        lin_frames,
        f"enrolment:\n  button_pin: {BUTTON_PIN}\n  long_press_seconds: 0.5\n",
    )
    enrol(state, "Joe Biden")
    gallery = gallery_snapshot(state / "gallery.db")
    daemon = daemons(state)
    daemon.wait_for("started")
    before = events_snapshot(daemon.events_db)
    armed = facegate(state, "enroll", "arm", "--name", "Joe Biden", "--update")
    assert armed.returncode == 0, armed.stderr
    daemon.wait_for("enrolment_armed", lambda e: e.person == "Joe Biden")
    daemon.press(BUTTON_PIN)  # Lin-Manuel Miranda presses the button and looks at the camera
    started = daemon.wait_for("enrolment_started", lambda e: e.person == "Joe Biden")
    failed = daemon.wait_for("enrolment_failed", since=started.time)
    assert daemon.stop() == 0
    reason = failed.detail["reason"]
    assert "does not match 'Joe Biden'" in reason and failed.detail["embeddings"] > 0
    assert "enrolled" not in [e.kind for e in daemon.events()]
    assert_clear(daemon.stderr, "does not match 'Joe Biden'")
    fault.door = door_verdict(daemon.relay(), daemon.events(), {"Joe Biden"}, grants=0)
    fault.data = data_verdict(
        gallery, gallery_snapshot(state / "gallery.db"), before, events_snapshot(daemon.events_db)
    )
    fault.happened = f"enrolment_failed: {reason[:150]}"
