"""Enrolment at the door, against the real daemon loop.

Each test runs a real :class:`DoorService` (real models, SQLite files, replayed frames,
gpiozero's MockFactory as ``--simulate-gpio`` does) in a thread, presses the enrolment
button by driving its mock pin, arms and cancels with the real CLI, and waits for the
events the daemon records -- never for a fixed time. The last test kills a daemon process
with SIGKILL in the middle of a capture and checks the gallery.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from pi_facegate.cli import main
from pi_facegate.config.loader import load_config
from pi_facegate.daemon.service import DoorService, RunOptions
from pi_facegate.storage.arming import ARMING_FILE_NAME, read_arming
from pi_facegate.storage.events import EventLog
from pi_facegate.storage.gallery import Gallery
from pi_facegate.vision.images import load_image

pytestmark = pytest.mark.slow

BUTTON_PIN = 5
LIN = "Lin-Manuel Miranda"
WAIT = 90.0  # seconds an awaited event may take on a slow, busy 2-core machine


# --------------------------------------------------------------------------- replays


def _photo(facedata: Path) -> np.ndarray:
    return load_image(facedata / "face_recognition_examples/examples/lin-manuel-miranda.png")


def _save(image: np.ndarray, path: Path) -> Path:
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def blurred(facedata: Path, tmp: Path) -> Path:
    """A real photo out of focus: sharp enough to detect, too blurred to store."""
    return _save(cv2.GaussianBlur(_photo(facedata), (0, 0), 3.0), tmp / "blurred.png")


def tiny(facedata: Path, tmp: Path) -> Path:
    """The face far away: a 50-pixel face in a 320x240 frame."""
    small = cv2.resize(_photo(facedata), None, fx=0.15, fy=0.15, interpolation=cv2.INTER_AREA)
    canvas = np.full((240, 320, 3), 128, np.uint8)
    h, w = small.shape[:2]
    canvas[(240 - h) // 2 : (240 - h) // 2 + h, (320 - w) // 2 : (320 - w) // 2 + w] = small
    return _save(canvas, tmp / "tiny.png")


def dark(facedata: Path, tmp: Path) -> Path:
    return _save((_photo(facedata) * 0.25).astype(np.uint8), tmp / "dark.png")


def two_faces(facedata: Path, tmp: Path) -> Path:
    return facedata / "face_recognition_examples/examples/two_people.jpg"


def no_faces(facedata: Path, tmp: Path) -> Path:
    """Links to the photos that face_content_labels.csv says show no face at all."""
    root = facedata / "no_face_and_multi_face_misc"
    folder = tmp / "no_face"
    folder.mkdir()
    for line in (root / "face_content_labels.csv").read_text().splitlines()[1:]:
        file, content, _ = line.split(",", 2)
        if content == "none" and not file.endswith(".mp4"):
            (folder / Path(file).name).symlink_to(root / file)
    return folder


# --------------------------------------------------------------------------- the daemon


class EventTap:
    """Every event the service records, with a way to wait for one."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._cond = threading.Condition()

    def __call__(self, kind: str, fields: dict[str, Any]) -> None:
        with self._cond:
            self.events.append((kind, fields))
            self._cond.notify_all()

    def wait_for(
        self, kind: str, where: Callable[[dict[str, Any]], bool] = lambda f: True, after: int = 0
    ) -> tuple[int, dict[str, Any]]:
        """``(position, fields)`` of the first ``kind`` event from ``after`` on that fits."""

        def find():
            for i in range(after, len(self.events)):
                k, fields = self.events[i]
                if k == kind and where(fields):
                    return i, fields
            return None

        with self._cond:
            found = self._cond.wait_for(find, WAIT)
        assert found, f"no {kind!r} event; got {[k for k, _ in self.events]}"
        return found

    def kinds(self, start: int = 0, end: int | None = None) -> list[str]:
        with self._cond:
            return [k for k, _ in self.events[start:end]]


def write_config(state: Path, replay: Path, **sections: str) -> Path:
    """A config replaying ``replay`` in a loop, with the enrolment button on BUTTON_PIN."""
    enrolment = sections.pop("enrolment", "")
    text = (
        f"camera:\n  type: replay\n  detect_width: 320\n  replay:\n    path: {replay}\n"
        f"    fps: 20\n    loop: true\n"
        f"enrolment:\n  button_pin: {BUTTON_PIN}\n  long_press_seconds: 0.5\n{enrolment}"
    )
    text += "".join(sections.values())
    path = state / "config.yaml"
    path.write_text(text)
    return path


