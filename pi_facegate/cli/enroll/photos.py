"""``facegate enroll NAME IMAGE...``: add a person to the gallery from photos.

Every photo must show exactly one usable face; a photo that does not is rejected with its
reason and the others are still used. Nothing is stored unless at least one photo is
usable, and the person is stored in one transaction (never a person without embeddings).
A face that already matches somebody else is refused (``--force`` overrides), so one
person cannot quietly get a second identity.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pi_facegate.cli.common import (
    add_gallery_option,
    add_json_option,
    analyse_photos,
    print_json,
    setup,
)
from pi_facegate.core.matcher import search
from pi_facegate.daemon import wiring as components
from pi_facegate.exc import DuplicatePersonError, NoFaceError, PersonNotFoundError, UsageError


def register(subparsers, parents) -> None:
    p = subparsers.add_parser(
        "enroll",
        parents=parents,
        help="enrol a person from photos, or at the door",
        description="Enrol NAME from photos that each show exactly one face "
        "(facegate enroll NAME IMAGE...). At the door: 'facegate enroll arm --name NAME' lets the "
        "next press of the enrolment button capture that person; 'enroll status' and "
        "'enroll cancel' show and end an armed window; 'enroll NAME --camera' captures from this "
        "machine's camera with progress in the terminal.",
    )
    p.add_argument("name", metavar="NAME", help="the person's name, or one of: " + ", ".join(DOOR_ACTIONS))
    p.add_argument("images", nargs="*", type=Path, metavar="IMAGE")
    p.add_argument("--camera", action="store_true", help="capture from the configured camera instead of photos")
    p.add_argument("--update", action="store_true", help="add these photos to an existing person")
    p.add_argument("--force", action="store_true", help="store even if the face matches another person")
    p.add_argument("--disabled", action="store_true", help="store the person without access for now")
    p.add_argument("--note", default="", help="free text kept with the person")
    door = p.add_argument_group(
        "enrolment at the door",
        "Run these as the service user, whose state directory holds the arming file: "
        'sudo -u facegate facegate enroll arm --name "Alice" --timeout 5m',
    )
    door.add_argument(
        "--name",
        dest="arm_name",
        metavar="NAME",
        help="with 'arm': the person the next button press enrols (with --update: adds views to)",
    )
    door.add_argument(
        "--timeout",
        metavar="DURATION",
        help="with 'arm': how long the arming lasts, e.g. 90s, 5m, 1h (default 5m; "
        "at most enrolment.max_armed_minutes)",
    )
    door.add_argument(
        "--replay",
        type=Path,
        metavar="PATH",
        help="with --camera: read this video file or image folder instead of the camera",
    )
    add_gallery_option(p)
    add_json_option(p)
    p.set_defaults(func=enroll)


# `facegate enroll arm|status|cancel` (door enrolment, pi_facegate.cli.enroll.camera) share the
# command with photo enrolment; these words are therefore not usable as names here.
DOOR_ACTIONS = ("arm", "status", "cancel")


def photo_verdicts(results) -> tuple[list[dict], list[np.ndarray]]:
    """Per-photo verdicts, and the embeddings of the usable photos."""
    verdicts, embeddings = [], []
    for r in results:
        usable = [a for a in r.analyses if a.usable]
        if r.error:
            reason = r.error
        elif not r.analyses:
            reason = "no face found"
        elif len(r.analyses) > 1:
            reason = f"{len(r.analyses)} faces found; the photo must show exactly one"
        elif not usable:
            reason = f"face {r.analyses[0].quality.reason}"
        else:
            reason = None
            embeddings.append(usable[0].embedding)
        verdicts.append({"image": str(r.path), "accepted": reason is None, "reason": reason})
    return verdicts, embeddings


def enroll(args: argparse.Namespace) -> int:
    if args.name in DOOR_ACTIONS or args.camera:
        from pi_facegate.cli.enroll import camera as enrolment

        return enrolment.dispatch(args)
    if not args.images:
        raise UsageError("give at least one IMAGE (or --camera to capture from the camera)")
    config, gallery_path = setup(args)
    embedder = components.build_embedder(config)
    threshold, margin = components.match_settings(config, embedder)
    recognizer = components.build_recognizer(config, embedder=embedder)
    try:
        results = analyse_photos(recognizer, config, args.images)
    finally:
        recognizer.close()
    verdicts, embeddings = photo_verdicts(results)
    for v in verdicts:
        if not args.json:
            print(f"{v['image']}: " + ("ok" if v["accepted"] else f"rejected: {v['reason']}"))
    if not embeddings:
        raise NoFaceError(f"nothing stored: none of the {len(verdicts)} photos shows one usable face")
    vectors = np.stack(embeddings)
    with components.open_gallery(gallery_path, embedder) as gallery:
        if args.update:
            person = gallery.get(args.name)  # PersonNotFoundError if absent
        else:
            try:
                gallery.get(args.name)
            except PersonNotFoundError:
                pass
            else:
                raise DuplicatePersonError(f"{args.name!r} is enrolled already: use --update to add photos")
        if not args.force:
            _refuse_lookalikes(gallery.index(), vectors, args.name, threshold, margin)
        if args.update:
            gallery.add_embeddings(person.name, vectors)
            stored = gallery.get(person.name)
        else:
            stored = gallery.add_person(
                args.name, vectors, enabled=not args.disabled, note=args.note, source="photos"
            )
    summary = {"name": stored.name, "stored_embeddings": len(embeddings), "photos": verdicts}
    if args.json:
        print_json(summary)
    else:
        print(f"enrolled {stored.name}: {len(embeddings)} of {len(verdicts)} photos used")
    return 0


def _refuse_lookalikes(index, vectors: np.ndarray, name: str, threshold: float, margin: float) -> None:
    """Raise if any new face would be recognised as somebody other than ``name``."""
    for match in search(index, vectors, threshold, margin):
        if match is not None and match.recognised and match.name != name:
            raise DuplicatePersonError(
                f"this face already matches {match.name!r} (distance {match.distance:.3f}); "
                "nothing stored. Use --force if they really are different people"
            )
