"""``facegate enroll NAME IMAGE...``: add a person to the gallery from photos.

Every photo must show exactly one usable face; a photo that does not is rejected with its
reason and the others are still used. Nothing is stored unless at least one photo is
usable, and the person is stored in one transaction (never a person without embeddings).
A face that already matches somebody else is refused (``--force`` overrides), so one
person cannot quietly get a second identity.
"""

from __future__ import annotations

import argparse

import numpy as np

from pi_facegate.cli.common import analyse_photos, print_json, setup
from pi_facegate.core.matcher import search
from pi_facegate.daemon import wiring as components
from pi_facegate.exc import DuplicatePersonError, NoFaceError, PersonNotFoundError, UsageError


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
    """``enroll NAME IMAGE... [--update] [--force] [--disabled] [--note TEXT]``."""
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
        raise NoFaceError(
            f"nothing stored: none of the {len(verdicts)} photos shows one usable face"
        )
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
                raise DuplicatePersonError(
                    f"{args.name!r} is enrolled already: use --update to add photos"
                )
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


def _refuse_lookalikes(
    index, vectors: np.ndarray, name: str, threshold: float, margin: float
) -> None:
    """Raise if any new face would be recognised as somebody other than ``name``."""
    for match in search(index, vectors, threshold, margin):
        if match is not None and match.recognised and match.name != name:
            raise DuplicatePersonError(
                f"this face already matches {match.name!r} (distance {match.distance:.3f}); "
                "nothing stored. Use --force if they really are different people"
            )
