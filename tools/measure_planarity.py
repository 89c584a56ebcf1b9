#!/usr/bin/env python3
"""Measure the planarity cue (:mod:`pi_facegate.core.planarity`) on real face sequences.

Not a test: it prints a table per kind of sequence and writes the numbers as JSON. Typical use::

    .venv/bin/python tools/measure_planarity.py --json planarity.json --cache /tmp/planarity

Sequences (under the shared face data, ``FACEGATE_TESTDATA`` or ``../shared/facedata``):

* ``pad_nuaa/ClientRaw/000N/`` (live) and ``pad_nuaa/ImposterRaw/000N/`` (printed photos,
  flat or bent, moved by hand): files ``SSSS_GG_LL_SS_FRAME.jpg``, one capture session per
  prefix, in FRAME order. One person per session, so a session is one track (the largest face
  in each frame; the photos sometimes jump far between the sampled frames, which would break
  an overlap tracker without telling anything about the cue);
* ``live_clips/*.mp4`` (talking heads, 25 fps, one face: one track, every frame);
* ``face_recognition_examples/examples/short_hamilton_clip.mp4`` (walk-up, close-ups and
  audience shots with cuts: every face, followed by the project's :class:`FaceTracker`);
* SIMULATED attacks made here: one frame of a live clip, warped by the homographies of a plane
  moving in 3-D (tilts up to +-15 degrees about the vertical and horizontal axes, a small
  translation, a 60-degree field of view), and a sweep of yaw tilts of 20-40 degrees that shows
  where the cue breaks, then detected and meshed like any other frame.

Tuning/report split: thresholds were tuned on NUAA subject 0001 and ``WDA_KatieHill_000``
(``split = tune``); the other sequences (NUAA 0002-0003, ``WDA_AlexandriaOcasioCortez_000``,
Hamilton, the simulated attacks) are the report (``split = report``). ``--cache DIR`` keeps
the meshes of each sequence (``.npz``), so re-running with other thresholds skips the models.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pi_facegate.core.faces import Detector  # noqa: E402
from pi_facegate.core.planarity import (  # noqa: E402
    PlanarityCue,
    PlanaritySettings,
    Verdict,
    measure_pair,
)
from pi_facegate.core.tracker import FaceTracker  # noqa: E402
from pi_facegate.paths import facedata_dir  # noqa: E402
from pi_facegate.vision.detection.factory import create_detector  # noqa: E402
from pi_facegate.vision.images import load_image  # noqa: E402
from pi_facegate.vision.landmarks import LandmarkRefiner  # noqa: E402

NUAA_NAME = re.compile(r"^(\d{4}_\d\d_\d\d_\d\d)_(\d+)\.jpg$")
SUBJECTS = ("0001", "0002", "0003")
TUNE_SUBJECT = "0001"
LIVE_CLIPS = ("WDA_KatieHill_000", "WDA_AlexandriaOcasioCortez_000")
TUNE_CLIP = "WDA_KatieHill_000"
HAMILTON = "face_recognition_examples/examples/short_hamilton_clip.mp4"
#: simulated attacks: (clip, frame index, main axis, largest tilt in degrees): the brief's
#: +-15 degrees on both axes, and a sweep of larger yaw tilts to show where the cue breaks
SIMULATIONS = (
    ("WDA_KatieHill_000", 0, "yaw", 15.0),
    ("WDA_KatieHill_000", 100, "pitch", 15.0),
    ("WDA_AlexandriaOcasioCortez_000", 0, "pitch", 15.0),
    ("WDA_AlexandriaOcasioCortez_000", 100, "yaw", 15.0),
    *(
        (clip, 50, "yaw", tilt)
        for clip in ("WDA_KatieHill_000", "WDA_AlexandriaOcasioCortez_000")
        for tilt in (20.0, 25.0, 30.0, 40.0)
    ),
)
SIM_FRAMES = 50  # 2 s at 25 fps
SIM_FOV_DEG = 60.0
MIN_TRACK = 2  # meshes a track needs to be reported at all

Frames = Iterator[np.ndarray]  # RGB uint8 frames of one sequence


@dataclass
class Sequence:
    """One sequence to measure: where it comes from and how to read it."""

    name: str
    kind: str  # e.g. "nuaa-live", "nuaa-attack", "clip-live", "walkup-live", "SIMULATED-attack"
    split: str  # "tune" or "report"
    frames: Callable[[], Frames] = field(repr=False)
    single_face: bool = True  # one person: the largest face of each frame is the track


@dataclass
class TrackResult:
    """What the cue said about one track."""

    sequence: str
    kind: str
    split: str
    track: int
    frames: int
    moving_frames: int
    final_verdict: str
    final_score: float | None
    final_relief: float | None
    first_decision: str | None
    first_decision_frame: int | None  # 1-based count of the track's meshes
    first_3d_frame: int | None
    ever_3d: bool
    ever_planar: bool
    frame_scores: list[float]
    frame_reliefs: list[float]


# -- sequences -------------------------------------------------------------------------------


def nuaa_sequences(root: Path) -> list[Sequence]:
    """One sequence per NUAA capture session, live and attack, all three subjects."""
    out = []
    for folder, kind in (("ClientRaw", "nuaa-live"), ("ImposterRaw", "nuaa-attack")):
        for subject in SUBJECTS:
            sessions: dict[str, list[tuple[int, Path]]] = {}
            for path in (root / "pad_nuaa" / folder / subject).glob("*.jpg"):
                match = NUAA_NAME.match(path.name)
                if match:
                    sessions.setdefault(match.group(1), []).append((int(match.group(2)), path))
            split = "tune" if subject == TUNE_SUBJECT else "report"
            for prefix, files in sorted(sessions.items()):
                paths = [p for _, p in sorted(files)]
                out.append(Sequence(f"{folder}/{prefix}", kind, split, _image_frames(paths)))
    return out


def _image_frames(paths: list[Path]) -> Callable[[], Frames]:
    return lambda: (load_image(p) for p in paths)


def video_frames(path: Path) -> Frames:
    """The frames of a video file, RGB."""
    capture = cv2.VideoCapture(str(path))
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                return
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


def video_frame(path: Path, index: int) -> np.ndarray:
    """Frame ``index`` of a video file, RGB."""
    for i, frame in enumerate(video_frames(path)):
        if i == index:
            return frame
    raise ValueError(f"{path} has no frame {index}")


def plane_homography(
    size: tuple[int, int], yaw_deg: float, pitch_deg: float, shift: tuple[float, float, float]
) -> np.ndarray:
    """The image homography of a photo filling the view, turned about its centre.

    The photo lies fronto-parallel at distance 1 (so it projects onto the original image);
    it is rotated by ``yaw_deg`` about the vertical and ``pitch_deg`` about the horizontal
    axis through its centre and moved by ``shift`` (x, y, z, in units of that distance).
    A plane with normal n at distance d moved by (R, b) maps image points by
    ``K (R + b n^T / d) K^-1`` where b = c - R c + shift and c is the plane's centre.
    """
    width, height = size
    focal = 0.5 * width / np.tan(np.radians(SIM_FOV_DEG) / 2)
    k = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1.0]])
    yaw, pitch = np.radians(yaw_deg), np.radians(pitch_deg)
    ry = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    rx = np.array(
        [[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]]
    )
    rotation = rx @ ry
    centre = np.array([0.0, 0.0, 1.0])
    b = centre - rotation @ centre + np.asarray(shift, dtype=np.float64)
    normal = np.array([0.0, 0.0, 1.0])
    h = k @ (rotation + np.outer(b, normal)) @ np.linalg.inv(k)
    return h / h[2, 2]


def trajectory(
    name: str, n: int, tilt: float
) -> list[tuple[float, float, tuple[float, float, float]]]:
    """(yaw, pitch, shift) per frame: one smooth swing to +-``tilt`` degrees on the main axis
    (``name``: "yaw" or "pitch"), a third of that on the other, and a small drift (up to 3 %
    of the distance)."""
    t = np.linspace(0.0, 1.0, n)
    main = tilt * np.sin(2 * np.pi * t)
    other = tilt / 3 * np.sin(np.pi * t)
    yaw, pitch = (main, other) if name == "yaw" else (other, main)
    shifts = [(0.03 * np.sin(np.pi * s), 0.02 * np.sin(2 * np.pi * s), 0.03 * s) for s in t]
    return [(float(a), float(b), c) for a, b, c in zip(yaw, pitch, shifts, strict=True)]


def simulated_frames(clip: Path, index: int, name: str, tilt: float) -> Callable[[], Frames]:
    """A SIMULATED planar attack: frame ``index`` of ``clip`` on a plane moving in 3-D."""

    def frames() -> Frames:
        image = video_frame(clip, index)
        height, width = image.shape[:2]
        for yaw, pitch, shift in trajectory(name, SIM_FRAMES, tilt):
            h = plane_homography((width, height), yaw, pitch, shift)
            yield cv2.warpPerspective(image, h, (width, height), flags=cv2.INTER_LINEAR)

    return frames


def all_sequences(root: Path) -> list[Sequence]:
    """Every sequence the report measures, tuning ones included."""
    out = nuaa_sequences(root)
    for clip in LIVE_CLIPS:
        path = root / "live_clips" / f"{clip}.mp4"
        split = "tune" if clip == TUNE_CLIP else "report"
        out.append(Sequence(clip, "clip-live", split, lambda p=path: video_frames(p)))
    hamilton = root / HAMILTON
    out.append(
        Sequence(hamilton.stem, "walkup-live", "report", lambda: video_frames(hamilton), False)
    )
    for clip, index, name, tilt in SIMULATIONS:
        path = root / "live_clips" / f"{clip}.mp4"
        split = "tune" if clip == TUNE_CLIP else "report"
        kind = f"SIMULATED-attack-{tilt:.0f}deg"
        out.append(
            Sequence(
                f"SIMULATED/{clip}@{index}/{name}{tilt:.0f}",
                kind,
                split,
                simulated_frames(path, index, name, tilt),
            )
        )
    return out


# -- landmarks -------------------------------------------------------------------------------


def extract_tracks(seq: Sequence, detector: Detector, refiner: LandmarkRefiner) -> list[np.ndarray]:
    """The confident meshes of each track of ``seq``: a list of ``(n, 468, 2)`` arrays."""
    tracks: dict[int, list[np.ndarray]] = {}
    tracker = FaceTracker(iou_threshold=0.3, max_missing_frames=2)
    for i, frame in enumerate(seq.frames()):
        faces = detector.detect(frame)
        if seq.single_face:
            faces = sorted(faces, key=lambda f: f.box[2] * f.box[3])[-1:]
            ids = [0] * len(faces)
        else:
            ids = tracker.update([f.box for f in faces], float(i))
        for face, track_id in zip(faces, ids, strict=True):
            mesh = refiner.mesh(frame, face)
            if mesh.score >= refiner.min_score:
                tracks.setdefault(track_id, []).append(mesh.points)
    return [np.array(m) for _, m in sorted(tracks.items()) if len(m) >= MIN_TRACK]


def cached_tracks(
    seq: Sequence, cache: Path | None, models: Callable[[], tuple[Detector, LandmarkRefiner]]
) -> list[np.ndarray]:
    """:func:`extract_tracks`, through the ``.npz`` cache when one is given."""
    file = cache / (re.sub(r"[^A-Za-z0-9_.@-]+", "_", seq.name) + ".npz") if cache else None
    if file is not None and file.is_file():
        with np.load(file) as data:
            return [data[k] for k in sorted(data.files, key=lambda k: int(k[1:]))]
    tracks = extract_tracks(seq, *models())
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(file, **{f"t{i}": t for i, t in enumerate(tracks)})
    return tracks


# -- the cue ---------------------------------------------------------------------------------


def judge_track(
    seq: Sequence, track_id: int, meshes: np.ndarray, settings: PlanaritySettings
) -> TrackResult:
    """Stream one track's meshes through a :class:`PlanarityCue`, noting what it says when."""
    cue = PlanarityCue(settings)
    first: tuple[str, int] | None = None
    first_3d: int | None = None
    ever: set[Verdict] = set()
    result = cue.result()
    scores: list[float] = []
    reliefs: list[float] = []
    for n, points in enumerate(meshes, start=1):
        result = cue.add(points)
        if cue.last_pair is not None:
            scores.append(cue.last_pair.parallax)
            reliefs.append(cue.last_pair.relief)
        ever.add(result.verdict)
        if first is None and result.decided:
            first = (result.verdict.value, n)
        if first_3d is None and result.verdict is Verdict.THREE_D:
            first_3d = n
    return TrackResult(
        sequence=seq.name,
        kind=seq.kind,
        split=seq.split,
        track=track_id,
        frames=len(meshes),
        moving_frames=len(scores),
        final_verdict=result.verdict.value,
        final_score=result.score,
        final_relief=result.relief,
        first_decision=first[0] if first else None,
        first_decision_frame=first[1] if first else None,
        first_3d_frame=first_3d,
        ever_3d=Verdict.THREE_D in ever,
        ever_planar=Verdict.PLANAR in ever,
        frame_scores=scores,
        frame_reliefs=reliefs,
    )


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "p5": None, "p95": None}
    p5, median, p95 = np.percentile(values, [5, 50, 95])
    return {"median": float(median), "p5": float(p5), "p95": float(p95)}


