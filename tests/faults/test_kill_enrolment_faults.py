"""``kill -9`` at random points of ``facegate enroll NAME PHOTOS...``, the daemon running.

The points are drawn from a seeded generator (the ``rng`` fixture): the seed is printed
(``-s`` shows it, the table names it) and ``FACEGATE_FAULTS_SEED=N`` replays a run. After
every kill the gallery must pass ``integrity_check`` and open, the person must be wholly
there or wholly absent, and nobody else may have changed.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from faultkit import (
    REPO,
    door_verdict,
    environment,
    facegate,
    gallery_snapshot,
    replay_config,
)

pytestmark = [pytest.mark.faults, pytest.mark.slow]

KILLS = 5
BEN = "Ben Affleck"


def test_kill_9_at_random_points_of_an_enrolment_leaves_the_person_whole_or_absent(
    state, examples, facedata, tmp_path, daemons, fault, rng, enrol
):
    fault.fault = f"kill -9 at {KILLS} random points of `facegate enroll NAME` with 5 photos"
    # Barack Obama is enrolled and at the door (still photos, so liveness is off) while the
    # enrolments are killed: the daemon reads the gallery the whole time
    frames = tmp_path / "obama"
    frames.mkdir()
    for name in ("obama.jpg", "obama2.jpg", "obama-480p.jpg"):
        (frames / name).symlink_to(examples / name)
    replay_config(state, frames, "liveness:\n  enabled: false\n", fps=10)
    enrol(state, "Barack Obama")
    photos = sorted((facedata / "five_celebrity_faces/train/ben_afflek").iterdir())[:5]
    enroll = [sys.executable, "-m", "pi_facegate", "enroll", BEN, *map(str, photos)]
    enroll += ["--config", str(state / "config.yaml"), "--state-dir", str(state)]
    daemon = daemons(state)
    daemon.wait_for("granted", lambda e: e.person == "Barack Obama")
    before = gallery_snapshot(state / "gallery.db")

    # once without a kill: how long it takes, and what "wholly there" is
    began = time.monotonic()
    done = subprocess.run(enroll, capture_output=True, text=True, env=environment(), cwd=REPO)
    duration = time.monotonic() - began
    assert done.returncode == 0, done.stderr
    whole = gallery_snapshot(state / "gallery.db")[BEN]
    assert len(whole[2]) == len(photos)
    assert facegate(state, "people", "remove", BEN).returncode == 0

    outcomes = []
    for _ in range(KILLS):
        delay = rng.uniform(0.2, duration)
        proc = subprocess.Popen(
            enroll,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=environment(),
            cwd=REPO,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        status = proc.wait()
        after = gallery_snapshot(state / "gallery.db")  # integrity_check, no orphans
        others = {k: v for k, v in after.items() if k != BEN}
        assert others == before, "a kill changed somebody else"
        if BEN in after:
            assert after[BEN] == whole, "half an enrolment"
            outcomes.append(f"{delay:.2f} s: whole" + (" (it had finished)" if status == 0 else ""))
            assert facegate(state, "people", "remove", BEN).returncode == 0
        else:
            outcomes.append(f"{delay:.2f} s: absent")
        listed = facegate(state, "people", "list")  # the product opens it too
        assert listed.returncode == 0, listed.stderr
    assert daemon.proc.poll() is None, daemon.stderr[-3000:]  # it read the gallery throughout
    assert daemon.stop() == 0
    assert "Traceback" not in daemon.stderr
    fault.door = door_verdict(daemon.relay(), daemon.events(), {"Barack Obama"})
    fault.data = (
        f"integrity ok after every kill; {BEN} whole ({len(photos)} embeddings) or absent, "
        "never half; Barack Obama untouched"
    )
    fault.happened = (
        f"seed {fault.extra['seed']}; killed at {'; '.join(outcomes)} (a full run takes "
        f"{duration:.1f} s); the running daemon read the gallery throughout"
    )
