"""``facegate enroll arm|status|cancel`` and ``facegate enroll NAME --camera``.

Enrolment at the door is armed by an administrator, never self-service:

* ``facegate enroll arm --name NAME [--timeout 5m] [--update]`` writes the arming file
  next to the gallery, i.e. in the service's state directory unless ``storage.gallery``
  says otherwise (atomically, mode 0600); the running daemon picks it up within a frame, and the next short press of the enrolment button captures NAME.
  ``--update`` adds the new views to the existing person NAME instead.
* ``facegate enroll status`` shows what is armed and the last enrolment events;
  ``facegate enroll cancel`` removes the arming (a capture in progress is aborted).

The state directory belongs to the service user (mode 0700), so on a Pi these commands
are run as that user, exactly like every other command that changes the gallery (give the
same ``--config``, and ``--state-dir`` if the daemon was given one)::

    sudo -u facegate facegate enroll arm --name "Alice" --timeout 5m

``facegate enroll NAME --camera`` runs the same guided capture from a shell (an
administrator at the door with a laptop), reading the configured camera, or ``--replay
PATH`` (a video or a folder of images), with progress in the terminal.
"""

from __future__ import annotations

import argparse
import getpass
import re
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from pi_facegate.cli import context
from pi_facegate.cli.common import print_json
from pi_facegate.cli.enroll.photos import DOOR_ACTIONS
from pi_facegate.config.schema import Config
from pi_facegate.core.capture import (
    DEFAULT_ARMING_SECONDS,
    Arming,
    CaptureResult,
    CaptureSession,
    CaptureSettings,
    EnrolmentRequest,
    FrameJudgement,
    arming_path,
    clear_arming,
    complete,
    new_arming,
    read_arming,
    write_arming,
)
from pi_facegate.daemon import wiring as components
from pi_facegate.exc import (
    CameraTimeoutError,
    DuplicatePersonError,
    EnrolmentError,
    EventLogError,
    GalleryError,
    PersonNotFoundError,
    UsageError,
)
from pi_facegate.storage.events import KINDS, EventLog, format_detail
from pi_facegate.storage.gallery import Gallery, normalise_name

READ_TIMEOUT_SECONDS = 1.0
# the enrolment kinds of the event log, in its order
_ENROLMENT_EVENTS = tuple(kind for kind in KINDS if kind.startswith("enrol"))
_DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def dispatch(args: argparse.Namespace) -> int:
    """Route ``facegate enroll`` to arming, status, cancel or a camera capture."""
    if args.name in DOOR_ACTIONS:
        if args.camera:
            raise UsageError(f"'enroll {args.name}' takes no --camera")
        return {"arm": arm, "status": status, "cancel": cancel}[args.name](args)
    return capture(args)


def parse_duration(text: str) -> float:
    """Seconds from ``90s``, ``5m``, ``1h``, ``1h30m`` or a bare number of minutes."""
    value = str(text).strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        return float(value) * 60.0
    if not re.fullmatch(r"(?:\d+(?:\.\d+)?\s*[smh]\s*)+", value):
        raise UsageError(f"cannot read {text!r} as a duration: use e.g. 90s, 5m, 1h or 1h30m")
    return sum(
        float(number) * _DURATION_UNITS[unit]
        for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([smh])", value)
    )


def _arming_file(args: argparse.Namespace, config: Config, create: bool = False) -> Path:
    """The arming file: next to the gallery (the state directory, unless configured)."""
    return arming_path(context.gallery_path(args, config, create=create).parent)


# --------------------------------------------------------------------------- arm


def arm(args: argparse.Namespace) -> int:
    """``enroll arm --name NAME [--timeout D] [--update]``: let the next press enrol NAME."""
    config_file, config = context.resolve_config(args)
    if args.images:
        raise UsageError(
            f"'enroll arm' takes no images; give the name with --name {args.images[0]}"
        )
    if not args.arm_name:
        raise UsageError('give the person\'s name: facegate enroll arm --name "Alice"')
    name = normalise_name(args.arm_name)
    if name.casefold() in DOOR_ACTIONS:
        raise UsageError(f"{name!r} cannot be a name: it is an enroll action")
    seconds = parse_duration(args.timeout) if args.timeout else DEFAULT_ARMING_SECONDS
    limit = config.enrolment.max_armed_minutes * 60.0
    if seconds > limit:
        raise UsageError(
            f"--timeout {args.timeout} is longer than enrolment.max_armed_minutes "
            f"({config.enrolment.max_armed_minutes} min) in {config_file}"
        )
    _check_name(args, config, name, args.update)
    arming = new_arming(name, seconds, update=args.update, armed_by=_user())
    path = _arming_file(args, config, create=True)
    write_arming(path, arming)
    if args.json:
        print_json({"armed": True, **_arming_summary(arming, limit), "file": str(path)})
        return 0
    what = "add views to" if arming.update else "enrol"
    print(
        f"armed: the next press of the enrolment button within {_span(seconds)} will {what} {name}"
    )
    print(f"  until {_clock(arming.expires_at)}; 'facegate enroll cancel' disarms ({path})")
    if config.enrolment.button_pin is None:
        print(
            f"  note: enrolment.button_pin is not set in {config_file}: there is no button to press",
            file=sys.stderr,
        )
    return 0