def summarise(rows: list[TrackResult]) -> dict[str, object]:
    """The numbers of one group of tracks (one kind, one split)."""
    n = len(rows)
    final = {v.value: sum(r.final_verdict == v.value for r in rows) / n for v in Verdict}
    first = {
        "planar": sum(r.first_decision == "planar" for r in rows) / n,
        "3-d": sum(r.first_decision == "3-d" for r in rows) / n,
        "none": sum(r.first_decision is None for r in rows) / n,
    }
    when = [r.first_decision_frame for r in rows if r.first_decision_frame is not None]
    when_3d = [r.first_3d_frame for r in rows if r.first_3d_frame is not None]
    return {
        "tracks": n,
        "frames": sum(r.frames for r in rows),
        "moving_frames": sum(r.moving_frames for r in rows),
        "track_score": _percentiles([r.final_score for r in rows if r.final_score is not None]),
        "track_relief": _percentiles([r.final_relief for r in rows if r.final_relief is not None]),
        "frame_score": _percentiles([s for r in rows for s in r.frame_scores]),
        "final_verdict_share": final,
        "first_decision_share": first,
        "ever_3d_share": sum(r.ever_3d for r in rows) / n,
        "ever_planar_share": sum(r.ever_planar for r in rows) / n,
        "decision_frame": {
            "median": float(np.median(when)) if when else None,
            "max": int(max(when)) if when else None,
        },
        "first_3d_frame": {
            "median": float(np.median(when_3d)) if when_3d else None,
            "max": int(max(when_3d)) if when_3d else None,
        },
    }