@contextmanager
def running(state: Path) -> Iterator[tuple[DoorService, EventTap]]:
    """A DoorService on ``state/config.yaml`` with simulated GPIO, running in a thread."""
    config_path = state / "config.yaml"
    tap = EventTap()
    options = RunOptions(config_path=config_path, state_dir=state, simulate_gpio=True)
    service = DoorService(options, load_config(config_path), on_event=tap)
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(service.run()), name="DoorService")
    thread.start()
    try:
        if not service.ready_event.wait(WAIT):
            raise AssertionError(f"the service did not start; events {tap.kinds()}")
        yield service, tap
    finally:
        service.request_stop()
        thread.join(WAIT)
    assert not thread.is_alive() and result == [0]


def press(service: DoorService) -> None:
    pin = service.door.pin_factory.pin(BUTTON_PIN)
    pin.drive_low()
    pin.drive_high()


def cli(state: Path, *args: str) -> int:
    return main([*args, "--config", str(state / "config.yaml"), "--state-dir", str(state)])


def gallery_people(state: Path) -> dict[str, Any]:
    if not (state / "gallery.db").exists():
        return {}
    with Gallery.open(state / "gallery.db", fingerprint=None, create=False) as gallery:
        return {p.name: p for p in gallery.people()}


def enrol_from_photo(facedata: Path, state: Path) -> None:
    photo = facedata / "face_recognition_examples/examples/lin-manuel-miranda.png"
    assert cli(state, "enroll", LIN, str(photo)) == 0


# --------------------------------------------------------------------------- tests


def test_armed_press_stores_the_person_who_is_then_let_in(lin_frames, tmp_path, capsys):
    write_config(tmp_path, lin_frames)
    with running(tmp_path) as (service, tap):
        assert cli(tmp_path, "enroll", "arm", "--name", LIN, "--timeout", "5m") == 0
        tap.wait_for("enrolment_armed", lambda f: f["person"] == LIN)
        press(service)
        started, _ = tap.wait_for("enrolment_started", lambda f: f["person"] == LIN)
        done, fields = tap.wait_for("enrolled", after=started)
        granted, grant = tap.wait_for("granted", after=done)
        assert "granted" not in tap.kinds(0, done)  # nobody was let in before he was stored
    assert fields["person"] == LIN and grant["person"] == LIN
    detail = fields["detail"]
    assert 3 <= detail["embeddings"] <= 5 and detail["good_frames"] >= detail["embeddings"]
    person = gallery_people(tmp_path)[LIN]
    assert person.active and person.embedding_count == detail["embeddings"]
    assert not (tmp_path / ARMING_FILE_NAME).exists()  # one arming enrols one person
    kinds = [e.kind for e in EventLog(tmp_path / "events.db").query()]
    assert kinds.index("enrolled") < min(kinds.index("granted"), kinds.index("unlocked"))
    capsys.readouterr()
    assert cli(tmp_path, "enroll", "status") == 0
    status = capsys.readouterr().out
    assert status.startswith("enrolment is not armed") and f"enrolled {LIN}" in status


def test_the_face_being_captured_gets_no_votes_but_is_let_in_again_afterwards(
    facedata, lin_frames, tmp_path
):
    # already enrolled and with no cooldown, he is granted every few frames -- except while
    # his --update capture runs
    write_config(
        tmp_path,
        lin_frames,
        enrolment="  capture_seconds: 4\n",
        access="access:\n  cooldown_seconds: 0\n",
    )
    enrol_from_photo(facedata, tmp_path)
    with running(tmp_path) as (service, tap):
        tap.wait_for("granted", lambda f: f["person"] == LIN)
        assert cli(tmp_path, "enroll", "arm", "--name", LIN, "--update") == 0
        tap.wait_for("enrolment_armed")
        press(service)
        started, _ = tap.wait_for("enrolment_started")
        done, fields = tap.wait_for("enrolled", after=started)
        tap.wait_for("granted", lambda f: f["person"] == LIN, after=done)
        during = tap.kinds(started, done)
    assert "granted" not in during and "unlocked" not in during
    assert fields["detail"]["update"] is True
    assert gallery_people(tmp_path)[LIN].embedding_count == 1 + fields["detail"]["embeddings"]


def test_an_unarmed_press_stores_nobody(lin_frames, tmp_path):
    write_config(tmp_path, lin_frames)
    with running(tmp_path) as (service, tap):
        press(service)
        _, fields = tap.wait_for("enrolment_ignored")
        press(service)
        tap.wait_for("enrolment_ignored", after=tap.kinds().index("enrolment_ignored") + 1)
        assert "enrolment_started" not in tap.kinds()
    assert fields["detail"]["reason"] == "not armed"
    assert gallery_people(tmp_path) == {}


