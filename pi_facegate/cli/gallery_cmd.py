"""``facegate gallery``: create an empty gallery on purpose, and share people between doors.

``gallery init [--force]``: a gallery is created by ``facegate enroll`` (the first person),
by ``gallery import`` or by this command, and by ``facegate run`` only on a first run, where
none ever existed. Once a gallery has existed its marker remembers it
(:mod:`pi_facegate.storage.gallery_marker`), and a missing one is refused everywhere:
restore it from a backup, or start empty with ``gallery init --force``. An existing gallery
is never touched, with or without ``--force``: move it aside first to start over. No model
is loaded (the embedder's manifest names it).

``gallery export FILE`` writes everyone -- names, embeddings, flags, access rules, never a
photo -- to a private JSON file (:mod:`pi_facegate.storage.gallery_transfer`); a missing
gallery is an error, never created. ``gallery import FILE`` takes such a file in, in ONE
transaction, only from a door with the same embedder: newcomers are added, people already
here skipped (``--update`` replaces them), and a face this door would take for somebody
else is skipped under the lookalike rule of enrolment. It loads the embedder, as ``enroll``
does, for its fingerprint and match settings, and like ``enroll`` writes no event: the event
log is the daemon's. The running daemon sees the change at its next gallery poll.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from pi_facegate.cli import context
from pi_facegate.cli.common import add_gallery_option, setup
from pi_facegate.daemon import wiring as components
from pi_facegate.daemon.wiring import embedder_fingerprint
from pi_facegate.exc import GalleryError
from pi_facegate.storage.gallery import MEMORY, Gallery
from pi_facegate.storage.gallery_export_file import (
    Export,
    check_embedder,
    export_gallery,
    read_export,
    to_json,
    write_export,
)
from pi_facegate.storage.gallery_file import check_gallery_file
from pi_facegate.storage.gallery_transfer import (
    ADD,
    SKIP,
    UPDATE,
    ImportPlan,
    apply_import,
    plan_import,
)
from pi_facegate.vision.embedder import Embedder
from pi_facegate.vision.manifest import load_manifest


def register(subparsers, parents) -> None:
    """Add ``gallery init``, ``gallery export FILE`` and ``gallery import FILE``."""
    p = subparsers.add_parser("gallery", help="create the gallery, share people between doors")
    # the common options go on the leaves only (as for `config`): see config_cmd
    actions = p.add_subparsers(dest="gallery_action", metavar="ACTION", required=True)
    init = actions.add_parser(
        "init",
        parents=parents,
        help="create an empty gallery (nobody is let in until someone is enrolled)",
        description="Create an empty gallery. An existing gallery is left as it is. A gallery "
        "that existed and is gone (its marker says so) is re-created only with --force.",
    )
    init.add_argument(
        "--force",
        action="store_true",
        help="start empty even though a gallery existed here and is gone",
    )
    add_gallery_option(init)
    init.set_defaults(func=cmd_init)
    _register_export(actions, parents)
    _register_import(actions, parents)


def _register_export(actions, parents) -> None:
    export = actions.add_parser(
        "export",
        parents=parents,
        help="write everyone enrolled to FILE, for another door (gallery import)",
        description="Write every enrolled person -- name, embeddings, flags, access rules, no "
        "photo -- to FILE (JSON, mode 0600: it holds biometric data), with the embedder that "
        "made them. A missing gallery is an error.",
    )
    export.add_argument("file", type=Path, metavar="FILE", help="the export file to write")
    export.add_argument("--force", action="store_true", help="replace FILE if it exists")
    add_gallery_option(export)
    export.set_defaults(func=cmd_export)


def _register_import(actions, parents) -> None:
    imp = actions.add_parser(
        "import",
        parents=parents,
        help="add the people of another door's export FILE (same embedder only)",
        description="Add the people of FILE (made by gallery export on a door with the same "
        "embedder) in one transaction: newcomers are added with their flags and access rules, "
        "people already here are skipped (--update replaces their embeddings and rules), and "
        "a face that already matches somebody else is skipped. FILE must be this user's (or "
        "root's), not a link, not writable by others, in a private directory.",
    )
    imp.add_argument("file", type=Path, metavar="FILE", help="the export file to read")
    imp.add_argument(
        "--update",
        action="store_true",
        help="replace the embeddings, flags and access rules of people already enrolled here",
    )
    imp.add_argument(
        "--dry-run", action="store_true", help="say what would be done; change nothing"
    )
    add_gallery_option(imp)
    imp.set_defaults(func=cmd_import)


def cmd_init(args: argparse.Namespace) -> int:
    """Create the gallery if there is none; report what is there otherwise."""
    config, path = setup(args)
    manifest = load_manifest(config.embedder.model)
    existed = path.exists() and path.stat().st_size > 0
    with Gallery.open(
        path,
        fingerprint=embedder_fingerprint(manifest),
        embedding_size=int(manifest["embedding"]["size"]),
        recreate=args.force,
    ) as gallery:
        count = len(gallery.people())
    if existed:
        print(f"the gallery {path} exists already ({count} people): nothing changed")
    else:
        print(f"created an empty gallery {path}: enrol people with facegate enroll NAME PHOTO...")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write the gallery's people to ``FILE``; the gallery's own embedder is recorded.

    The gallery opens for reading whatever embedder made it (the file says which), and a
    missing one is an error: nothing is created, not even the state directory.
    """
    _, config = context.resolve_config(args)
    path = context.gallery_path(args, config, create=False)
    if args.file.exists() and path.exists() and os.path.samefile(args.file, path):
        raise GalleryError(f"{args.file} is the gallery itself: export to another file")
    with Gallery.open(path, fingerprint=None, create=False) as gallery:
        export = export_gallery(gallery)
    write_export(args.file, to_json(export), force=args.force)
    print(
        f"exported {len(export.people)} people from {path} to {args.file} (embedder "
        f"{export.fingerprint}, {export.embedding_size}-value embeddings; mode 0600: it holds "
        "biometric data)"
    )
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """Check ``FILE`` whole, then add (or with ``--update`` replace) its people in ONE
    transaction; ``--dry-run`` stops after the plan."""
    _, config = context.resolve_config(args)
    path = context.gallery_path(args, config, create=not args.dry_run)
    export = read_export(args.file)
    with components.build_embedder(config) as embedder:
        threshold, margin = components.match_settings(config, embedder)
        normalised = bool(embedder.manifest["embedding"].get("normalized", False))
        fingerprint = embedder_fingerprint(embedder.manifest)
        check_embedder(export, args.file, fingerprint, embedder.size, normalised)
        with _gallery_for_import(path, embedder, args.dry_run) as gallery:
            plan = plan_import(
                gallery,
                export,
                update=args.update,
                threshold=threshold,
                min_margin=margin,
                schedules=config.schedules,
            )
            if not args.dry_run:
                apply_import(gallery, plan)
    _print_summary(args, path, export, plan)
    return 0


