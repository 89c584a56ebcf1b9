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
from typing import Any

from pi_facegate.cli import context
from pi_facegate.cli.table import format_table
from pi_facegate.devtools.bench.frames import Reference, parse_size
from pi_facegate.devtools.bench.gallery_search import SEARCH_EMBEDDINGS
from pi_facegate.devtools.bench.peer import PEERS
from pi_facegate.devtools.bench.pipeline import STAGES
from pi_facegate.devtools.bench.run import BenchOptions, resolve_inputs, run_bench
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
    p.add_argument("--peer", choices=PEERS, help="also run this library on the same frames")
    p.add_argument(
        "--compare-embedder",
        metavar="MODEL",
        help="also time our pipeline with this embedder (a manifest name or path), the two "
        "taking each frame in turn so a busy machine loads both alike; reports the ratios",
    )
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
        default=SEARCH_EMBEDDINGS,
        metavar="N",
        help=f"embeddings in the gallery search test (default {SEARCH_EMBEDDINGS:,}; 0: skip)",
    )
    p.add_argument(
        "--strangers",
        type=_not_negative,
        default=0,
        metavar="N",
        help="random people (5 embeddings each) added to the run's gallery, to time matching "
        "at that size; they never match a real face (default 0)",
    )
    p.add_argument(
        "--soak",
        type=float,
        metavar="MINUTES",
        help="instead of timing: run the real daemon on the clip in a loop this long and "
        "report the growth of its memory and open files per hour",
    )
    p.add_argument(
        "--interval",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="with --soak: seconds between two samples (default 60)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.soak is not None:
        return run_soak(args)
    _, config = context.resolve_config(args)
    options = BenchOptions(
        frames=args.frames,
        size=args.size,
        max_frames=args.max_frames,
        warmup=args.warmup,
        threads=args.threads,
        references=_references(args),
        peer=args.peer,
        search_embeddings=args.search_size,
        strangers=args.strangers,
        compare_embedder=args.compare_embedder,
    )
    to_stdout = args.json is not None and str(args.json) == "-"
    report = run_bench(config, options, progress=lambda line: print(line, file=sys.stderr))
    text = json.dumps(report, indent=2)
    if to_stdout:
        print(text)
        return 0
    if args.json is not None:
        args.json.write_text(text + "\n")
    print(format_report(report))
    return 0


def run_soak(args: argparse.Namespace) -> int:
    """``--soak``: the daemon on the clip in a loop; RSS and descriptors per hour."""
    from pi_facegate.devtools.bench.soak import soak

    if not 0 < args.soak <= 24 * 60 or not 1 <= args.interval <= 3600:
        raise UsageError("--soak takes 0..1440 minutes and --interval 1..3600 seconds")
    options = resolve_inputs(BenchOptions(frames=args.frames, references=_references(args)))
    if len(options.references) != 1:
        raise UsageError("--soak enrols one person: give --frames with one --enrol and --name")
    reference = options.references[0]
    say = lambda line: print(line, file=sys.stderr)  # noqa: E731
    say(f"soaking the daemon on {options.frames} for {args.soak:g} min")
    report = soak(options.frames, reference.path, reference.name, args.soak, args.interval, say)
    data = report.as_dict()
    if args.json is not None:
        text = json.dumps(data, indent=2)
        print(text) if str(args.json) == "-" else args.json.write_text(text + "\n")
    rss, fds = data["rss_mib_per_hour"], data["fds_per_hour"]
    first, last = report.samples[0], report.samples[-1]
    print(
        f"soak {last.seconds / 60:.1f} min, {len(report.samples)} samples, {report.grants} grants; "
        f"RSS {first.rss_mib:.1f} -> {last.rss_mib:.1f} MiB, descriptors {first.fds} -> {last.fds}"
    )
    slope = "n/a (too few samples)" if rss is None else f"{rss:+.2f} MiB/h, {fds:+.2f} fds/h"
    print(f"after the warm-up (first {100 * data['warmup_share']:.0f} %): {slope}")
    return 0 if report.exit_code == 0 else 1


def format_report(report: dict[str, Any]) -> str:
    """The report of :func:`~pi_facegate.devtools.bench.run.run_bench` as text for a terminal.

    Three tables (our stages, the peer's stages, the models) between lines of prose; every
    millisecond figure is a median or a 95th percentile over the timed frames.
    """
    ours, peer = report["ours"], report["peer"]
    source = report["source"]
    s = report["settings"]
    lines = [
        f"frames: {report['frames']} of {source['path']} at {source['size'][0]}x{source['size'][1]}"
        f" ({ours['frames_with_faces']} with a face, {ours['one_face']['frames']} with one usable face)",
        f"gallery: {report['gallery_people']} people ({', '.join(report['enrolled']) or 'nobody'} enrolled); "
        f"detector {s['detector_backend']} {s['detector_model']} (detect width {s['detect_width'] or 'full'},"
        f" {s['detector_threads']} thread(s)); embedder {s['embedder_model']} ({s['embedder_threads']} thread(s))",
        "",
    ]
    rows = [_stage_row(st, ours["stages"][st], ours["one_face"]["stages"][st]) for st in STAGES]
    rows.append(_stage_row("whole frame", ours["ms_per_frame"], ours["one_face"]["ms_per_frame"]))
    header = ("pi-facegate, ms", "median", "p95", "one face: median", "p95")
    lines.append(format_table(header, rows, align="<>>>>"))
    lines.append(
        f"{ours['fps']} frames/s, CPU {ours['cpu_ms_per_frame']} ms/frame "
        f"({ours['cpu_utilisation']} cores busy), peak RSS {ours['peak_rss_mb']} MiB"
    )
    if peer is not None:
        rows = [_stage_row(stage, peer["stages"][stage]) for stage in ("detect", "embed", "match")]
        rows.append(_stage_row("whole frame", peer["ms_per_frame"]))
        header = (f"{peer['name']} {peer['version']}, ms", "median", "p95")
        lines += ["", format_table(header, rows, align="<>>")]
        lines.append(f"{peer['fps']} frames/s, CPU {peer['cpu_ms_per_frame']} ms/frame")
        a = report["agreement"]
        lines += [
            "",
            f"peer / ours (median frame): {report['ratio_peer_over_ours']}x; "
            f"on one-face frames: {report['ratio_peer_over_ours_one_face']}x",
            f"same identities in {a['agree']} of {a['frames']} frames ({a['rate']:.1%}): both recognised "
            f"{a['both']}, only ours {a['ours_only']}, only {peer['name']} {a['peer_only']}, neither {a['neither']}",
        ]
    if report.get("compare"):
        lines += ["", *_compare_lines(report, s["embedder_model"])]
    costs = list(report["models"].values())
    if report.get("compare"):
        costs.append(report["compare"]["model"])
    models = [
        (m["file"], f"{m['file_bytes'] / 1e6:.2f}", f"{m['params']:,}", f"{m['macs'] / 1e6:.1f}")
        for m in costs
    ]
    lines += ["", format_table(("model", "MB", "params", "MMACs"), models, align="<>>>")]
    search_report = report.get("gallery_search")
    if search_report:
        ms = search_report["ms"]
        lines.append(
            f"\ngallery search, {search_report['embeddings']:,} embeddings of {search_report['people']:,} people: "
            f"median {ms['median']} ms, p95 {ms['p95']} ms"
        )
    return "\n".join(lines)


def _compare_lines(report: dict[str, Any], ours_name: str) -> list[str]:
    """The two embedders side by side: one-face medians of align, embed, whole frame."""
    compare = report["compare"]
    ours, other = report["ours"]["one_face"], compare["pipeline"]["one_face"]
    ratio = compare["ratio_other_over_ours"]
    rows = []
    for label, key, stage in (
        ("align", "one_face_align", "align"),
        ("embed", "one_face_embed", "embed"),
        ("whole frame", "one_face_frame", None),
    ):
        a = ours["ms_per_frame"] if stage is None else ours["stages"][stage]
        b = other["ms_per_frame"] if stage is None else other["stages"][stage]
        rows.append([label, f"{a['median']:.2f}", f"{b['median']:.2f}", f"{ratio[key]}x"])
    header = ("one-face frames, median ms", ours_name, compare["embedder_model"], "ratio")
    return [
        format_table(header, rows, align="<>>>"),
        f"same frames, taken in turn; mean over all frames: embed {ratio['embed_mean']}x, "
        f"whole frame {ratio['frame_mean']}x",
    ]


def _stage_row(
    label: str, stats: dict[str, float], one: dict[str, float] | None = None
) -> list[str]:
    """A table row: the label, median and p95 ms, and those of one-face frames if given."""
    row = [label, f"{stats['median']:.2f}", f"{stats['p95']:.2f}"]
    if one is not None:
        row += [f"{one['median']:.2f}", f"{one['p95']:.2f}"]
    return row


def _references(args: argparse.Namespace) -> tuple[Reference, ...] | None:
    photos, names = args.enrol or [], args.name or []
    if len(photos) != len(names):
        raise UsageError(
            f"give one --name for each --enrol photo ({len(photos)} photos, {len(names)} names)"
        )
    if not photos:
        return None
    return tuple(Reference(name, photo) for name, photo in zip(names, photos, strict=True))


def _size(text: str) -> tuple[int, int]:
    try:
        return parse_size(text)
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
