"""The ``liveness`` section: presentation-attack detection before any grant.

Its keys feed :class:`pi_facegate.core.liveness.LivenessSettings` (the fusion rule) and
:class:`pi_facegate.core.planarity.PlanaritySettings` (the 3-D cue); their docstrings say
what each threshold means and how it was measured.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from pi_facegate.config.base import FacegateBaseModel, Violation, raise_violations


class PlanarityConfig(FacegateBaseModel):
    """The 3-D-from-motion cue: is the face a plane (print, screen) or a head? Eye distances."""

    planar_below: float = Field(
        0.035,
        ge=0.0,
        le=1.0,
        description="nose parallax (eye distances) at or below which a moving face is a plane; "
        "lower = fewer live faces called an attack",
    )
    three_d_above: float = Field(
        0.06,
        gt=0.0,
        le=1.0,
        description="nose parallax at or above which the face may be 3-D; higher = stricter",
    )
    min_relief: float = Field(
        2.8,
        ge=0.0,
        le=20.0,
        description="parallax per unit of motion a 3-D verdict also needs; higher = stricter",
    )
    min_motion: float = Field(
        0.01,
        gt=0.0,
        le=1.0,
        description="out-of-plane motion (eye distances) a frame pair needs to count",
    )

    @model_validator(mode="after")
    def _order(self) -> PlanarityConfig:
        if self.planar_below >= self.three_d_above:
            raise_violations(
                [
                    Violation(
                        "liveness.planarity.planar_below must be below three_d_above",
                        (("planar_below",), ("three_d_above",)),
                        self.planar_below,
                    )
                ]
            )
        return self


class LivenessConfig(FacegateBaseModel):
    """A grant needs a live verdict on the same track: photos and screens never open."""

    enabled: bool = Field(
        True,
        description="require a live verdict for every grant; false lets photos open the "
        "door (only for trying recognition on a desk)",
    )
    texture_live_above: float = Field(
        0.7,
        gt=0.0,
        le=1.0,
        description="median texture score (0..1) at or above which texture says live; higher "
        "= stricter",
    )
    texture_attack_below: float = Field(
        0.2,
        ge=0.0,
        lt=1.0,
        description="median texture score at or below which the face is an attack; higher = "
        "more faces called an attack",
    )
    texture_frames: int = Field(
        3, ge=1, le=30, description="texture scores the median is taken over"
    )
    max_wait_seconds: float = Field(
        4.0,
        gt=0.0,
        le=60.0,
        description="seconds a recognised face may wait for a live verdict before it is "
        "denied (no_liveness)",
    )
    planarity: PlanarityConfig = Field(
        default_factory=PlanarityConfig, description="the 3-D-from-motion cue"
    )
    prompt_after_seconds: float | None = Field(
        1.5,
        gt=0.0,
        le=60.0,
        description="seconds a recognised face waits for the 3-D cue before the door blinks "
        "and beeps to ask the person to turn their head a little (once per visit; a perfectly "
        "still live face gives the cue nothing to measure); null: never ask. Must be below "
        "max_wait_seconds (left at its default with a shorter wait, it never asks)",
    )

    @model_validator(mode="after")
    def _order(self) -> LivenessConfig:
        if self.texture_attack_below >= self.texture_live_above:
            raise_violations(
                [
                    Violation(
                        "liveness.texture_attack_below must be below texture_live_above",
                        (("texture_attack_below",), ("texture_live_above",)),
                        self.texture_attack_below,
                    )
                ]
            )
        prompt = self.prompt_after_seconds
        # only when set on purpose: a shorter max_wait_seconds alone just means no prompt
        if "prompt_after_seconds" in self.model_fields_set and prompt is not None and (
            prompt >= self.max_wait_seconds
        ):
            raise_violations(
                [
                    Violation(
                        "liveness.prompt_after_seconds must be below max_wait_seconds (a "
                        "prompt after the wait is over comes too late to help)",
                        (("prompt_after_seconds",), ("max_wait_seconds",)),
                        prompt,
                    )
                ]
            )
        return self