def time_pairs(tracks: list[np.ndarray], settings: PlanaritySettings) -> dict[str, float]:
    """Milliseconds per frame pair measured alone (:func:`measure_pair`) and per frame
    (``PlanarityCue.add``: its whole window of pairs in one batch), over the first meshes."""
    meshes = [m for t in tracks for m in t][:300]
    start = time.perf_counter()
    count = 0
    for a, b in zip(meshes, meshes[1:], strict=False):
        measure_pair(a, b)
        count += 1
    per_pair = (time.perf_counter() - start) * 1000 / max(count, 1)
    cue = PlanarityCue(settings)
    start = time.perf_counter()
    for m in meshes:
        cue.add(m)
    per_frame = (time.perf_counter() - start) * 1000 / max(len(meshes), 1)
    return {"ms_per_pair": per_pair, "ms_per_frame": per_frame, "pairs_per_frame": settings.window}


# -- output ----------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_table(groups: dict[str, dict[str, object]], settings: PlanaritySettings) -> None:
    """One line per (split, kind): score percentiles, verdict shares, decision time."""
    print(
        f"settings: min_motion={settings.min_motion} min_frames={settings.min_frames} "
        f"min_frames_planar={settings.min_frames_planar} "
        f"planar_below={settings.planar_below} three_d_above={settings.three_d_above} "
        f"min_relief={settings.min_relief} "
        f"window={settings.window} history={settings.history}"
    )
    head = (
        f"{'split/kind':28s} {'trk':>4s} {'frm':>5s} {'mov':>5s} "
        f"{'score p5/med/p95 (tracks)':>26s} {'frame p5/med/p95':>19s} "
        f"{'planar':>6s} {'3-d':>6s} {'ambig':>6s} {'nomot':>6s} {'ever3d':>6s} {'dec@':>9s} "
        f"{'3d@':>9s}"
    )
    print(head)
    for key, g in groups.items():
        ts, fs = g["track_score"], g["frame_score"]
        fv, dec, d3 = g["final_verdict_share"], g["decision_frame"], g["first_3d_frame"]
        print(
            f"{key:28s} {g['tracks']:4d} {g['frames']:5d} {g['moving_frames']:5d} "
            f"{_fmt(ts['p5'])}/{_fmt(ts['median'])}/{_fmt(ts['p95']):>5s}        "
            f"{_fmt(fs['p5'])}/{_fmt(fs['median'])}/{_fmt(fs['p95'])} "
            f"{fv['planar']:6.0%} {fv['3-d']:6.0%} {fv['ambiguous']:6.0%} "
            f"{fv['not enough motion']:6.0%} {g['ever_3d_share']:6.0%} "
            f"{_fmt(dec['median'], 0):>4s}/{_fmt(dec['max'], 0):>4s} "
            f"{_fmt(d3['median'], 0):>4s}/{_fmt(d3['max'], 0):>4s}"
        )
    print(
        "score: median parallax of the moving frames, eye distances; shares: final verdict;\n"
        "ever3d: share of tracks that were THREE_D at some frame; dec@: frames (median/max)\n"
        "until the first PLANAR or THREE_D verdict; 3d@: until the first THREE_D (tracks that\n"
        "got one). SIMULATED rows are synthetic attacks."
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    d = PlanaritySettings()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--facedata", type=Path, default=None, help="shared face data folder")
    p.add_argument("--json", type=Path, default=Path("planarity.json"), help="output file")
    p.add_argument("--cache", type=Path, default=None, help="folder for the meshes (.npz)")
    p.add_argument("--only", default="", help="measure only sequences whose name has this")
    p.add_argument("--split", choices=("tune", "report", "all"), default="all", help="which split")
    p.add_argument("--min-motion", type=float, default=d.min_motion)
    p.add_argument("--min-frames", type=int, default=d.min_frames)
    p.add_argument("--min-frames-planar", type=int, default=d.min_frames_planar)
    p.add_argument("--planar-below", type=float, default=d.planar_below)
    p.add_argument("--three-d-above", type=float, default=d.three_d_above)
    p.add_argument("--min-relief", type=float, default=d.min_relief)
    p.add_argument("--window", type=int, default=d.window)
    p.add_argument("--history", type=int, default=d.history)
    p.add_argument("--tracks", action="store_true", help="print one line per track too")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = args.facedata or facedata_dir()
    if not (root / "pad_nuaa").is_dir():
        print(f"measure_planarity: no pad_nuaa/ under {root}", file=sys.stderr)
        return 1
    settings = PlanaritySettings(
        min_motion=args.min_motion,
        min_frames=args.min_frames,
        min_frames_planar=args.min_frames_planar,
        planar_below=args.planar_below,
        three_d_above=args.three_d_above,
        min_relief=args.min_relief,
        window=args.window,
        history=args.history,
    )
    loaded: list[tuple[Detector, LandmarkRefiner]] = []

    def models() -> tuple[Detector, LandmarkRefiner]:
        if not loaded:
            loaded.append((create_detector(min_score=0.5), LandmarkRefiner.load()))
        return loaded[0]

    rows: list[TrackResult] = []
    all_tracks: list[np.ndarray] = []
    start = time.perf_counter()
    try:
        for seq in all_sequences(root):
            if args.only not in seq.name or args.split not in ("all", seq.split):
                continue
            tracks = cached_tracks(seq, args.cache, models)
            all_tracks.extend(tracks)
            rows.extend(judge_track(seq, i, t, settings) for i, t in enumerate(tracks))
    finally:
        for detector, refiner in loaded:
            detector.close()
            refiner.close()
    groups: dict[str, dict[str, object]] = {}
    for key in sorted({(r.split, r.kind) for r in rows}, key=lambda k: (k[0] != "tune", k)):
        groups[f"{key[0]}/{key[1]}"] = summarise([r for r in rows if (r.split, r.kind) == key])
    if args.tracks:
        for r in rows:
            print(
                f"{r.split:6s} {r.kind:17s} {r.sequence:48s}#{r.track:<3d} n={r.frames:4d} "
                f"mov={r.moving_frames:3d} score={_fmt(r.final_score)} relief={_fmt(r.final_relief, 2)} "
                f"{r.final_verdict:17s} "
                f"first={r.first_decision}@{r.first_decision_frame} ever3d={r.ever_3d}"
            )
    print_table(groups, settings)
    timing = time_pairs(all_tracks, settings)
    print(
        f"cost: {timing['ms_per_pair']:.3f} ms per frame pair, {timing['ms_per_frame']:.3f} ms "
        f"per frame (up to {settings.window} pairs); total run {time.perf_counter() - start:.0f} s"
    )
    report = {
        "settings": asdict(settings),
        "split": {
            "tune": f"NUAA subject {TUNE_SUBJECT} (live and attack), {TUNE_CLIP}",
            "report": "NUAA subjects 0002-0003, the other live clip, Hamilton, SIMULATED attacks",
        },
        "simulated": "SIMULATED attacks: one live-clip frame warped by plane homographies "
        f"(largest tilt in the kind's name; FOV {SIM_FOV_DEG} deg, shift up to 3 %)",
        "groups": groups,
        "timing": timing,
        "tracks": [asdict(r) for r in rows],
    }
    args.json.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
