"""Signals and configs from outside: reloads during a visit, bad configs on SIGHUP, storms.

``systemctl reload`` is SIGHUP and ``systemctl stop`` SIGTERM; here they come from the test
to the daemon's process, with the config file rewritten under it as an administrator would.
"""

from __future__ import annotations

import signal
import time

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


def test_reloads_while_a_person_is_at_the_door_give_no_second_pulse(
    state, lin_frames, examples, daemons, fault, enrol
):
    fault.fault = "reload (SIGHUP) twice while an enrolled person stands at the door"
    config = replay_config(state, lin_frames, "access:\n  cooldown_seconds: 120\n")
    enrol(state, LIN)
    gallery = gallery_snapshot(state / "gallery.db")
    daemon = daemons(state)
    granted = daemon.wait_for("granted", lambda e: e.person == LIN)
    before = events_snapshot(daemon.events_db)
    for _ in range(2):  # each reload is followed by 2.5 s of him at the door (frames looped)
        config.write_text(config.read_text())  # the same config, saved again
        sent = time.time()
        daemon.signal(signal.SIGHUP)
        daemon.wait_for("config_reloaded", since=sent)
        time.sleep(2.5)
    assert daemon.stop() == 0
    events = daemon.events()
    kinds = [e.kind for e in events]
    assert kinds.count("config_reloaded") == 2 and kinds.count("granted") == 1
    fault.door = door_verdict(daemon.relay(), events, {LIN}, grants=1)
    fault.data = data_verdict(
        gallery, gallery_snapshot(state / "gallery.db"), before, events_snapshot(daemon.events_db)
    )
    assert_clear(daemon.stderr, "config_reloaded")
    fault.happened = (
        f"both reloads applied (config_reloaded x2); granted once at "
        f"+{granted.time - daemon.started_at:.1f} s, no second grant within the cooldown"
    )


BAD_CONFIGS = {
    "recursive-alias": (
        "a recursive YAML alias on SIGHUP (matching: &a [*a])",
        "matching: &a [*a]\n",
        "a YAML alias refers to itself",
    ),
    "threshold-2.0": (
        "matching.threshold: 2.0 (and min_margin: 0.0) on SIGHUP",
        "matching:\n  threshold: 2.0\n  min_margin: 0.0\n",
        "loosest_threshold",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_a_bad_config_on_sighup_is_rejected_and_the_last_good_one_runs_on(
    state, examples, tmp_path, daemons, fault, case, enrol
):
    fault.fault, bad, message = BAD_CONFIGS[case]
    # Barack Obama's photos at the door, Lin-Manuel Miranda enrolled: the loose threshold,
    # if it were applied, would let Obama in as him (issue 15 bug 7). Still photos, so
    # liveness is off: only the matcher stands between Obama and the relay.
    frames = tmp_path / "obama"
    frames.mkdir()
    for name in ("obama.jpg", "obama2.jpg", "obama-480p.jpg"):
        (frames / name).symlink_to(examples / name)
    good = "liveness:\n  enabled: false\naccess:\n  unknown_log_interval_seconds: 0\n"
    config = replay_config(state, frames, good, fps=10)
    enrol(state, LIN)
    gallery = gallery_snapshot(state / "gallery.db")
    daemon = daemons(state)
    daemon.wait_for("denied")
    before = events_snapshot(daemon.events_db)
    config.write_text(config.read_text().replace("liveness:", bad + "liveness:", 1))
    sent = time.time()
    daemon.signal(signal.SIGHUP)
    rejected = daemon.wait_for("config_rejected", since=sent)
    daemon.wait_for("denied", since=rejected.time + 0.5)  # Obama is still turned away
    assert daemon.stop() == 0
    events = daemon.events()
    assert message in rejected.detail["error"]
    assert "config_reloaded" not in [e.kind for e in events]
    line = assert_clear(
        daemon.stderr, "config reload rejected; keeping the running config", message
    )
    fault.door = door_verdict(daemon.relay(), events, {LIN}, grants=0)
    fault.data = data_verdict(
        gallery, gallery_snapshot(state / "gallery.db"), before, events_snapshot(daemon.events_db)
    )
    denied = sum(1 for e in events if e.kind == "denied" and e.time > rejected.time)
    fault.happened = (
        f"config_rejected, the running config kept ({denied} denials of the stranger after "
        f"it): {line.split(': ', 1)[-1].split(' (one stranger')[0]}"
    )


def test_sighup_and_sigterm_storms_leave_a_working_daemon_then_a_clean_exit(
    state, lin_frames, examples, daemons, notify, fault, enrol
):
    fault.fault = "SIGHUP storm (50 in a burst), then SIGTERM among SIGHUPs and SIGTERMs"
    replay_config(state, lin_frames)
    enrol(state, LIN)
    gallery = gallery_snapshot(state / "gallery.db")
    daemon = daemons(state, notify=notify)
    notify.wait_for("READY=1")
    daemon.wait_for("granted", lambda e: e.person == LIN)
    before = events_snapshot(daemon.events_db)
    storm = time.time()
    for _ in range(50):
        daemon.signal(signal.SIGHUP)
    # still working: reloads were served and he is let in again (cooldown 5 s)
    daemon.wait_for("config_reloaded", since=storm)
    daemon.wait_for("granted", lambda e: e.person == LIN, since=storm + 0.5)
    for _ in range(10):
        daemon.signal(signal.SIGHUP)
    daemon.signal(signal.SIGTERM)
    sent = 0
    while daemon.proc.poll() is None:  # and more of both until the process is gone
        try:
            daemon.signal(signal.SIGHUP if sent % 2 else signal.SIGTERM)
        except ProcessLookupError:
            break
        sent += 1
        time.sleep(0.001)
    status = daemon.wait()
    assert status == 0, f"exit status {status} (negative: killed by that signal)"
    notify.wait_for("STOPPING=1", timeout=5)
    events = daemon.events()
    kinds = [e.kind for e in events]
    assert kinds[-1] == "stopped" and kinds.count("started") == 1
    reloads = kinds.count("config_reloaded")
    assert_clear(daemon.stderr, "config_reloaded")
    fault.door = door_verdict(daemon.relay(), events, {LIN})
    fault.data = data_verdict(
        gallery, gallery_snapshot(state / "gallery.db"), before, events_snapshot(daemon.events_db)
    )
    fault.happened = (
        f"the 50 SIGHUPs coalesced into {reloads} reload(s), granted again after the storm; "
        f"SIGTERM plus {sent} more signals while it stopped: exit 0, 'stopped' recorded"
    )