def test_an_unarmed_press_may_store_a_pending_person_without_access(lin_frames, tmp_path):
    write_config(tmp_path, lin_frames, enrolment="  allow_pending: true\n")
    with running(tmp_path) as (service, tap):
        press(service)
        done, fields = tap.wait_for("enrolled")
        name = fields["person"]
        # he is seen again at once: recognised as the pending person and turned away
        tap.wait_for("denied", lambda f: f["person"] == name, after=done)
        assert "granted" not in tap.kinds() and "unlocked" not in tap.kinds()
    assert name.startswith("pending-") and fields["detail"]["pending"] is True
    person = gallery_people(tmp_path)[name]
    assert person.pending and not person.active
    assert cli(tmp_path, "people", "approve", name) == 0
    assert gallery_people(tmp_path)[name].active


@pytest.mark.parametrize(
    ("make_replay", "reason"),
    [
        (no_faces, "no face"),
        (two_faces, "two faces"),
        (blurred, "too blurred"),
        (tiny, "too small"),
        (dark, "too dark"),
    ],
    ids=["no-face", "two-faces", "blurred", "tiny-face", "dark"],
)
def test_bad_frames_store_nothing_and_log_the_reason(facedata, tmp_path, make_replay, reason):
    write_config(tmp_path, make_replay(facedata, tmp_path), enrolment="  capture_seconds: 1.5\n")
    with running(tmp_path) as (service, tap):
        assert cli(tmp_path, "enroll", "arm", "--name", "Alice") == 0
        tap.wait_for("enrolment_armed")
        press(service)
        _, fields = tap.wait_for("enrolment_failed")
    assert fields["person"] == "Alice" and fields["detail"]["reason"] == reason
    assert fields["detail"]["embeddings"] == 0 and fields["detail"]["frames"] > 0
    assert fields["detail"]["refused_frames"][reason] > fields["detail"]["frames"] / 2
    assert gallery_people(tmp_path) == {}
    assert read_arming(tmp_path / ARMING_FILE_NAME).name == "Alice"  # armed still: try again
    failed = EventLog(tmp_path / "events.db").query(kinds=["enrolment_failed"])
    assert [e.detail["reason"] for e in failed] == [reason]


def test_a_face_that_matches_someone_else_is_refused(facedata, lin_frames, tmp_path):
    write_config(tmp_path, lin_frames)
    enrol_from_photo(facedata, tmp_path)
    with running(tmp_path) as (service, tap):
        assert cli(tmp_path, "enroll", "arm", "--name", "Not Lin") == 0
        tap.wait_for("enrolment_armed")
        press(service)
        _, fields = tap.wait_for("enrolment_failed")
    assert fields["detail"]["matches"] == LIN
    assert fields["detail"]["reason"].startswith(f"already enrolled as '{LIN}'")
    assert set(gallery_people(tmp_path)) == {LIN}


def test_a_long_press_or_the_cancel_command_aborts_a_capture(facedata, tmp_path):
    write_config(tmp_path, no_faces(facedata, tmp_path), enrolment="  capture_seconds: 60\n")
    with running(tmp_path) as (service, tap):
        assert cli(tmp_path, "enroll", "arm", "--name", "Alice") == 0
        tap.wait_for("enrolment_armed")
        press(service)
        first, _ = tap.wait_for("enrolment_started")
        pin = service.door.pin_factory.pin(BUTTON_PIN)
        pin.drive_low()  # held: the hold time is 0.5 s
        _, by_button = tap.wait_for("enrolment_cancelled", after=first)
        pin.drive_high()  # releasing after a long press starts nothing
        press(service)
        second, _ = tap.wait_for("enrolment_started", after=first + 1)
        assert cli(tmp_path, "enroll", "cancel") == 0
        _, by_admin = tap.wait_for("enrolment_cancelled", after=second)
        tap.wait_for("enrolment_disarmed", after=second)
        press(service)
        tap.wait_for("enrolment_ignored", after=second)
    assert "long press" in by_button["detail"]["reason"]
    assert "administrator" in by_admin["detail"]["reason"]
    assert tap.kinds().count("enrolment_started") == 2
    assert "enrolled" not in tap.kinds() and gallery_people(tmp_path) == {}


def test_an_arming_expires(lin_frames, tmp_path):
    write_config(tmp_path, lin_frames)
    with running(tmp_path) as (service, tap):
        assert cli(tmp_path, "enroll", "arm", "--name", "Alice", "--timeout", "1s") == 0
        tap.wait_for("enrolment_expired", lambda f: f["person"] == "Alice")
        press(service)
        tap.wait_for("enrolment_ignored")
    assert not (tmp_path / ARMING_FILE_NAME).exists()
    assert gallery_people(tmp_path) == {}


