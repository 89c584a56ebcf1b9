"""``facegate eval``: measure the real pipeline (detector + aligner + embedder + matcher).

``eval pairs`` is verification on LFW-layout data (or deepface's ``master.csv``), with the
LFW protocol's 10-fold accuracy; ``eval identify`` is open-set identification on identity
folders, with some people held out entirely as strangers who must be rejected. Both print a
table, can write a JSON report and a ROC plot, and show progress on stderr.
"""

from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path

import cv2
import numpy as np

from pi_facegate.cli import eval_liveness, eval_strangers
from pi_facegate.cli.photo_embedder import PhotoEmbedder
from pi_facegate.cli.progress import Progress
from pi_facegate.cli.table import format_table
from pi_facegate.core.matcher import search
from pi_facegate.devtools import evaluation
from pi_facegate.exc import FacegateError
from pi_facegate.storage.gallery import Gallery

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".pgm", ".bmp", ".gif", ".tif", ".tiff", ".webp", ""}


def register(subparsers, parents) -> None:
    p = subparsers.add_parser("eval", help="measure accuracy on a labelled photo set")
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)

    pairs = kinds.add_parser("pairs", parents=parents, help="verification on LFW-style pairs")
    pairs.add_argument(
        "root", type=Path, metavar="ROOT", help="LFW layout: ROOT/<Name>/<Name>_0001.jpg"
    )
    pairs.add_argument(
        "--pairs", type=Path, help="pairs.txt (default ROOT/pairs.txt) or a master.csv"
    )
    _common(pairs)
    pairs.set_defaults(func=eval_pairs)

    ident = kinds.add_parser(
        "identify", parents=parents, help="open-set identification on identity folders"
    )
    ident.add_argument(
        "root",
        type=Path,
        metavar="ROOT",
        help="ROOT/<person>/<images>, or one folder with --identities",
    )
    ident.add_argument("--identities", type=Path, help="CSV of file,identity (relative to ROOT)")
    ident.add_argument(
        "--identity-pattern",
        help="regex whose first match in a file name is its identity, e.g. 'subject\\d+'",
    )
    ident.add_argument(
        "--enrol", type=int, default=3, metavar="K", help="photos enrolled per person (default 3)"
    )
    ident.add_argument(
        "--strangers",
        type=float,
        default=0.2,
        metavar="FRACTION",
        help="people held out (default 0.2)",
    )
    ident.add_argument("--seed", type=int, default=0)
    _common(ident)
    ident.set_defaults(func=eval_identify)

    eval_strangers.register(kinds, parents)
    eval_liveness.register(kinds, parents)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", type=Path, metavar="FILE", help="write the report as JSON")
    p.add_argument("--plot", type=Path, metavar="FILE.png", help="write a ROC plot")
    p.add_argument("--threads", type=int, help="embedder threads (default: config)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def eval_pairs(args: argparse.Namespace) -> int:
    pairs_file = args.pairs or args.root / "pairs.txt"
    if not pairs_file.is_file():
        raise FacegateError(f"no pairs file at {pairs_file}")
    try:
        if pairs_file.suffix == ".csv":
            pairs, folds = evaluation.parse_csv_pairs(pairs_file, args.root)
        else:
            pairs, folds = evaluation.parse_lfw_pairs(pairs_file, args.root)
    except (ValueError, KeyError) as exc:
        raise FacegateError(f"cannot read pairs file: {exc}") from exc
    images = sorted({p.left for p in pairs} | {p.right for p in pairs})
    pe = PhotoEmbedder(args)
    progress = Progress(len(images), "embedding", not args.quiet)
    vectors = {}
    try:
        for path in images:
            vectors[path] = pe.embed(path)
            progress.step()
    finally:
        pe.close()
    distances = np.array([np.linalg.norm(vectors[p.left] - vectors[p.right]) for p in pairs])
    same = np.array([p.same for p in pairs])
    pe.threshold = pe.rule.choose(1).threshold  # 1:1, as the door with one person enrolled
    report = evaluation.verification_report(distances, same, folds, pe.threshold)
    report.update(
        {
            "images": len(images),
            "no_face": len(pe.no_face),
            "no_face_images": pe.no_face,
            "embedder": pe.embedder.manifest.name,
            "pairs_file": str(pairs_file),
        }
    )
    _print_table(
        "verification",
        {
            "pairs": report["pairs"],
            "images": report["images"],
            "no face (centred fallback)": report["no_face"],
            "accuracy 10-fold": f"{100 * report['accuracy_10fold']:.2f} % ± {100 * report['accuracy_10fold_std']:.2f}",
            f"accuracy at default threshold {pe.threshold:.2f}": f"{100 * report['accuracy_at_default_threshold']:.2f} %",
            "TAR @ FAR 1e-2": _pct(report["tar_at_far"]["1e-2"]),
            "TAR @ FAR 1e-3": _pct(report["tar_at_far"]["1e-3"]),
            "best threshold (all pairs)": f"{report['best_threshold_all_pairs']:.3f}",
        },
    )
    _write_outputs(args, report, distances, same)
    return 0


def load_identities(args: argparse.Namespace) -> dict[str, list[Path]]:
    """identity -> image paths, from folders, a CSV or a file-name pattern."""
    root = args.root
    people: dict[str, list[Path]] = {}
    if args.identities:
        with open(args.identities, newline="") as fh:
            for row in csv.reader(fh):
                if len(row) >= 2 and (root / row[0]).is_file():
                    people.setdefault(row[1], []).append(root / row[0])
    elif args.identity_pattern:
        pattern = re.compile(args.identity_pattern)
        for path in sorted(p for p in root.iterdir() if p.is_file()):
            m = pattern.search(path.name)
            if m:
                people.setdefault(m.group(0), []).append(path)
    else:
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            files = sorted(
                f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
            )
            if files:
                people[folder.name] = files
    if len(people) < 2:
        raise FacegateError(f"{root}: found {len(people)} identities; need at least 2")
    return {k: sorted(v) for k, v in sorted(people.items())}


def eval_identify(args: argparse.Namespace) -> int:
    people = load_identities(args)
    rng = np.random.default_rng(args.seed)
    names = list(people)
    n_strangers = int(round(args.strangers * len(names)))
    strangers = (
        set(rng.choice(names, size=n_strangers, replace=False).tolist()) if n_strangers else set()
    )
    enrol, probes = {}, []
    for name in names:
        files = list(people[name])
        rng.shuffle(files)
        if name in strangers:
            probes += [(f, None) for f in files]
        elif len(files) > args.enrol:
            enrol[name] = files[: args.enrol]
            probes += [(f, name) for f in files[args.enrol :]]
    pe = PhotoEmbedder(args)
    total = sum(len(v) for v in enrol.values()) + len(probes)
    progress = Progress(total, "embedding", not args.quiet)
    try:
        with Gallery.open(
            ":memory:", fingerprint="eval", embedding_size=pe.embedder.size
        ) as gallery:
            for name, files in enrol.items():
                vecs = []
                for f in files:
                    vecs.append(pe.embed(f))
                    progress.step()
                gallery.add_person(name, np.stack(vecs))
            index = gallery.index()
            vectors = []
            for f, _ in probes:
                vectors.append(pe.embed(f))
                progress.step()
    finally:
        pe.close()
    pe.threshold = pe.rule.for_index(index).threshold  # the door's, for this many people
    matches = search(index, np.stack(vectors), pe.threshold, pe.min_margin)
    report = identification_report(matches, [truth for _, truth in probes])
    report.update(
        {
            "people": len(enrol),
            "strangers": len(strangers),
            "enrol_per_person": args.enrol,
            "seed": args.seed,
            "threshold": pe.threshold,
            "min_margin": pe.min_margin,
            "no_face": len(pe.no_face),
            "no_face_images": pe.no_face,
            "embedder": pe.embedder.manifest.name,
        }
    )
    _print_table(
        "open-set identification",
        {
            "people enrolled": report["people"],
            "strangers": report["strangers"],
            "genuine probes": report["genuine_probes"],
            "stranger probes": report["stranger_probes"],
            "no face (centred fallback)": report["no_face"],
            "rank-1": _pct(report["rank1"]),
            "genuine accept rate": _pct(report["genuine_accept_rate"]),
            "false accept rate (genuine as wrong person)": _pct(
                report["false_accept_rate_genuine"]
            ),
            "stranger accept rate": _pct(report["stranger_accept_rate"]),
            "threshold (for this many people)": f"{pe.threshold:.3f}",
        },
    )
    distances = np.array([m.distance for m in matches])
    correct = np.array([m.name == t for m, (_, t) in zip(matches, probes, strict=True)])
    _write_outputs(args, report, distances, correct)
    return 0


def identification_report(matches: list, truths: list[str | None]) -> dict:
    """Rank-1 and accept rates from matcher results and the true identities (None = stranger)."""
    genuine = [(m, t) for m, t in zip(matches, truths, strict=True) if t is not None]
    strangers = [m for m, t in zip(matches, truths, strict=True) if t is None]

    def granted(m) -> bool:
        return bool(m is not None and m.accepted)

    def rate(items) -> float | None:
        return float(np.mean(items)) if len(items) else None

    return {
        "genuine_probes": len(genuine),
        "stranger_probes": len(strangers),
        "rank1": rate([m is not None and m.name == t for m, t in genuine]),
        "genuine_accept_rate": rate([granted(m) and m.name == t for m, t in genuine]),
        "false_accept_rate_genuine": rate([granted(m) and m.name != t for m, t in genuine]),
        "stranger_accept_rate": rate([granted(m) for m in strangers]),
    }


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def _print_table(title: str, rows: dict) -> None:
    """The title, then one indented ``measure  value`` line per entry of ``rows``."""
    print(title)
    print(format_table(None, rows.items(), align="<<", indent="  "))


def _write_outputs(
    args: argparse.Namespace, report: dict, distances: np.ndarray, same: np.ndarray
) -> None:
    if args.json:
        import json

        args.json.write_text(json.dumps(report, indent=2, default=float) + "\n")
        print(f"report written to {args.json}")
    if args.plot:
        write_roc_plot(args.plot, distances, same)
        print(f"ROC plot written to {args.plot}")


def write_roc_plot(path: Path, distances: np.ndarray, same: np.ndarray) -> None:
    """A ROC curve (TAR against log FAR) drawn with OpenCV, so no plotting library is needed."""
    far, tar, _ = evaluation.roc_curve(distances, same)
    w, h, m = 640, 480, 60
    img = np.full((h, w, 3), 255, np.uint8)
    lo = -4.0
    x = m + (np.clip(np.log10(np.maximum(far, 1e-4)), lo, 0) - lo) / -lo * (w - 2 * m)
    y = h - m - tar * (h - 2 * m)
    cv2.rectangle(img, (m, m), (w - m, h - m), (0, 0, 0), 1)
    for k in range(5):
        gx = int(m + k / 4 * (w - 2 * m))
        cv2.putText(
            img,
            f"1e{int(lo) + k}",
            (gx - 15, h - m + 20),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4,
            (0, 0, 0),
            1,
        )
    for k in range(6):
        gy = int(h - m - k / 5 * (h - 2 * m))
        cv2.putText(img, f"{k / 5:.1f}", (15, gy + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    pts = np.stack([x, y], axis=1).astype(np.int32)
    cv2.polylines(img, [pts], False, (200, 60, 0), 2)
    cv2.putText(
        img,
        "ROC: true accept rate vs false accept rate (log)",
        (m, m - 20),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.5,
        (0, 0, 0),
        1,
    )
    if not cv2.imwrite(str(path), img):
        raise FacegateError(f"cannot write plot to {path}")
