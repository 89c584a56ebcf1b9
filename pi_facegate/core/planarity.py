"""Presentation-attack cue 1: is the face in front of the camera flat? (structure from motion)

A printed photo, a phone or a tablet shows the face on a *plane*, and the images of the points
of one plane in two views are related by a single homography, whatever the plane did between
the views (turned, tilted, moved). A real head is not flat: when it turns, points at different
depths move differently in the image (parallax). The face mesh (468 landmarks, see
``pi_facegate.vision.landmarks``) gives the same points of the face in every frame of a track,
so the test needs no model of its own. Per frame pair:

1. fit a homography to the *plane set* (eye corners and the cheekbones below them: on a real
   face these lie within about 0.15 eye distances of one plane, and they do not move when the
   person talks, smiles or raises the brows);
2. carry the *nose* points over with it and measure how far they miss their place in the
   second frame (the transfer residual, ``parallax``, in eye distances). On a real face the
   nose tip stands about 0.55 eye distances in front of the plane set, so a turn of 5 degrees
   moves it about 0.05 eye distances off the plane's homography; on a photo it follows the
   plane and the residual is the mesh's jitter;
3. count a pair only if the plane set itself moved out of its image plane (its homography
   differs from a similarity by ``min_motion`` or more, ``motion``): a face that only slides,
   rolls or comes closer shows no parallax even when it is real, so such pairs say nothing.

Over the track, the median ``parallax`` of the moving frames is the *score* and the median of
``parallax / motion`` the *relief*: how much further the nose sits off the plane than the plane
set's own curvature, which is what sets a face apart from a *bent* photo (a bent sheet moves
its centre and its sides off one plane alike, so its relief stays low even when it is waved
hard enough for its parallax to reach a real head's). THREE_D needs both; PLANAR needs a low
score; everything between is AMBIGUOUS (not a face, not shown to be a plane).

Why not "the nose's offset against the head's yaw": a photo turned about its vertical axis
shrinks sideways, the outline narrows, and a yaw estimate read from the outline changes while
the nose stays where the homography puts it; a correlation between the two can pass a photo.
The residual of the homography is zero for *every* planar motion by construction.

What the cue cannot remove, measured with the bundled face-mesh model: the model has learnt
what heads look like, and on a photo turned by 15 degrees about its vertical axis it places
the nose about 0.04 eye distances off where the image homography puts it (it "sees" a
slightly turned head), while the forehead and the face outline, where the image has no
texture to hold them, follow its prior even more (0.04-0.06). That is why the sets below keep
to points the image pins down (chosen on simulated tilted photos from the tuning clip), and
why ``three_d_above`` sits above that level. It is a limit, not a cure: a photo swung by
+-25 degrees or more about its vertical axis makes the mesh's nose move like a real one, and
the cue then says THREE_D (SIMULATED attacks in ``tools/measure_planarity.py``; tilts about
the horizontal axis do not fool it). So THREE_D is evidence to combine with the other cues,
never enough alone. A live head that only nods or talks, never turns, stays
NOT_ENOUGH_MOTION.

Depths quoted are medians of the face-mesh model's own z output over a live clip
(``WDA_KatieHill_000.mp4``), relative to the nose tip, in eye distances (the distance between
the midpoints of each eye's two corners). Pure numpy: the caller passes ``(468, 2)`` landmark
arrays in frame pixels.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

#: number of landmarks of the face-mesh model
NUM_LANDMARKS = 468

# -- landmark index sets (MediaPipe face-mesh numbering) --------------------------------------
#: the subject's right eye (image left): outer and inner corner
RIGHT_EYE_CORNERS = (33, 133)
#: the subject's left eye (image right): inner and outer corner
LEFT_EYE_CORNERS = (362, 263)
#: eye corners: rigid (a blink moves the lids, not the corners), 0.62-0.72 behind the nose tip
EYE_CORNERS = RIGHT_EYE_CORNERS + LEFT_EYE_CORNERS
#: cheekbones below the eyes, right/left in pairs, 0.47-0.71 behind the nose tip. Not the
#: lower cheeks beside the mouth (205, 206, 425, 426): they rise when the person talks.
CHEEKBONES = (118, 347, 119, 348, 101, 330, 100, 329, 117, 346)
#: the plane set
PLANE_POINTS = EYE_CORNERS + CHEEKBONES
#: the out-of-plane points: nose tip (1), pronasale (4), the tip's underside (19), the lower
#: bridge (5, 195); -0.02 to 0.13 behind the nose tip, i.e. about 0.55 in front of the plane
NOSE_POINTS = (1, 4, 5, 19, 195)


class Verdict(enum.Enum):
    """What the cue says about one track so far."""

    PLANAR = "planar"  # the face moved and stayed on one plane: a photo or a screen
    THREE_D = "3-d"  # the nose moved off the plane of the face: a real head
    AMBIGUOUS = "ambiguous"  # moved enough, but neither a plane nor a face's relief
    NOT_ENOUGH_MOTION = "not enough motion"  # too few frames in which the face turned


@dataclass(frozen=True)
class PlanaritySettings:
    """Thresholds of the cue (a config section can build one of these).

    Lengths are in eye distances, so the cue does not depend on resolution or on how far away
    the face is. Defaults were tuned on NUAA subject 0001 and ``WDA_KatieHill_000`` (see
    ``tools/measure_planarity.py``).

    :param min_motion: a frame pair counts only if the plane set's homography differs from
        the best similarity by this much (RMS over the plane points). A still face gives
        about 0.005 (the mesh's jitter); a head turned by 10 degrees between the two frames
        0.01-0.03; a photo turned by 15 degrees about 0.01.
    :param min_frames: moving frames needed before any verdict (THREE_D needs no more)
    :param min_frames_planar: moving frames PLANAR needs: more, because a live face gives a
        few frames of planar-looking motion when it smiles or squints (the cheekbones rise
        without the head turning), and calling a person an attack costs more than waiting
    :param planar_below: score at or below which the verdict is PLANAR (lower calls fewer
        live faces an attack)
    :param three_d_above: score at or above which the verdict may be THREE_D (higher lets
        fewer photos pass; a photo turned by 15 degrees reached 0.044, by 20 degrees 0.058)
    :param min_relief: relief (median of parallax / motion) THREE_D needs as well (higher lets
        fewer bent photos pass; on the tuning set live faces gave 3.6-5.8, NUAA's photos
        0.7-2.4)
    :param window: each new frame is paired with up to this many previous frames of the track
    :param history: score and relief are medians over at most this many latest moving frames
    """

    min_motion: float = 0.01
    min_frames: int = 5
    min_frames_planar: int = 10
    planar_below: float = 0.035
    three_d_above: float = 0.06
    min_relief: float = 2.8
    window: int = 10
    history: int = 30

    def __post_init__(self) -> None:
        if not self.min_motion > 0:
            raise ValueError(f"min_motion must be > 0, not {self.min_motion}")
        if (
            self.min_frames < 1
            or self.window < 1
            or not self.min_frames <= self.min_frames_planar <= self.history
        ):
            raise ValueError(
                "need min_frames and window >= 1 and min_frames <= min_frames_planar <= "
                f"history (got {self.min_frames}, {self.window}, {self.min_frames_planar}, "
                f"{self.history})"
            )
        if not 0 <= self.planar_below < self.three_d_above:
            raise ValueError(
                f"need 0 <= planar_below ({self.planar_below}) < three_d_above "
                f"({self.three_d_above})"
            )
        if self.min_relief < 0:
            raise ValueError(f"min_relief must be >= 0, not {self.min_relief}")


@dataclass(frozen=True)
class PairMeasure:
    """The geometry of one frame pair, lengths in eye distances.

    ``motion``: how far the plane set's homography is from a similarity (out-of-plane turn);
    ``parallax``: the nose points' mean transfer residual under that homography;
    ``plane_fit``: the plane points' own RMS residual (jitter plus the face's curvature).
    """

    motion: float
    parallax: float
    plane_fit: float

    @property
    def relief(self) -> float:
        """Parallax per unit of motion (inf for a pair that did not move at all)."""
        return self.parallax / self.motion if self.motion > 0 else float("inf")


@dataclass(frozen=True)
class PlanarityResult:
    """The cue's state after a frame: the verdict, the score and relief (medians; None before
    any moving frame) and how many moving frames they rest on."""

    verdict: Verdict
    score: float | None
    relief: float | None
    frames: int

    @property
    def decided(self) -> bool:
        """True for PLANAR or THREE_D."""
        return self.verdict in (Verdict.PLANAR, Verdict.THREE_D)


def check_points(points: np.ndarray) -> np.ndarray:
    """``points`` as a float ``(468, 2)`` array, or :class:`ValueError` saying why not."""
    array = np.asarray(points, dtype=np.float64)
    if array.shape != (NUM_LANDMARKS, 2):
        raise ValueError(f"expected ({NUM_LANDMARKS}, 2) landmark points, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("landmark points must be finite")
    return array


_RIGHT = np.array(RIGHT_EYE_CORNERS)
_LEFT = np.array(LEFT_EYE_CORNERS)
_PLANE = np.array(PLANE_POINTS)
_NOSE = np.array(NOSE_POINTS)


def eye_distance(points: np.ndarray) -> float:
    """Distance between the midpoints of the two eyes' corners, in the points' units."""
    delta = points[_LEFT].mean(axis=0) - points[_RIGHT].mean(axis=0)
    return float(np.hypot(delta[0], delta[1]))


def transfer(homography: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``points`` ``(..., n, 2)`` mapped by the 3x3 ``homography`` (or a stack ``(..., 3, 3)``)."""
    h = np.asarray(homography)
    mapped = points @ np.swapaxes(h[..., :, :2], -1, -2) + h[..., None, :, 2]
    return mapped[..., :2] / mapped[..., 2:3]


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The least-squares similarity (rotation, uniform scale, translation) ``src`` -> ``dst``
    (``(..., n, 2)`` each), as ``(..., 2, 3)`` matrices: ``dst = a * src + b`` in complex
    numbers, in closed form."""
    ms, md = src.mean(axis=-2, keepdims=True), dst.mean(axis=-2, keepdims=True)
    s, d = src - ms, dst - md
    denom = np.sum(s * s, axis=(-2, -1))
    safe = np.where(denom > 0, denom, 1.0)
    re = np.where(denom > 0, np.sum(d * s, axis=(-2, -1)) / safe, 1.0)
    im = np.where(
        denom > 0, np.sum(d[..., 1] * s[..., 0] - d[..., 0] * s[..., 1], axis=-1) / safe, 0.0
    )
    out = np.empty((*re.shape, 2, 3))
    out[..., 0, 0], out[..., 0, 1], out[..., 1, 0], out[..., 1, 1] = re, -im, im, re
    out[..., :, 2] = md[..., 0, :] - np.einsum("...ij,...j->...i", out[..., :, :2], ms[..., 0, :])
    return out


def _conditioner(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hartley's conditioning of ``(..., n, 2)`` points: the 3x3 maps ``T`` that centre them
    at mean distance sqrt(2), and their inverses."""
    centre = points.mean(axis=-2)
    spread = np.mean(np.linalg.norm(points - centre[..., None, :], axis=-1), axis=-1)
    k = np.sqrt(2.0) / np.where(spread > 0, spread, np.sqrt(2.0))
    t = np.zeros((*k.shape, 3, 3))
    t[..., 0, 0] = t[..., 1, 1] = k
    t[..., :2, 2] = -k[..., None] * centre
    t[..., 2, 2] = 1.0
    inv = np.zeros_like(t)
    inv[..., 0, 0] = inv[..., 1, 1] = 1.0 / k
    inv[..., :2, 2] = centre
    inv[..., 2, 2] = 1.0
    return t, inv


