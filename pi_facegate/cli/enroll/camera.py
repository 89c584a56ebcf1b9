"""``facegate enroll NAME --camera``: the door's guided capture, run from a shell.

An administrator at the door with a laptop runs the same guided capture as the daemon
(:mod:`pi_facegate.core.capture`), reading the configured camera, or ``--replay PATH`` (a
video or a folder of images), with progress in the terminal. The person is stored in one
transaction, and a face that already matches somebody else is refused (``--force``
overrides).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pi_facegate.cli import context
from pi_facegate.cli.common import print_json
from pi_facegate.config.schema import Config
from pi_facegate.core.capture import (
    CaptureResult,
    CaptureSession,
    CaptureSettings,
    EnrolmentRequest,
    FrameJudgement,
)
from pi_facegate.core.liveness import CaptureLiveness
from pi_facegate.daemon import wiring as components
from pi_facegate.daemon.enrolment_store import complete
from pi_facegate.exc import (
    CameraTimeoutError,
    DuplicatePersonError,
    EnrolmentError,
    PersonNotFoundError,
    UsageError,
)
from pi_facegate.storage.gallery import Gallery
from pi_facegate.storage.names import normalise_name

READ_TIMEOUT_SECONDS = 1.0


def capture(args: argparse.Namespace) -> int:
    """``enroll NAME --camera [--replay PATH]``: the door's guided capture, in a terminal."""
    _, config = context.resolve_config(args)
    if args.images:
        raise UsageError("--camera captures from the camera: give no IMAGE as well")
    name = normalise_name(args.name)
    settings = CaptureSettings.from_config(config)
    embedder = components.build_embedder(config)
    components.match_settings(config, embedder)  # a bad threshold fails before the capture
    request = EnrolmentRequest(
        name,
        update=args.update,
        enabled=not args.disabled,
        note=args.note,
        source="camera",
        allow_lookalike=args.force,
    )
    with components.open_gallery(context.gallery_path(args, config), embedder) as gallery:
        _refuse_name(gallery, request)
        recognizer = components.build_recognizer(config, video=True, embedder=embedder)
        texture = components.build_texture_liveness(config)
        liveness = None
        if texture is not None:
            liveness = CaptureLiveness(components.liveness_settings(config), texture.score)
        try:
            source = _open_camera(config, args.replay)
            progress = None if args.json else TerminalProgress(settings)
            try:
                result = run_capture(source, recognizer, settings, progress, liveness=liveness)
            finally:
                source.close()
                if progress is not None:
                    progress.close()
        finally:
            recognizer.close()
            if texture is not None:
                texture.close()
        refusal = liveness.refusal() if liveness is not None else None
        if result.ok and refusal is not None:
            raise EnrolmentError(f"nothing stored: {refusal}")
        index = gallery.index()  # judged with the door's threshold for this gallery now
        threshold, margin = components.gallery_match_settings(config, embedder, index)
        outcome = complete(gallery, index, request, result, threshold, margin)
    if not outcome.ok:
        hint = " (use --force if they really are different people)" if outcome.lookalike else ""
        raise EnrolmentError(f"nothing stored: {outcome.reason}{hint}")
    if args.json:
        print_json({"name": outcome.person.name, **result.detail()})
    else:
        verb = "added" if request.update else "enrolled"
        print(
            f"{verb} {outcome.person.name}: {len(result.embeddings)} views stored from "
            f"{result.good_frames} good of {result.frames} frames"
        )
    return 0


def _refuse_name(gallery: Gallery, request: EnrolmentRequest) -> None:
    """Before the person stands still for nothing: the name must be free (or exist, to update)."""
    try:
        gallery.get(request.name)
    except PersonNotFoundError:
        if request.update:
            raise
        return
    if not request.update:
        raise DuplicatePersonError(
            f"{request.name!r} is enrolled already: use --update to add views"
        )


def _open_camera(config: Config, replay: Path | None):
    """The configured camera (supervised, newest frame), or a replay read frame by frame."""
    from pi_facegate.camera.factory import create_camera, create_source

    if replay is not None:
        source = create_source(config.camera, type="replay", replay_path=replay, replay_loop=False)
    else:
        source = create_camera(config.camera)
    source.start()
    return source


def run_capture(
    source,
    recognizer,
    settings: CaptureSettings,
    progress: Callable[[CaptureSession, FrameJudgement, float], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    liveness: CaptureLiveness | None = None,
) -> CaptureResult:
    """Feed frames from ``source`` to a new session until it is due (or the source ends).

    The face is analysed with the enrolment limits; frames with no face or several are
    judged without embedding anything. With ``liveness``, each analysed face also feeds the
    capture's liveness evidence (the caller asks it afterwards whether to store).
    """
    session = CaptureSession(settings, clock())
    last_ts = -1
    now = clock()
    while not session.due(now):
        try:
            frame = source.read(
                timeout=min(READ_TIMEOUT_SECONDS, max(0.05, session.remaining(now)))
            )
        except CameraTimeoutError:
            now = clock()
            continue
        if frame is None:  # a replay ended
            break
        last_ts = max(last_ts + 1, int(frame.timestamp * 1000))
        faces = recognizer.detect(frame.image, timestamp_ms=last_ts, lores=frame.lores)
        subject = (
            recognizer.analyse(frame.image, faces, settings.limits)[0] if len(faces) == 1 else None
        )
        now = clock()
        if liveness is not None and subject is not None:
            liveness.feed(frame.image, subject.face, subject.mesh, now)
        judgement = session.feed(len(faces), subject, now)
        if progress is not None:
            progress(session, judgement, now)
    return session.finish(clock())


class TerminalProgress:
    """One progress line: rewritten in place on a terminal, else printed on each change."""

    def __init__(self, settings: CaptureSettings, stream=None) -> None:
        self.stream = stream or sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.target = settings.enough_frames
        self._last: tuple[int, str | None] | None = None
        self._open_line = False
        print(
            f"Look at the camera, alone, from close by ({settings.capture_seconds:g} s at most)...",
            file=self.stream,
        )

    def __call__(self, session: CaptureSession, judgement: FrameJudgement, now: float) -> None:
        state = (session.good_frames, judgement.reason)
        if not self.tty and state == self._last:
            return
        self._last = state
        last = "good" if judgement.good else judgement.reason
        line = (
            f"  {session.good_frames}/{self.target} good frames, "
            f"{session.remaining(now):4.1f} s left, this frame: {last}"
        )
        if self.tty:
            self.stream.write("\r" + line.ljust(78))
            self._open_line = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End a line left open on a terminal."""
        if self._open_line:
            self.stream.write("\n")
            self.stream.flush()
            self._open_line = False
