"""``facegate events``: show the event log (who came to the door, what was decided).

Reads the daemon's events file without changing it, while the daemon writes. The file is
``--events PATH``, else the config's ``storage.events``, else ``<state dir>/events.db``.
A file that does not exist yet means no events: "no events yet" and exit 0 (``[]`` with
``--json``), because a new installation is not an error. A file that is not an event log,
or is corrupt, is a one-line error and exit 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from pi_facegate.cli import EXIT_OK, context
from pi_facegate.cli.durations import parse_since
from pi_facegate.cli.table import format_detail, format_table
from pi_facegate.exc import UsageError
from pi_facegate.storage.event_record import KINDS, Event
from pi_facegate.storage.events import EventLog


def register(
    subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]
) -> None:
    """Add ``events [--since WHEN] [--kind K ...] [--json] [--limit N] [--events PATH]``."""
    parser = subparsers.add_parser(
        "events",
        parents=parents,
        help="show the event log",
        description="Show the event log, oldest first: grants, denials, door and service "
        "events. Times are local.",
    )
    parser.add_argument(
        "--since",
        type=_since,
        metavar="WHEN",
        help="only events from WHEN on: a duration ago (90s, 30m, 1h, 2d, 1w), 'today', "
        "'yesterday', or a date/time (2024-05-01, 2024-05-01T08:30; local unless a zone "
        "is given)",
    )
    parser.add_argument(
        "--kind",
        action="append",
        metavar="KIND",
        help="only events of this kind (repeatable, or comma-separated): " + ", ".join(KINDS),
    )
    parser.add_argument(
        "--limit", type=_count, metavar="N", help="only the latest N matching events"
    )
    parser.add_argument(
        "--json", action="store_true", help="print a JSON list (times as epoch and UTC)"
    )
    parser.add_argument(
        "--events",
        type=Path,
        metavar="PATH",
        help="events file (default: the config's storage.events, else <state dir>/events.db)",
    )
    parser.set_defaults(func=cmd_events)


def cmd_events(args: argparse.Namespace) -> int:
    """Print the matching events as a table or as JSON."""
    path = args.events
    if path is None:
        _, config = context.resolve_config(args)
        path = context.events_path(args, config, create=False)
    kinds = _kinds(args.kind)
    with EventLog(path) as log:
        exists = log.exists()
        events = log.query(since=args.since, kinds=kinds, limit=args.limit)
    if args.json:
        json.dump([e.to_dict() for e in events], sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
    elif not exists:
        print(f"no events yet ({path} does not exist)", file=sys.stderr)
    elif not events:
        print("no matching events", file=sys.stderr)
    else:
        print(event_table(events))
    return EXIT_OK


def event_table(events: Sequence[Event]) -> str:
    """Aligned columns: local time, kind, person, distance, margin, detail."""
    rows = [
        (
            datetime.fromtimestamp(event.time).strftime("%Y-%m-%d %H:%M:%S"),
            event.kind,
            event.person if event.person is not None else "-",
            _figure(event.distance),
            _figure(event.margin),
            format_detail(event.detail),
        )
        for event in events
    ]
    header = ("TIME", "KIND", "PERSON", "DISTANCE", "MARGIN", "DETAIL")
    return format_table(header, rows, align="<<<>><")


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _kinds(values: list[str] | None) -> list[str] | None:
    """``--kind a --kind b,c`` as ``[a, b, c]``; ``None`` when not given."""
    if not values:
        return None
    kinds = [kind.strip() for value in values for kind in value.split(",") if kind.strip()]
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown:  # a typo must not look like "nothing happened"
        raise UsageError(
            f"unknown event kind {', '.join(map(repr, unknown))}: the kinds are {', '.join(KINDS)}"
        )
    return kinds


def _since(text: str) -> float:
    try:
        return parse_since(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}")
    return value
