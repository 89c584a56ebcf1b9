"""FaceTracker: stable ids per face, on synthetic geometry and on a real video clip."""

from __future__ import annotations

import random

import cv2
import numpy as np
import pytest

from pi_facegate.core.tracker import FaceTracker, greedy_assign, iou_matrix


def scalar_iou(a, b):
    """Reference IoU, written independently of the vectorised one (plain Python)."""
    ax0, ay0, aw, ah = a
    bx0, by0, bw, bh = b
    if aw <= 0 or ah <= 0 or bw <= 0 or bh <= 0:
        return 0.0
    iw = max(0.0, min(ax0 + aw, bx0 + bw) - max(ax0, bx0))
    ih = max(0.0, min(ay0 + ah, by0 + bh) - max(ay0, by0))
    inter = iw * ih
    return inter / (aw * ah + bw * bh - inter)


# ---------------------------------------------------------------- IoU and assignment


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((0, 0, 10, 10), (0, 0, 10, 10), 1.0),  # the same box
        ((0, 0, 10, 10), (20, 20, 10, 10), 0.0),  # apart
        ((0, 0, 10, 10), (10, 0, 10, 10), 0.0),  # touching edges share no area
        ((0, 0, 10, 10), (5, 0, 10, 10), 50 / 150),  # half shifted: 50 shared of 150
        ((0, 0, 10, 10), (2, 2, 5, 5), 25 / 100),  # contained
        ((0, 0, 0, 10), (0, 0, 10, 10), 0.0),  # no area: no overlap, no division by zero
    ],
)
def test_iou_of_known_geometry(a, b, expected):
    assert iou_matrix(np.array([a]), np.array([b]))[0, 0] == pytest.approx(expected)


def test_iou_matrix_equals_reference_on_random_boxes():
    rng = random.Random(7)
    boxes_a = [tuple(rng.uniform(-5, 50) for _ in range(4)) for _ in range(9)]
    boxes_b = [tuple(rng.uniform(-5, 50) for _ in range(4)) for _ in range(6)]
    got = iou_matrix(np.array(boxes_a), np.array(boxes_b))
    assert got.shape == (9, 6)
    expected = [[scalar_iou(a, b) for b in boxes_b] for a in boxes_a]
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_iou_matrix_with_no_boxes_on_one_side():
    assert iou_matrix(np.zeros((0, 4)), np.array([(0, 0, 5, 5)])).shape == (0, 1)
    assert iou_matrix(np.array([(0, 0, 5, 5)]), np.zeros((0, 4))).shape == (1, 0)


def test_greedy_assignment_takes_best_pairs_first_and_each_once():
    iou = np.array(
        [
            [0.9, 0.8],  # row 0 prefers col 0 ...
            [0.85, 0.1],  # ... so row 1 cannot have col 0, and 0.1 is below threshold
        ]
    )
    assert greedy_assign(iou, 0.3) == [(0, 0)]
    assert sorted(greedy_assign(iou, 0.05)) == [(0, 0), (1, 1)]
    assert greedy_assign(np.zeros((0, 3)), 0.3) == []


# ---------------------------------------------------------------- tracker behaviour


def moving_box(step, x0=100.0, y0=80.0, dx=4.0, size=60.0):
    return (x0 + dx * step, y0, size, size)


def test_a_slowly_moving_face_keeps_its_id():
    tracker = FaceTracker()
    ids = [tracker.update([moving_box(i)], now=i / 10)[0] for i in range(30)]
    assert len(set(ids)) == 1
    track = tracker.get(ids[0])
    assert track.hits == 30
    assert track.box == pytest.approx(moving_box(29))
    assert (track.first_seen, track.last_seen) == (0.0, pytest.approx(2.9))


def test_two_faces_get_different_ids_that_follow_them_in_any_box_order():
    tracker = FaceTracker()
    left, right = (10, 10, 50, 50), (300, 10, 50, 50)
    first = tracker.update([left, right], now=0)
    assert first[0] != first[1]
    swapped = tracker.update([(302, 11, 50, 50), (12, 9, 50, 50)], now=0.1)
    assert swapped == [first[1], first[0]]


def test_a_new_face_gets_a_new_id_while_the_old_one_continues():
    tracker = FaceTracker()
    (alice,) = tracker.update([(10, 10, 50, 50)], now=0)
    ids = tracker.update([(11, 10, 50, 50), (200, 200, 40, 40)], now=0.1)
    assert ids[0] == alice
    assert ids[1] != alice


