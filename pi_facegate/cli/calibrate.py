"""``facegate calibrate ROOT [--far F] [--model NAME] [--write]``: the threshold and margin of
any embedder (a converted FaceNet, or the bundled model) from a labelled photo set.

Every photo (largest face, the door's pipeline) is embedded once. Then, on that set:

* **threshold**: the distance below which a fraction ``--far`` of the impostor *pairs* (two
  photos of different people) fall, with the genuine pairs' acceptance at it (TAR);
* **loosest_threshold**: the same at pair FAR 1e-2, the bound a config may not pass;
* **min_margin**: the 1st percentile, over genuine probes within the threshold, of how much
  nearer the probe's own person is than the nearest other person: a margin that costs at most
  1 % of genuine matches;
* **impostor_far**: the per-person impostor table the door's threshold for a gallery's size
  is read from (:mod:`pi_facegate.devtools.impostor_table`).

It prints what it found; only ``--write`` stores it, in ``NAME.override.json`` beside the
manifest (:func:`pi_facegate.vision.manifest.apply_override`), which every later load merges.
Measure on *calibration* people, never on the people you report accuracy on.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import date
from pathlib import Path

import numpy as np

from pi_facegate.cli.common import add_json_option, print_json
from pi_facegate.cli.eval_cmd import load_identities
from pi_facegate.cli.photo_embedder import PhotoEmbedder
from pi_facegate.cli.progress import Progress
from pi_facegate.config.schema import EnrolmentConfig
from pi_facegate.devtools.impostor_table import MIN_EVENTS, person_impostor_cdf, tail_table
from pi_facegate.exc import FacegateError, UsageError
from pi_facegate.vision.manifest import OVERRIDE_KEYS, override_path

LOOSEST_FAR = 1e-2
MARGIN_QUANTILE = 0.01


def register(subparsers, parents) -> None:
    """Add ``calibrate ROOT [--far F] [--model NAME] [--write] [--json]``."""
    p = subparsers.add_parser(
        "calibrate",
        parents=parents,
        help="choose an embedder's threshold and margin from a labelled photo set",
        description="Embed every photo of ROOT (ROOT/<person>/<photo>, or --identities / "
        "--identity-pattern), choose the threshold at a target pair false-accept rate, the "
        "margin and the open-set table, and report them; --write stores them beside the "
        "model's manifest. Use calibration people, never the ones you report accuracy on.",
    )
    p.add_argument("root", type=Path, metavar="ROOT", help="the labelled photos")
    p.add_argument("--far", type=float, default=1e-3, help="target pair false-accept rate")
    p.add_argument("--model", help="embedder manifest name or path (default: the config's)")
    p.add_argument("--identities", type=Path, help="CSV of file,identity (relative to ROOT)")
    p.add_argument(
        "--identity-pattern", help="regex whose first match in a file name is its identity"
    )
    p.add_argument(
        "--embeddings-per-person",
        type=int,
        default=EnrolmentConfig().embeddings,
        help="K of the open-set table (default: the door enrolment's)",
    )
    p.add_argument("--threads", type=int, default=None, help="embedder threads")
    p.add_argument("--write", action="store_true", help="store the result beside the manifest")
    add_json_option(p)
    p.set_defaults(func=cmd_calibrate)


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Embed, choose, report; write only with ``--write``."""
    if not 0 < args.far < 1:
        raise UsageError(f"--far must be between 0 and 1, got {args.far}")
    vectors, people, manifest = _embed(args)
    result = choose(vectors, people, args.far, args.embeddings_per_person)
    result["calibration"]["set"] = str(args.root)
    result["calibration"]["model"] = manifest.name
    if args.json:
        print_json(result)
    else:
        _print(result, manifest.name)
    if args.write:
        target = write_override(Path(manifest.path), result)
        print(f"written to {target}: every load of {manifest.name} now uses it", file=sys.stderr)
    return 0


def _embed(args: argparse.Namespace):
    people_photos = load_identities(args)
    embedder = PhotoEmbedder(argparse.Namespace(config=args.config, threads=args.threads,
                                                model=args.model))  # fmt: skip
    vectors, people = [], []
    total = sum(len(v) for v in people_photos.values())
    progress = Progress(total, "embedding", True)
    try:
        for person, paths in people_photos.items():
            for path in paths:
                vectors.append(embedder.embed(path, largest=True))
                people.append(person)
                progress.step()
        manifest = embedder.embedder.manifest
    finally:
        progress.close()
        embedder.close()
    return np.stack(vectors), np.array(people), manifest