def _check_name(args: argparse.Namespace, config: Config, name: str, update: bool) -> None:
    """Fail now, not at the door: a new name must be free, an updated one must exist."""
    path = context.gallery_path(args, config, create=False)
    exists = False
    if path.is_file():
        try:
            with Gallery.open(path, fingerprint=None, create=False) as gallery:
                gallery.get(name)
                exists = True
        except PersonNotFoundError:
            exists = False
        except GalleryError as exc:
            raise EnrolmentError(f"cannot check the name against the gallery: {exc}") from None
    if exists and not update:
        raise DuplicatePersonError(
            f"{name!r} is enrolled already: arm with --update to add views of them"
        )
    if update and not exists:
        raise PersonNotFoundError(f"{name!r} is not enrolled, so there is nobody to --update")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container); the uid is enough
        return ""


# --------------------------------------------------------------------------- status / cancel


def status(args: argparse.Namespace) -> int:
    """``enroll status``: what is armed, and the last enrolment events."""
    _, config = context.resolve_config(args)
    path = _arming_file(args, config)
    limit = config.enrolment.max_armed_minutes * 60.0
    problem = None
    try:
        arming = read_arming(path)
    except EnrolmentError as exc:
        arming, problem = None, str(exc)
    recent = _recent_events(args, config)
    if args.json:
        info: dict[str, Any] = {"armed": bool(arming and arming.is_active(time.time(), limit))}
        if arming is not None:
            info.update(_arming_summary(arming, limit))
        if problem:
            info["error"] = problem
        info["recent"] = [e.to_dict() for e in recent]
        print_json(info)
        return 1 if problem else 0
    now = time.time()
    if problem:
        print(f"not armed: {problem}")
    elif arming is None:
        print("enrolment is not armed")
    elif arming.is_active(now, limit):
        end = arming.expiry(limit)
        what = "update of" if arming.update else "enrolment of"
        by = f" by {arming.armed_by}" if arming.armed_by else ""
        print(
            f"armed for the {what} {arming.name}{by}: {_span(end - now)} left (until {_clock(end)})"
        )
    else:
        print(f"not armed: the arming for {arming.name} ended at {_clock(arming.expiry(limit))}")
    for event in recent:
        who = f" {event.person}" if event.person else ""
        detail = f" {format_detail(event.detail)}" if event.detail else ""
        print(f"  {_clock(event.time)} {event.kind}{who}{detail}")
    return 1 if problem else 0


def cancel(args: argparse.Namespace) -> int:
    """``enroll cancel``: remove the arming; the daemon aborts a capture for it."""
    _, config = context.resolve_config(args)
    removed = clear_arming(_arming_file(args, config))
    if args.json:
        print_json({"cancelled": removed is not None, "name": removed.name if removed else None})
    elif removed is None:
        print("enrolment was not armed")
    else:
        print(f"disarmed: {removed.name} will not be enrolled (a capture in progress is aborted)")
    return 0


def _recent_events(args: argparse.Namespace, config: Config, limit: int = 5) -> list:
    path = context.events_path(args, config, create=False)
    try:
        with EventLog(path) as log:
            return log.query(kinds=_ENROLMENT_EVENTS, limit=limit)
    except (EventLogError, OSError):
        return []  # the status of the arming does not depend on the log


def _arming_summary(arming: Arming, limit: float) -> dict[str, Any]:
    return {
        "name": arming.name,
        "update": arming.update,
        "armed_at": arming.armed_at,
        "until": arming.expiry(limit),
        "seconds_left": max(0.0, round(arming.expiry(limit) - time.time(), 1)),
        "armed_by": arming.armed_by,
    }


def _span(seconds: float) -> str:
    seconds = max(0, round(seconds))
    minutes, secs = divmod(seconds, 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def _clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


# --------------------------------------------------------------------------- capture from a shell


def capture(args: argparse.Namespace) -> int:
    """``enroll NAME --camera [--replay PATH]``: the door's guided capture, in a terminal."""
    _, config = context.resolve_config(args)
    if args.images:
        raise UsageError("--camera captures from the camera: give no IMAGE as well")
    name = normalise_name(args.name)
    settings = CaptureSettings.from_config(config)
    embedder = components.build_embedder(config)
    threshold, margin = components.match_settings(config, embedder)
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
        try:
            source = _open_camera(config, args.replay)
            progress = None if args.json else TerminalProgress(settings)
            try:
                result = run_capture(source, recognizer, settings, progress)
            finally:
                source.close()
                if progress is not None:
                    progress.close()
        finally:
            recognizer.close()
        outcome = complete(gallery, gallery.index(), request, result, threshold, margin)
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
    from pi_facegate.camera.sources import create_camera, create_source

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
) -> CaptureResult:
    """Feed frames from ``source`` to a new session until it is due (or the source ends).

    The face is analysed with the enrolment limits; frames with no face or several are
    judged without embedding anything.
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
