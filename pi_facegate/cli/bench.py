"""``facegate bench``: how fast is the pipeline here, and how does face_recognition compare?

Runs real frames through the door's per-frame work and prints per-stage milliseconds,
frames per second, CPU time, peak memory, model costs and a 100,000-embedding gallery
search; ``--peer face_recognition`` runs the same frames through that library too. The
gallery file is never touched: ``--enrol`` photos go into an in-memory gallery.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pi_facegate.cli import context
from pi_facegate.devtools import bench
from pi_facegate.exc import UsageError


def register(subparsers, parents) -> None:
    p = subparsers.add_parser(
        "bench",
        parents=parents,
        help="measure the pipeline's speed (optionally against face_recognition)",
        description="Time detect, align, embed, match and decision on real frames, per stage and "
        "per frame; report model sizes, parameters and MACs, and a gallery search. Without "
        "--frames the Hamilton clip of the shared face data is used, with Lin-Manuel Miranda "
        "enrolled from his photo.",
    )
    p.add_argument(
        "--frames", type=Path, metavar="PATH", help="a video file, an image or an image folder"
    )
    p.add_argument(
        "--size", type=_size, metavar="WxH", help="letterbox every frame to this size, e.g. 640x480"
    )
    p.add_argument("--peer", choices=bench.PEERS, help="also run this library on the same frames")
    p.add_argument(
        "--json", type=Path, metavar="FILE", help="write the full report as JSON ('-': stdout)"
    )
    p.add_argument(
        "--enrol",
        action="append",
        type=Path,
        metavar="IMAGE",
        help="a photo of one person to enrol in both pipelines (repeatable, each with --name)",
    )
    p.add_argument(
        "--name", action="append", metavar="NAME", help="the name for each --enrol photo"
    )
    p.add_argument(
        "--threads",
        type=_positive,
        metavar="N",
        help="interpreter threads of the embedder and the LiteRT detector (default: config)",
    )
    p.add_argument(
        "--warmup",
        type=_not_negative,
        default=3,
        metavar="N",
        help="untimed frames first (default 3)",
    )
    p.add_argument("--max-frames", type=_positive, metavar="N", help="time at most N frames")
    p.add_argument(
        "--search-size",
        type=_not_negative,
        default=bench.SEARCH_EMBEDDINGS,
        metavar="N",
        help=f"embeddings in the gallery search test (default {bench.SEARCH_EMBEDDINGS:,}; 0: skip)",
    )
    p.add_argument(
        "--strangers",
        type=_not_negative,
        default=0,
        metavar="N",
        help="random people (5 embeddings each) added to the run's gallery, to time matching "
        "at that size; they never match a real face (default 0)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    _, config = context.resolve_config(args)
    options = bench.BenchOptions(
        frames=args.frames,
        size=args.size,
        max_frames=args.max_frames,
        warmup=args.warmup,
        threads=args.threads,
        references=_references(args),
        peer=args.peer,
        search_embeddings=args.search_size,
        strangers=args.strangers,
    )
    to_stdout = args.json is not None and str(args.json) == "-"
    report = bench.run_bench(config, options, progress=lambda line: print(line, file=sys.stderr))
    text = json.dumps(report, indent=2)
    if to_stdout:
        print(text)
        return 0
    if args.json is not None:
        args.json.write_text(text + "\n")
    print(bench.format_report(report))
    return 0


def _references(args: argparse.Namespace) -> tuple[bench.Reference, ...] | None:
    photos, names = args.enrol or [], args.name or []
    if len(photos) != len(names):
        raise UsageError(
            f"give one --name for each --enrol photo ({len(photos)} photos, {len(names)} names)"
        )
    if not photos:
        return None
    return tuple(bench.Reference(name, photo) for name, photo in zip(names, photos, strict=True))


def _size(text: str) -> tuple[int, int]:
    try:
        return bench.parse_size(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _not_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value