def choose(vectors: np.ndarray, people: np.ndarray, far: float, k: int) -> dict:
    """Threshold, loosest threshold, margin and open-set table of one embedded set."""
    distances = np.linalg.norm(vectors[:, None] - vectors[None], axis=2)
    upper = np.triu_indices(len(vectors), 1)
    same = (people[:, None] == people[None])[upper]
    pairs = distances[upper]
    impostors, genuine = np.sort(pairs[~same]), pairs[same]
    if len(genuine) == 0 or len(impostors) * far < 1:
        raise FacegateError(
            f"{len(impostors)} impostor pairs cannot resolve a false-accept rate of {far:g} "
            f"(need at least {int(np.ceil(1 / far))}) and {len(genuine)} genuine pairs: use more "
            "people and more photos of each, or a larger --far"
        )
    threshold = float(np.quantile(impostors, far))
    loosest = float(np.quantile(impostors, max(far, LOOSEST_FAR)))
    margin = _margin(distances, people, threshold)
    cdf_d, cdf, person_pairs = person_impostor_cdf(vectors, people, k)
    rows, floor, slope = tail_table(cdf_d, cdf, person_pairs)
    return {
        "threshold": round(threshold, 4),
        "loosest_threshold": round(loosest, 4),
        "min_margin": margin,
        "impostor_far": rows,
        "calibrated": True,
        "calibration": {
            "tool": "facegate calibrate",
            "far": far,
            "tar_at_threshold": round(float(np.mean(genuine <= threshold)), 4),
            "people": int(len(np.unique(people))),
            "photos": int(len(vectors)),
            "impostor_pairs": int(len(impostors)),
            "genuine_pairs": int(len(genuine)),
            "impostor_pairs_below_threshold": int(np.sum(impostors <= threshold)),
            "embeddings_per_person": k,
            "probe_person_pairs": person_pairs,
            "measured_down_to": float(f"{floor:.3g}"),
            "below_that": f"extrapolated as a Gaussian tail (slope {slope:.4f})",
            "resolved": bool(len(impostors) * far >= MIN_EVENTS),
            "measured": date.today().isoformat(),
        },
    }


def _margin(distances: np.ndarray, people: np.ndarray, threshold: float) -> float:
    """The 1st percentile of (nearest other person - own person) over genuine probes within
    the threshold, so that the margin costs at most 1 % of them (0 when none qualifies)."""
    gaps = []
    for i in range(len(people)):
        own = (people == people[i]) & (np.arange(len(people)) != i)
        if not own.any() or (~own & (people != people[i])).sum() == 0:
            continue
        d_own = distances[i, own].min()
        if d_own <= threshold:
            gaps.append(distances[i, people != people[i]].min() - d_own)
    if not gaps:
        return 0.0
    return round(max(0.0, float(np.quantile(gaps, MARGIN_QUANTILE))), 3)


def write_override(manifest_path: Path, result: dict) -> Path:
    """``NAME.override.json`` beside the manifest, atomically, mode 0644 (models are public,
    it must only not be writable by others: the manifest loader refuses it otherwise)."""
    target = override_path(manifest_path)
    embedding = {key: result[key] for key in OVERRIDE_KEYS if key in result}
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump({"embedding": embedding}, fh, indent=2)
            fh.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)  # the old override stays whole until the new one is complete
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def _print(result: dict, model: str) -> None:
    cal = result["calibration"]
    print(f"calibration of {model} on {cal['set']}: {cal['people']} people, {cal['photos']} photos")
    print(f"  threshold          {result['threshold']:.4f}  (pair FAR {cal['far']:g}: "
          f"{cal['impostor_pairs_below_threshold']} of {cal['impostor_pairs']} impostor pairs; "
          f"TAR {cal['tar_at_threshold']:.2%} of {cal['genuine_pairs']} genuine)")  # fmt: skip
    print(f"  loosest_threshold  {result['loosest_threshold']:.4f}  (pair FAR {LOOSEST_FAR:g})")
    print(
        f"  min_margin         {result['min_margin']:.3f}  (costs at most 1 % of genuine matches)"
    )
    print(f"  impostor_far       {len(result['impostor_far'])} rows, counted down to "
          f"{cal['measured_down_to']:g} ({cal['probe_person_pairs']} probe-person pairs)")  # fmt: skip
    if not cal["resolved"]:
        print(f"  note: fewer than {MIN_EVENTS} impostor pairs lie below the threshold: "
              "a larger set would pin it down better")  # fmt: skip
