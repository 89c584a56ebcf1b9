"""``facegate identify IMAGE...``: who is in these photos?"""

from __future__ import annotations

import argparse
from pathlib import Path

from pi_facegate.cli.common import (
    add_gallery_option,
    add_json_option,
    analyse_photos,
    box_list,
    print_json,
    setup,
)
from pi_facegate.daemon import wiring as components


def register(subparsers, parents) -> None:
    p = subparsers.add_parser(
        "identify",
        parents=parents,
        help="name the faces in photos",
        description="For every face in each photo: its box, the enrolled person or 'unknown', "
        "the distance to them and the margin over the next person.",
    )
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    add_gallery_option(p)
    add_json_option(p)
    p.set_defaults(func=identify)


def identify(args: argparse.Namespace) -> int:
    config, gallery_path = setup(args)
    embedder = components.build_embedder(config)
    with components.open_gallery(gallery_path, embedder, create=False) as gallery:
        index = gallery.index()
    # the door's threshold for this gallery's size (an explicit matching.threshold wins)
    threshold, margin = components.gallery_match_settings(config, embedder, index)
    recognizer = components.build_recognizer(config, embedder=embedder)
    try:
        results = analyse_photos(recognizer, config, args.images)
        for r in results:
            recognizer.match(r.analyses, index, threshold, margin)
    finally:
        recognizer.close()
    report = [_photo_report(r) for r in results]
    if args.json:
        print_json(report)
    else:
        for photo in report:
            _print_photo(photo)
    return 1 if any(p["error"] for p in report) else 0


def _photo_report(result) -> dict:
    faces = []
    for a in result.analyses:
        m = a.match
        granted = bool(m and m.accepted and m.enabled and not m.pending)
        faces.append(
            {
                "box": box_list(a),
                "score": round(a.face.score, 3),
                "name": m.name if granted else "unknown",
                "nearest": m.name if m else None,
                "distance": None if m is None else round(m.distance, 4),
                "margin": None if m is None or m.margin is None else round(m.margin, 4),
                "reason": a.quality.reason
                or (None if granted else (m.reason if m else "empty gallery")),
            }
        )
    return {"image": str(result.path), "error": result.error, "faces": faces}


def _print_photo(photo: dict) -> None:
    if photo["error"]:
        print(f"{photo['image']}: error: {photo['error']}")
        return
    if not photo["faces"]:
        print(f"{photo['image']}: no face")
    for f in photo["faces"]:
        x, y, w, h = f["box"]
        dist = "-" if f["distance"] is None else f"{f['distance']:.3f}"
        margin = "-" if f["margin"] is None else f"{f['margin']:.3f}"
        why = (
            f" ({f['reason']}, nearest {f['nearest']})"
            if f["name"] == "unknown" and f["reason"]
            else ""
        )
        print(
            f"{photo['image']}: {f['name']} at {x},{y} {w}x{h} distance {dist} margin {margin}{why}"
        )
