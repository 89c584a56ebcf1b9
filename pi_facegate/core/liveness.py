"""Liveness: is the face in front of the door a live head, gathered over one track's frames?

Two independent cues are collected per face track and fused by a fixed, explainable rule:

* **texture** -- the passive anti-spoofing models' live probability of a face crop
  (:mod:`pi_facegate.vision.antispoof`), summarised as the median of the track's latest
  ``texture_frames`` scores. Printed photos score near 0 (NUAA: median 0.000); live faces
  near 1. A *digital* still (a frame of a video shown on a screen, or pasted into the
  stream) can score as live: texture alone is never enough.
* **planarity** -- 3-D structure from motion of the face-mesh landmarks
  (:mod:`pi_facegate.core.planarity`): a print or a screen is a plane, a head is not.
  It needs the head to turn a little; a still face gives "not enough motion".

The rule (``LivenessSettings``):

* **attack** -- texture median <= ``texture_attack_below`` over ``texture_frames`` frames, or
  planarity decided PLANAR. An attack verdict is final for the track: it stays an attack
  for the rest of the track's life, whatever the later frames show.
* **live** -- texture median >= ``texture_live_above`` over ``texture_frames`` frames *and*
  planarity decided THREE_D. Both cues must agree: a face-mesh model fills in a plausible
  3-D shape, so a photo swung by 30 degrees can look 3-D to planarity (measured), while a
  digital still looks live to texture; each covers the other's hole.
* **waiting** -- anything else. The door does not open; after ``max_wait_seconds`` since the
  track was first judged the policy denies it with reason ``no_liveness``, and that too is
  final for the track (walking away and back starts a new track and a new wait).

The **move prompt**: a live person who stands perfectly still gives planarity nothing to
measure (NUAA subject 0003 sat still for 11 s: no frame pair moved out of plane), so after
``prompt_after_seconds`` of waiting for the 3-D cue the result asks, once per track, for a
prompt (:attr:`LivenessResult.prompt`): the door blinks and beeps "turn your head a little".
The prompt is a request, never evidence: the rule above is unchanged, and a photo that is
prompted is still a plane.

Pure: numpy in, plain data out, the clock passed in. The daemon feeds it; the access policy
reads its :class:`LivenessResult`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from pi_facegate.core.planarity import PlanarityCue, PlanarityResult, PlanaritySettings
from pi_facegate.core.planarity import Verdict as PlanarityVerdict
from pi_facegate.exc import ConfigError


class LivenessState(StrEnum):
    """The fused verdict about one track so far."""

    LIVE = "live"  #: both cues say a live head: a grant may follow
    ATTACK = "attack"  #: a cue is confident it is a photo or a screen: never granted
    WAITING = "waiting"  #: not enough evidence yet: the door waits, then stays locked


@dataclass(frozen=True)
class LivenessSettings:
    """Thresholds of the fusion rule (built from the config's ``liveness`` section).

    :param texture_live_above: texture median at or above which texture says live (0..1)
    :param texture_attack_below: texture median at or below which texture says attack
    :param texture_frames: scores the texture median needs (and keeps: older ones drop out)
    :param max_wait_seconds: how long a recognised face may wait for a live verdict before it
        is denied with reason ``no_liveness``
    :param prompt_after_seconds: how long it waits for the 3-D cue before the door asks the
        person to turn their head (once per track); ``None``: never ask
    :param planarity: the planarity cue's own thresholds
    """

    texture_live_above: float = 0.7
    texture_attack_below: float = 0.2
    texture_frames: int = 3
    max_wait_seconds: float = 4.0
    planarity: PlanaritySettings = field(default_factory=PlanaritySettings)
    prompt_after_seconds: float | None = 1.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.texture_attack_below < self.texture_live_above <= 1.0:
            raise ConfigError(
                "liveness: need 0 <= texture_attack_below "
                f"({self.texture_attack_below}) < texture_live_above "
                f"({self.texture_live_above}) <= 1"
            )
        if isinstance(self.texture_frames, bool) or self.texture_frames < 1:
            raise ConfigError(f"liveness: texture_frames must be >= 1, got {self.texture_frames}")
        if not (math.isfinite(self.max_wait_seconds) and self.max_wait_seconds > 0):
            raise ConfigError(
                f"liveness: max_wait_seconds must be > 0, got {self.max_wait_seconds}"
            )
        prompt = self.prompt_after_seconds
        if prompt is not None and not (math.isfinite(prompt) and prompt > 0):
            raise ConfigError(f"liveness: prompt_after_seconds must be > 0, got {prompt}")


@dataclass(frozen=True)
class LivenessResult:
    """The liveness of one track after a frame, with every cue's evidence for the event log.

    ``texture`` is the median of the latest scores (None before the first), ``texture_count``
    how many scores it rests on; ``planarity`` the planarity cue's result; ``waited`` the
    seconds since the track was first judged; ``timed_out`` true once that exceeds
    ``max_wait_seconds`` without a live or attack verdict; ``reason`` which cue decided;
    ``prompt`` true on the one result of the track that should make the door ask the person
    to turn their head (see the module's docstring).
    """

    state: LivenessState
    texture: float | None
    texture_count: int
    planarity: PlanarityResult
    waited: float
    timed_out: bool
    reason: str
    prompt: bool = False

    @property
    def live(self) -> bool:
        return self.state is LivenessState.LIVE

    @property
    def attack(self) -> bool:
        return self.state is LivenessState.ATTACK

    def cues(self) -> dict[str, Any]:
        """Each cue's score and verdict, for a ``presentation_attack`` or ``denied`` event."""
        p = self.planarity
        return {
            "liveness": self.state.value,
            "liveness_reason": self.reason,
            "texture": None if self.texture is None else round(self.texture, 4),
            "texture_frames": self.texture_count,
            "planarity": p.verdict.value,
            "planarity_score": None if p.score is None else round(p.score, 4),
            "planarity_relief": None if p.relief is None else round(p.relief, 3),
            "planarity_frames": p.frames,
            "waited_s": round(self.waited, 2),
        }


class TrackLiveness:
    """The evidence of one face track: its latest texture scores and its planarity cue."""

    def __init__(self, settings: LivenessSettings, now: float) -> None:
        self.settings = settings
        self.first_seen = float(now)
        self.textures: deque[float] = deque(maxlen=settings.texture_frames)
        self.planarity = PlanarityCue(settings.planarity)
        self.attack_reason: str | None = None  # set once: an attack is final for the track
        self.gave_up = False  # set once: a track that timed out is not granted later either
        self.prompted = False  # set once: the door asks a track to move at most once

    def wants_texture(self) -> bool:
        """Whether another texture score would still change anything (it costs two model
        runs, 4-9 ms on a desktop core): only until the track is decided, timed out, or its
        texture median over a full window is live. A print scores low from its first frame,
        so the first ``texture_frames`` scores carry the cue; later frames cost nothing."""
        if self.attack_reason is not None or self.gave_up:
            return False
        return self._texture_says() != "live"

    def judge(
        self, now: float, texture: Callable[[], float | None], mesh: np.ndarray | None = None
    ) -> LivenessResult:
        """This frame's verdict, running ``texture()`` (the models, the costly part) only
        while another score could still change it (:meth:`wants_texture`)."""
        return self.add(now, texture() if self.wants_texture() else None, mesh)

    def add(self, now: float, texture: float | None = None, mesh: np.ndarray | None = None):
        """Take this frame's evidence (either may be absent) and return the verdict."""
        if texture is not None:
            value = float(texture)
            if not math.isfinite(value) or not 0.0 <= value <= 1.0:
                raise ValueError(f"a texture score is a probability in 0..1, got {texture!r}")
            self.textures.append(value)
        planarity = self.planarity.add(mesh) if mesh is not None else self.planarity.result()
        return self._result(now, planarity)

    def _texture_says(self) -> str | None:
        if len(self.textures) < self.settings.texture_frames:
            return None
        median = float(np.median(self.textures))
        if median <= self.settings.texture_attack_below:
            return "attack"
        if median >= self.settings.texture_live_above:
            return "live"
        return None

    def _result(self, now: float, planarity: PlanarityResult) -> LivenessResult:
        texture = self._texture_says()
        if self.attack_reason is None:
            if texture == "attack":
                self.attack_reason = "texture"
            elif planarity.verdict is PlanarityVerdict.PLANAR:
                self.attack_reason = "planar"
        waited = max(0.0, float(now) - self.first_seen)
        if self.attack_reason is not None:
            state, reason = LivenessState.ATTACK, self.attack_reason
        elif self.gave_up:
            state, reason = LivenessState.WAITING, "no live verdict in time"
        elif texture == "live" and planarity.verdict is PlanarityVerdict.THREE_D:
            state, reason = LivenessState.LIVE, "texture+3d"
        else:
            state, reason = LivenessState.WAITING, _waiting_for(texture, planarity)
        if state is LivenessState.WAITING and waited > self.settings.max_wait_seconds:
            self.gave_up = True  # the wait is over for this track: it stays denied
        timed_out = self.gave_up and state is LivenessState.WAITING
        median = float(np.median(self.textures)) if self.textures else None
        prompt = self._prompt_now(state, waited, planarity)
        return LivenessResult(
            state, median, len(self.textures), planarity, waited, timed_out, reason, prompt
        )

    def _prompt_now(self, state: LivenessState, waited: float, planarity: PlanarityResult) -> bool:
        """True once: still waiting, for the 3-D cue, longer than ``prompt_after_seconds``.

        Only the 3-D cue is helped by moving; a face waiting for texture alone, an attack or
        a track whose wait is over is not asked.
        """
        after = self.settings.prompt_after_seconds
        if self.prompted or after is None or state is not LivenessState.WAITING or self.gave_up:
            return False
        if planarity.verdict is PlanarityVerdict.THREE_D or waited < after:
            return False
        self.prompted = True
        return True


def _waiting_for(texture: str | None, planarity: PlanarityResult) -> str:
    """What the verdict still waits for, in words an event log reader understands."""
    missing = []
    if texture != "live":
        missing.append("texture")
    if planarity.verdict is not PlanarityVerdict.THREE_D:
        missing.append(f"3-d ({planarity.verdict.value})")
    return "waiting for " + " and ".join(missing)


class LivenessJudge:
    """The liveness evidence of every current track (the daemon's one instance).

    :meth:`observe` per recognised face per frame; :meth:`forget` when the tracker drops a
    track; :meth:`reset` when the tracker is reset (track ids are reused). Settings can be
    replaced on a config reload; tracks already judged keep the settings they started with.
    """

    def __init__(self, settings: LivenessSettings | None = None) -> None:
        self.settings = settings or LivenessSettings()
        self._tracks: dict[int, TrackLiveness] = {}
        self._latest: tuple[int, LivenessResult] | None = None  # for the status file

    def track(self, track_id: int, now: float) -> TrackLiveness:
        """The evidence of ``track_id``, started now if the track is new."""
        state = self._tracks.get(track_id)
        if state is None:
            state = self._tracks[track_id] = TrackLiveness(self.settings, now)
        return state

    def wants_texture(self, track_id: int, now: float) -> bool:
        """Whether the caller should run the texture models on this track's face now."""
        return self.track(track_id, now).wants_texture()

    def judge(
        self,
        track_id: int,
        now: float,
        texture: Callable[[], float | None],
        mesh: np.ndarray | None = None,
    ) -> LivenessResult:
        """:meth:`observe` with ``texture()`` run only while :meth:`wants_texture`."""
        score = texture() if self.wants_texture(track_id, now) else None
        return self.observe(track_id, now, texture=score, mesh=mesh)

    def observe(
        self,
        track_id: int,
        now: float,
        texture: float | None = None,
        mesh: np.ndarray | None = None,
    ) -> LivenessResult:
        """Add one frame's evidence of ``track_id`` and return its verdict so far."""
        result = self.track(track_id, now).add(now, texture, mesh)
        self._latest = (track_id, result)
        return result

    def latest(self) -> tuple[int, LivenessResult] | None:
        """The track judged last and its verdict, while that track lasts (``facegate
        status`` shows what the face at the door is waiting for)."""
        if self._latest is None or self._latest[0] not in self._tracks:
            return None
        return self._latest

    def forget(self, track_id: int) -> None:
        self._tracks.pop(track_id, None)

    def reset(self) -> None:
        self._tracks.clear()
        self._latest = None

    def __len__(self) -> int:
        return len(self._tracks)


#: why a capture without a live verdict stores nobody
NOT_LIVE = "no live face (a photo or a screen?)"


class CaptureLiveness:
    """The liveness of the one face an enrolment capture follows (door button or CLI).

    Enrolment needs the same evidence as a grant: a photo held up to the camera must not
    become a person. ``texture(image, face)`` is the texture models' score (the caller's
    model, so this stays pure); :meth:`refusal` says why nothing may be stored, or ``None``.
    """

    _TRACK = 0

    def __init__(self, settings: LivenessSettings, texture: Any) -> None:
        self.judge = LivenessJudge(settings)
        self.texture = texture
        self.result: LivenessResult | None = None

    def feed(self, image: np.ndarray, face: Any, mesh: np.ndarray | None, now: float) -> None:
        """This frame's evidence of the face being captured."""
        # the texture score None: no texture evidence, never live
        self.result = self.judge.judge(self._TRACK, now, lambda: self.texture(image, face), mesh)

    def refusal(self) -> str | None:
        """``None`` when the capture showed a live face, else the reason to store nobody."""
        if self.result is not None and self.result.live:
            return None
        return NOT_LIVE if self.result is None else f"{NOT_LIVE}: {self.result.reason}"
