"""The trust rules every state file shares: the gallery, the event log, the arming file.

Issue 15 (8): a gallery others could read or write was only warned about, a symbolic link
to a world-writable file was followed, and in a 0777 state dir another user's own gallery
(mode 0600) was used. Each case here is a real file with real permissions
(``os.chmod``, ``os.symlink``, ``os.chown``) opened through the real storage classes.
Handing a file to another user needs root: those cases skip elsewhere, the rest run as
any user.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import stat
from pathlib import Path

import numpy as np
import pytest

from pi_facegate.exc import EnrolmentError, EventLogError, GalleryError
from pi_facegate.storage.arming import (
    ArmingWatcher,
    arming_path,
    new_arming,
    read_arming,
    write_arming,
)
from pi_facegate.storage.events import EventLog, EventWriter
from pi_facegate.storage.gallery import Gallery

FP = "test-embedder:0123456789abcdef"
D = 128
NOBODY = 65534  # the conventional "nobody" uid: another user than this process's


def another_uid() -> int:
    """A uid that is not this process's; only root can give a file to it."""
    if os.geteuid() != 0:
        pytest.skip("only root can give a file to another user (os.chown)")
    return NOBODY


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def state(tmp_path: Path) -> Path:
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    return folder


@pytest.fixture
def gallery(state: Path) -> Path:
    path = state / "gallery.db"
    with Gallery.open(path, FP, D) as g:
        g.add_person("Alice", np.ones((1, D), np.float32) / np.sqrt(D))
    return path


@pytest.fixture
def events(state: Path) -> Path:
    path = state / "events.db"
    with EventWriter(path) as writer:
        writer.record("started")
    return path


def open_gallery(path: Path) -> None:
    with Gallery.open(path, FP, D) as g:
        g.people()


def read_events(path: Path) -> None:
    with EventLog(path) as log:
        log.query()


# ---------------------------------------------------------------------- the gallery


@pytest.mark.parametrize(
    ("mode", "problem"),
    [
        (0o666, "writable by group or others"),
        (0o620, "writable by group or others"),
        (0o644, "readable by group or others"),  # biometric data: private, not only unwritable
        (0o604, "readable by group or others"),
    ],
    ids=["0666", "0620", "0644", "0604"],
)
def test_a_gallery_others_may_read_or_write_is_refused_untouched(gallery, mode, problem):
    os.chmod(gallery, mode)
    before = digest(gallery)
    with pytest.raises(GalleryError, match=f"gallery {gallery} refused: {problem}") as refused:
        open_gallery(gallery)
    assert f"chmod 600 {gallery}" in str(refused.value)
    assert "\n" not in str(refused.value)
    assert digest(gallery) == before and stat.S_IMODE(gallery.stat().st_mode) == mode


def test_a_gallery_behind_a_symbolic_link_is_refused(tmp_path, gallery):
    # the link points at a world-writable copy in a world-writable folder: anyone's to change
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    target = shared / "gallery.db"
    os.replace(gallery, target)
    os.chmod(target, 0o666)
    os.symlink(target, gallery)
    with pytest.raises(GalleryError, match=r"refused: a symbolic link \(to .*shared/gallery.db\)"):
        open_gallery(gallery)
    with pytest.raises(GalleryError, match="symbolic link"):
        Gallery.open(gallery, None, create=False)  # the administration commands' way in


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777], ids=["0777", "0770", "1777"])
def test_a_gallery_in_a_directory_others_may_write_is_refused(state, gallery, mode):
    os.chmod(state, mode)
    with pytest.raises(
        GalleryError, match=f"gallery directory {state} refused: writable by group or others"
    ) as refused:
        open_gallery(gallery)
    assert f"fix: chmod 700 {state}" in str(refused.value)


