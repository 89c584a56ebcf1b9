"""The access policy: the only path from recognition to an unlock decision.

One frame's match is never enough to open a door: the matcher can be fooled for a frame by
blur, a turned head or a lookalike. :class:`AccessPolicy` therefore collects one
observation per face per frame (per *track*, see :mod:`pi_facegate.core.tracker`) and grants
only when the **same** person was identified in at least ``votes_required`` (N) of the
last ``window_frames`` (M) observations of that face, all within ``window_seconds`` (T),
and that person is enabled and approved. Then the person is in cooldown for
``cooldown_seconds``: standing at the door does not pulse the relay again, from any track.

Everything else keeps the door locked:

* two different people identified in one face's window (votes disagree): never granted;
* a disabled or pending (not yet approved) person: denied, however good the match;
* a face nobody matches: denied as unknown once it has been seen for N frames (the same
  amount of evidence a grant needs, so a blurred first frame of an enrolled person is not
  logged as a stranger);
* with ``require_liveness``: an identified face whose liveness (see
  :mod:`pi_facegate.core.liveness`, passed in per observation) is not "live" -- a confident
  attack is denied as ``presentation_attack`` at once, whatever the votes; a face still
  waiting for evidence stays PENDING until its wait is over, then is denied as
  ``no_liveness``. No liveness given counts as no evidence: never a grant;
* a live, identified person whose access rules (:attr:`AccessPolicy.rules`, see
  :mod:`pi_facegate.core.access_rules`) forbid entry now: denied as ``expired`` or
  ``not_yet_valid`` (validity dates) or ``schedule`` (outside their schedule, or on one the
  config lacks). These come last -- identity, then liveness, then the rules -- and are not
  final for the face: time passes, and a window that opens lets them in.

Pure: no clock, no I/O. The caller passes ``now`` (seconds on a monotonic clock) with every
call, and the local wall-clock time the rules are read in, which also makes the policy
exactly testable.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from pi_facegate.core.access_rules import EXPIRED, NOT_YET_VALID, SCHEDULE, AccessRules
from pi_facegate.exc import ConfigError


class LivenessLike(Protocol):
    """What the policy reads of a liveness verdict (``core.liveness.LivenessResult`` fits)."""

    @property
    def live(self) -> bool: ...

    @property
    def attack(self) -> bool: ...

    @property
    def timed_out(self) -> bool: ...

    def cues(self) -> dict[str, Any]: ...


class FaceMatch(Protocol):
    """What the policy reads from a matcher result (``pi_facegate.core.matcher.Match`` fits).

    ``accepted`` must be true only when the threshold and the margin are both met (it may
    also demand an enabled, approved person; a grant needs that in any case). Two optional
    attributes are read when present, because a matcher may keep identity and permission
    apart: ``recognised`` (identity only; then ``accepted`` may also require
    enabled and approved, and a recognised disabled person is reported as disabled rather
    than unknown) and ``reason`` (why the matcher refused; ``"doubtful"`` -- the best
    person is not far enough ahead of the second -- is reported as doubtful).
    """

    @property
    def person_id(self) -> int: ...

    @property
    def name(self) -> str: ...

    @property
    def distance(self) -> float: ...

    @property
    def margin(self) -> float | None: ...

    @property
    def accepted(self) -> bool: ...

    @property
    def enabled(self) -> bool: ...

    @property
    def pending(self) -> bool: ...


class Verdict(StrEnum):
    """What the policy concluded about one face at one frame."""

    GRANT = "grant"  #: open the door (pulse the relay)
    DENY_UNKNOWN = "deny_unknown"  #: nobody in the gallery matches this face
    DENY_DISABLED = "deny_disabled"  #: an enrolled person an administrator disabled
    DENY_PENDING = "deny_pending"  #: an enrolled person still awaiting approval
    DENY_DOUBTFUL = "deny_doubtful"  #: votes disagree, or the match is not clear enough
    DENY_ATTACK = "deny_presentation_attack"  #: a photo, print or screen, not a live face
    DENY_NO_LIVENESS = "deny_no_liveness"  #: identified, but no live verdict in time
    DENY_SCHEDULE = "deny_schedule"  #: identified and live, but outside their schedule
    DENY_EXPIRED = "deny_expired"  #: identified and live, but their access has expired
    DENY_NOT_YET_VALID = "deny_not_yet_valid"  #: identified and live, access not begun
    PENDING = "pending"  #: still collecting votes: no decision yet (door stays locked)
    COOLDOWN = "cooldown"  #: this person was just granted: no new pulse (door as it is)

    @property
    def is_grant(self) -> bool:
        return self is Verdict.GRANT

    @property
    def is_deny(self) -> bool:
        return self.value.startswith("deny_")

    @property
    def reason(self) -> str:
        """The short reason an event log uses: ``unknown``, ``disabled``, ``pending``, ..."""
        return self.value.removeprefix("deny_")


@dataclass(frozen=True)
class Decision:
    """The policy's answer for one observation of one face.

    ``person_id``/``name`` are the person the votes point to (``None`` for an unknown face
    or split votes); ``distance``/``margin`` come from that person's latest vote, or from
    the latest observation when there is no vote (useful when tuning the threshold).
    ``votes`` is how many observations in the window identified that person, ``window``
    how many observations the window holds, and ``candidates`` every person voted for in
    the window (more than one means the votes are split).
    """

    verdict: Verdict
    track_id: int
    person_id: int | None = None
    name: str | None = None
    distance: float | None = None
    margin: float | None = None
    votes: int = 0
    window: int = 0
    candidates: tuple[str, ...] = field(default=())
    liveness: dict[str, Any] | None = None  #: the liveness cues' evidence, when judged
    rule: dict[str, Any] | None = None  #: which access rule refused, for a rule denial

    @property
    def granted(self) -> bool:
        """True only for :attr:`Verdict.GRANT`: the one answer that may open the door."""
        return self.verdict is Verdict.GRANT

    def event_fields(self) -> dict[str, Any] | None:
        """Keyword arguments for ``EventWriter.record(**fields)``, or ``None`` (no event).

        GRANT becomes a ``granted`` event, DENY_ATTACK a ``presentation_attack`` event, every
        other DENY_* a ``denied`` event with the reason; PENDING and COOLDOWN are not events.
        The liveness cues' scores go into the detail when the face was judged, and the
        refusing rule (schedule name, date) for a rule denial.
        """
        if self.verdict.is_grant:
            kind = "granted"
        elif self.verdict is Verdict.DENY_ATTACK:
            kind = "presentation_attack"
        elif self.verdict.is_deny:
            kind = "denied"
        else:
            return None
        detail: dict[str, Any] = {"track": self.track_id, "votes": self.votes}
        if self.verdict.is_deny:
            detail["reason"] = self.verdict.reason
        if len(self.candidates) > 1:
            detail["candidates"] = list(self.candidates)
        if self.liveness:
            detail.update(self.liveness)
        if self.rule:
            detail.update(self.rule)
        return {
            "kind": kind,
            "person": self.name,
            "distance": self.distance,
            "margin": self.margin,
            "detail": detail,
        }


@dataclass(frozen=True)
class _Observation:
    time: float
    match: FaceMatch | None
    vote: int | None  # the person id this observation identifies, if any
    doubtful: bool  # the matcher called it doubtful (best not clearly ahead of second)


@dataclass
class _TrackState:
    window: deque[_Observation]
    seen: int = 0  # observations since the track appeared (not limited to the window)
    last_time: float = -math.inf


class AccessPolicy:
    """Turns per-frame matches of each face into grant / deny decisions.

    :param votes_required: N, identifications of the same person needed to grant.
    :param window_frames: M, how many of a face's latest observations count (N <= M).
    :param window_seconds: T, observations older than this no longer count.
    :param cooldown_seconds: after a grant, that person is not granted again for this long.
    :param unknown_log_interval_seconds: :meth:`should_log` says yes to the same kind of
        denial of the same face at most once per this interval.
    :param require_liveness: a grant also needs a live verdict on the same track (the
        daemon sets it from ``liveness.enabled``; off only for callers that judge single
        photos, such as tests of the vote rules)

    :attr:`rules` (the config's schedules and each person's rules; none by default) may be
    replaced at any time: the daemon does so when the gallery or the config changes.
    """

    def __init__(
        self,
        votes_required: int = 3,
        window_frames: int = 5,
        window_seconds: float = 2.0,
        cooldown_seconds: float = 5.0,
        unknown_log_interval_seconds: float = 10.0,
        require_liveness: bool = False,
    ) -> None:
        _check_count("votes_required", votes_required)
        _check_count("window_frames", window_frames)
        if votes_required > window_frames:
            raise ConfigError(
                f"access policy: votes_required ({votes_required}) cannot exceed "
                f"window_frames ({window_frames}): no face could ever be granted"
            )
        _check_seconds("window_seconds", window_seconds, allow_zero=False)
        _check_seconds("cooldown_seconds", cooldown_seconds)
        _check_seconds("unknown_log_interval_seconds", unknown_log_interval_seconds)
        self.votes_required = int(votes_required)
        self.window_frames = int(window_frames)
        self.window_seconds = float(window_seconds)
        self.cooldown_seconds = float(cooldown_seconds)
        self.unknown_log_interval_seconds = float(unknown_log_interval_seconds)
        self.require_liveness = bool(require_liveness)
        self.rules = AccessRules()
        self._tracks: dict[int, _TrackState] = {}
        self._cooldown_until: dict[int, float] = {}
        self._last_logged: dict[tuple[int, Verdict], float] = {}

    def observe(
        self,
        track_id: int,
        match: FaceMatch | None,
        now: float,
        liveness: LivenessLike | None = None,
        local_time: datetime | None = None,
    ) -> Decision:
        """Add one frame's ``match`` for the face ``track_id`` and decide.

        ``match`` is the matcher's result for this face, or ``None`` when nothing matched
        (empty gallery, unusable embedding). ``now`` is the frame's time in seconds on a
        monotonic clock. ``liveness`` is the track's liveness verdict after this frame (read
        only with ``require_liveness``). ``local_time`` is the door's wall-clock time, which
        :attr:`rules` are read in (``None``: anybody with a rule is refused). Only a
        :class:`Decision` whose :attr:`~Decision.granted` is true may open the door.
        """
        self._prune(now)
        state = self._tracks.get(track_id)
        if state is None:
            state = _TrackState(deque(maxlen=self.window_frames))
            self._tracks[track_id] = state
        state.seen += 1
        state.last_time = now
        state.window.append(_observe(match, now))
        while state.window and now - state.window[0].time > self.window_seconds:
            state.window.popleft()
        decision = self._decide(track_id, state, now, liveness, local_time)
        judged = decision.verdict.is_deny or decision.verdict.is_grant
        if liveness is not None and self.require_liveness and judged:
            decision = replace(decision, liveness=liveness.cues())
        return decision

    def should_log(self, decision: Decision, now: float) -> bool:
        """Whether the caller should write ``decision`` to the event log now.

        A grant is always logged; PENDING and COOLDOWN never are. A denial is logged at
        most once per ``unknown_log_interval_seconds`` per face and kind of denial, so a
        stranger standing at the door is one event, not one per frame. A ``True`` answer
        counts as logged: ask once per decision.
        """
        if decision.verdict.is_grant:
            return True
        if not decision.verdict.is_deny:
            return False
        key = (decision.track_id, decision.verdict)
        last = self._last_logged.get(key)
        if last is not None and now - last < self.unknown_log_interval_seconds:
            return False
        self._last_logged[key] = now
        return True

    def forget(self, track_id: int) -> None:
        """Drop everything about a face that left (the tracker dropped its track)."""
        self._tracks.pop(track_id, None)
        for key in [k for k in self._last_logged if k[0] == track_id]:
            del self._last_logged[key]

    def reset(self, *, keep_cooldowns: bool = True) -> None:
        """Forget all votes and log limits (call on a gallery change or a new config).

        Votes cast against the old gallery may name people who were since removed or
        disabled, so they must not count. Cooldowns are kept unless ``keep_cooldowns`` is
        false: a reload while someone stands at the door must not pulse the relay again.
        """
        self._tracks.clear()
        self._last_logged.clear()
        if not keep_cooldowns:
            self._cooldown_until.clear()

    def carry_over(self, old: AccessPolicy) -> None:
        """Take over ``old``'s state: the policy a config reload replaces with this one.

        Cooldowns, each face's recent observations (trimmed to this policy's window), the
        log limits and the access rules are kept, so a person standing at the door during
        ``systemctl reload`` is not pulsed a second time and a stranger is not logged again
        at once (the daemon then sets the rules of the new config).
        """
        self._cooldown_until = dict(old._cooldown_until)
        self._last_logged = dict(old._last_logged)
        self.rules = old.rules
        self._tracks = {
            track: _TrackState(
                deque(state.window, maxlen=self.window_frames), state.seen, state.last_time
            )
            for track, state in old._tracks.items()
        }

    def in_cooldown(self, person_id: int, now: float) -> bool:
        """True while ``person_id`` was granted less than ``cooldown_seconds`` ago."""
        return now < self._cooldown_until.get(person_id, -math.inf)

    def _decide(
        self,
        track_id: int,
        state: _TrackState,
        now: float,
        liveness: LivenessLike | None,
        local_time: datetime | None,
    ) -> Decision:
        window = list(state.window)
        votes = [(o.vote, o.match) for o in window if o.vote is not None and o.match is not None]
        people = {person for person, _ in votes}
        candidates = tuple(dict.fromkeys(str(match.name) for _, match in votes))
        if len(people) > 1:
            return self._about(Verdict.DENY_DOUBTFUL, track_id, votes[-1][1], 0, window, candidates)
        if people:
            identified = self._identified(track_id, votes, window, candidates, now, liveness)
            return self._apply_rules(identified, now, local_time)
        latest = window[-1]
        if state.seen < self.votes_required:
            verdict = Verdict.PENDING
        elif latest.doubtful:
            verdict = Verdict.DENY_DOUBTFUL
        else:
            verdict = Verdict.DENY_UNKNOWN
        match = latest.match
        return Decision(
            verdict,
            track_id,
            distance=_number(match.distance) if match is not None else None,
            margin=_number(match.margin) if match is not None else None,
            votes=0,
            window=len(window),
        )

    def _identified(
        self,
        track_id: int,
        votes: list[tuple[int, FaceMatch]],
        window: list[_Observation],
        candidates: tuple[str, ...],
        now: float,
        liveness: LivenessLike | None = None,
    ) -> Decision:
        """Decide for a window whose votes all name one person.

        Every vote must allow access, not just the latest: a person disabled while they
        stand at the door is refused from that frame on. A confident attack is denied
        before the votes are complete: it is the same face, and it will not become live.
        """
        person, latest = votes[-1]
        matches = [match for _, match in votes]
        checks_liveness = self.require_liveness
        if checks_liveness and liveness is not None and liveness.attack:
            verdict = Verdict.DENY_ATTACK
        elif len(votes) < self.votes_required:
            verdict = Verdict.PENDING
        elif any(not m.enabled for m in matches):
            verdict = Verdict.DENY_DISABLED
        elif any(m.pending for m in matches):
            verdict = Verdict.DENY_PENDING
        elif not all(m.accepted for m in matches):
            verdict = Verdict.DENY_DOUBTFUL  # identified, yet the matcher would not accept
        elif self.in_cooldown(person, now):
            verdict = Verdict.COOLDOWN
        elif checks_liveness and (liveness is None or not liveness.live):
            timed_out = liveness is not None and liveness.timed_out
            verdict = Verdict.DENY_NO_LIVENESS if timed_out else Verdict.PENDING
        else:
            verdict = Verdict.GRANT  # unless the access rules say otherwise: _apply_rules
        return self._about(verdict, track_id, latest, len(votes), window, candidates)

    def _apply_rules(self, decision: Decision, now: float, local: datetime | None) -> Decision:
        """A would-be grant checked against the person's access rules, last of all.

        Identity and liveness come first, so a refused rule never hides an attack and is
        only logged for a live, identified person. The cooldown starts with a real grant.
        """
        if not decision.granted:
            return decision
        refusal = self.rules.check(int(decision.person_id), local)
        if refusal is None:
            self._cooldown_until[int(decision.person_id)] = now + self.cooldown_seconds
            return decision
        return replace(decision, verdict=_RULE_VERDICTS[refusal.reason], rule=refusal.detail)

    @staticmethod
    def _about(
        verdict: Verdict,
        track_id: int,
        match: FaceMatch,
        count: int,
        window: list[_Observation],
        candidates: tuple[str, ...],
    ) -> Decision:
        """A decision naming the person of ``match`` (nobody when the votes are split)."""
        split = len(candidates) > 1
        return Decision(
            verdict,
            track_id,
            person_id=None if split else int(match.person_id),
            name=None if split else str(match.name),
            distance=_number(match.distance),
            margin=_number(match.margin),
            votes=count,
            window=len(window),
            candidates=candidates,
        )

    def _prune(self, now: float) -> None:
        """Drop state that can no longer matter, so a long-running daemon stays small."""
        horizon = max(self.window_seconds, self.unknown_log_interval_seconds)
        for track_id in [t for t, s in self._tracks.items() if now - s.last_time > horizon]:
            del self._tracks[track_id]
        for key in [
            k for k, t in self._last_logged.items() if now - t >= self.unknown_log_interval_seconds
        ]:
            del self._last_logged[key]
        for person in [p for p, t in self._cooldown_until.items() if now >= t]:
            del self._cooldown_until[person]


_RULE_VERDICTS = {
    SCHEDULE: Verdict.DENY_SCHEDULE,
    EXPIRED: Verdict.DENY_EXPIRED,
    NOT_YET_VALID: Verdict.DENY_NOT_YET_VALID,
}


def _observe(match: FaceMatch | None, now: float) -> _Observation:
    """One observation: does ``match`` identify someone, and is it a doubtful one?"""
    if match is None:
        return _Observation(now, None, None, False)
    identified = bool(getattr(match, "recognised", match.accepted))
    vote = int(match.person_id) if identified and match.person_id is not None else None
    doubtful = str(getattr(match, "reason", "") or "") == "doubtful"
    return _Observation(now, match, vote, doubtful and vote is None)


def _number(value: float | None) -> float | None:
    """A finite float, or ``None`` (an infinite margin means there is no second person)."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ConfigError(f"access policy: {name} must be a whole number >= 1, got {value!r}")


def _check_seconds(name: str, value: float, allow_zero: bool = True) -> None:
    number = float(value)
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(
            f"access policy: {name} must be a number of seconds {bound}, got {value!r}"
        )
