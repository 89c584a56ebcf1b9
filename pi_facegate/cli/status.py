"""``facegate status [--json] [--watch]``: what the running door daemon is doing now.

It reads the status file the daemon rewrites every ``service.status_interval_seconds``
beside the gallery (:mod:`pi_facegate.daemon.status_file`): frames per second, the camera's
state, people enrolled, the last decision and its reason, the liveness verdict of the face
at the door, the event log's state, uptime. Nothing is asked of the daemon itself, so it
works over ssh with no socket and never disturbs the door.

Exit status: 0 when the daemon is running, 1 when it is not (no status file, marked
stopped, its process gone, or no update for three intervals), so scripts can test it.
``--watch`` redraws every two seconds until Ctrl-C (exit 0).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from pi_facegate.cli import EXIT_ERROR, EXIT_OK, context
from pi_facegate.cli.table import format_table, printable
from pi_facegate.daemon.status_file import (
    StatusFileError,
    not_running_reason,
    read_status,
    status_path,
)
from pi_facegate.exc import FacegateError

WATCH_SECONDS = 2.0
_CLEAR = "\x1b[H\x1b[2J"  # cursor home, clear screen


def register(subparsers, parents) -> None:
    """Add ``status [--json] [--watch] [--gallery PATH]``."""
    p = subparsers.add_parser(
        "status",
        parents=parents,
        help="what the running daemon is doing now (exit 1 if it is not running)",
        description="Show what the running door daemon is doing now, from the status file it "
        "rewrites beside the gallery. Exit 0 if it is running, 1 if not.",
    )
    p.add_argument("--json", action="store_true", help="print the status file's JSON")
    p.add_argument(
        "--watch", action="store_true", help=f"redraw every {WATCH_SECONDS:g} s until Ctrl-C"
    )
    p.add_argument(
        "--gallery",
        type=Path,
        metavar="PATH",
        help="the daemon's gallery file; its status file is beside it (default: the config's)",
    )
    p.set_defaults(func=cmd_status)


class StatusReadError(FacegateError):
    """The status file is there but unreadable (one line, exit 1)."""


def cmd_status(args: argparse.Namespace) -> int:
    path = locate(args)
    if not args.watch:
        return show(path, args.json)
    try:
        while True:
            if sys.stdout.isatty() and not args.json:
                sys.stdout.write(_CLEAR)
            show(path, args.json)
            sys.stdout.flush()
            time.sleep(WATCH_SECONDS)
    except KeyboardInterrupt:
        return EXIT_OK


def locate(args: argparse.Namespace) -> Path:
    """The status file beside the gallery this command would use."""
    _, config = context.resolve_config(args)
    return status_path(context.gallery_path(args, config, create=False).parent)


def show(path: Path, as_json: bool) -> int:
    """Print the status once; the exit status (0 running, 1 not)."""
    try:
        status = read_status(path)
    except StatusFileError as exc:
        raise StatusReadError(str(exc)) from None
    reason = not_running_reason(status)
    if as_json:
        data = dict(status or {})
        data["running"] = reason is None
        data["not_running_reason"] = reason
        data["path"] = str(path)
        json.dump(data, sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
    else:
        print(render(status, reason, path))
    return EXIT_OK if reason is None else EXIT_ERROR


def render(status: dict[str, Any] | None, reason: str | None, path: Path) -> str:
    """The status as a few aligned ``what: value`` lines."""
    if status is None or reason is not None:
        head = f"pi-facegate is NOT RUNNING: {reason}"
        if status is None:
            return f"{head}\n(looked for {path})"
    else:
        head = f"pi-facegate is running (pid {status.get('pid')}, version {status.get('version')})"
    rows = [(f"{label}:", v) for label, v in _rows(status, reason is None) if v is not None]
    since = "last update" if reason is None else "last known"
    return "\n".join(
        [head, f"{since}: {_clock(status.get('updated_at'))}", format_table(None, rows)]
    )


def _rows(status: dict[str, Any], running: bool) -> list[tuple[str, str | None]]:
    camera = status.get("camera") or {}
    return [
        ("uptime", _duration(status.get("uptime_seconds"))),
        ("frames", _frames(status)),
        ("camera", _camera(camera)),
        ("people enrolled", _text(status.get("people"))),
        ("last decision", _decision(status.get("last_decision"))),
        ("face at the door", _liveness(status.get("liveness"))),
        ("enrolment", _text(status.get("enrolment"))),
        ("event log", _storage(status.get("storage"), running)),
    ]


def _frames(status: dict[str, Any]) -> str:
    fps = status.get("fps")
    rate = f"{fps:.1f} fps" if isinstance(fps, (int, float)) else "? fps"
    return f"{rate}, {status.get('frames', 0)} frames, {status.get('grants', 0)} grants"


def _camera(camera: dict[str, Any]) -> str | None:
    if not camera:
        return None
    state, source = camera.get("state") or "?", camera.get("source")
    return printable(state if not source else f"{state} ({source})")


def _decision(decision: dict[str, Any] | None) -> str:
    if not decision:
        return "none yet"
    text = decision.get("text") or decision.get("kind", "?")
    if decision.get("reason"):
        text += f" (reason: {decision['reason']})"
    return printable(f"{text}, {_clock(decision.get('time'))}")


def _liveness(liveness: dict[str, Any] | None) -> str:
    if not liveness:
        return "nobody being judged"
    texture = liveness.get("texture")
    cues = [f"planarity {liveness.get('planarity')}"]
    if isinstance(texture, (int, float)):
        cues.insert(0, f"texture {texture:.2f}")
    waited = liveness.get("waited_seconds")
    waited_text = f", waited {waited:.1f} s" if isinstance(waited, (int, float)) else ""
    return printable(
        f"track {liveness.get('track')}: {liveness.get('state')} ({liveness.get('reason')}; "
        f"{', '.join(cues)}{waited_text})"
    )


def _storage(storage: dict[str, Any] | None, running: bool) -> str | None:
    if not storage:
        return None
    state = "closed" if not running else "ok" if storage.get("alive") else "NOT WRITING"
    if running and storage.get("trouble"):
        state = f"TROUBLE: {storage['trouble']}"
    counts = f"{storage.get('written', 0)} written, {storage.get('pending', 0)} pending"
    if storage.get("backlog"):
        counts += f", {storage['backlog']} waiting in memory"
    lost = (storage.get("dropped") or 0) + (storage.get("failed") or 0)
    if lost:
        counts += (
            f", {lost} LOST (dropped {storage.get('dropped')}, failed {storage.get('failed')})"
        )
    return printable(f"{state}: {counts} ({storage.get('event_log')})")


def _text(value: Any) -> str | None:
    return None if value is None else printable(str(value))


def _clock(epoch: Any) -> str:
    if not isinstance(epoch, (int, float)):
        return "?"
    ago = max(0.0, time.time() - epoch)
    return f"{datetime.fromtimestamp(epoch).strftime('%Y-%m-%d %H:%M:%S')} ({_duration(ago)} ago)"


def _duration(seconds: Any) -> str | None:
    if not isinstance(seconds, (int, float)):
        return None
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"
