"""The liveness fusion rule (pure): texture and 3-D structure must agree before a grant."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from test_planarity import TURN, flattened, head_points, sweep

from pi_facegate.core.liveness import LivenessJudge, LivenessSettings, LivenessState
from pi_facegate.core.policy import AccessPolicy, Verdict
from pi_facegate.exc import ConfigError

LIVE_SKIN, PRINT, UNSURE = 0.95, 0.02, 0.5
FPS = 10.0


def turning_head(frames: int = 24) -> list[np.ndarray]:
    yaws, pitches = TURN
    return sweep(head_points(), yaws[:frames], pitches[:frames])


def turning_photo(frames: int = 40) -> list[np.ndarray]:
    """A photo (or a screen) swung to and fro by 30 degrees and tilted by up to 10."""
    yaws = 30 * np.sin(np.linspace(0, 2 * np.pi, frames))
    return sweep(flattened(head_points()), yaws, np.linspace(0, 10, frames))


def still_head(frames: int = 24) -> list[np.ndarray]:
    return sweep(head_points(), [0.0] * frames, [0.0] * frames)


def run(meshes, textures, settings=None):
    """Feed one track; return every frame's result."""
    judge = LivenessJudge(settings or LivenessSettings())
    return [
        judge.observe(1, i / FPS, texture=t, mesh=m)
        for i, (m, t) in enumerate(zip(meshes, textures, strict=True))
    ]


@pytest.mark.parametrize(
    ("meshes", "texture", "final", "reason"),
    [
        (turning_head(), LIVE_SKIN, LivenessState.LIVE, "texture+3d"),
        (turning_head(), PRINT, LivenessState.ATTACK, "texture"),
        (turning_photo(), LIVE_SKIN, LivenessState.ATTACK, "planar"),  # a screen: texture fooled
        (turning_head(), UNSURE, LivenessState.WAITING, "waiting for texture"),
        (still_head(), LIVE_SKIN, LivenessState.WAITING, "waiting for 3-d (not enough motion)"),
    ],
    ids=["live-head", "print", "screen-turned", "texture-unsure", "still-digital-photo"],
)
def test_the_fusion_rule(meshes, texture, final, reason):
    results = run(meshes, [texture] * len(meshes))
    assert results[-1].state is final
    assert results[-1].reason == reason
    if final is not LivenessState.LIVE:
        assert not any(r.live for r in results)


def test_texture_needs_its_frames_before_it_counts():
    settings = LivenessSettings(texture_frames=3)
    results = run(turning_head(3), [PRINT, PRINT, PRINT], settings)
    assert [r.state for r in results] == [
        LivenessState.WAITING,
        LivenessState.WAITING,
        LivenessState.ATTACK,
    ]
    assert results[-1].texture_count == 3 and results[-1].texture == pytest.approx(PRINT)


def test_an_attack_is_final_for_the_track():
    meshes = turning_head()
    textures = [PRINT] * 3 + [LIVE_SKIN] * (len(meshes) - 3)
    results = run(meshes, textures)
    assert all(r.attack for r in results[2:])


def test_waiting_too_long_times_out_and_stays_out():
    settings = LivenessSettings(max_wait_seconds=1.0)
    meshes = still_head(15) + turning_head()  # 1.5 s still, then turns: too late
    results = run(meshes, [LIVE_SKIN] * len(meshes), settings)
    assert not results[5].timed_out and results[11].timed_out
    assert all(r.timed_out and not r.live for r in results[11:])


def test_a_planar_verdict_after_a_live_one_is_still_an_attack():
    meshes = turning_head() + turning_photo()  # a head, then a photo swung on the same track
    results = run(meshes, [LIVE_SKIN] * len(meshes))
    assert any(r.live for r in results) and results[-1].attack


def test_texture_is_only_asked_for_while_it_can_change_the_verdict():
    judge = LivenessJudge()
    assert judge.wants_texture(7, 0.0)
    for i, mesh in enumerate(turning_head()):
        judge.observe(7, i / FPS, texture=LIVE_SKIN, mesh=mesh)
    assert judge.observe(7, 3.0).live and not judge.wants_texture(7, 3.0)
    judge.observe(8, 0.0, texture=PRINT)
    judge.observe(8, 0.1, texture=PRINT)
    assert judge.observe(8, 0.2, texture=PRINT).attack and not judge.wants_texture(8, 0.2)
    judge.forget(7)
    assert judge.wants_texture(7, 4.0) and len(judge) == 2


def test_cues_carry_every_score_for_the_event_log():
    cues = run(turning_head(), [PRINT] * 24)[-1].cues()
    assert cues["liveness"] == "attack" and cues["liveness_reason"] == "texture"
    assert cues["texture"] == pytest.approx(PRINT) and cues["texture_frames"] == 3
    assert {"planarity", "planarity_score", "planarity_relief", "waited_s"} <= set(cues)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"texture_live_above": 0.2, "texture_attack_below": 0.3},
        {"texture_live_above": 1.5},
        {"texture_frames": 0},
        {"max_wait_seconds": 0.0},
        {"max_wait_seconds": float("inf")},
        {"prompt_after_seconds": 0.0},
        {"prompt_after_seconds": float("nan")},
    ],
)
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ConfigError, match="liveness"):
        LivenessSettings(**kwargs)