def _gallery_for_import(path: Path, embedder: Embedder, dry_run: bool) -> Gallery:
    """The gallery to import into: created if none ever existed (as ``enroll`` does), except
    on a dry run, which plans against an empty stand-in and leaves the disk alone."""
    if dry_run and check_gallery_file(path, create=True) is None:
        return Gallery(MEMORY, embedder_fingerprint(embedder.manifest), embedder.size)
    return components.open_gallery(path, embedder)


def _print_summary(args: argparse.Namespace, path: Path, export: Export, plan: ImportPlan) -> None:
    """``added N, updated N, skipped N``, the names of each, why each was skipped."""
    print(
        f"{args.file}: {len(export.people)} people, exported {export.exported} by "
        f"pi-facegate {export.version} (embedder {export.fingerprint})"
    )
    added, updated, skipped = (plan.names(a) for a in (ADD, UPDATE, SKIP))
    if args.dry_run:
        counts = f"would add {len(added)}, update {len(updated)}, skip {len(skipped)}"
        print(f"dry run, nothing changed: {path}: {counts}")
    else:
        print(f"{path}: added {len(added)}, updated {len(updated)}, skipped {len(skipped)}")
    words = ("to add", "to update", "to skip") if args.dry_run else ("added", "updated", "skipped")
    for word, names in zip(words[:2], (added, updated), strict=True):
        if names:
            print(f"  {word}: {', '.join(names)}")
    for decision in plan.decisions:
        if decision.action == SKIP:
            print(f"  {words[2]} {decision.person.name}: {decision.reason}")
    for decision in plan.decisions:
        for warning in decision.warnings:
            print(f"warning: {warning}")
