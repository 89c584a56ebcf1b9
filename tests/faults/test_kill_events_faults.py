"""``kill -9`` of the daemon at random points while it writes its event log.

The points are drawn from a seeded generator (the ``rng`` fixture): the seed is printed
(``-s`` shows it, the table names it) and ``FACEGATE_FAULTS_SEED=N`` replays a run. After
every kill the event log must pass ``integrity_check`` and open with every event written
before, in order; the restart systemd would do must work on the same files.
"""

from __future__ import annotations

import re
import signal
import time

import pytest
from faultkit import (
    LIN,
    door_verdict,
    events_snapshot,
    facegate,
    gallery_snapshot,
    integrity,
    replay_config,
)

pytestmark = [pytest.mark.faults, pytest.mark.slow]

KILLS = 5


UNLOCK_LINE = re.compile(r"pi_facegate\.events: unlocked (.+?) reason=face .*extended=false")


def test_kill_9_at_random_points_of_event_writing_keeps_every_earlier_event(
    state, lin_frames, examples, daemons, fault, rng, enrol
):
    fault.fault = f"kill -9 of the daemon at {KILLS} random points while it writes events"
    # no cooldown: Lin-Manuel Miranda is granted every few frames, a stream of events
    replay_config(state, lin_frames, "access:\n  cooldown_seconds: 0\n")
    enrol(state, LIN)
    gallery = gallery_snapshot(state / "gallery.db")
    kept: list[tuple] = []
    points = []
    for _ in range(KILLS):
        daemon = daemons(state)
        daemon.wait_for("granted", since=daemon.started_at)  # events flowing
        delay = rng.uniform(0.0, 1.5)
        time.sleep(delay)
        daemon.signal(signal.SIGKILL)
        assert daemon.wait() == -signal.SIGKILL
        rows = events_snapshot(daemon.events_db)  # integrity_check ok
        assert rows[: len(kept)] == kept, "an event written before the kill is gone or changed"
        new = rows[len(kept) :]
        assert [r[0] for r in new] == list(range(len(kept) + 1, len(rows) + 1))  # no holes
        assert new[0][2] == "started" and "stopped" not in [r[2] for r in new]
        # the relay: energised only for his grants (what the journal got before the kill)
        unlocks = UNLOCK_LINE.findall(daemon.stderr)
        relay = daemon.relay()
        edges = [t for t, energised in relay if energised]
        assert relay[0][1] is False and set(unlocks) <= {LIN}
        assert len(unlocks) <= len(edges) <= len(unlocks) + 1  # +1: killed right after it
        points.append(f"{delay:.2f} s ({len(new)} events)")
        kept = rows
    # the restart systemd would do: the log opens with every event, and the door works
    final = daemons(state)
    final.wait_for("granted", since=final.started_at)
    assert final.stop() == 0
    assert events_snapshot(final.events_db)[: len(kept)] == kept
    assert "Traceback" not in final.stderr
    shown = facegate(state, "events", "--json")
    assert shown.returncode == 0, shown.stderr
    since_restart = [e for e in final.events() if e.time >= final.started_at]
    door = door_verdict(final.relay(), since_restart, {LIN})
    assert (
        integrity(state / "gallery.db") == "ok"
        and gallery_snapshot(state / "gallery.db") == gallery
    )
    fault.door = (
        f"energised only for his grants before each kill (a killed process may leave the pin as "
        f"it was); the restart drives it locked first: {door}"
    )
    fault.data = (
        f"integrity ok after every kill; all {len(kept)} events written before a kill kept, "
        "in order, no holes; what was still queued in memory is lost (it is in the journal)"
    )
    fault.happened = (
        f"seed {fault.extra['seed']}; killed {'; '.join(points)} after the first grant; "
        "each restart appended to the same log"
    )
