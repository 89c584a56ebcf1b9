"""``facegate eval liveness``: presentation-attack detection measured in ISO/IEC 30107-3 terms.

Each presentation (a clip, a capture session) is replayed through the door's own detector,
face mesh, texture models and liveness rule; each cue is scored on its own and fused, and
reported as APCER per attack instrument (PAI species), BPCER, BPCER20/BPCER10 and the
operating point the config sets. With subjects to enrol (a manifest's ``enrol`` rows, NUAA's
first live frame) the presentations are then replayed through the real daemon as well: the
share of attack presentations of an enrolled person that unlock is the IAPMR, and the share
of live presentations that do not unlock is the door's BPCER.

Figures from simulated attacks (a manifest's ``simulated`` column) are marked SIMULATED
wherever they are printed or written.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pi_facegate.cli import context
from pi_facegate.cli.progress import Progress
from pi_facegate.cli.table import format_table
from pi_facegate.devtools import pad_material, pad_metrics
from pi_facegate.devtools.pad_material import ATTACK, LIVE, Material, Presentation
from pi_facegate.devtools.pad_metrics import Rate
from pi_facegate.devtools.pad_run import CueJudge, CueRecord, DoorBench, DoorRecord
from pi_facegate.exc import FacegateError

SIMULATED = "SIMULATED"


def register(kinds, parents) -> None:
    p = kinds.add_parser(
        "liveness",
        parents=parents,
        help="presentation-attack detection: APCER/BPCER per cue, and the door's IAPMR",
    )
    p.add_argument(
        "roots",
        type=Path,
        nargs="+",
        metavar="ROOT",
        help="a manifest.csv (tools/make_attacks.py), a NUAA folder, or live/ + attack/<type>/",
    )
    p.add_argument(
        "--exclude",
        nargs="+",
        default=[],
        metavar="SUBJECT",
        help="leave these subjects out (the people you tuned on)",
    )
    p.add_argument(
        "--split",
        default="report",
        help="only presentations of this manifest split (default report; 'all' for every one)",
    )
    p.add_argument(
        "--fps", type=float, default=10.0, help="frame rate of frame folders (default 10)"
    )
    p.add_argument(
        "--no-door", action="store_true", help="cues only: skip the replay through the daemon"
    )
    p.add_argument("--json", type=Path, metavar="FILE", help="write the report as JSON")
    p.add_argument("--plot", type=Path, metavar="FILE.png", help="write a DET plot")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=eval_liveness)


def load_material(args: argparse.Namespace) -> Material:
    material = Material()
    for root in args.roots:
        if not root.exists():
            raise FacegateError(f"{root}: no such file or folder")
        material.extend(pad_material.load(root))
    material = material.without(set(args.exclude), None if args.split == "all" else args.split)
    labels = {p.label for p in material.presentations}
    if ATTACK not in labels:
        raise FacegateError("no attack presentations to measure (check --exclude and --split)")
    return material


def eval_liveness(args: argparse.Namespace) -> int:
    config_path, config = context.resolve_config(args)
    material = load_material(args)
    items = material.presentations
    judge = CueJudge(config)
    progress = Progress(len(items), "liveness cues", not args.quiet)
    try:
        cues = [_step(progress, judge.judge, p, args.fps) for p in items]
    finally:
        judge.close()
    door: list[DoorRecord] = []
    enrolled: set[str] = set()
    if not args.no_door and material.enrol:
        bench = DoorBench(config_path, config, material, _enroller(config_path))
        enrolled = bench.enrolled
        todo = [p for p in items if p.subject in enrolled]
        progress = Progress(len(todo), "door replay", not args.quiet)
        try:
            door = [_step(progress, bench.replay, p, args.fps) for p in todo]
        finally:
            bench.close()
    report = build_report(cues, door, config, enrolled)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=float) + "\n")
        print(f"report written to {args.json}")
    if args.plot:
        write_det_plot(args.plot, cues, report["operating_point"]["fused"])
        print(f"DET plot written to {args.plot}")
    return 0


def _enroller(config_path: Path):
    """Enrol a subject with ``facegate enroll`` itself, into the bench's own gallery."""
    from pi_facegate.cli import main as facegate

    def enrol(subject: str, photos: list[Path], gallery: Path) -> bool:
        args = ["enroll", subject, *map(str, photos), "--config", str(config_path)]
        return facegate([*args, "--gallery", str(gallery)]) == 0

    return enrol


def _step(progress, fn: Callable, p: Presentation, fps: float):
    result = fn(p, fps)
    progress.step()
    return result


# ---------------------------------------------------------------------------- the report
def species_name(species: str, presentations: Sequence[Presentation]) -> str:
    simulated = any(p.simulated for p in presentations if p.species == species)
    return f"{species} ({SIMULATED})" if simulated else species