@pytest.mark.parametrize("max_missing", [0, 1, 5])
def test_a_face_may_be_missed_max_missing_frames_then_the_track_is_dropped(max_missing):
    box = (50, 50, 80, 80)
    # Missed exactly max_missing frames: comes back with the same id.
    tracker = FaceTracker(max_missing_frames=max_missing)
    (first,) = tracker.update([box], now=0)
    for i in range(max_missing):
        assert tracker.update([], now=1 + i) == []
        assert tracker.dropped == ()
    assert tracker.update([box], now=10) == [first]
    # Missed one frame more: the track is dropped, reported once, and the face is new.
    tracker = FaceTracker(max_missing_frames=max_missing)
    (first,) = tracker.update([box], now=0)
    for i in range(max_missing):
        tracker.update([], now=1 + i)
    tracker.update([], now=9)
    assert tracker.dropped == (first,)
    assert tracker.get(first) is None
    (again,) = tracker.update([box], now=10)
    assert again != first
    assert tracker.dropped == ()


def test_a_jump_below_the_iou_threshold_starts_a_new_track():
    tracker = FaceTracker(iou_threshold=0.3, max_missing_frames=0)
    (first,) = tracker.update([(0, 0, 10, 10)], now=0)
    # Shifted by 6 of 10 pixels: IoU 40/160 = 0.25 < 0.3.
    (second,) = tracker.update([(6, 0, 10, 10)], now=0.1)
    assert second != first
    assert tracker.dropped == (first,)


def test_ids_are_never_reused_even_after_reset():
    tracker = FaceTracker()
    seen = set(tracker.update([(0, 0, 10, 10), (100, 0, 10, 10)], now=0))
    tracker.reset()
    assert tracker.tracks == {}
    assert set(tracker.dropped) == seen
    later = tracker.update([(0, 0, 10, 10)], now=1)
    assert seen.isdisjoint(later)


def test_a_decision_mark_lasts_until_its_time_and_only_for_live_tracks():
    tracker = FaceTracker()
    (face,) = tracker.update([(0, 0, 10, 10)], now=0)
    assert not tracker.get(face).is_decided(0)
    tracker.mark_decided(face, until=2.0)
    assert tracker.get(face).is_decided(1.99)
    assert not tracker.get(face).is_decided(2.0)
    tracker.mark_decided(999, until=5.0)  # unknown id: ignored, nothing created
    assert 999 not in tracker.tracks


@pytest.mark.parametrize(
    "kwargs",
    [
        {"iou_threshold": 0},
        {"iou_threshold": 1.5},
        {"max_missing_frames": -1},
        {"max_missing_frames": 1.5},
    ],
)
def test_invalid_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        FaceTracker(**kwargs)


# ---------------------------------------------------------------- a real video


@pytest.fixture(scope="module")
def clip_detections(facedata):
    """Face boxes of every frame of a real clip, from the bundled detector (LiteRT)."""
    from pi_facegate.vision.detection.factory import create_detector

    path = facedata / "face_recognition_examples" / "examples" / "short_hamilton_clip.mp4"
    capture = cv2.VideoCapture(str(path))
    frames = []
    with create_detector("litert") as detector:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            faces = detector.detect(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            frames.append([face.box for face in faces])
    capture.release()
    assert len(frames) > 100, "the clip could not be read"
    return frames


def test_tracks_on_a_real_clip_follow_each_face(clip_detections):
    """Ids are distinct within a frame, continue where a face clearly continues, and a
    gap longer than max_missing_frames separates the tracks before and after it."""
    max_missing = 5
    tracker = FaceTracker(iou_threshold=0.3, max_missing_frames=max_missing)
    ids_per_frame = []
    for index, boxes in enumerate(clip_detections):
        ids = tracker.update(boxes, now=index / 30)
        assert len(ids) == len(boxes)
        assert len(set(ids)) == len(ids), f"frame {index}: one id for two faces"
        ids_per_frame.append(ids)

    continued = 0
    for t in range(1, len(clip_detections)):
        before, now = clip_detections[t - 1], clip_detections[t]
        if not before or not now:
            continue
        overlap = iou_matrix(np.array(before), np.array(now)) >= 0.3
        for j in range(len(now)):
            rows = np.flatnonzero(overlap[:, j])
            # A face that overlaps exactly one face of the previous frame, which overlaps
            # only it, is the same face: it must keep that face's id.
            if len(rows) == 1 and overlap[rows[0]].sum() == 1:
                assert ids_per_frame[t][j] == ids_per_frame[t - 1][rows[0]], f"frame {t}"
                continued += 1
    detections = sum(len(b) for b in clip_detections)
    assert continued > detections // 2  # the check above really ran on most faces

    # Find the gaps with no face for longer than max_missing: tracks never span them.
    empty_run, gaps = 0, 0
    for t, boxes in enumerate(clip_detections):
        if boxes:
            if empty_run > max_missing:
                ids_before = {i for ids in ids_per_frame[:t] for i in ids}
                assert ids_before.isdisjoint(ids_per_frame[t])
                gaps += 1
            empty_run = 0
        else:
            empty_run += 1
    assert gaps >= 1, "the clip has no long gap: this check proved nothing"
    distinct = {i for ids in ids_per_frame for i in ids}
    assert len(distinct) < detections / 10  # tracking, not one id per detection
