"""Enrolment at the door: the guided capture and the administrator's arming file.

Two halves, neither touching hardware:

**The capture.** A :class:`CaptureSession` is a small state machine driven by
``feed(face_count, subject, now)`` once per frame. Each frame is judged
(:func:`judge_frame`): exactly one face in view, and that face passes a gate stricter
than recognition's (:class:`CaptureSettings` holds the limits: the stored face is the
reference every later match is measured against, so it must be large, sharp, frontal and
well exposed). Good frames are kept; the session ends early once it has three good frames
per embedding wanted, else at its deadline. :meth:`CaptureSession.finish` then picks up
to ``embeddings`` views that differ from each other (:func:`pick_diverse`: greedy
farthest-point in embedding space, refusing near-duplicates), or fails with the most
common reason a frame was refused ("no face", "two faces", "too blurred", ...), which is
what a person at the door can act on. :func:`complete` checks the picked faces against
the gallery (a face that already matches someone else is refused) and stores the person in
ONE transaction, so a crash never leaves half a person.

**Arming.** Anyone can press a button at the door, so a press alone never gives access.
An administrator arms enrolment for a name and a time (``facegate enroll arm``): a small
JSON file, ``enrolment-armed.json`` next to the gallery it enrols into (the service's state
directory, unless ``storage.gallery`` moves the gallery), written atomically (temporary
file, fsync, rename) with mode 0600. The daemon polls it with one ``stat`` per
frame (:class:`ArmingWatcher`) and re-reads it only when it changed. The state directory
belongs to the service user (mode 0700), so arming needs that user's rights
(``sudo -u facegate facegate enroll arm ...``), exactly like editing the gallery; a file
that is writable by group or others, or owned by another user, is refused. The daemon,
not the file, decides expiry: never later than ``armed_at + max_armed_minutes``.

Frames are analysed by the caller (:class:`~pi_facegate.vision.recognizer.Recognizer`), so the
daemon and ``facegate enroll NAME --camera`` share everything here.
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import stat
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pi_facegate.core.matcher import GalleryIndex, search
from pi_facegate.core.quality import QualityLimits
from pi_facegate.exc import EnrolmentError, FacegateError

if TYPE_CHECKING:
    from pi_facegate.config.schema import Config
    from pi_facegate.core.faces import Face
    from pi_facegate.storage.gallery import Gallery, Person
    from pi_facegate.vision.recognizer import FaceAnalysis

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

ARMING_FILE_NAME = "enrolment-armed.json"
ARMING_FILE_MODE = 0o600
#: How long ``facegate enroll arm`` arms without ``--timeout``, seconds.
DEFAULT_ARMING_SECONDS = 300.0
#: An arming dated this far in the future (seconds) is refused: a clock jump or a forgery.
_CLOCK_SKEW_SECONDS = 60.0


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
    def from_config(cls, config: Config) -> CaptureSettings:
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


def judge_frame(face_count: int, subject: FaceAnalysis | None) -> FrameJudgement:
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

    def feed(self, face_count: int, subject: FaceAnalysis | None, now: float) -> FrameJudgement:
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


# --------------------------------------------------------------------------- storing


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


@dataclass(frozen=True)
class EnrolmentOutcome:
    """The end of one enrolment: the stored person, or the reason nothing was stored."""

    request: EnrolmentRequest
    capture: CaptureResult
    person: Person | None = None
    reason: str | None = None
    lookalike: str | None = None  # the enrolled person the face already matches, if that failed it

    @property
    def ok(self) -> bool:
        return self.person is not None


def lookalike(
    index: GalleryIndex, embeddings: np.ndarray, threshold: float, min_margin: float, name: str
) -> tuple[str, float] | None:
    """``(person, distance)`` if any of ``embeddings`` is within ``threshold`` of someone
    other than ``name``; else None.

    Deliberately stricter than recognition (no margin needed): storing a face that is
    already close to somebody else would make both of them doubtful at the door.
    """
    if len(index) == 0 or len(embeddings) == 0:
        return None
    own = name.casefold()
    for match in search(index, embeddings, threshold, min_margin):
        if match is not None and match.within_threshold and match.name.casefold() != own:
            return match.name, match.distance
    return None


def complete(
    gallery: Gallery,
    index: GalleryIndex,
    request: EnrolmentRequest,
    capture: CaptureResult,
    threshold: float,
    min_margin: float,
) -> EnrolmentOutcome:
    """Store a finished capture in ONE transaction, or say why not.

    Nothing is stored when the capture failed, when the face already matches another
    enrolled person (unless ``request.allow_lookalike``), when the name is taken (without
    ``update``) or unknown (with ``update``). Gallery errors become the outcome's reason.
    """
    if not capture.ok:
        return EnrolmentOutcome(request, capture, reason=capture.reason)
    if not request.allow_lookalike:
        found = lookalike(index, capture.embeddings, threshold, min_margin, request.name)
        if found is not None:
            other, distance = found
            reason = f"already enrolled as {other!r} (distance {distance:.3f})"
            return EnrolmentOutcome(request, capture, reason=reason, lookalike=other)
    try:
        if request.update:
            person = gallery.add_embeddings(request.name, capture.embeddings, source=request.source)
        else:
            person = gallery.add_person(
                request.name,
                capture.embeddings,
                enabled=request.enabled,
                pending=request.pending,
                note=request.note,
                source=request.source,
            )
    except FacegateError as exc:
        return EnrolmentOutcome(request, capture, reason=str(exc))
    return EnrolmentOutcome(request, capture, person=person)


def pending_name(now: float | None = None) -> str:
    """The name of a person captured without arming: ``pending-YYYYmmdd-HHMMSS`` (local)."""
    return time.strftime("pending-%Y%m%d-%H%M%S", time.localtime(now))


# --------------------------------------------------------------------------- arming


@dataclass(frozen=True)
class Arming:
    """An administrator's permission for the next button press to enrol ``name``.

    Times are epoch seconds (``time.time()``): the CLI and the daemon are different
    processes, possibly different users. ``token`` tells one arming from the next with the
    same name, so the daemon consumes exactly the arming it used.
    """

    name: str
    update: bool
    armed_at: float
    expires_at: float
    token: str
    armed_by: str = ""

    def expiry(self, max_seconds: float | None = None) -> float:
        """When this arming ends, capped at ``armed_at + max_seconds`` (the daemon's limit)."""
        end = self.expires_at
        if max_seconds is not None:
            end = min(end, self.armed_at + max_seconds)
        return end

    def is_active(self, now: float, max_seconds: float | None = None) -> bool:
        """True from ``armed_at`` until :meth:`expiry`; an arming from the future is not."""
        return self.armed_at - _CLOCK_SKEW_SECONDS <= now < self.expiry(max_seconds)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "arming file") -> Arming:
        """Parse and validate; anything odd is an :class:`EnrolmentError` naming the problem."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise EnrolmentError(f"{source}: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise EnrolmentError(f"{source}: expected a JSON object")
        problems = []
        for key, kind in (("name", str), ("update", bool), ("token", str)):
            if not isinstance(data.get(key), kind):
                problems.append(f"{key} must be a {kind.__name__}")
        for key in ("armed_at", "expires_at"):
            value = data.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                problems.append(f"{key} must be a number")
            elif not math.isfinite(value):
                problems.append(f"{key} must be finite")
        if problems:
            raise EnrolmentError(f"{source}: " + "; ".join(problems))
        if not data["name"].strip():
            raise EnrolmentError(f"{source}: name is empty")
        return cls(
            name=data["name"],
            update=data["update"],
            armed_at=float(data["armed_at"]),
            expires_at=float(data["expires_at"]),
            token=data["token"],
            armed_by=str(data.get("armed_by", "")),
        )


def arming_path(directory: Path) -> Path:
    """The arming file in ``directory`` (the gallery's: the CLI and the daemon agree on it)."""
    return Path(directory) / ARMING_FILE_NAME


def new_arming(
    name: str, seconds: float, update: bool = False, now: float | None = None, armed_by: str = ""
) -> Arming:
    """An arming of ``name`` for ``seconds`` from ``now`` (epoch), with a fresh token."""
    if not (math.isfinite(seconds) and seconds > 0):
        raise EnrolmentError(f"an arming must last a positive time, not {seconds!r} s")
    start = time.time() if now is None else float(now)
    return Arming(name, bool(update), start, start + seconds, secrets.token_hex(8), armed_by)


def write_arming(path: Path, arming: Arming) -> None:
    """Write ``arming`` atomically with mode 0600: the daemon sees the old file or the new.

    The temporary file is created in the same directory (``mkstemp`` makes it 0600),
    flushed to disk, then renamed over the old one; the directory is synced so the rename
    survives a power cut.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), ARMING_FILE_MODE)
            handle.write(arming.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _sync_dir(path.parent)


def read_arming(path: Path) -> Arming | None:
    """The arming in ``path``, or None if there is none.

    :raises EnrolmentError: when the file cannot be read, is not an arming, or is writable
        by anyone but its owner, or owned by another user than this process or root (it
        could then have been planted).
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as handle:
            _check_file_trust(os.fstat(handle.fileno()), path)
            text = handle.read(64 * 1024)
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise EnrolmentError(f"{path}: cannot read the arming file: {exc}") from None
    return Arming.from_json(text, str(path))


def clear_arming(path: Path, token: str | None = None) -> Arming | None:
    """Remove the arming file; returns the arming removed (None if there was none).

    With ``token``, only that arming is removed: an administrator who re-armed in between
    keeps the new one (the daemon consumes exactly the arming it used).
    """
    try:
        arming = read_arming(path)
    except EnrolmentError:
        arming = None  # an invalid file is removed all the same (unless a token was asked)
        if token is not None:
            return None
    if token is not None and (arming is None or arming.token != token):
        return None
    try:
        Path(path).unlink()
    except FileNotFoundError:
        return None
    _sync_dir(Path(path).parent)
    return arming


def _check_file_trust(st: os.stat_result, path: Path) -> None:
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise EnrolmentError(
            f"{path}: refused: writable by group or others (mode {stat.S_IMODE(st.st_mode):o})"
        )
    if hasattr(os, "getuid") and st.st_uid not in (os.getuid(), 0):
        raise EnrolmentError(
            f"{path}: refused: owned by uid {st.st_uid}, not by the service user; "
            "arm as the service user (sudo -u facegate facegate enroll arm ...)"
        )


def _sync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class ArmingWatcher:
    """The daemon's view of the arming file: one ``stat`` per poll, a read only on change.

    :meth:`poll` returns the active arming or None. An invalid file is logged once (per
    change of the file) and treated as "not armed": an error never arms anything.
    """

    def __init__(self, path: Path, max_seconds: float) -> None:
        self.path = Path(path)
        self.max_seconds = float(max_seconds)
        self._key: tuple[int, ...] | None = None
        self._arming: Arming | None = None
        self.error: str | None = None  # why the current file was refused, if it was

    def poll(self, now: float | None = None) -> Arming | None:
        """The arming in force at ``now`` (epoch seconds; default: the current time)."""
        now = time.time() if now is None else now
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._key, self._arming, self.error = None, None, None
            return None
        except OSError as exc:
            self._refuse(None, f"{self.path}: cannot stat the arming file: {exc}")
            return None
        key = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)
        if key != self._key:
            self._key = key
            try:
                self._arming, self.error = read_arming(self.path), None
            except EnrolmentError as exc:
                self._refuse(key, str(exc))
        arming = self._arming
        if arming is None or not arming.is_active(now, self.max_seconds):
            return None
        return arming

    def current(self) -> Arming | None:
        """The last arming read, active or not (to tell an expiry from a cancel)."""
        return self._arming

    def _refuse(self, key: tuple[int, ...] | None, error: str) -> None:
        if error != self.error:
            log.warning("enrolment is not armed: %s", error)
        self._key, self._arming, self.error = key, None, error
