"""The camera layer: replay, OpenCV, the frame grabber, supervision, and the picamera2 boundary.

Everything runs on real parts: the shared face photos and the Hamilton clip, OpenCV's own
decoder, real threads and events. The few small ``FrameSource`` subclasses below wrap a
real ReplaySource to make it fail or stall on cue, which a real camera does only when
unplugged. Supervision back-off is checked with an injected clock, so no test sleeps
through a back-off delay.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from pi_facegate.camera.factory import create_camera, create_source
from pi_facegate.camera.grabber import FrameGrabber
from pi_facegate.camera.opencv import OpenCVSource
from pi_facegate.camera.picamera import Picamera2Source, main_to_rgb, yuv420_to_rgb
from pi_facegate.camera.replay import ReplaySource, natural_key
from pi_facegate.camera.source import Frame, FrameSource
from pi_facegate.camera.supervisor import SupervisedSource
from pi_facegate.exc import CameraError, CameraTimeoutError, ConfigError
from pi_facegate.vision.images import load_image

CLIP = "face_recognition_examples/examples/short_hamilton_clip.mp4"
CLIP_SECONDS, CLIP_FPS = 9.2, 29.97  # as the data set's README describes the clip


@pytest.fixture(scope="module")
def clip(facedata: Path) -> Path:
    return facedata / CLIP


@pytest.fixture(scope="module")
def att_s1(facedata: Path) -> Path:
    return facedata / "att_faces" / "s1"


def read_all(source: FrameSource, timeout: float | None = 5.0) -> list[Frame]:
    frames = []
    while (frame := source.read(timeout)) is not None:
        frames.append(frame)
    return frames


# --------------------------------------------------------------------------- replay: video


def test_video_replay_delivers_every_frame_of_the_clip_in_rgb(clip: Path) -> None:
    capture = cv2.VideoCapture(str(clip))
    ok, first_bgr = capture.read()
    capture.release()
    assert ok

    with ReplaySource(clip) as source:
        frames = read_all(source)

    assert abs(len(frames) - CLIP_SECONDS * CLIP_FPS) <= 3
    assert [f.index for f in frames] == list(range(len(frames)))
    for frame in frames[:: len(frames) // 5]:
        assert frame.image.shape == (360, 640, 3) and frame.image.dtype == np.uint8
    # RGB, not OpenCV's BGR: the first frame is OpenCV's own read with channels reversed
    np.testing.assert_array_equal(frames[0].image, first_bgr[:, :, ::-1])
    assert not np.array_equal(frames[0].image, first_bgr)
    # positions are the frames' times in the recording; timestamps are capture times
    assert frames[-1].position == pytest.approx((len(frames) - 1) / CLIP_FPS, rel=1e-3)
    stamps = [f.timestamp for f in frames]
    assert stamps == sorted(stamps)


def test_video_replay_adds_a_lores_copy_for_detection(clip: Path) -> None:
    with ReplaySource(clip, lores_width=320) as source:
        frame = source.read()
    assert frame.lores.shape == (180, 320, 3)
    assert frame.lores_scale == 2.0
    assert not np.shares_memory(frame.image, frame.lores)
    small = cv2.resize(frame.image, (320, 180), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(frame.lores, small)


def test_video_replay_can_resize(clip: Path) -> None:
    with ReplaySource(clip, size=(320, 240)) as source:
        assert source.read().image.shape == (240, 320, 3)


def test_a_file_that_is_not_a_video_is_a_camera_error(tmp_path: Path) -> None:
    fake = tmp_path / "broken.mp4"
    fake.write_bytes(b"this is not a video" * 50)
    source = ReplaySource(fake)
    with pytest.raises(CameraError, match="broken.mp4"):
        source.start()
        source.read()
    source.close()


# --------------------------------------------------------------------------- replay: images


def test_image_folder_is_read_in_natural_order(att_s1: Path) -> None:
    with ReplaySource(att_s1) as source:
        frames = read_all(source)
    assert len(frames) == 10
    for k, frame in enumerate(frames, start=1):  # 1.pgm, 2.pgm, ... 10.pgm (not 1, 10, 2)
        np.testing.assert_array_equal(frame.image, load_image(att_s1 / f"{k}.pgm"))
        assert frame.image.shape == (112, 92, 3)
        assert frame.position is None
    assert sorted(["10.pgm", "2.pgm", "1.pgm"], key=natural_key) == ["1.pgm", "2.pgm", "10.pgm"]


def test_yale_gifs_without_extension_are_frames(facedata: Path) -> None:
    folder = facedata / "yalefaces"
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    with ReplaySource(folder) as source:
        frames = read_all(source)
        assert source.skipped == []
    assert len(frames) == len(files) > 100
    grey = frames[0].image
    assert grey.shape == (243, 320, 3)
    np.testing.assert_array_equal(grey[:, :, 0], grey[:, :, 2])


def test_unreadable_files_are_skipped_with_one_warning(
    att_s1: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "1.pgm").symlink_to(att_s1 / "1.pgm")
    (tmp_path / "2-broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (tmp_path / "3.pgm").symlink_to(att_s1 / "3.pgm")
    (tmp_path / ".hidden.jpg").write_bytes(b"ignored")
    (tmp_path / "sub").mkdir()

    with caplog.at_level(logging.WARNING, logger="pi_facegate.camera"):
        with ReplaySource(tmp_path, loop=True) as source:
            frames = [source.read() for _ in range(6)]  # three passes over two good files
            assert source.skipped == [tmp_path / "2-broken.jpg"]

    np.testing.assert_array_equal(frames[1].image, load_image(att_s1 / "3.pgm"))
    np.testing.assert_array_equal(frames[4].image, load_image(att_s1 / "1.pgm"))
    warnings = [r for r in caplog.records if "2-broken.jpg" in r.getMessage()]
    assert len(warnings) == 1


def test_a_folder_without_any_readable_image_is_an_error_not_a_spin(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"junk")
    (tmp_path / "b.txt").write_text("notes")
    with ReplaySource(tmp_path, loop=True) as source:
        with pytest.raises(CameraError, match="no file could be read"):
            source.read()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CameraError, match="no files"):
        ReplaySource(empty).start()


def test_a_single_image_is_one_frame(facedata: Path) -> None:
    photo = facedata / "face_recognition_examples" / "examples" / "obama.jpg"
    with ReplaySource(photo) as source:
        frames = read_all(source)
        assert source.read() is None  # the end is for good
    assert len(frames) == 1
    np.testing.assert_array_equal(frames[0].image, load_image(photo))


def test_a_missing_path_is_a_camera_error(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match="no such file or folder"):
        ReplaySource(tmp_path / "nope")
    with pytest.raises(CameraError, match="nope.mp4"):
        create_source(type="replay", replay_path=tmp_path / "nope.mp4")


# --------------------------------------------------------------------------- replay: loop & pace


def test_loop_starts_again_and_counts_on(att_s1: Path) -> None:
    with ReplaySource(att_s1, loop=True) as source:
        frames = [source.read() for _ in range(25)]
    assert [f.index for f in frames] == list(range(25))
    np.testing.assert_array_equal(frames[10].image, frames[0].image)
    np.testing.assert_array_equal(frames[24].image, frames[4].image)


def test_video_loop_rewinds(clip: Path) -> None:
    with ReplaySource(clip, loop=True) as source:
        first = source.read()
        count = 1
        while True:
            frame = source.read()
            count += 1
            if frame.position == 0.0:
                break
    assert abs(count - 1 - CLIP_SECONDS * CLIP_FPS) <= 3
    np.testing.assert_array_equal(frame.image, first.image)
    assert frame.index == count - 1


def test_paced_replay_takes_real_time(att_s1: Path) -> None:
    fps = 25.0
    with ReplaySource(att_s1, fps=fps) as source:
        start = time.monotonic()
        frames = read_all(source)
        elapsed = time.monotonic() - start
    assert len(frames) == 10
    # nine frame periods between the first and the last frame (loose bound for a busy CI box)
    assert 9 / fps * 0.9 <= elapsed < 9 / fps + 0.5
    # never early: frame k comes k periods after the first at the soonest (late is possible
    # under load, and the next frame then keeps the schedule instead of drifting)
    offsets = np.array([f.timestamp for f in frames]) - frames[0].timestamp
    assert (offsets >= np.arange(10) / fps - 0.002).all()


def test_unpaced_replay_does_not_wait(att_s1: Path) -> None:
    with ReplaySource(att_s1, loop=True) as source:
        start = time.monotonic()
        for _ in range(30):
            source.read()
    assert time.monotonic() - start < 1.0


def test_paced_read_times_out_without_losing_the_frame(att_s1: Path) -> None:
    with ReplaySource(att_s1, fps=2.0) as source:
        assert source.read(1.0).index == 0
        start = time.monotonic()
        with pytest.raises(CameraTimeoutError):
            source.read(0.05)
        assert time.monotonic() - start < 0.3
        assert source.read(2.0).index == 1


def test_stop_ends_a_paced_wait(att_s1: Path) -> None:
    source = ReplaySource(att_s1, fps=0.5)
    source.start()
    source.read()
    reading = threading.Event()
    outcome: list[BaseException] = []

    def reader() -> None:
        reading.set()
        try:
            source.read()
        except CameraError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    reading.wait(5)
    start = time.monotonic()
    source.stop()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - start < 1.0
    assert outcome and "stop" in str(outcome[0])
    source.close()


# --------------------------------------------------------------------------- lifecycle


def test_lifecycle_errors_name_the_mistake(att_s1: Path) -> None:
    source = ReplaySource(att_s1)
    with pytest.raises(CameraError, match=r"read\(\) before start\(\)"):
        source.read()
    source.start()
    source.start()  # repeated start is quiet
    assert source.read().index == 0
    source.stop()
    source.stop()
    with pytest.raises(CameraError, match=r"after stop\(\)"):
        source.read()
    source.start()  # a restart begins again
    assert source.read().index == 0
    source.close()
    source.close()
    assert source.closed
    with pytest.raises(CameraError, match=r"after close\(\)"):
        source.read()
    with pytest.raises(CameraError, match=r"start\(\) after close\(\)"):
        source.start()


def test_context_manager_starts_and_closes(att_s1: Path) -> None:
    with ReplaySource(att_s1) as source:
        assert source.started
    assert source.closed


def test_close_is_safe_on_half_built_objects() -> None:
    for cls in (ReplaySource, OpenCVSource, FrameGrabber, SupervisedSource, Picamera2Source):
        half = cls.__new__(cls)  # as if __init__ raised before setting anything
        half.close()
        half.close()
        half.stop()


def test_frames_are_copies_the_consumer_owns(facedata: Path, att_s1: Path) -> None:
    photo = facedata / "face_recognition_examples" / "examples" / "obama.jpg"
    original = load_image(photo)
    with ReplaySource(photo, loop=True, lores_width=100) as source:
        first = source.read()
        first.image[:] = 0
        first.lores[:] = 0
        second = source.read()
    np.testing.assert_array_equal(second.image, original)
    assert second.lores.any()
    with FrameGrabber(ReplaySource(att_s1, loop=True)) as grabber:
        a = grabber.read(5)
        b = grabber.read(5)
    assert not np.shares_memory(a.image, b.image)


# --------------------------------------------------------------------------- OpenCV


def test_opencv_source_reads_a_video_file_in_rgb(clip: Path) -> None:
    capture = cv2.VideoCapture(str(clip))
    _, first_bgr = capture.read()
    capture.release()
    with OpenCVSource(str(clip), 640, 360, 30, lores_width=160) as source:
        frame = source.read(5)
        np.testing.assert_array_equal(frame.image, cv2.cvtColor(first_bgr, cv2.COLOR_BGR2RGB))
        assert frame.lores.shape == (90, 160, 3)
        for _ in range(300):  # a live source does not end: running out is an error
            try:
                source.read(5)
            except CameraError as exc:
                assert "no frame" in str(exc)
                break
        else:
            pytest.fail("reading past the end of the file did not raise")


def test_opencv_source_that_cannot_open_is_a_camera_error(tmp_path: Path) -> None:
    for device in (str(tmp_path / "missing.mp4"), 63, "63"):
        source = OpenCVSource(device)
        with pytest.raises(CameraError, match="cannot open"):
            source.start()
        assert not source.started
        source.close()


# --------------------------------------------------------------------------- test sources


class FlakySource(FrameSource):
    """A real replay that 'unplugs' (raises CameraError) after ``frames`` frames."""

    kind = "flaky"

    def __init__(self, path: Path, frames: int) -> None:
        super().__init__()
        self.inner = ReplaySource(path, loop=True)
        self.frames = frames

    def _open(self) -> None:
        self.inner.start()

    def _read(self, timeout: float | None) -> Frame | None:
        if self.frames <= 0:
            raise CameraError("unplugged")
        self.frames -= 1
        return self.inner.read(timeout)

    def _release(self) -> None:
        self.inner.stop()

    def _close(self) -> None:
        self.inner.close()


class StalledSource(FrameSource):
    """Opens fine and then never delivers: every read times out (after really waiting)."""

    kind = "stalled"

    def __init__(self, honour_timeout: bool = True) -> None:
        super().__init__()
        self.never = threading.Event()
        self.honour_timeout = honour_timeout

    def _open(self) -> None:
        pass

    def _read(self, timeout: float | None) -> Frame | None:
        self.never.wait(timeout if self.honour_timeout else None)
        raise CameraTimeoutError(f"no frame within {timeout} s")

    def _release(self) -> None:
        pass


# --------------------------------------------------------------------------- grabber


def test_grabber_keeps_only_the_newest_frame(att_s1: Path) -> None:
    with FrameGrabber(ReplaySource(att_s1)) as grabber:
        assert grabber.wait_until_read(10, timeout=5)
        frame = grabber.latest(1)
        assert frame.index == 9  # the nine before it were overwritten, never queued
        assert grabber.dropped == 9
        assert grabber.latest(1) is None  # then the end of the replay


def test_grabber_skips_stale_frames_for_a_slow_consumer(clip: Path) -> None:
    with FrameGrabber(ReplaySource(clip, fps=100)) as grabber:
        seen = []
        for _ in range(4):
            frame = grabber.latest(2)
            seen.append(frame.index)
            # the consumer is busy while the camera moves on by five frames
            assert grabber.wait_until_read(frame.index + 6, timeout=5)
    assert all(b >= a + 5 for a, b in zip(seen, seen[1:], strict=False))
    assert grabber.dropped >= 12


def test_grabber_hands_source_errors_to_the_consumer(att_s1: Path) -> None:
    with FrameGrabber(FlakySource(att_s1, frames=3)) as grabber:
        indices = []
        with pytest.raises(CameraError, match="unplugged"):
            while True:
                indices.append(grabber.latest(5).index)
        with pytest.raises(CameraError, match="unplugged"):  # and it stays failed
            grabber.latest(5)
    assert indices and indices[-1] <= 2 and indices == sorted(set(indices))


def test_grabber_times_out_on_a_silent_camera_and_stop_wakes_waiters() -> None:
    grabber = FrameGrabber(StalledSource(), read_timeout=0.1)
    grabber.start()
    start = time.monotonic()
    with pytest.raises(CameraTimeoutError):
        grabber.latest(0.2)
    assert 0.15 < time.monotonic() - start < 1.0

    waiting = threading.Event()
    outcome: list[BaseException] = []

    def consumer() -> None:
        waiting.set()
        try:
            grabber.latest(None)
        except CameraError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=consumer)
    thread.start()
    waiting.wait(5)
    grabber.close()
    thread.join(5)
    assert not thread.is_alive()
    assert outcome and isinstance(outcome[0], CameraError)
    assert grabber.source.closed


def test_grabber_refuses_to_close_a_source_its_thread_is_stuck_in() -> None:
    stuck = StalledSource(honour_timeout=False)
    grabber = FrameGrabber(stuck, read_timeout=0.05, join_timeout=0.1)
    grabber.start()
    with pytest.raises(CameraError, match="did not stop"):
        grabber.stop()
    grabber.close()
    assert not stuck.closed  # never closed under a reading thread
    stuck.never.set()  # let the thread finish


def test_grabber_start_failure_leaves_it_stopped(tmp_path: Path) -> None:
    grabber = FrameGrabber(OpenCVSource(str(tmp_path / "missing.mp4")))
    with pytest.raises(CameraError, match="cannot open"):
        grabber.start()
    assert not grabber.started
    grabber.close()


# --------------------------------------------------------------------------- supervision


class FakeTime:
    """A clock and a wait() that advances it instantly, recording each delay."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []
        self.on_wait = None

    def clock(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waits.append(round(seconds, 6))
        self.now += seconds
        if self.on_wait is not None:
            self.on_wait()
        return False


def test_supervisor_reopens_with_growing_capped_backoff(att_s1: Path, tmp_path: Path) -> None:
    camera = tmp_path / "camera"  # the 'device': absent for the first six attempts
    fake = FakeTime()
    attempts: list[int] = []
    events: list[tuple[str, dict]] = []
    states: list[str] = []

    def factory() -> FrameSource:
        attempts.append(1)
        if len(attempts) == 6:
            camera.symlink_to(att_s1)  # plugged back in
        return ReplaySource(camera)

    def on_wait() -> None:
        states.append(supervisor.state)

    fake.on_wait = on_wait
    supervisor = SupervisedSource(
        factory,
        retry_initial=1.0,
        retry_max=8.0,
        on_event=lambda name, details: events.append((name, details)),
        clock=fake.clock,
        wait=fake.wait,
    )
    supervisor.start()  # the first attempt fails: an outage, not an exception
    assert supervisor.state.startswith("failed: ") and "no such file" in supervisor.state
    frame = supervisor.read(None)

    assert frame is not None and frame.index == 0
    assert fake.waits == [1.0, 2.0, 4.0, 8.0, 8.0]  # doubling, capped at retry_max
    assert len(attempts) == 6
    assert all(s.startswith("failed: ") for s in states)
    assert supervisor.state == "ok" and supervisor.failures == 0
    assert [name for name, _ in events] == ["camera_error", "camera_recovered"]  # once per outage
    assert events[0][1]["retry_in"] == 1.0
    assert events[1][1] == {"down_seconds": 23.0, "failures": 5}
    supervisor.close()


def test_supervisor_reopens_a_camera_that_fails_mid_stream(att_s1: Path) -> None:
    fake = FakeTime()
    plan = [2, 0, 3, 50]  # frames each successive camera delivers before failing
    made: list[FlakySource] = []
    events: list[str] = []

    def factory() -> FrameSource:
        made.append(FlakySource(att_s1, frames=plan[len(made)]))
        return made[-1]

    with SupervisedSource(
        factory,
        retry_initial=0.5,
        retry_max=10.0,
        on_event=lambda name, details: events.append(name),
        clock=fake.clock,
        wait=fake.wait,
    ) as supervisor:
        frames = [supervisor.read(None) for _ in range(8)]

    assert all(f is not None for f in frames)
    # camera 1 fails (wait 0.5), camera 2 fails at once (wait 1.0), camera 3 recovered and
    # reset the back-off, so its failure waits 0.5 again
    assert fake.waits == [0.5, 1.0, 0.5]
    assert events == ["camera_error", "camera_recovered", "camera_error", "camera_recovered"]
    assert all(source.closed for source in made[:3])


def test_supervisor_honours_the_consumers_timeout_during_an_outage(tmp_path: Path) -> None:
    fake = FakeTime()
    supervisor = SupervisedSource(
        lambda: ReplaySource(tmp_path / "gone"),
        retry_initial=10.0,
        clock=fake.clock,
        wait=fake.wait,
        name="door camera",
    )
    supervisor.start()
    with pytest.raises(CameraError, match=r"door camera unavailable .*gone.*retrying in 8\.0 s"):
        supervisor.read(2.0)
    assert fake.waits == [2.0]  # waited the consumer's timeout, not the back-off
    supervisor.close()
    assert supervisor.state == "stopped"


def test_supervisor_treats_a_long_silence_as_a_failure(att_s1: Path) -> None:
    made: list[FrameSource] = []

    def factory() -> FrameSource:
        made.append(StalledSource() if not made else ReplaySource(att_s1))
        return made[-1]

    events: list[tuple[str, dict]] = []
    with SupervisedSource(
        factory,
        retry_initial=0.05,
        stall_seconds=0.3,
        on_event=lambda name, details: events.append((name, details)),
    ) as supervisor:
        with pytest.raises(CameraTimeoutError):  # shorter than the stall limit: just a timeout
            supervisor.read(0.1)
        assert supervisor.state == "ok" and len(made) == 1
        start = time.monotonic()
        frame = supervisor.read(None)  # waits out the stall, reopens, reads
        assert frame is not None and len(made) == 2
        assert time.monotonic() - start < 2.0
    assert events[0][0] == "camera_error" and "no frame for" in events[0][1]["reason"]
    assert made[0].closed


def test_a_slow_consumer_is_not_mistaken_for_a_stalled_camera(att_s1: Path) -> None:
    fake = FakeTime()
    made: list[FrameSource] = []
    events: list[str] = []

    def factory() -> FrameSource:
        made.append(ReplaySource(att_s1, fps=10))
        return made[-1]

    with SupervisedSource(
        factory,
        stall_seconds=5.0,
        clock=fake.clock,
        wait=fake.wait,
        on_event=lambda n, d: events.append(n),
    ) as supervisor:
        assert supervisor.read(1.0).index == 0
        fake.now += 60.0  # the recogniser was busy for a minute; the camera was not silent
        assert supervisor.read(1.0).index == 1
    assert len(made) == 1 and events == []


def test_stopping_while_a_reader_waits_is_not_an_outage() -> None:
    events: list[str] = []
    supervisor = SupervisedSource(
        lambda: FrameGrabber(StalledSource(), read_timeout=0.05),
        on_event=lambda n, d: events.append(n),
    )
    supervisor.start()
    outcome: list[BaseException] = []
    reading = threading.Event()

    def reader() -> None:
        reading.set()
        try:
            supervisor.read(None)
        except CameraError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    reading.wait(5)
    supervisor.close()
    thread.join(5)
    assert not thread.is_alive() and outcome
    assert events == [] and supervisor.state == "stopped"


def test_stop_event_interrupts_the_backoff_wait(tmp_path: Path) -> None:
    stop = threading.Event()
    failed = threading.Event()
    supervisor = SupervisedSource(
        lambda: ReplaySource(tmp_path / "gone"),
        retry_initial=60.0,
        stop_event=stop,
        on_event=lambda name, details: failed.set(),
    )
    outcome: list[BaseException] = []

    def loop() -> None:
        supervisor.start()
        try:
            supervisor.read(None)
        except CameraError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=loop)
    thread.start()
    assert failed.wait(5)
    start = time.monotonic()
    stop.set()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - start < 1.0
    assert outcome and "stopped" in str(outcome[0])
    supervisor.close()