def _by_species(records: Sequence[Any]) -> dict[str, list[Any]]:
    groups: dict[str, list[Any]] = {}
    for r in records:
        if r.presentation.label == ATTACK:
            groups.setdefault(r.presentation.species, []).append(r)
    return groups


def cue_classifiers(config) -> dict[str, Callable[[CueRecord], bool]]:
    """Each cue's "bona fide" decision at the config's operating point."""
    lv = config.liveness
    return {
        "texture": lambda r: r.texture is not None and r.texture >= lv.texture_live_above,
        "planarity": lambda r: r.planarity_verdict == "3-d",
        "fused": lambda r: r.fused == "live",
    }


def _rate(records: Sequence[CueRecord], says_live: Callable, attack: bool) -> Rate:
    wrong = sum(says_live(r) == attack for r in records)
    return Rate(wrong, len(records))


def build_report(all_cues: list[CueRecord], door: list[DoorRecord], config, enrolled) -> dict:
    """The whole report as plain data (what ``--json`` writes)."""
    presentations = [r.presentation for r in all_cues]
    cues = [r for r in all_cues if r.acquired]
    not_acquired = [r.presentation.name for r in all_cues if not r.acquired]
    live = [r for r in cues if r.presentation.label == LIVE]
    groups = _by_species(cues)
    classifiers = cue_classifiers(config)
    per_cue: dict[str, Any] = {}
    for cue, says_live in classifiers.items():
        apcers = {s: _rate(rs, says_live, attack=True) for s, rs in groups.items()}
        per_cue[cue] = {
            "apcer": {species_name(s, presentations): r.as_dict() for s, r in apcers.items()},
            "apcer_max": pad_metrics.worst(apcers).as_dict(),
            "apcer_all": _rate(
                [r for g in groups.values() for r in g], says_live, attack=True
            ).as_dict(),
            "bpcer": _rate(live, says_live, attack=False).as_dict(),
        }
    attacks = [r for g in groups.values() for r in g]
    for cue in ("texture", "planarity"):
        a = [getattr(r, cue) for r in attacks]
        b = [getattr(r, cue) for r in live]
        for name, limit in (("bpcer20", 0.05), ("bpcer10", 0.10)):
            value, threshold = pad_metrics.bpcer_at_apcer(a, b, limit)
            per_cue[cue][name] = {"bpcer": value, "threshold": threshold}
    lv = config.liveness
    return {
        "standard": "ISO/IEC 30107-3 (APCER per PAI species, BPCER, IAPMR)",
        "simulated_species": sorted(
            {p.species for p in presentations if p.simulated and p.label == ATTACK}
        ),
        "presentations": {"attack": len(attacks), "bona_fide": len(live)},
        "failure_to_acquire": not_acquired,
        "operating_point": {
            "texture": f"median of {lv.texture_frames} scores >= {lv.texture_live_above}",
            "planarity": (
                f"3-d within {lv.max_wait_seconds} s: parallax >= "
                f"{lv.planarity.three_d_above}, relief >= {lv.planarity.min_relief}"
            ),
            "fused": f"texture and planarity live within {lv.max_wait_seconds} s",
        },
        "cues": per_cue,
        "door": door_report(door, presentations, enrolled),
        "presentations_detail": [r.as_dict() for r in all_cues],
        "door_detail": [r.as_dict() for r in door],
    }


def door_report(door: list[DoorRecord], presentations, enrolled) -> dict | None:
    """IAPMR per species and overall, and the door's BPCER, from the daemon replays."""
    if not door:
        return None
    groups = _by_species(door)
    live = [r for r in door if r.presentation.label == LIVE]
    attacks = [r for g in groups.values() for r in g]

    def unlocked(rs):
        return Rate(sum(r.unlocked for r in rs), len(rs))

    return {
        "subjects_enrolled": sorted(enrolled),
        "iapmr": {
            species_name(s, presentations): unlocked(rs).as_dict() for s, rs in groups.items()
        },
        "iapmr_all": unlocked(attacks).as_dict(),
        "recognised_attacks": Rate(sum(r.recognised for r in attacks), len(attacks)).as_dict(),
        "presentation_attack_denials": sum(r.presentation_attack for r in attacks),
        "bpcer": Rate(sum(not r.unlocked for r in live), len(live)).as_dict(),
        "bona_fide_no_liveness": sum(r.no_liveness for r in live),
    }


def _fmt(rate: dict) -> str:
    return str(Rate(rate["errors"], rate["presentations"]))