def fit_homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares homographies ``src`` -> ``dst`` (``(..., n, 2)`` each, n >= 4) by the
    normalised DLT, as ``(..., 3, 3)`` with ``h[2, 2] = 1``; NaN where degenerate.

    Least squares rather than RANSAC: the plane set is chosen to be planar and every point of
    it should pull; RANSAC would fit a plane through a few of them and hide the rest. The
    algebraic (DLT) error is minimised rather than the transfer error: on conditioned points
    they differ far less than the mesh's jitter, and the DLT costs one 9x9 eigenproblem, so
    a frame's whole window of pairs is solved in one batched call.
    """
    n = src.shape[-2]
    if n < 4:
        raise ValueError(f"a homography needs at least 4 points, got {n}")
    ts, _ = _conditioner(src)
    td, td_inv = _conditioner(dst)
    s = src @ np.swapaxes(ts[..., :2, :2], -1, -2) + ts[..., None, :2, 2]
    d = dst @ np.swapaxes(td[..., :2, :2], -1, -2) + td[..., None, :2, 2]
    rows = np.zeros((*s.shape[:-2], 2 * n, 9))
    rows[..., :n, 0:2] = s
    rows[..., :n, 2] = 1.0
    rows[..., n:, 3:5] = s
    rows[..., n:, 5] = 1.0
    rows[..., :n, 6:8] = -d[..., :1] * s
    rows[..., :n, 8] = -d[..., 0]
    rows[..., n:, 6:8] = -d[..., 1:] * s
    rows[..., n:, 8] = -d[..., 1]
    values, vectors = np.linalg.eigh(np.swapaxes(rows, -1, -2) @ rows)
    h = td_inv @ vectors[..., :, 0].reshape(*vectors.shape[:-2], 3, 3) @ ts
    scale = h[..., 2, 2]
    bad = (
        # a second-smallest eigenvalue near zero: the points do not pin the homography down
        (values[..., 1] < 1e-12 * np.maximum(values[..., -1], 1e-300)) | (np.abs(scale) < 1e-12)
    )
    h = h / np.where(bad, 1.0, scale)[..., None, None]
    # a singular homography squashes the plane onto a line: no view of a plane does that
    det = np.abs(np.linalg.det(np.where(bad[..., None, None], np.eye(3), h)))
    norm = np.max(np.abs(h), axis=(-2, -1))
    bad |= ~(det > 1e-9 * norm**3)
    h[bad] = np.nan
    return h


def _rms(delta: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean(np.sum(delta * delta, axis=-1), axis=-1))


def measure_pairs(previous: np.ndarray, mesh: np.ndarray) -> list[PairMeasure | None]:
    """Motion and parallax of each of ``previous`` ``(w, 468, 2)`` paired with ``mesh``
    ``(468, 2)``, all in one batch (None for a degenerate pair).

    Coordinates are divided by the pair's mean eye distance, so every length comes out in
    eye distances.
    """
    previous = np.asarray(previous, dtype=np.float64).reshape(-1, NUM_LANDMARKS, 2)
    mesh = np.asarray(mesh, dtype=np.float64)
    if len(previous) == 0:
        return []
    scale = 0.5 * (
        np.linalg.norm(previous[:, _LEFT].mean(1) - previous[:, _RIGHT].mean(1), axis=-1)
        + eye_distance(mesh)
    )
    ok = scale > 1e-6
    k = 1.0 / np.where(ok, scale, 1.0)[:, None, None]
    plane_a, plane_b = previous[:, _PLANE] * k, mesh[_PLANE][None] * k
    with np.errstate(invalid="ignore", divide="ignore"):
        homography = fit_homography(plane_a, plane_b)
        on_plane = transfer(homography, plane_a)
        similarity = fit_similarity(plane_a, plane_b)
        by_similarity = (
            plane_a @ np.swapaxes(similarity[:, :, :2], -1, -2) + similarity[:, None, :, 2]
        )
        miss = (transfer(homography, previous[:, _NOSE] * k) - mesh[_NOSE][None] * k).mean(1)
        motion = _rms(on_plane - by_similarity)
        parallax = np.linalg.norm(miss, axis=-1)
        plane_fit = _rms(on_plane - plane_b)
    good = ok & np.isfinite(motion) & np.isfinite(parallax) & np.isfinite(plane_fit)
    return [
        PairMeasure(float(m), float(p), float(f)) if g else None
        for m, p, f, g in zip(motion, parallax, plane_fit, good, strict=True)
    ]


def measure_pair(first: np.ndarray, second: np.ndarray) -> PairMeasure | None:
    """Motion and parallax between two ``(468, 2)`` meshes of one face (None if degenerate)."""
    return measure_pairs(np.asarray(first, dtype=np.float64)[None], second)[0]


def best_pair(
    previous: Sequence[np.ndarray], mesh: np.ndarray, min_motion: float
) -> PairMeasure | None:
    """Of ``mesh`` paired with each of ``previous``, the pair that moved most, if it moved at
    least ``min_motion`` (the largest motion gives the steadiest relief)."""
    if len(previous) == 0:
        return None
    moving = [
        m for m in measure_pairs(np.stack(list(previous)), mesh) if m and m.motion >= min_motion
    ]
    return max(moving, key=lambda m: m.motion, default=None)


def judge(evidence: Sequence[PairMeasure], settings: PlanaritySettings) -> PlanarityResult:
    """The verdict from the moving frames' best pairs (oldest first), as the settings say."""
    recent = list(evidence)[-settings.history :]
    if not recent:
        return PlanarityResult(Verdict.NOT_ENOUGH_MOTION, None, None, 0)
    score = float(np.median([m.parallax for m in recent]))
    relief = float(np.median([m.relief for m in recent]))
    if len(recent) < settings.min_frames:
        verdict = Verdict.NOT_ENOUGH_MOTION
    elif score >= settings.three_d_above and relief >= settings.min_relief:
        verdict = Verdict.THREE_D
    elif score <= settings.planar_below:
        planar = len(recent) >= settings.min_frames_planar
        verdict = Verdict.PLANAR if planar else Verdict.NOT_ENOUGH_MOTION
    else:
        verdict = Verdict.AMBIGUOUS
    return PlanarityResult(verdict, score, relief, len(recent))


