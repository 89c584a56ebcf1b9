"""``facegate people``: list and manage enrolled people (no model is loaded for these)."""

from __future__ import annotations

import argparse
import dataclasses
from datetime import datetime

from pi_facegate.cli.common import add_gallery_option, add_json_option, print_json, setup
from pi_facegate.cli.table import format_table
from pi_facegate.daemon import wiring as components


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
                _print_table(rows)
            return 0
        if args.action == "show":
            row = _row(gallery.get(args.name))
            print_json(row) if args.json else _print_table([row])
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
        else:
            gallery.remove(args.name)
            message = f"removed {args.name} and their embeddings"
    print_json({"ok": True, "message": message}) if args.json else print(message)
    return 0


def _row(person) -> dict:
    row = dataclasses.asdict(person) if dataclasses.is_dataclass(person) else dict(vars(person))
    return row


def _print_table(rows: list[dict]) -> None:
    """Name, status, embedding count, creation time (local) and note, one person a line."""
    lines = []
    for r in rows:
        status = "pending" if r.get("pending") else ("enabled" if r.get("enabled") else "disabled")
        created = r.get("created")
        if isinstance(created, (int, float)):
            created = datetime.fromtimestamp(created).strftime("%Y-%m-%d %H:%M:%S")
        count = r.get("embedding_count", r.get("embeddings", ""))
        lines.append((r["name"], status, count, created, r.get("note") or ""))
    header = ("NAME", "STATUS", "EMB", "CREATED", "NOTE")
    print(format_table(header, lines, align="<<><<"))
