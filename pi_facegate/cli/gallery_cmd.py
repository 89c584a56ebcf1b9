"""``facegate gallery init [--force]``: create an empty gallery on purpose.

A gallery is created by ``facegate enroll`` (the first person) or by this command, and by
``facegate run`` only on a first run, where none ever existed. Once a gallery has existed
its marker remembers it (:mod:`pi_facegate.storage.gallery_marker`), and a missing one is
refused everywhere: restore it from a backup, or start empty with ``gallery init
--force``. An existing gallery is never touched, with or without ``--force``: move it
aside first to start over. No model is loaded (the embedder's manifest names it).
"""

from __future__ import annotations

import argparse

from pi_facegate.cli.common import add_gallery_option, setup
from pi_facegate.daemon.wiring import embedder_fingerprint
from pi_facegate.storage.gallery import Gallery
from pi_facegate.vision.manifest import load_manifest


def register(subparsers, parents) -> None:
    """Add ``gallery init [--force] [--gallery PATH]``."""
    p = subparsers.add_parser("gallery", help="create the gallery")
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