class PlanarityCue:
    """Collects the planarity evidence of one face track, frame by frame.

    Each new mesh is paired with up to ``settings.window`` previous meshes of the track; of
    the pairs whose motion reaches ``settings.min_motion`` the one that moved most is the
    frame's evidence (one per frame, so that ``min_frames`` counts frames, not overlapping
    pairs). Feed only meshes of one face, and only confident ones (the caller drops meshes
    below the landmark model's ``min_score``); start a new cue, or :meth:`reset`, for a new
    track. Costs ``window`` pair measures per frame, solved in one batch (about 1 ms on a
    desktop core; ``tools/measure_planarity.py`` prints it).
    """

    def __init__(self, settings: PlanaritySettings | None = None) -> None:
        self.settings = settings or PlanaritySettings()
        self._meshes: deque[np.ndarray] = deque(maxlen=self.settings.window)
        self._evidence: deque[PairMeasure] = deque(maxlen=self.settings.history)
        self.frames_seen = 0
        #: the pair that was the latest frame's evidence (None: that frame did not move)
        self.last_pair: PairMeasure | None = None

    def add(self, points: np.ndarray) -> PlanarityResult:
        """Take the next mesh ``(468, 2)`` of the track; return the verdict so far."""
        mesh = check_points(points)
        self.last_pair = best_pair(self._meshes, mesh, self.settings.min_motion)
        if self.last_pair is not None:
            self._evidence.append(self.last_pair)
        self._meshes.append(mesh)
        self.frames_seen += 1
        return self.result()

    def result(self) -> PlanarityResult:
        """The verdict on the evidence so far."""
        return judge(self._evidence, self.settings)

    def reset(self) -> None:
        """Forget the track (a new face, or the old one lost)."""
        self._meshes.clear()
        self._evidence.clear()
        self.frames_seen = 0
        self.last_pair = None


def assess_sequence(
    meshes: Iterable[np.ndarray], settings: PlanaritySettings | None = None
) -> list[PlanarityResult]:
    """The cue's result after each mesh of one track (a convenience for tools and tests)."""
    cue = PlanarityCue(settings)
    return [cue.add(points) for points in meshes]