def test_stop_interrupts_the_wait_without_a_shared_event(tmp_path: Path) -> None:
    failed = threading.Event()
    supervisor = SupervisedSource(
        lambda: ReplaySource(tmp_path / "gone"),
        retry_initial=60.0,
        on_event=lambda name, details: failed.set(),
    )
    supervisor.start()
    outcome: list[BaseException] = []
    thread = threading.Thread(
        target=lambda: outcome.append(pytest.raises(CameraError, supervisor.read))
    )
    thread.start()
    assert failed.wait(5)
    supervisor.stop()
    thread.join(5)
    assert not thread.is_alive() and "stopped" in str(outcome[0].value)
    supervisor.start()  # a restart clears its own stop flag and tries again at once
    assert supervisor.state.startswith("failed: ")
    supervisor.close()


def test_a_broken_event_listener_does_not_stop_the_camera(tmp_path: Path) -> None:
    def listener(name: str, details: dict) -> None:
        raise RuntimeError("listener bug")

    fake = FakeTime()
    supervisor = SupervisedSource(
        lambda: ReplaySource(tmp_path / "gone"), on_event=listener, clock=fake.clock, wait=fake.wait
    )
    supervisor.start()
    assert supervisor.state.startswith("failed")
    supervisor.close()


# --------------------------------------------------------------------------- factories