def test_a_texture_score_must_be_a_probability():
    with pytest.raises(ValueError, match="probability"):
        LivenessJudge().observe(1, 0.0, texture=1.5)


def test_a_still_face_is_asked_once_to_turn_its_head():
    """Waiting for the 3-D cue longer than prompt_after_seconds: one prompt, then the rule
    decides as before (a head that turns after the prompt is live)."""
    settings = LivenessSettings(prompt_after_seconds=1.0, max_wait_seconds=4.0)
    meshes = still_head(15) + turning_head()  # 1.5 s still, then turns
    results = run(meshes, [LIVE_SKIN] * len(meshes), settings)
    prompted = [i for i, r in enumerate(results) if r.prompt]
    assert prompted == [10]  # the first frame at 1.0 s, and only that one
    assert not any(r.live for r in results[:15]) and results[-1].live


@pytest.mark.parametrize(
    ("meshes", "texture", "settings"),
    [
        # the turning head is 3-D from 1.1 s on (frame 11), a print an attack from frame 2
        (turning_head(), LIVE_SKIN, LivenessSettings(prompt_after_seconds=1.5)),  # live first
        (turning_head(), PRINT, LivenessSettings(prompt_after_seconds=0.5)),  # an attack
        (turning_head(), UNSURE, LivenessSettings(prompt_after_seconds=1.5)),  # texture waits
        (still_head(), LIVE_SKIN, LivenessSettings(prompt_after_seconds=None)),  # switched off
        (still_head(40), LIVE_SKIN, LivenessSettings(max_wait_seconds=1.0)),  # wait too short
    ],
    ids=["live-before-the-prompt", "attack", "waiting-for-texture", "off", "wait-too-short"],
)
def test_no_prompt_where_moving_would_not_help(meshes, texture, settings):
    results = run(meshes, [texture] * len(meshes), settings)
    assert not any(r.prompt for r in results)


def test_a_prompted_photo_is_still_a_plane():
    settings = LivenessSettings(prompt_after_seconds=0.5)
    meshes = still_head(10) + turning_photo()  # a still screen, then swung once prompted
    results = run(meshes, [LIVE_SKIN] * len(meshes), settings)
    assert [r.prompt for r in results].count(True) == 1
    assert results[-1].attack and not any(r.live for r in results)


# --------------------------------------------------------------------------- the policy gate


@dataclass(frozen=True)
class Match:
    person_id: int = 1
    name: str = "Alice"
    distance: float = 0.3
    margin: float | None = 0.3
    accepted: bool = True
    enabled: bool = True
    pending: bool = False


@dataclass(frozen=True)
class Liveness:
    """A liveness verdict as the policy reads it (``LivenessResult`` has these members)."""

    live: bool = False
    attack: bool = False
    timed_out: bool = False
    evidence: dict[str, Any] = field(default_factory=lambda: {"texture": 0.9})

    def cues(self) -> dict[str, Any]:
        return dict(self.evidence)


WAITING, LIVE = Liveness(), Liveness(live=True)
ATTACK, TIMED_OUT = Liveness(attack=True), Liveness(timed_out=True)


@pytest.mark.parametrize(
    ("liveness", "verdicts"),
    [
        ([None] * 3, [Verdict.PENDING] * 3),
        ([LIVE] * 3, [Verdict.PENDING, Verdict.PENDING, Verdict.GRANT]),
        ([WAITING] * 3, [Verdict.PENDING] * 3),
        (
            [WAITING, WAITING, TIMED_OUT],
            [Verdict.PENDING, Verdict.PENDING, Verdict.DENY_NO_LIVENESS],
        ),
        ([ATTACK], [Verdict.DENY_ATTACK]),  # at once: no need to wait for the votes
        ([WAITING, WAITING, WAITING, LIVE], [Verdict.PENDING] * 3 + [Verdict.GRANT]),
    ],
    ids=["no-evidence", "live", "waiting", "timed-out", "attack", "waiting-then-live"],
)
def test_the_policy_grants_only_a_live_face(liveness, verdicts):
    policy = AccessPolicy(votes_required=3, window_frames=5, require_liveness=True)
    got = [policy.observe(1, Match(), i * 0.1, lv).verdict for i, lv in enumerate(liveness)]
    assert got == verdicts


def test_an_attack_is_a_presentation_attack_event_with_the_cues():
    policy = AccessPolicy(require_liveness=True)
    fields = policy.observe(1, Match(), 0.0, ATTACK).event_fields()
    assert fields["kind"] == "presentation_attack" and fields["person"] == "Alice"
    assert fields["detail"]["reason"] == "presentation_attack"
    assert fields["detail"]["texture"] == 0.9


def test_without_require_liveness_the_votes_alone_decide():
    policy = AccessPolicy(votes_required=1, window_frames=1)
    assert policy.observe(1, Match(), 0.0, ATTACK).verdict is Verdict.GRANT
