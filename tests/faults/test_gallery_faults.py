"""The gallery file under attack or lost: at ``run``, and under the running daemon.

Lin-Manuel Miranda is enrolled and stands at the door (his close-up frames, looped) in every
test, so a daemon that wrongly used a planted, lost or corrupt gallery would show it at
once: a pulse of the relay.
"""

from __future__ import annotations

import os
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
    facegate,
    gallery_snapshot,
    replay_config,
)

pytestmark = [pytest.mark.faults, pytest.mark.slow]

NOBODY = 65534


def _mode_0666(state: Path, gallery: Path) -> str:
    os.chmod(gallery, 0o666)
    return f"fix: chmod 600 {gallery}"


def _symlink(state: Path, gallery: Path) -> str:
    elsewhere = state.parent / "elsewhere.db"
    gallery.rename(elsewhere)
    gallery.symlink_to(elsewhere)
    return "symbolic link"


def _state_dir_0777(state: Path, gallery: Path) -> str:
    os.chmod(state, 0o777)
    return f"fix: chmod 700 {state}"


def _other_owner(state: Path, gallery: Path) -> str:
    if os.geteuid() != 0:
        pytest.skip("only root can give the gallery to another user (os.chown)")
    os.chown(gallery, NOBODY, NOBODY)
    return "owned by uid 65534 (nobody)"


UNTRUSTED = {
    "mode-0666": ("untrusted gallery: mode 0666", _mode_0666),
    "symlink": ("untrusted gallery: a symbolic link to a gallery elsewhere", _symlink),
    "state-dir-0777": ("untrusted gallery: in a world-writable state dir (0777)", _state_dir_0777),
    "other-owner": ("untrusted gallery: owned by another user (nobody)", _other_owner),
}


@pytest.fixture
def enrolled(state: Path, lin_frames: Path, examples: Path, enrol) -> Path:
    """Lin-Manuel Miranda enrolled and at the door; the gallery's path."""
    replay_config(state, lin_frames)
    enrol(state, LIN)
    return state / "gallery.db"


@pytest.mark.parametrize("case", list(UNTRUSTED))
def test_an_untrusted_gallery_stops_the_daemon_before_anything_reads_it(
    state, enrolled, daemons, fault, case
):
    fault.fault, plant = UNTRUSTED[case]
    gallery = gallery_snapshot(enrolled)
    fix = plant(state, enrolled)
    daemon = daemons(state)
    assert daemon.wait(timeout=60) == 1
    last = daemon.stderr.strip().splitlines()[-1]
    assert last.startswith("facegate: error: gallery ") and " refused: " in last, last
    assert_clear(daemon.stderr, fix)
    fault.door = door_verdict(daemon.relay(), daemon.events(), {LIN}, may_be_untouched=True)
    assert not daemon.events_db.exists()  # refused before the event log was even opened
    assert gallery_snapshot(enrolled) == gallery
    fault.data = "gallery untouched (1 person, 1 embedding); no event log written"
    fault.happened = f"exit 1 before any model loaded: {last.removeprefix('facegate: error: ')}"


def _deleted(gallery: Path) -> str:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{gallery}{suffix}").unlink(missing_ok=True)
    return "and is gone: restore it from a backup, or `facegate gallery init --force`"


def _truncated(gallery: Path) -> str:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{gallery}{suffix}").unlink(missing_ok=True)
    gallery.touch(mode=0o600)
    return "is now an empty file"


LOST = {
    "deleted": ("gallery vanished before run (deleted)", _deleted),
    "truncated": ("gallery emptied before run (truncated to 0 bytes)", _truncated),
}


@pytest.mark.parametrize("case", list(LOST))
def test_a_vanished_gallery_stops_the_daemon_and_is_not_recreated(
    state, enrolled, daemons, fault, case
):
    fault.fault, lose = LOST[case]
    marker = (state / ".gallery.db-created").read_bytes()
    message = lose(enrolled)
    size = enrolled.stat().st_size if enrolled.exists() else None
    daemon = daemons(state)
    assert daemon.wait(timeout=60) == 1
    last = daemon.stderr.strip().splitlines()[-1]
    assert last.startswith("facegate: error: the gallery ") and "existed (created " in last
    assert_clear(daemon.stderr, message)
    fault.door = door_verdict(daemon.relay(), daemon.events(), {LIN}, may_be_untouched=True)
    # nothing re-created in its place: no new empty gallery to start from, the marker kept
    assert (enrolled.stat().st_size if enrolled.exists() else None) == size
    assert (state / ".gallery.db-created").read_bytes() == marker
    assert not daemon.events_db.exists()
    fault.data = (
        "the loss is not papered over: no empty gallery created, its marker kept, "
        "no event log written; restore from a backup"
    )
    fault.happened = f"exit 1: {last.removeprefix('facegate: error: ')}"


