"""Enrolment at the door: the guided capture, a pure state machine touching no hardware.

A :class:`CaptureSession` is a small state machine driven by
``feed(face_count, subject, now)`` once per frame. Each frame is judged
(:func:`judge_frame`): exactly one face in view, and that face passes a gate stricter
than recognition's (:class:`CaptureSettings` holds the limits: the stored face is the
reference every later match is measured against, so it must be large, sharp, frontal and
well exposed). Good frames are kept; the session ends early once it has three good frames
per embedding wanted, else at its deadline. :meth:`CaptureSession.finish` then picks up
to ``embeddings`` views that differ from each other (:func:`pick_diverse`: greedy
farthest-point in embedding space, refusing near-duplicates), or fails with the most
common reason a frame was refused ("no face", "two faces", "too blurred", ...), which is
what a person at the door can act on. :func:`lookalike` tells whether the picked faces
already match someone else; storing them (in ONE transaction, so a crash never leaves half
a person) is :func:`pi_facegate.daemon.enrolment_store.complete`'s job.

Arming -- the administrator's permission for the next button press, a file next to the
gallery -- is file I/O and lives in :mod:`pi_facegate.storage.arming`.

Frames are analysed by the caller (:class:`~pi_facegate.vision.recognizer.Recognizer`), so the
daemon and ``facegate enroll NAME --camera`` share everything here. This module sees them
only through the small :class:`AnalysedFace` protocol, and the config only through
:class:`CaptureConfig`: ``core`` imports no other room, not even for type hints.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from pi_facegate.core.faces import Face
from pi_facegate.core.matcher import GalleryIndex, search
from pi_facegate.core.quality import QualityLimits, QualityReport
from pi_facegate.exc import EnrolmentError

log = logging.getLogger("pi_facegate.enrolment")  # journal name: stable across moves

#: Reasons a frame is refused besides the quality gate's ("too small", "too dark", ...).
NO_FACE = "no face"
TWO_FACES = "two faces"
MORE_FACES = "more than two faces"
#: Reasons a whole capture fails besides its frames' most common one.
TOO_FEW_VIEWS = "too few different views"  # good frames, but near-duplicates of each other
NO_FRAMES = "no frames from the camera"
#: The session ends early once it holds this many good frames per embedding wanted: enough
#: choice for :func:`pick_diverse`, and the person need not stand there any longer.
GOOD_FRAMES_PER_EMBEDDING = 3


# --------------------------------------------------------------------------- what the caller gives


class AnalysedFace(Protocol):
    """One face as the recognition pipeline analysed it (``vision``'s ``FaceAnalysis`` fits).

    ``embedding`` is None when the face failed the gate it was analysed with.
    """

    @property
    def quality(self) -> QualityReport: ...

    @property
    def embedding(self) -> np.ndarray | None: ...


class QualityGate(Protocol):
    """A config section with the quality gate's limits (``quality:`` and ``enrolment:``)."""

    @property
    def min_face_size(self) -> float: ...

    @property
    def min_sharpness(self) -> float: ...

    @property
    def max_yaw(self) -> float: ...

    @property
    def min_brightness(self) -> float: ...

    @property
    def max_brightness(self) -> float: ...


class EnrolmentGate(QualityGate, Protocol):
    """The ``enrolment:`` section: a stricter gate, plus how long and how much to capture."""

    @property
    def capture_seconds(self) -> float: ...

    @property
    def embeddings(self) -> int: ...

    @property
    def min_good_frames(self) -> int: ...

    @property
    def min_distance(self) -> float: ...


class CaptureConfig(Protocol):
    """What :meth:`CaptureSettings.from_config` reads of the config (``Config`` fits)."""

    @property
    def enrolment(self) -> EnrolmentGate: ...

    @property
    def quality(self) -> QualityGate: ...


# --------------------------------------------------------------------------- judging frames


@dataclass(frozen=True)
class CaptureSettings:
    """How one capture judges frames and when it is done (see the ``enrolment:`` config).

    ``limits`` is the quality gate for a stored face; ``capture_seconds`` the longest
    capture; ``embeddings`` the most views stored; ``min_good_frames`` the fewest distinct
    good frames for success; ``min_distance`` the Euclidean distance below which two
    embeddings are near-duplicates.
    """

    limits: QualityLimits = field(default_factory=QualityLimits)
    capture_seconds: float = 8.0
    embeddings: int = 5
    min_good_frames: int = 3
    min_distance: float = 0.06

    def __post_init__(self) -> None:
        if not (math.isfinite(self.capture_seconds) and self.capture_seconds > 0):
            raise ValueError(f"capture_seconds must be > 0, got {self.capture_seconds!r}")
        if not 1 <= self.min_good_frames <= self.embeddings:
            raise ValueError(
                f"need 1 <= min_good_frames ({self.min_good_frames}) <= embeddings "
                f"({self.embeddings})"
            )
        if not (math.isfinite(self.min_distance) and self.min_distance >= 0):
            raise ValueError(f"min_distance must be >= 0, got {self.min_distance!r}")

    @property
    def enough_frames(self) -> int:
        """Good frames after which the capture ends before its deadline."""
        return self.embeddings * GOOD_FRAMES_PER_EMBEDDING

    @classmethod
    def from_config(cls, config: CaptureConfig) -> CaptureSettings:
        """The ``enrolment:`` section, its gate combined with ``quality:`` (stricter wins).

        A stored face must at least be one recognition would embed, so no enrolment limit
        can be laxer than the live gate.
        """
        e, q = config.enrolment, config.quality
        limits = QualityLimits(
            min_face_size=float(max(e.min_face_size, q.min_face_size)),
            min_sharpness=max(e.min_sharpness, q.min_sharpness),
            max_yaw=_stricter_max(e.max_yaw, q.max_yaw),
            min_brightness=max(e.min_brightness, q.min_brightness),
            max_brightness=_stricter_max(e.max_brightness, q.max_brightness),
        )
        return cls(
            limits=limits,
            capture_seconds=e.capture_seconds,
            embeddings=e.embeddings,
            min_good_frames=e.min_good_frames,
            min_distance=e.min_distance,
        )


def _stricter_max(a: float, b: float) -> float:
    """The stricter of two upper limits, where 0 means "no limit"."""
    if not a or not b:
        return a or b
    return min(a, b)


@dataclass(frozen=True)
class FrameJudgement:
    """One frame's verdict: a good face's embedding, or the reason the frame was refused."""

    reason: str | None
    embedding: np.ndarray | None = field(default=None, repr=False)

    @property
    def good(self) -> bool:
        return self.reason is None


def subject_index(faces: Sequence[Face]) -> int | None:
    """The face being enrolled among ``faces``: the largest (closest to the camera).

    The daemon feeds this face no votes while it is captured, whatever else is in view.
    """
    if not faces:
        return None
    return max(range(len(faces)), key=lambda i: faces[i].size)


def judge_frame(face_count: int, subject: AnalysedFace | None) -> FrameJudgement:
    """Judge one frame: exactly one face in view, and that face through the enrolment gate.

    ``subject`` is the analysis of the only face (made with the enrolment limits), or
    ``None`` when ``face_count`` is not 1. A second face in view refuses the frame even if
    it is small: the person enrolled must be unambiguous.
    """
    if face_count == 0 or (face_count == 1 and subject is None):
        return FrameJudgement(NO_FACE)
    if face_count == 2:
        return FrameJudgement(TWO_FACES)
    if face_count > 2:
        return FrameJudgement(MORE_FACES)
    if not subject.quality.ok:
        return FrameJudgement(subject.quality.reason)
    if subject.embedding is None:  # pragma: no cover - the pipeline embeds every good face
        return FrameJudgement("not embedded")
    return FrameJudgement(None, np.asarray(subject.embedding, dtype=np.float32))


def pick_diverse(vectors: np.ndarray, count: int, min_distance: float) -> list[int]:
    """Up to ``count`` rows of ``vectors`` that differ most from each other.

    Greedy farthest-point selection: start from the most typical view (the row nearest the
    mean, which is unlikely to be an odd frame), then repeatedly add the row farthest
    (Euclidean) from everything chosen so far. A row closer than ``min_distance`` to a
    chosen one is a near-duplicate and never picked, so a frozen camera or a photo held
    still yields one embedding, not five copies. Returns row indices in picking order.
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2 or len(vectors) == 0 or count < 1:
        return []
    first = int(np.argmin(np.linalg.norm(vectors - vectors.mean(axis=0), axis=1)))
    chosen = [first]
    nearest = np.linalg.norm(vectors - vectors[first], axis=1)  # to the chosen set
    while len(chosen) < count:
        candidate = int(np.argmax(nearest))
        if nearest[candidate] < min_distance or nearest[candidate] == 0.0:
            break
        chosen.append(candidate)
        nearest = np.minimum(nearest, np.linalg.norm(vectors - vectors[candidate], axis=1))
    return chosen


def most_common_reason(reasons: Counter[str]) -> str | None:
    """The reason most frames were refused for (the first seen wins a tie)."""
    common = reasons.most_common(1)
    return common[0][0] if common else None


# --------------------------------------------------------------------------- the session


@dataclass(frozen=True)
class CaptureResult:
    """How a capture ended: the embeddings to store, or why there are none.

    ``embeddings`` is ``(k, D)`` float32 (``k`` = 0 when it failed); ``reasons`` counts the
    refused frames by reason.
    """

    ok: bool
    reason: str | None
    embeddings: np.ndarray = field(repr=False)
    frames: int
    good_frames: int
    reasons: dict[str, int]
    seconds: float
    cancelled: bool = False

    def detail(self) -> dict[str, Any]:
        """What the event log keeps about the capture."""
        return {
            "frames": self.frames,
            "good_frames": self.good_frames,
            "embeddings": len(self.embeddings),
            "refused_frames": dict(self.reasons),
            "seconds": round(self.seconds, 2),
        }


class CaptureSession:
    """One guided capture: feed it every frame until :meth:`due`, then :meth:`finish`.

    Pure: the caller passes ``now`` (monotonic seconds) with every call.

    >>> session = CaptureSession(CaptureSettings(), started=0.0)
    >>> session.feed(0, None, now=0.1).reason
    'no face'
    """

    def __init__(self, settings: CaptureSettings, started: float) -> None:
        self.settings = settings
        self.started = float(started)
        self.deadline = self.started + settings.capture_seconds
        self.frames = 0
        self.reasons: Counter[str] = Counter()
        self.last: FrameJudgement | None = None
        self._good: list[np.ndarray] = []
        self._result: CaptureResult | None = None

    @property
    def good_frames(self) -> int:
        return len(self._good)

    @property
    def result(self) -> CaptureResult | None:
        """The outcome once finished or cancelled, else None."""
        return self._result

    def remaining(self, now: float) -> float:
        """Seconds left before the deadline (0 when past it)."""
        return max(0.0, self.deadline - now)

    def feed(self, face_count: int, subject: AnalysedFace | None, now: float) -> FrameJudgement:
        """Judge one frame (see :func:`judge_frame`) and keep its face if it is good."""
        if self._result is not None:
            raise EnrolmentError("this capture has ended; start a new one")
        judgement = judge_frame(face_count, subject)
        self.frames += 1
        if judgement.good:
            self._good.append(judgement.embedding)
        else:
            self.reasons[judgement.reason] += 1
        self.last = judgement
        return judgement

    def due(self, now: float) -> bool:
        """True when the capture should end: enough good frames, or the time is up."""
        return self.good_frames >= self.settings.enough_frames or now >= self.deadline

    def finish(self, now: float) -> CaptureResult:
        """End the capture: pick diverse embeddings, or fail with the most common reason."""
        if self._result is not None:
            return self._result
        s = self.settings
        vectors = np.stack(self._good) if self._good else np.empty((0, 0), np.float32)
        picked = pick_diverse(vectors, s.embeddings, s.min_distance)
        if len(self._good) < s.min_good_frames:
            reason = most_common_reason(self.reasons) or NO_FRAMES
        elif len(picked) < s.min_good_frames:
            reason = TOO_FEW_VIEWS
        else:
            reason = None
        kept = vectors[picked] if reason is None else np.empty((0, vectors.shape[-1]), np.float32)
        self._result = CaptureResult(
            ok=reason is None,
            reason=reason,
            embeddings=np.ascontiguousarray(kept, dtype=np.float32),
            frames=self.frames,
            good_frames=len(self._good),
            reasons=dict(self.reasons),
            seconds=max(0.0, now - self.started),
        )
        return self._result

    def cancel(self, reason: str, now: float) -> CaptureResult:
        """Abort: nothing will be stored. ``reason`` says who aborted (for the log)."""
        if self._result is None:
            self._result = CaptureResult(
                ok=False,
                reason=reason,
                embeddings=np.empty((0, 0), np.float32),
                frames=self.frames,
                good_frames=len(self._good),
                reasons=dict(self.reasons),
                seconds=max(0.0, now - self.started),
                cancelled=True,
            )
        return self._result


# --------------------------------------------------------------------------- the request


@dataclass(frozen=True)
class EnrolmentRequest:
    """Who a capture is for and how to store them.

    ``update``: add the views to the existing person ``name`` instead of creating one.
    ``pending``: store without access until ``facegate people approve`` (unarmed press).
    ``allow_lookalike``: store even if the face matches somebody else (CLI ``--force``).
    """

    name: str
    update: bool = False
    pending: bool = False
    enabled: bool = True
    note: str = ""
    source: str = "door"
    allow_lookalike: bool = False


def lookalike(
    index: GalleryIndex, embeddings: np.ndarray, threshold: float, min_margin: float, name: str
) -> tuple[str, float] | None:
    """``(person, distance)`` if any of ``embeddings`` would be *recognised* as someone other
    than ``name`` (names compared casefolded); else None.

    The one lookalike rule of every enrolment (photos, the door, ``enroll --camera``): a new
    face that the door would already take for another person (threshold and margin, the
    rule that opens the door) is either that person again under a second name or a
    lookalike who would be let in as them. A face merely within the threshold of two
    similar people (siblings, one camera's grey faces) is not recognised as either, and
    the margin keeps them apart at the door too.
    """
    if len(index) == 0 or len(embeddings) == 0:
        return None
    own = name.casefold()
    for match in search(index, embeddings, threshold, min_margin):
        if match is not None and match.recognised and match.name.casefold() != own:
            return match.name, match.distance
    return None


def update_mismatch(
    index: GalleryIndex, embeddings: np.ndarray, threshold: float, min_margin: float, name: str
) -> str | None:
    """Why ``embeddings`` may not be added to the enrolled person ``name``, or ``None``.

    An update adds views to someone who already has access, so most of the new views must be
    recognised as that person (within the threshold and ahead of the second-best by the
    margin), and none may be someone else: otherwise whoever stands at the door during an
    ``--update`` arming would get that person's access. Not every view: an update exists
    to add views that differ from the stored ones (another angle, other light).
    """
    if len(embeddings) == 0:
        return None
    own = name.casefold()
    matches = search(index, embeddings, threshold, min_margin)
    for match in matches:
        if match is not None and match.within_threshold and match.name.casefold() != own:
            return f"the face is {match.name!r}, not {name!r} (distance {match.distance:.3f})"
    mine = sum(1 for m in matches if m is not None and m.recognised and m.name.casefold() == own)
    if 2 * mine < len(matches):
        return (
            f"the face does not match {name!r}: {mine} of {len(matches)} views recognised "
            "as them (an update must show the same person)"
        )
    return None


def pending_name(now: float | None = None) -> str:
    """The name of a person captured without arming: ``pending-YYYYmmdd-HHMMSS`` (local)."""
    return time.strftime("pending-%Y%m%d-%H%M%S", time.localtime(now))
