"""``facegate enroll arm|status|cancel``: the administrator's arming of enrolment at the door.

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
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from pi_facegate.cli import context
from pi_facegate.cli.common import print_json
from pi_facegate.cli.durations import parse_duration
from pi_facegate.cli.enroll.actions import DOOR_ACTIONS
from pi_facegate.cli.table import format_detail
from pi_facegate.config.schema import Config
from pi_facegate.exc import (
    DuplicatePersonError,
    EnrolmentError,
    EventLogError,
    GalleryError,
    PersonNotFoundError,
    UsageError,
)
from pi_facegate.storage.arming import (
    DEFAULT_ARMING_SECONDS,
    Arming,
    arming_path,
    clear_arming,
    new_arming,
    read_arming,
    write_arming,
)
from pi_facegate.storage.event_record import KINDS
from pi_facegate.storage.events import EventLog
from pi_facegate.storage.gallery import Gallery
from pi_facegate.storage.names import normalise_name

# the enrolment kinds of the event log, in its order
_ENROLMENT_EVENTS = tuple(kind for kind in KINDS if kind.startswith("enrol"))


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