def test_a_gallery_emptied_of_everybody_starts_and_lets_nobody_in(state, enrolled, daemons, fault):
    fault.fault = "gallery emptied of everybody (people remove) before run"
    assert facegate(state, "people", "remove", LIN).returncode == 0
    gallery = gallery_snapshot(enrolled)
    daemon = daemons(state)
    daemon.wait_for("started")
    time.sleep(3.0)  # he stands at the door for 3 s: frames go by, nobody is let in
    assert daemon.stop() == 0
    events = daemon.events()
    message = assert_clear(
        daemon.stderr, "holds nobody, but people were enrolled in it", "it was emptied"
    )
    fault.door = door_verdict(daemon.relay(), events, {LIN}, grants=0)
    fault.data = data_verdict(
        gallery, gallery_snapshot(enrolled), [], events_snapshot(daemon.events_db)
    )
    fault.happened = f"runs and warns at start: {message[:140]}"


def _garbage(state: Path, gallery: Path) -> tuple[str, str]:
    data = bytes((i * 131 + 7) % 256 for i in range(gallery.stat().st_size))
    with open(gallery, "r+b") as handle:  # in place: the daemon's open file changes
        handle.write(data)
    return "not an SQLite database", "not an SQLite database"


def _garbage_pages(state: Path, gallery: Path) -> tuple[str, str]:
    size = gallery.stat().st_size
    with open(gallery, "r+b") as handle:  # the header page intact, every table page garbage
        handle.seek(4096)
        handle.write(bytes((i * 131 + 7) % 256 for i in range(size - 4096)))
    return "the file is corrupt", "corrupt"


def _readable(state: Path, gallery: Path) -> tuple[str, str]:
    os.chmod(gallery, 0o666)
    return f"fix: chmod 600 {gallery}", f"fix: chmod 600 {gallery}"


UNDER_IT = {
    "garbage": ("corrupt gallery while running: gallery.db overwritten with garbage", _garbage),
    "garbage-pages": (
        "corrupt gallery while running: its pages after the header overwritten",
        _garbage_pages,
    ),
    "mode-0666": ("gallery made world-writable (0666) while running", _readable),
}


@pytest.mark.parametrize("case", list(UNDER_IT))
def test_a_gallery_spoiled_under_the_running_daemon_is_refused_and_stays_refused(
    state, enrolled, daemons, fault, case
):
    fault.fault, spoil = UNDER_IT[case]
    gallery = gallery_snapshot(enrolled)
    daemon = daemons(state)
    daemon.wait_for("granted", lambda e: e.person == LIN)  # a genuine grant first
    before = events_snapshot(daemon.events_db)
    needle, restart_needle = spoil(state, enrolled)
    spoiled = time.time()
    spoiled_bytes = enrolled.read_bytes()
    try:
        status = daemon.wait(timeout=20)
    except subprocess.TimeoutExpired:
        status = None
    after = [e for e in daemon.events() if e.kind == "granted" and e.time > spoiled]
    assert status == 1, (
        f"exit status {status}: the daemon went on using the gallery 20 s after it was "
        f"spoiled, {len(after)} grant(s) since"
    )
    gone = time.time() - spoiled
    message = assert_clear(daemon.stderr, needle)
    events = daemon.events()
    assert events[-1].kind == "stopped"
    (fatal,) = [e for e in events if e.kind == "fatal_error"]  # why, in the event log too
    assert fatal.detail["type"] == "GalleryError" and str(enrolled.name) in fatal.detail["error"]
    fault.door = door_verdict(daemon.relay(), events, {LIN})
    assert all(t < spoiled for t, energised in daemon.relay() if energised)  # none after
    # systemd restarts it: the restarted daemon refuses the gallery at once (and so on)
    again = daemons(state)
    assert again.wait(timeout=60) == 1
    assert_clear(again.stderr, restart_needle)
    since = [e for e in again.events() if e.time >= again.started_at]
    door_verdict(again.relay(), since, {LIN}, may_be_untouched=True)
    after = events_snapshot(daemon.events_db)
    assert after[: len(before)] == before and "granted" not in [r[2] for r in after[len(before) :]]
    assert enrolled.read_bytes() == spoiled_bytes  # never "repaired" or replaced: evidence
    if case == "mode-0666":
        os.chmod(enrolled, 0o600)
        assert gallery_snapshot(enrolled) == gallery  # the people are all there, once fixed
        fault.data = (
            f"gallery unchanged (1 person, 1 embedding; chmod 600 restores it); "
            f"{len(before)} earlier events kept"
        )
    else:
        fault.data = (
            f"gallery destroyed by the fault, left as found for a restore; "
            f"{len(before)} earlier events kept, no grant logged after"
        )
    fault.happened = (
        f"exit 1 {gone:.1f} s after the change, then refused at its restart: "
        f"{message.removeprefix('facegate: error: ')}"
    )