def test_no_gallery_is_created_in_a_directory_others_may_write(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    with pytest.raises(GalleryError, match="writable by group or others"):
        Gallery.open(shared / "gallery.db", FP, D)
    assert list(shared.iterdir()) == []


def test_a_gallery_owned_by_another_user_is_refused(gallery):
    # the case: another user's own file, mode 0600, in place of the gallery
    os.chown(gallery, another_uid(), -1)
    with pytest.raises(GalleryError, match=f"gallery {gallery} refused: owned by uid 65534") as e:
        open_gallery(gallery)
    assert "run facegate as that user (sudo -u nobody facegate ...)" in str(e.value)
    assert f"fix: chown {pwd.getpwuid(os.geteuid()).pw_name} {gallery}" in str(e.value)


def test_a_gallery_directory_owned_by_another_user_is_refused(state, gallery):
    os.chown(state, another_uid(), -1)  # they may rename files in it at will
    with pytest.raises(GalleryError, match=f"gallery directory {state} refused: owned by uid"):
        open_gallery(gallery)


# ---------------------------------------------------------------------- the event log


@pytest.mark.parametrize("mode", [0o666, 0o620, 0o602], ids=["0666", "0620", "0602"])
def test_an_event_log_others_may_write_is_refused_by_writer_and_reader(events, mode):
    os.chmod(events, mode)
    before = digest(events)
    for use in (EventWriter, read_events):
        with pytest.raises(EventLogError, match="refused: writable by group or others") as e:
            use(events)
        assert f"chmod 600 {events}" in str(e.value)
    assert digest(events) == before and stat.S_IMODE(events.stat().st_mode) == mode


def test_an_event_log_others_may_only_read_is_read_and_tightened_by_the_writer(events):
    os.chmod(events, 0o644)
    with EventLog(events) as log:  # the reader never changes the file
        assert [e.kind for e in log.query()] == ["started"]
    assert stat.S_IMODE(events.stat().st_mode) == 0o644
    with EventWriter(events):
        assert stat.S_IMODE(events.stat().st_mode) == 0o600


def test_an_event_log_behind_a_symbolic_link_is_refused_and_its_target_never_made(tmp_path, state):
    link = state / "events.db"
    target = tmp_path / "elsewhere.db"
    os.symlink(target, link)  # dangling: the writer used to create the target through it
    for use in (EventWriter, read_events):
        with pytest.raises(EventLogError, match="refused: a symbolic link"):
            use(link)
    assert not target.exists()


def test_an_event_log_in_a_directory_others_may_write_is_refused(state, events):
    os.chmod(state, 0o777)
    for use in (EventWriter, read_events):
        with pytest.raises(EventLogError, match="event log directory .* writable by group"):
            use(events)


def test_an_event_log_owned_by_another_user_is_refused(events):
    os.chown(events, another_uid(), -1)
    for use in (EventWriter, read_events):
        with pytest.raises(EventLogError, match="refused: owned by uid 65534"):
            use(events)


# ---------------------------------------------------------------------- the arming file


def test_an_arming_file_behind_a_symbolic_link_arms_nothing(tmp_path, state):
    elsewhere = tmp_path / "armed.json"
    write_arming(elsewhere, new_arming("Mallory", 300))
    os.symlink(elsewhere, arming_path(state))
    with pytest.raises(EnrolmentError, match="refused: a symbolic link"):
        read_arming(arming_path(state))
    watcher = ArmingWatcher(arming_path(state), max_seconds=1800)
    assert watcher.poll() is None and "symbolic link" in watcher.error


def test_an_arming_file_in_a_directory_others_may_write_arms_nothing(state):
    write_arming(arming_path(state), new_arming("Alice", 300))
    os.chmod(state, 0o777)
    with pytest.raises(EnrolmentError, match="directory .* writable by group or others"):
        read_arming(arming_path(state))


def test_an_arming_file_owned_by_another_user_arms_nothing(state):
    write_arming(arming_path(state), new_arming("Alice", 300))
    os.chown(arming_path(state), another_uid(), -1)
    with pytest.raises(EnrolmentError, match="owned by uid 65534"):
        read_arming(arming_path(state))
