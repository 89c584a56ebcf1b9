"""``facegate enroll NAME IMAGE...``: add a person to the gallery from photos.

Every photo must show exactly one usable face; a photo that does not is rejected with its
reason and the others are still used. Nothing is stored unless at least one photo is
usable, and the person is stored in one transaction (never a person without embeddings).
A face that already matches somebody else is refused (``--force`` overrides), so one
person cannot quietly get a second identity. The photos of one call must show one person
(every photo linked to the others by matches within the threshold), and ``--update`` photos
must be recognised as the person being updated: neither is overridable.
"""

from __future__ import annotations

import argparse

import numpy as np

from pi_facegate.cli.common import analyse_photos, print_json, setup
from pi_facegate.core.capture import lookalike, update_mismatch
from pi_facegate.daemon import wiring as components
from pi_facegate.exc import (
    DuplicatePersonError,
    EnrolmentError,
    NoFaceError,
    PersonNotFoundError,
    UsageError,
)


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
    _refuse_several_people(vectors, [v["image"] for v in verdicts if v["accepted"]], threshold)
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
        index = gallery.index()
        # the checks use the threshold the door applies to this gallery now
        door_threshold, _ = components.gallery_match_settings(config, embedder, index)
        if args.update:
            mismatch = update_mismatch(index, vectors, door_threshold, margin, person.name)
            if mismatch is not None:
                raise EnrolmentError(f"nothing stored: {mismatch}")
        if not args.force:
            _refuse_lookalikes(index, vectors, args.name, door_threshold, margin)
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
    """Raise if any new face would be recognised as somebody other than ``name`` (the one
    lookalike rule, :func:`~pi_facegate.core.capture.lookalike`)."""
    found = lookalike(index, vectors, threshold, margin, name)
    if found is not None:
        other, distance = found
        raise DuplicatePersonError(
            f"this face already matches {other!r} (distance {distance:.3f}); "
            "nothing stored. Use --force if they really are different people"
        )


def _refuse_several_people(vectors: np.ndarray, images: list[str], threshold: float) -> None:
    """Raise unless the photos' faces form one group linked by matches within ``threshold``.

    Linked, not all pairs: two photos of one person can be farther apart than the threshold
    (another decade, other light) and still be joined through a third. Three strangers under
    one name are never linked.
    """
    count = len(vectors)
    if count < 2:
        return
    distances = np.linalg.norm(vectors[:, None, :] - vectors[None, :, :], axis=2)
    group, frontier = {0}, [0]
    while frontier:
        i = frontier.pop()
        for j in np.flatnonzero(distances[i] <= threshold):
            if int(j) not in group:
                group.add(int(j))
                frontier.append(int(j))
    if len(group) < count:
        apart = [images[i] for i in range(count) if i not in group]
        raise EnrolmentError(
            f"nothing stored: the photos show more than one person ({', '.join(apart)} "
            f"match none of {images[0]} and its group within {threshold:g})"
        )
