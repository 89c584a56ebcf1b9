"""Enrolment's parts on real photos, real embeddings, real files and gpiozero's MockFactory.

The capture session, the diverse pick and the store step are fed by the real pipeline (the
bundled detector and INT8 embedder) on the shared face photos and the Hamilton clip; the
arming file is written and read on disk; the CLI is called through ``main([...])``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from itertools import combinations
from pathlib import Path

import cv2
import numpy as np
import pytest

from pi_facegate.cli import main
from pi_facegate.cli.durations import parse_duration
from pi_facegate.config.loader import parse_config
from pi_facegate.core.capture import (
    MORE_FACES,
    NO_FACE,
    NO_FRAMES,
    TOO_FEW_VIEWS,
    TWO_FACES,
    CaptureSession,
    CaptureSettings,
    EnrolmentRequest,
    judge_frame,
    most_common_reason,
    pending_name,
    pick_diverse,
    subject_index,
)
from pi_facegate.daemon import wiring as components
from pi_facegate.daemon.enrolment_store import complete
from pi_facegate.door.buttons import EnrolmentButton
from pi_facegate.door.controller import DoorController
from pi_facegate.exc import EnrolmentError, UsageError
from pi_facegate.storage.arming import (
    ARMING_FILE_NAME,
    ArmingWatcher,
    arming_path,
    clear_arming,
    new_arming,
    read_arming,
    write_arming,
)
from pi_facegate.storage.gallery import Gallery
from pi_facegate.vision.images import load_image

CONFIG = parse_config({})
SETTINGS = CaptureSettings.from_config(CONFIG)
LIN = "Lin-Manuel Miranda"


# --------------------------------------------------------------------------- real analyses


@pytest.fixture(scope="module")
def pipeline():
    embedder = components.build_embedder(CONFIG)
    recognizer = components.build_recognizer(CONFIG, embedder=embedder)
    yield recognizer
    recognizer.close()


def frame_of(recognizer, image: np.ndarray):
    """``(face_count, subject analysis or None)`` of one image, with the enrolment gate."""
    faces = recognizer.detect(image)
    subject = recognizer.analyse(image, faces, SETTINGS.limits)[0] if len(faces) == 1 else None
    return len(faces), subject, faces


def photo(facedata: Path, name: str = "lin-manuel-miranda.png") -> np.ndarray:
    return load_image(facedata / "face_recognition_examples/examples" / name)


def tiny_frame(image: np.ndarray) -> np.ndarray:
    small = cv2.resize(image, None, fx=0.15, fy=0.15, interpolation=cv2.INTER_AREA)
    canvas = np.full((240, 320, 3), 128, np.uint8)
    h, w = small.shape[:2]
    canvas[(240 - h) // 2 : (240 - h) // 2 + h, (320 - w) // 2 : (320 - w) // 2 + w] = small
    return canvas


@pytest.fixture(scope="module")
def lin_frames(facedata, pipeline):
    """``(face_count, analysis)`` of every Hamilton clip frame with Lin-Manuel close (82..210)."""
    capture = cv2.VideoCapture(
        str(facedata / "face_recognition_examples/examples/short_hamilton_clip.mp4")
    )
    frames, index = [], 0
    while index <= 210:
        ok, bgr = capture.read()
        if not ok:
            break
        if index >= 82:
            count, subject, _ = frame_of(pipeline, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            frames.append((count, subject))
        index += 1
    capture.release()
    assert len(frames) == 129
    return frames


@pytest.fixture(scope="module")
def lin_embeddings(lin_frames) -> np.ndarray:
    good = [judge_frame(c, s) for c, s in lin_frames]
    return np.stack([j.embedding for j in good if j.good])


# --------------------------------------------------------------------------- judging frames


def test_a_frame_is_good_only_with_one_large_sharp_frontal_well_lit_face(facedata, pipeline):
    image = photo(facedata)
    cases = {
        "good": image,
        "too blurred": cv2.GaussianBlur(image, (0, 0), 3.0),
        "too dark": (image * 0.25).astype(np.uint8),
        "too small": tiny_frame(image),
        TWO_FACES: photo(facedata, "two_people.jpg"),
        NO_FACE: load_image(facedata / "no_face_and_multi_face_misc/data/Cologne.JPG"),
        MORE_FACES: load_image(facedata / "deepface_testset/selfie-many-people.jpg"),
    }
    for expected, picture in cases.items():
        count, subject, _ = frame_of(pipeline, picture)
        judgement = judge_frame(count, subject)
        assert judgement.reason == (None if expected == "good" else expected), expected
        assert judgement.good == (expected == "good")
        assert (judgement.embedding is not None) == judgement.good
    # the blurred face would still be recognised at the door: only a stored face must be sharp
    count, subject, faces = frame_of(pipeline, cases["too blurred"])
    assert pipeline.analyse(cases["too blurred"], faces)[0].usable


def test_the_subject_is_the_largest_face(facedata, pipeline):
    faces = pipeline.detect(photo(facedata, "two_people.jpg"))
    assert len(faces) == 2
    chosen = subject_index(faces)
    assert faces[chosen].size == max(f.size for f in faces)
    assert subject_index([]) is None


def test_settings_take_the_stricter_of_the_enrolment_and_recognition_gates():
    config = parse_config(
        {
            "quality": {"min_face_size": 120, "min_sharpness": 10, "max_yaw": 0.2},
            "enrolment": {"min_face_size": 90, "min_sharpness": 50, "max_yaw": 0.3},
        }
    )
    limits = CaptureSettings.from_config(config).limits
    assert (limits.min_face_size, limits.min_sharpness, limits.max_yaw) == (120, 50, 0.2)
    assert (limits.min_brightness, limits.max_brightness) == (50, 210)
    default = SETTINGS
    assert (default.embeddings, default.min_good_frames, default.enough_frames) == (5, 3, 15)
    with pytest.raises(ValueError, match="min_good_frames"):
        CaptureSettings(embeddings=2, min_good_frames=3)


# --------------------------------------------------------------------------- diverse picks


def _pairwise(vectors: np.ndarray) -> list[float]:
    return [float(np.linalg.norm(a - b)) for a, b in combinations(vectors, 2)]


def test_pick_diverse_spreads_the_views_of_a_real_clip(lin_embeddings):
    assert len(lin_embeddings) > 30
    picked = pick_diverse(lin_embeddings, 5, 0.06)
    assert len(picked) == len(set(picked)) == 5
    spread = min(_pairwise(lin_embeddings[picked]))
    consecutive = min(_pairwise(lin_embeddings[:5]))  # what "the first five frames" would give
    assert spread > consecutive and spread >= 0.06
    # the first pick is the most typical view: the one nearest the mean
    mean = lin_embeddings.mean(axis=0)
    assert picked[0] == int(np.argmin(np.linalg.norm(lin_embeddings - mean, axis=1)))


def test_pick_diverse_refuses_near_duplicates(lin_embeddings):
    same = np.repeat(lin_embeddings[:1], 10, axis=0)
    assert pick_diverse(same, 5, 0.06) == [0]
    three = np.concatenate([np.repeat(lin_embeddings[[0, 40, 80]], 4, axis=0)])
    picked = pick_diverse(three, 5, 0.06)
    assert len(picked) == 3 and min(_pairwise(three[picked])) > 0.06
    # a tiny jitter is still a duplicate; the limit decides
    jittered = lin_embeddings[:1] + np.random.default_rng(0).normal(0, 1e-3, (6, 128))
    assert len(pick_diverse(jittered, 5, 0.06)) == 1
    assert len(pick_diverse(jittered, 5, 0.0)) == 5
    assert pick_diverse(np.empty((0, 128)), 5, 0.06) == []
    assert pick_diverse(lin_embeddings, 0, 0.06) == []


# --------------------------------------------------------------------------- the session


def test_a_session_ends_early_once_it_has_enough_good_frames(lin_frames):
    session = CaptureSession(SETTINGS, started=100.0)
    now = 100.0
    for count, subject in lin_frames:
        if session.due(now):
            break
        now += 0.05
        session.feed(count, subject, now)
    assert session.good_frames == SETTINGS.enough_frames and now < session.deadline
    result = session.finish(now)
    assert result.ok and result.reason is None
    assert result.embeddings.shape == (5, 128) and result.embeddings.dtype == np.float32
    assert result.frames == session.frames and result.good_frames == 15
    assert min(_pairwise(result.embeddings)) >= SETTINGS.min_distance
    assert session.finish(now + 5) is result  # finishing twice gives the same result
    with pytest.raises(EnrolmentError):
        session.feed(1, None, now)


def test_a_session_that_sees_only_bad_frames_fails_with_the_most_common_reason(facedata, pipeline):
    blurred = frame_of(pipeline, cv2.GaussianBlur(photo(facedata), (0, 0), 3.0))[:2]
    two = frame_of(pipeline, photo(facedata, "two_people.jpg"))[:2]
    good = frame_of(pipeline, photo(facedata))[:2]
    session = CaptureSession(SETTINGS, started=0.0)
    for i, (count, subject) in enumerate([blurred, two, blurred, good, blurred, two, (0, None)]):
        session.feed(count, subject, now=i * 0.1)
    assert not session.due(1.0) and session.due(SETTINGS.capture_seconds)
    result = session.finish(SETTINGS.capture_seconds)
    assert not result.ok and result.reason == "too blurred"
    assert result.reasons == {"too blurred": 3, TWO_FACES: 2, NO_FACE: 1}
    assert result.good_frames == 1 and len(result.embeddings) == 0
    assert result.detail()["refused_frames"] == result.reasons


def test_the_same_picture_again_and_again_is_too_few_views(facedata, pipeline):
    still = frame_of(pipeline, photo(facedata))[:2]  # a photo held up: identical frames
    session = CaptureSession(SETTINGS, started=0.0)
    for i in range(20):
        session.feed(*still, now=i * 0.05)
    result = session.finish(1.0)
    assert session.good_frames == 20 and not result.ok and result.reason == TOO_FEW_VIEWS


def test_a_session_without_frames_or_cancelled_stores_nothing(lin_frames):
    empty = CaptureSession(SETTINGS, started=0.0).finish(SETTINGS.capture_seconds)
    assert empty.reason == NO_FRAMES and empty.frames == 0
    session = CaptureSession(SETTINGS, started=0.0)
    for i, (count, subject) in enumerate(lin_frames[:5]):
        session.feed(count, subject, now=i * 0.05)
    result = session.cancel("cancelled by a long press of the button", now=1.0)
    assert result.cancelled and not result.ok and len(result.embeddings) == 0
    assert session.result is result and session.finish(2.0) is result
    assert most_common_reason(Counter()) is None


# --------------------------------------------------------------------------- storing


@pytest.fixture
def gallery(tmp_path, pipeline):
    with components.open_gallery(tmp_path / "gallery.db", pipeline.embedder) as g:
        yield g


def _capture(lin_frames):
    session = CaptureSession(SETTINGS, started=0.0)
    for i, (count, subject) in enumerate(lin_frames):
        if session.due(i * 0.05):
            break
        session.feed(count, subject, now=i * 0.05)
    return session.finish(1.0)


def test_complete_stores_a_new_person_in_one_go(gallery, lin_frames):
    capture = _capture(lin_frames)
    outcome = complete(gallery, gallery.index(), EnrolmentRequest(LIN), capture, 0.6, 0.1)
    assert outcome.ok and outcome.person.name == LIN and outcome.person.active
    assert outcome.person.embedding_count == len(capture.embeddings) == 5
    np.testing.assert_allclose(gallery.vectors(LIN), capture.embeddings, atol=1e-6)
    # the same face again under another name: refused, nothing stored
    again = complete(gallery, gallery.index(), EnrolmentRequest("Someone"), capture, 0.6, 0.1)
    assert not again.ok and again.lookalike == LIN and "already enrolled as" in again.reason
    assert [p.name for p in gallery.people()] == [LIN]
    # the same name again: refused by the gallery
    taken = complete(
        gallery, gallery.index(), EnrolmentRequest(LIN, allow_lookalike=True), capture, 0.6, 0.1
    )
    assert not taken.ok and "already" in taken.reason.lower()
    # --update adds the views to the person
    update = complete(
        gallery, gallery.index(), EnrolmentRequest(LIN, update=True), capture, 0.6, 0.1
    )
    assert update.ok and gallery.get(LIN).embedding_count == 10


def test_complete_stores_a_pending_person_without_access(gallery, lin_frames):
    capture = _capture(lin_frames)
    name = pending_name(time.mktime((2024, 5, 1, 8, 30, 15, 0, 0, -1)))
    assert name == "pending-20240501-083015"
    request = EnrolmentRequest(name, pending=True)
    outcome = complete(gallery, gallery.index(), request, capture, 0.6, 0.1)
    assert outcome.ok and outcome.person.pending and not outcome.person.active


def test_complete_stores_nothing_for_a_failed_capture_or_an_unknown_update(gallery, lin_frames):
    failed = CaptureSession(SETTINGS, started=0.0).finish(9.0)
    outcome = complete(gallery, gallery.index(), EnrolmentRequest(LIN), failed, 0.6, 0.1)
    assert not outcome.ok and outcome.reason == NO_FRAMES
    update = complete(
        gallery,
        gallery.index(),
        EnrolmentRequest("Nobody", update=True),
        _capture(lin_frames),
        0.6,
        0.1,
    )
    assert not update.ok and "Nobody" in update.reason
    assert gallery.people() == []


# --------------------------------------------------------------------------- arming


def test_the_arming_file_is_written_atomically_and_privately(tmp_path):
    path = arming_path(tmp_path)
    first = new_arming("Alice", 300, now=1000.0, armed_by="admin")
    write_arming(path, first)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert read_arming(path) == first
    inode = os.stat(path).st_ino
    second = new_arming("Bob", 60, update=True, now=1010.0)
    write_arming(path, second)
    assert read_arming(path) == second and second.token != first.token
    assert os.stat(path).st_ino != inode  # replaced by rename, never rewritten in place
    assert sorted(p.name for p in tmp_path.iterdir()) == [ARMING_FILE_NAME]
    assert json.loads(path.read_text())["name"] == "Bob"


def test_an_arming_ends_at_its_expiry_capped_by_the_daemon(tmp_path):
    arming = new_arming("Alice", 3600, now=1000.0)
    assert arming.expiry() == 4600 and arming.expiry(max_seconds=600) == 1600
    assert arming.is_active(1599, max_seconds=600) and not arming.is_active(1600, 600)
    assert not arming.is_active(1000 - 3600)  # dated in the future: a clock jump or forgery
    with pytest.raises(EnrolmentError, match="positive"):
        new_arming("Alice", 0)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "JSON object"),
        ('{"name": "A", "update": "yes", "armed_at": 1, "expires_at": 2, "token": "t"}', "update"),
        (
            '{"name": "A", "update": false, "armed_at": "x", "expires_at": 2, "token": "t"}',
            "armed_at",
        ),
        ('{"name": " ", "update": false, "armed_at": 1, "expires_at": 2, "token": "t"}', "empty"),
    ],
)
def test_a_broken_arming_file_arms_nothing(tmp_path, text, problem):
    path = arming_path(tmp_path)
    path.write_text(text)
    path.chmod(0o600)
    with pytest.raises(EnrolmentError, match=problem):
        read_arming(path)
    watcher = ArmingWatcher(path, max_seconds=1800)
    assert watcher.poll() is None and problem.split()[0] in watcher.error


def test_an_arming_file_others_may_write_is_refused(tmp_path):
    path = arming_path(tmp_path)
    write_arming(path, new_arming("Alice", 300))
    path.chmod(0o620)
    with pytest.raises(EnrolmentError, match="writable by group or others"):
        read_arming(path)


def test_the_watcher_follows_the_file(tmp_path):
    path = arming_path(tmp_path)
    watcher = ArmingWatcher(path, max_seconds=1800)
    assert watcher.poll() is None
    alice = new_arming("Alice", 300)
    write_arming(path, alice)
    assert watcher.poll() == alice
    bob = new_arming("Bob", 300)
    write_arming(path, bob)
    assert watcher.poll() == bob
    expired = new_arming("Carol", 5, now=time.time() - 10)
    write_arming(path, expired)
    assert watcher.poll() is None and watcher.current() == expired
    path.unlink()
    assert watcher.poll() is None and watcher.current() is None


def test_clearing_with_a_token_keeps_a_newer_arming(tmp_path):
    path = arming_path(tmp_path)
    old = new_arming("Alice", 300)
    new = new_arming("Alice", 300)
    write_arming(path, new)
    assert clear_arming(path, token=old.token) is None and read_arming(path) == new
    assert clear_arming(path, token=new.token) == new and not path.exists()
    assert clear_arming(path) is None


# --------------------------------------------------------------------------- the CLI


@pytest.fixture
def state(tmp_path) -> Path:
    (tmp_path / "config.yaml").write_text("enrolment:\n  button_pin: 5\n")
    return tmp_path


def cli(state: Path, *args: str) -> int:
    return main([*args, "--config", str(state / "config.yaml"), "--state-dir", str(state)])


def test_durations():
    assert parse_duration("90s") == 90 and parse_duration("5m") == 300
    assert parse_duration("1h30m") == 5400
    with pytest.raises(
        ValueError, match="no unit"
    ):  # one duration rule: a bare number is ambiguous
        parse_duration("2")
    with pytest.raises(UsageError, match="duration"):
        parse_duration("soon")


def test_arm_status_and_cancel(state, capsys):
    assert cli(state, "enroll", "status") == 0
    assert "not armed" in capsys.readouterr().out
    assert cli(state, "enroll", "arm", "--name", "Alice", "--timeout", "2m") == 0
    assert "will enrol Alice" in capsys.readouterr().out
    arming = read_arming(state / ARMING_FILE_NAME)
    assert arming.name == "Alice" and not arming.update
    assert 119 <= arming.expires_at - arming.armed_at <= 120
    assert cli(state, "enroll", "status", "--json") == 0
    info = json.loads(capsys.readouterr().out)
    assert info["armed"] and info["name"] == "Alice" and 0 < info["seconds_left"] <= 120
    assert cli(state, "enroll", "cancel") == 0
    assert "disarmed" in capsys.readouterr().out and not (state / ARMING_FILE_NAME).exists()
    assert cli(state, "enroll", "cancel") == 0
    assert "not armed" in capsys.readouterr().out


def test_arm_refuses_what_cannot_work(state, capsys):
    # arguments that do not fit together are usage errors (status 2, as argparse's own)
    assert cli(state, "enroll", "arm") == 2
    assert "--name" in capsys.readouterr().err
    assert cli(state, "enroll", "arm", "--name", "Alice", "--timeout", "2h") == 2
    assert "max_armed_minutes (30 min)" in capsys.readouterr().err
    assert cli(state, "enroll", "arm", "--name", "status") == 2
    assert cli(state, "enroll", "arm", "Alice") == 2
    assert "--name Alice" in capsys.readouterr().err
    # a well-formed request the gallery cannot satisfy is an error (status 1)
    assert cli(state, "enroll", "arm", "--name", "Alice", "--update") == 1
    assert "not enrolled" in capsys.readouterr().err
    assert not (state / ARMING_FILE_NAME).exists()


def test_enrol_from_the_camera_in_a_shell(facedata, state, tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    capture = cv2.VideoCapture(
        str(facedata / "face_recognition_examples/examples/short_hamilton_clip.mp4")
    )
    for index in range(140):
        ok, bgr = capture.read()
        if index >= 82:
            cv2.imwrite(str(frames / f"{index:04d}.png"), bgr)
    capture.release()
    assert cli(state, "enroll", LIN, "--camera", "--replay", str(frames)) == 0
    out = capsys.readouterr().out
    assert "Look at the camera" in out and "good frames" in out and f"enrolled {LIN}" in out
    with Gallery.open(state / "gallery.db", fingerprint=None, create=False) as g:
        assert g.get(LIN).embedding_count == 5
    # the arming machinery now knows the name is taken
    assert cli(state, "enroll", "arm", "--name", LIN) == 1
    assert "--update" in capsys.readouterr().err
    assert cli(state, "enroll", "arm", "--name", LIN, "--update") == 0


def test_a_photo_held_up_to_the_camera_is_not_enrolled(state, tmp_path, held_up_photo, capsys):
    """SIMULATED attack: good, frontal frames of a held-up photo, never a live verdict."""
    frames = held_up_photo(tmp_path / "photo", 60)
    assert cli(state, "enroll", LIN, "--camera", "--replay", str(frames)) == 1
    assert "nothing stored: no live face" in capsys.readouterr().err
    with Gallery.open(state / "gallery.db", fingerprint=None, create=False) as g:
        assert g.people() == []


def test_a_camera_enrolment_of_bad_frames_stores_nothing(facedata, state, tmp_path, capsys):
    blurred = tmp_path / "blurred"
    blurred.mkdir()
    image = cv2.GaussianBlur(photo(facedata), (0, 0), 3.0)
    cv2.imwrite(str(blurred / "1.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert cli(state, "enroll", "Alice", "--camera", "--replay", str(blurred)) == 1
    assert "nothing stored: too blurred" in capsys.readouterr().err
    with Gallery.open(state / "gallery.db", fingerprint=None, create=False) as g:
        assert g.people() == []


# --------------------------------------------------------------------------- the button


@pytest.fixture
def mock_factory():
    from gpiozero.pins.mock import MockFactory

    factory = MockFactory()
    yield factory
    factory.close()


def test_a_short_press_asks_and_a_long_press_aborts(mock_factory):
    presses, long_presses = [], threading.Event()
    button = EnrolmentButton(
        5,
        on_press=lambda: presses.append(1),
        on_long_press=long_presses.set,
        long_press_seconds=0.5,
        pin_factory=mock_factory,
    )
    pin = mock_factory.pin(5)
    pin.drive_low()
    pin.drive_high()
    assert presses == [1] and not long_presses.is_set()
    pin.drive_low()
    assert long_presses.wait(10) and button.is_pressed
    pin.drive_high()
    assert presses == [1]  # a long press never asks for a capture
    button.close()
    button.close()


def test_the_door_lends_its_pin_factory_and_lights_the_armed_led(mock_factory):
    with DoorController(17, led_enrolment=6, pin_factory=mock_factory) as door:
        assert door.pin_factory is mock_factory
        led = mock_factory.pin(6)
        door.set_enrolment_led(True)
        assert led.state
        door.set_enrolment_led(False)
        assert not led.state
    door.set_enrolment_led(True)  # closed: a no-op, no error
    assert door.closed