def print_report(report: dict) -> None:
    cues = report["cues"]
    names = list(cues)
    print("liveness per presentation, ISO/IEC 30107-3 (APCER: attacks taken for live faces)")
    if report["simulated_species"]:
        print(f"  rows marked ({SIMULATED}) are simulated attacks (tools/make_attacks.py)")
    rows = []
    for species in cues["fused"]["apcer"]:
        rows.append([f"APCER {species}", *(_fmt(cues[c]["apcer"][species]) for c in names)])
    rows.append(["APCER all attacks", *(_fmt(cues[c]["apcer_all"]) for c in names)])
    rows.append(["APCER worst species", *(_fmt(cues[c]["apcer_max"]) for c in names)])
    rows.append(["BPCER (live taken for attacks)", *(_fmt(cues[c]["bpcer"]) for c in names)])
    for key, label in (("bpcer20", "BPCER20"), ("bpcer10", "BPCER10")):
        rows.append(
            [label, *(_at(cues[c].get(key)) for c in names)],
        )
    print(format_table(["measure", *names], rows, align="<" + ">" * len(names), indent="  "))
    if report["failure_to_acquire"]:
        missed = ", ".join(report["failure_to_acquire"])
        print(f"  no face judged (failure to acquire, in neither rate): {missed}")
    print("  operating point:")
    for cue, rule in report["operating_point"].items():
        print(f"    {cue}: {rule}")
    door = report["door"]
    if door is None:
        return
    print(
        f"door: the real daemon, simulated GPIO, {len(door['subjects_enrolled'])} people enrolled"
    )
    rows = [[f"IAPMR {s}", _fmt(r)] for s, r in door["iapmr"].items()]
    rows.append(["IAPMR all attacks (unlocked)", _fmt(door["iapmr_all"])])
    rows.append(
        ["attacks recognised (would open without liveness)", _fmt(door["recognised_attacks"])]
    )
    rows.append(["presentation_attack denials", str(door["presentation_attack_denials"])])
    rows.append(["BPCER at the door (live, not let in)", _fmt(door["bpcer"])])
    rows.append(["  of which no_liveness", str(door["bona_fide_no_liveness"])])
    print(format_table(None, rows, align="<>", indent="  "))


def _at(entry: dict | None) -> str:
    if not entry or entry["bpcer"] is None:
        return "n/a"
    return f"{100 * entry['bpcer']:.1f} % @ {entry['threshold']:.3g}"


# ---------------------------------------------------------------------------- DET plot
def write_det_plot(path: Path, cues: list[CueRecord], fused: str) -> None:
    """A DET plot (APCER against BPCER on normal-deviate axes), drawn with OpenCV."""
    cues = [r for r in cues if r.acquired]
    live = [r for r in cues if r.presentation.label == LIVE]
    attacks = [r for r in cues if r.presentation.label == ATTACK]
    w, h, m = 640, 560, 70
    img = np.full((h, w, 3), 255, np.uint8)
    ticks = [0.001, 0.01, 0.05, 0.2, 0.5, 0.8, 0.95, 0.99]
    lo, hi = pad_metrics.probit(np.array([0.001, 0.999]))  # rates of 0 and 1 sit on the edges

    def px(apcer, bpcer):
        x = m + (pad_metrics.probit(np.asarray(apcer)) - lo) / (hi - lo) * (w - 2 * m)
        y = h - m - (pad_metrics.probit(np.asarray(bpcer)) - lo) / (hi - lo) * (h - 2 * m)
        return x, y

    cv2.rectangle(img, (m, m), (w - m, h - m), (0, 0, 0), 1)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for t in ticks:
        x, y = px(t, t)
        cv2.putText(img, f"{100 * t:g}%", (int(x) - 14, h - m + 18), font, 0.35, (0, 0, 0), 1)
        cv2.putText(img, f"{100 * t:g}%", (8, int(y) + 4), font, 0.35, (0, 0, 0), 1)
    colours = {"texture": (200, 60, 0), "planarity": (0, 140, 0)}
    for i, (cue, colour) in enumerate(colours.items()):
        a, b, _ = pad_metrics.det_curve(
            [getattr(r, cue) for r in attacks], [getattr(r, cue) for r in live]
        )
        x, y = px(a, b)
        cv2.polylines(img, [np.stack([x, y], 1).astype(np.int32)], False, colour, 2)
        cv2.putText(img, cue, (w - m - 120, m + 20 + 18 * i), font, 0.45, colour, 1)
    fa = np.mean([r.fused == "live" for r in attacks]) if attacks else 0.0
    fb = np.mean([r.fused != "live" for r in live]) if live else 0.0
    x, y = px(fa, fb)
    cv2.circle(img, (int(x), int(y)), 6, (0, 0, 200), -1)
    cv2.putText(img, "fused (operating point)", (w - m - 200, m + 56), font, 0.45, (0, 0, 200), 1)
    cv2.putText(
        img, "DET: BPCER (y) vs APCER (x), all attacks", (m, m - 30), font, 0.5, (0, 0, 0), 1
    )
    if any(r.presentation.simulated for r in attacks):
        cv2.putText(img, "includes SIMULATED attacks", (m, m - 10), font, 0.45, (0, 0, 200), 1)
    if not cv2.imwrite(str(path), img):
        raise FacegateError(f"cannot write plot to {path}")