def test_create_source_maps_the_camera_section(att_s1: Path) -> None:
    replay = create_source(
        {
            "type": "replay",
            "detect_width": 64,
            "replay": {"path": str(att_s1), "fps": 5, "loop": True},
        }
    )
    assert isinstance(replay, ReplaySource)
    assert (replay.fps, replay.loop, replay.path) == (5.0, True, att_s1)
    with replay:
        assert replay.read().lores.shape[1] == 64

    opencv = create_source(
        {"type": "opencv", "device": "2", "width": 320, "height": 240, "fps": 10}
    )
    assert isinstance(opencv, OpenCVSource) and opencv.device == 2
    assert (opencv.width, opencv.height, opencv.fps) == (320, 240, 10.0)

    pi = create_source(type="picamera2", width=1280, height=720, detect_width=320)
    assert isinstance(pi, Picamera2Source) and pi.lores == (320, 180)
    assert not pi.started


def test_create_source_accepts_the_validated_config_model(att_s1: Path) -> None:
    config = pytest.importorskip("pi_facegate.config.loader")
    section = config.parse_config(
        {"camera": {"type": "replay", "replay": {"path": str(att_s1)}}}
    ).camera
    source = create_source(section)
    assert isinstance(source, ReplaySource) and source.path == att_s1


