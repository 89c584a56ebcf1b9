"""``facegate people``: list and manage enrolled people (no model is loaded for these).

``people set`` changes a person's access rules -- a schedule of the config, the dates access
is valid between, a note -- in one gallery transaction; the running daemon applies it at its
next gallery poll (within a second), like an enrolment.

``people list`` ends with the threshold the door applies to this gallery: it follows the
number of people who have access (:mod:`pi_facegate.core.open_set`), so the administrator
sees it tighten as people are enrolled.
"""

from __future__ import annotations

import argparse
import dataclasses
from datetime import date, datetime

from pi_facegate.cli import context
from pi_facegate.cli.common import add_gallery_option, add_json_option, print_json, setup
from pi_facegate.cli.table import format_table
from pi_facegate.config.schema import Config
from pi_facegate.daemon import wiring as components
from pi_facegate.exc import ConfigError, UsageError
from pi_facegate.storage.access_rules import KEEP


def register(subparsers, parents) -> None:
    p = subparsers.add_parser("people", parents=parents, help="list and manage enrolled people")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, help_text: str, *positionals: str):
        sub = actions.add_parser(name, parents=parents, help=help_text)
        for pos in positionals:
            sub.add_argument(pos.lower(), metavar=pos)
        add_gallery_option(sub)
        add_json_option(sub)
        sub.set_defaults(func=people, action=name)
        return sub

    action("list", "everyone in the gallery")
    action("show", "one person", "NAME")
    action("rename", "give a person a new name", "NAME", "NEW_NAME")
    action("enable", "give a person access again", "NAME")
    action("disable", "keep a person but deny them access", "NAME")
    action("approve", "give a pending person (captured at the door unarmed) access", "NAME")
    action("remove", "delete a person and all their embeddings", "NAME")
    _add_set_options(action("set", "set a person's schedule, valid dates or note", "NAME"))


def _add_set_options(sub: argparse.ArgumentParser) -> None:
    which = sub.add_mutually_exclusive_group()
    which.add_argument(
        "--schedule", metavar="NAME", help="let them in only inside this schedule of the config"
    )
    which.add_argument(
        "--no-schedule", action="store_true", help="no schedule: any time (the default)"
    )
    sub.add_argument(
        "--from", dest="valid_from", type=_date, metavar="DATE", help="first day of access"
    )
    sub.add_argument(
        "--until",
        dest="valid_until",
        type=_date,
        metavar="DATE",
        help="last day of access, inclusive (YYYY-MM-DD, local time: through its end)",
    )
    sub.add_argument("--clear-dates", action="store_true", help="no first or last day")
    sub.add_argument("--note", metavar="TEXT", help="a note shown by people list ('' clears)")


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from None


def people(args: argparse.Namespace) -> int:
    config, gallery_path = setup(args)
    embedder_manifest = components.load_manifest(config.embedder.model)
    fingerprint = components.embedder_fingerprint(embedder_manifest)
    with components.Gallery.open(gallery_path, fingerprint=fingerprint, create=False) as gallery:
        if args.action == "list":
            rows = [_row(p) for p in gallery.people()]
            if args.json:
                print_json(rows)
            elif not rows:
                print("nobody is enrolled")
            else:
                _print_table(rows, config)
            if not args.json:
                print(_threshold_line(config, embedder_manifest, gallery))
            return 0
        if args.action == "show":
            row = _row(gallery.get(args.name))
            print_json(row) if args.json else _print_table([row], config)
            return 0
        if args.action == "rename":
            gallery.rename(args.name, args.new_name)
            message = f"renamed {args.name} to {args.new_name}"
        elif args.action in ("enable", "disable"):
            gallery.set_enabled(args.name, args.action == "enable")
            message = f"{args.action}d {args.name}"
        elif args.action == "approve":
            gallery.approve(args.name)
            message = f"approved {args.name}: they now have access"
        elif args.action == "set":
            person = gallery.set_access(args.name, **_access_changes(args, config))
            message = f"{person.name}: {_rules_text(person)}"
        else:
            gallery.remove(args.name)
            message = f"removed {args.name} and their embeddings"
    print_json({"ok": True, "message": message}) if args.json else print(message)
    return 0


def _threshold_line(config: Config, manifest, gallery) -> str:
    """The door's threshold for this gallery, as the daemon logs it.

    A config whose threshold would be refused is reported here, not raised: listing the
    people must still work while the config is being fixed.
    """
    try:
        rule, _ = components.match_rule(config, manifest)
    except ConfigError as exc:
        return f"threshold: the config is refused: {exc}"
    return rule.for_index(gallery.index()).describe()


def _row(person) -> dict:
    row = dataclasses.asdict(person) if dataclasses.is_dataclass(person) else dict(vars(person))
    return row


def _access_changes(args: argparse.Namespace, config: Config) -> dict:
    """The keyword arguments of ``Gallery.set_access`` the options ask for."""
    if args.clear_dates and (args.valid_from or args.valid_until):
        raise UsageError("--clear-dates cannot go with --from or --until")
    changes = {
        "schedule": None if args.no_schedule else (args.schedule or KEEP),
        "valid_from": None if args.clear_dates else (args.valid_from or KEEP),
        "valid_until": None if args.clear_dates else (args.valid_until or KEEP),
        "note": KEEP if args.note is None else args.note,
    }
    if all(value is KEEP for value in changes.values()):
        raise UsageError(
            "nothing to set: give --schedule/--no-schedule, --from, --until, --clear-dates "
            "or --note"
        )
    if args.schedule is not None and args.schedule not in config.schedules:
        known = ", ".join(config.schedules) or "none"
        raise UsageError(
            f"no schedule {args.schedule!r} in {context.config_path(args)} (its schedules: "
            f"{known}); add it under schedules: first, check and reload the config"
        )
    return changes


def _rules_text(person) -> str:
    """``schedule office, from 2027-01-01, until 2027-01-31, note '...'`` for a message."""
    parts = [f"schedule {person.schedule}" if person.schedule else "any time"]
    parts += [f"from {person.valid_from}"] if person.valid_from else []
    parts += [f"until {person.valid_until} (inclusive)"] if person.valid_until else []
    parts += [f"note {person.note!r}"] if person.note else []
    return ", ".join(parts)


def _print_table(rows: list[dict], config: Config) -> None:
    """Name, status, embeddings, access rules, creation time (local) and note, one a line.

    A schedule the config does not define is marked: that person is refused until it is.
    """
    lines = []
    for r in rows:
        status = "pending" if r.get("pending") else ("enabled" if r.get("enabled") else "disabled")
        created = r.get("created")
        if isinstance(created, (int, float)):
            created = datetime.fromtimestamp(created).strftime("%Y-%m-%d %H:%M:%S")
        count = r.get("embedding_count", r.get("embeddings", ""))
        schedule = r.get("schedule") or "-"
        if r.get("schedule") and r["schedule"] not in config.schedules:
            schedule += " (not in config: denied)"
        dates = (r.get("valid_from") or "-", r.get("valid_until") or "-")
        lines.append((r["name"], status, count, schedule, *dates, created, r.get("note") or ""))
    header = ("NAME", "STATUS", "EMB", "SCHEDULE", "FROM", "UNTIL", "CREATED", "NOTE")
    print(format_table(header, lines, align="<<><<<<<"))