DRIVER = textwrap.dedent(
    """
    import sys, threading
    from pathlib import Path
    from pi_facegate.config.loader import load_config
    from pi_facegate.daemon.service import DoorService, RunOptions

    state = Path(sys.argv[1])
    started = threading.Event()
    def tap(kind, fields):
        if kind == "enrolment_started":
            started.set()
    options = RunOptions(config_path=state / "config.yaml", state_dir=state, simulate_gpio=True)
    service = DoorService(options, load_config(options.config_path), on_event=tap)
    threading.Thread(target=service.run, daemon=True).start()
    service.ready_event.wait()
    pin = service.door.pin_factory.pin(int(sys.argv[2]))
    pin.drive_low(); pin.drive_high()
    started.wait()
    service.events.flush(30)
    print("CAPTURING", flush=True)
    threading.Event().wait()  # until killed
    """
)


def test_kill_9_during_a_capture_leaves_the_gallery_whole(facedata, lin_frames, tmp_path):
    write_config(tmp_path, lin_frames, enrolment="  capture_seconds: 60\n  embeddings: 50\n")
    photo = facedata / "face_recognition_examples/examples/obama.jpg"
    assert cli(tmp_path, "enroll", "Barack Obama", str(photo)) == 0
    assert cli(tmp_path, "enroll", "arm", "--name", LIN) == 0
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(tmp_path), str(BUTTON_PIN)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        assert line.strip() == "CAPTURING", proc.stderr.read()[-3000:]
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=WAIT) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    with sqlite3.connect(tmp_path / "gallery.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        orphans = conn.execute(
            "SELECT count(*) FROM embeddings WHERE person_id NOT IN (SELECT id FROM people)"
        ).fetchone()
        empty = conn.execute(
            "SELECT count(*) FROM people WHERE id NOT IN (SELECT person_id FROM embeddings)"
        ).fetchone()
    assert orphans == (0,) and empty == (0,)
    people = gallery_people(tmp_path)
    assert set(people) == {"Barack Obama"} and people["Barack Obama"].embedding_count == 1
    events = EventLog(tmp_path / "events.db").query()
    assert "enrolment_started" in [e.kind for e in events] and "enrolled" not in [
        e.kind for e in events
    ]
    # the same state serves the next enrolment: the daemon's restart picks the arming up again
    assert read_arming(tmp_path / ARMING_FILE_NAME).name == LIN
    write_config(tmp_path, lin_frames)
    with running(tmp_path) as (service, tap):
        press(service)
        tap.wait_for("enrolled", lambda f: f["person"] == LIN)
    assert set(gallery_people(tmp_path)) == {"Barack Obama", LIN}


def test_a_photo_held_up_at_the_door_is_not_enrolled(tmp_path, held_up_photo):
    """SIMULATED attack on enrolment (see the ``held_up_photo`` fixture)."""
    write_config(tmp_path, held_up_photo(tmp_path / "photo", 40))
    with running(tmp_path) as (service, tap):
        assert cli(tmp_path, "enroll", "arm", "--name", LIN, "--timeout", "5m") == 0
        tap.wait_for("enrolment_armed", lambda f: f["person"] == LIN)
        press(service)
        started, _ = tap.wait_for("enrolment_started", lambda f: f["person"] == LIN)
        _, fields = tap.wait_for("enrolment_failed", after=started)
        assert "enrolled" not in tap.kinds(started)
    assert fields["detail"]["reason"].startswith("no live face")
    assert fields["detail"]["good_frames"] > 0  # the frames were good: only liveness refused
    assert LIN not in gallery_people(tmp_path)


def test_an_update_armed_for_one_person_refuses_another_face(facedata, lin_frames, tmp_path):
    """``enroll arm --name 'Joe Biden' --update`` once added whoever pressed the button to
    Joe Biden, with his access: now the views must be recognised as him."""
    write_config(tmp_path, lin_frames)
    biden = facedata / "face_recognition_examples/examples/biden.jpg"
    assert cli(tmp_path, "enroll", "Joe Biden", str(biden)) == 0
    with running(tmp_path) as (service, tap):
        assert cli(tmp_path, "enroll", "arm", "--name", "Joe Biden", "--update") == 0
        tap.wait_for("enrolment_armed", lambda f: f["person"] == "Joe Biden")
        press(service)
        started, _ = tap.wait_for("enrolment_started", lambda f: f["person"] == "Joe Biden")
        _, fields = tap.wait_for("enrolment_failed", after=started)
        assert "enrolled" not in tap.kinds(started)
    assert "does not match 'Joe Biden'" in fields["detail"]["reason"]
    assert fields["detail"]["embeddings"] > 0  # good views of Lin-Manuel Miranda, refused
    assert gallery_people(tmp_path)["Joe Biden"].embedding_count == 1