def test_create_source_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError, match="widht"):
        create_source(type="opencv", widht=640)
    with pytest.raises(ConfigError, match="webcam"):
        create_source(type="webcam")
    with pytest.raises(ConfigError, match="replay.path"):
        create_source(type="replay")
    with pytest.raises(ConfigError, match="fps"):
        ReplaySource(".", fps=-1)


def test_create_camera_supervises_live_cameras_and_leaves_replay_bare(att_s1: Path) -> None:
    replay = create_camera({"type": "replay", "replay": {"path": att_s1}})
    assert isinstance(replay, ReplaySource)

    events: list[str] = []
    stop = threading.Event()
    live = create_camera(
        {"type": "opencv", "device": 63, "retry_initial_seconds": 2, "retry_max_seconds": 4},
        on_event=lambda name, details: events.append(name),
        stop_event=stop,
    )
    assert isinstance(live, SupervisedSource)
    assert (live.retry_initial, live.retry_max) == (2.0, 4.0)
    live.start()  # /dev/video63 does not exist: reported, retried later, not raised
    assert live.state.startswith("failed: ") and events == ["camera_error"]
    stop.set()
    with pytest.raises(CameraError, match="stopped"):
        live.read(10)
    live.close()


def test_live_stack_delivers_frames_through_grabber_and_supervisor(clip: Path) -> None:
    with create_camera(type="opencv", device=str(clip), detect_width=320) as camera:
        frame = camera.read(5)
        assert frame.image.shape == (360, 640, 3) and frame.lores.shape == (180, 320, 3)
        assert isinstance(camera.source, FrameGrabber)
        assert camera.state == "ok"


