"""``facegate eval strangers``: genuine and stranger accept rates as the gallery grows.

The protocol is :mod:`pi_facegate.devtools.strangers` (pooled photo sets, N people enrolled
with k photos, their other photos and one photo of everyone else as probes, several seeds);
this module reads and embeds the photos -- each once, through a cache -- and prints the
curve for the fixed threshold and for the threshold chosen for the gallery's size side by
side, as a table and optionally as JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from pi_facegate import paths
from pi_facegate.cli.photo_embedder import PhotoEmbedder
from pi_facegate.cli.progress import Progress
from pi_facegate.cli.table import format_table
from pi_facegate.daemon import wiring as components
from pi_facegate.devtools import strangers
from pi_facegate.devtools.embedding_cache import EmbeddingCache, default_cache_path
from pi_facegate.exc import FacegateError, UsageError

#: photos of two different sets closer than this are reported as possibly one person
SAME_PERSON_BELOW = 0.4


def register(kinds, parents) -> None:
    p = kinds.add_parser(
        "strangers",
        parents=parents,
        help="stranger and genuine accept rates as the gallery grows (pooled photo sets)",
        description="Pools att_faces, yalefaces, deepface_testset and "
        "face_recognition_examples (the embedder's calibration people left out), enrols N "
        "people with K photos each, probes with their other photos and one photo of every "
        "other person, and reports the curve for the fixed and the gallery-size threshold.",
    )
    p.add_argument(
        "root", type=Path, nargs="?", metavar="ROOT", help="face data root (default: shared)"
    )
    p.add_argument(
        "--sizes",
        default="10,50,200",
        metavar="N,N,...",
        help="gallery sizes; one above what the data allows is capped (default 10,50,200)",
    )
    p.add_argument("--enrol", type=int, default=3, metavar="K", help="photos per person (3)")
    p.add_argument("--seeds", type=int, default=20, metavar="S", help="seeds 0..S-1 (20)")
    p.add_argument(
        "--min-strangers",
        type=int,
        default=10,
        metavar="M",
        help="people always left out as strangers when capping a size (10)",
    )
    p.add_argument(
        "--sources",
        metavar="A,B",
        help="photo sets to pool (default: " + ",".join(strangers.SOURCES) + ")",
    )
    p.add_argument("--cache", type=Path, metavar="FILE", help="embedding cache file")
    p.add_argument("--no-cache", action="store_true", help="embed every photo afresh")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the report as JSON")
    p.add_argument("--threads", type=int, help="embedder threads (default: config)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=eval_strangers)


def eval_strangers(args: argparse.Namespace) -> int:
    sizes = _sizes(args.sizes)
    if args.enrol < 1 or args.seeds < 1 or args.min_strangers < 1:
        raise UsageError("--enrol, --seeds and --min-strangers must be at least 1")
    sources = args.sources.split(",") if args.sources else None
    if sources and set(sources) - set(strangers.SOURCES):
        unknown = ", ".join(sorted(set(sources) - set(strangers.SOURCES)))
        raise UsageError(f"unknown photo set {unknown}; known: {', '.join(strangers.SOURCES)}")
    root = args.root or paths.facedata_dir()
    pe = PhotoEmbedder(args)
    try:
        calibration = pe.embedder.manifest["embedding"].get("calibration", {})
        identities, notes = strangers.pooled_identities(
            root, exclude=calibration.get("people", []), sources=sources
        )
        if len(identities) < 2:
            raise FacegateError(f"{root}: {len(identities)} identities found; need at least 2")
        fingerprint = components.embedder_fingerprint(pe.embedder.manifest)
        vectors, rows, no_face = _embed_all(pe, identities, _cache(args, fingerprint), args.quiet)
    finally:
        pe.close()
    capped = _cap(sizes, strangers.largest_size(identities, args.enrol, args.min_strangers))
    points = strangers.strangers_curve(
        identities, vectors, rows, capped, args.enrol, range(args.seeds),
        pe.threshold, pe.rule, pe.min_margin,
    )  # fmt: skip
    report = {
        "protocol": {
            "enrol_per_person": args.enrol,
            "seeds": args.seeds,
            "face": "largest face of each photo; centred fallback when none is found",
            "identities": len(identities),
            "eligible": len(strangers.eligible(identities, args.enrol)),
            "photos": len(rows),
            "no_face": no_face,
            "sources": sorted({i.source for i in identities}),
            "left_out": list(calibration.get("people", [])),
            "notes": notes,
            "cross_source_near_matches": strangers.cross_source_near_matches(
                identities, vectors, rows, SAME_PERSON_BELOW
            ),
        },
        "embedder": pe.embedder.manifest.name,
        "min_margin": pe.min_margin,
        "false_accept_per_attempt": pe.rule.per_attempt,
        "explicit_threshold": pe.rule.fixed,
        "curve": [p.as_dict() for p in points],
    }
    _print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"report written to {args.json}")
    return 0


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"--sizes takes whole numbers separated by commas, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise UsageError(f"--sizes must be whole numbers >= 1, got {text!r}")
    return sizes


def _cap(sizes: list[int], largest: int) -> list[tuple[int, int]]:
    """``(used, asked)`` per size: a size the data cannot fill becomes the largest it can."""
    if largest < 1:
        raise FacegateError("not enough people with enough photos for any gallery")
    capped: list[tuple[int, int]] = []
    for asked in sizes:
        used = min(asked, largest)
        if used not in [u for u, _ in capped]:
            capped.append((used, asked))
    return capped


def _cache(args: argparse.Namespace, fingerprint: str) -> EmbeddingCache:
    if args.no_cache:
        return EmbeddingCache(None, fingerprint)
    return EmbeddingCache(args.cache or default_cache_path(fingerprint), fingerprint)


def _embed_all(
    pe, identities: list[strangers.Identity], cache: EmbeddingCache, quiet: bool
) -> tuple[np.ndarray, dict[Path, int], int]:
    """``(vectors, row of each photo, photos without a face)``: every photo once."""
    photos = [p for i in identities for p in i.photos]
    progress = Progress(len(photos), "embedding", not quiet)
    vectors, no_face = [], 0
    try:
        for photo in photos:
            cached = cache.get(photo, "largest")
            if cached is None:
                before = len(pe.no_face)
                vector = pe.embed(photo, largest=True)
                cached = (vector, len(pe.no_face) == before)
                cache.put(photo, "largest", *cached)
            vectors.append(cached[0])
            no_face += int(not cached[1])
            progress.step()
    finally:
        progress.close()
        cache.save()
    return np.stack(vectors), {p: k for k, p in enumerate(photos)}, no_face


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def _print_report(report: dict) -> None:
    proto = report["protocol"]
    print(
        f"strangers at scale: {proto['identities']} people from {', '.join(proto['sources'])} "
        f"({proto['eligible']} with more than {proto['enrol_per_person']} photos), "
        f"{proto['photos']} photos, {proto['seeds']} seeds, enrolled with "
        f"{proto['enrol_per_person']} photos each"
    )
    if proto["left_out"]:
        print(f"left out (the embedder's calibration people): {', '.join(proto['left_out'])}")
    for a, b, distance in proto["cross_source_near_matches"]:
        print(f"warning: {a} and {b} may be one person (photos {distance:.3f} apart)")
    headers = (
        "N", "genuine", "strangers", "threshold", "genuine accept", "wrong person",
        "strangers accepted",
    )  # fmt: skip
    lines = []
    for point in report["curve"]:
        fixed, size = point["fixed"], point["gallery_size"]
        n = f"{point['people']}" + (
            "" if point["asked"] == point["people"] else f" ({point['asked']} asked)"
        )
        lines.append((
            n, point["genuine_probes"], point["stranger_probes"],
            f"{fixed['threshold']:.3f} / {size['threshold']:.3f}",
            f"{_pct(fixed['genuine_accept'])} / {_pct(size['genuine_accept'])}",
            f"{_pct(fixed['wrong_person'])} / {_pct(size['wrong_person'])}",
            f"{fixed['strangers_accepted_count']} / {size['strangers_accepted_count']} "
            f"({_pct(fixed['strangers_accepted'])} / {_pct(size['strangers_accepted'])})",
        ))  # fmt: skip
    print(format_table(headers, lines, align="<>>>>>>"))
    print(
        "each cell: fixed threshold / threshold for the gallery's size "
        f"(false accepts per attempt <= {report['false_accept_per_attempt']:g}); "
        f"margin {report['min_margin']:g}; single photos, no vote over frames"
    )