# --------------------------------------------------------------------------- picamera2


def test_picamera2_rgb888_is_bgr_in_memory(facedata: Path) -> None:
    rgb = load_image(facedata / "face_recognition_examples" / "examples" / "biden.jpg")
    bgr_bytes = np.ascontiguousarray(rgb[:, :, ::-1])  # what the camera's "RGB888" buffer holds
    np.testing.assert_array_equal(main_to_rgb(bgr_bytes, "RGB888"), rgb)
    np.testing.assert_array_equal(main_to_rgb(rgb, "BGR888"), rgb)
    xrgb = np.dstack([bgr_bytes, np.full(rgb.shape[:2], 255, np.uint8)])
    np.testing.assert_array_equal(main_to_rgb(xrgb, "XRGB8888"), rgb)
    with pytest.raises(CameraError, match="MJPEG"):
        main_to_rgb(rgb, "MJPEG")


def test_picamera2_yuv420_lores_with_row_padding(facedata: Path) -> None:
    rgb = load_image(facedata / "face_recognition_examples" / "examples" / "obama.jpg")
    rgb = cv2.resize(rgb, (320, 240), interpolation=cv2.INTER_AREA)
    h, w = rgb.shape[:2]
    i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).ravel()
    y, u, v = i420[: h * w], i420[h * w : h * w * 5 // 4], i420[h * w * 5 // 4 :]
    stride = 384  # libcamera pads rows; chroma planes carry half the stride

    def pad(plane: np.ndarray, rows: int, cols: int, width: int) -> np.ndarray:
        out = np.full((rows, width), 77, np.uint8)  # padding bytes are garbage
        out[:, :cols] = plane.reshape(rows, cols)
        return out.ravel()

    padded = np.concatenate(
        [
            pad(y, h, w, stride),
            pad(u, h // 2, w // 2, stride // 2),
            pad(v, h // 2, w // 2, stride // 2),
        ]
    ).reshape(h * 3 // 2, stride)

    out = yuv420_to_rgb(padded, w, h)
    assert out.shape == (h, w, 3) and out.flags.c_contiguous
    np.testing.assert_array_equal(
        out, cv2.cvtColor(i420.reshape(h * 3 // 2, w), cv2.COLOR_YUV2RGB_I420)
    )
    assert np.abs(out.astype(int) - rgb).mean() < 4  # chroma subsampling only
    with pytest.raises(CameraError, match="does not hold"):
        yuv420_to_rgb(padded, w, h + 2)


def test_picamera2_absent_is_a_clear_camera_error() -> None:
    try:
        import picamera2  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("picamera2 is installed here")
    source = Picamera2Source(640, 480, lores_width=320, fps=15)
    with pytest.raises(CameraError, match="python3-picamera2"):
        source.start()
    assert not source.started
    source.close()


def test_importing_the_camera_module_does_not_import_picamera2(tmp_path: Path) -> None:
    # A stand-in picamera2 package that reports when it is imported and has no camera.
    fake = tmp_path / "picamera2"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        textwrap.dedent(
            """
            import sys
            sys.stderr.write("PICAMERA2-IMPORTED\\n")
            class Picamera2:
                def __init__(self, camera_num=0):
                    raise IndexError("list index out of range")
            """
        )
    )
    script = textwrap.dedent(
        """
        import sys
        import pi_facegate.camera.factory as camera
        from pi_facegate.camera.picamera import Picamera2Source
        from pi_facegate.exc import CameraError
        source = camera.create_source(type="picamera2", detect_width=320)
        assert isinstance(source, Picamera2Source)
        assert "picamera2" not in sys.modules, "picamera2 imported too early"
        print("NOT-IMPORTED")
        try:
            source.start()
        except CameraError as exc:
            print("ERROR:", exc)
        """
    )
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(Path(__file__).parents[2])])
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "NOT-IMPORTED" in result.stdout
    assert "PICAMERA2-IMPORTED" in result.stderr  # only start() imported it ...
    assert "ERROR:" in result.stdout and "cannot open" in result.stdout  # ... and failed clearly
