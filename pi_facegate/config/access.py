"""The ``access`` section and the ``schedules`` mapping: who may enter, when, how often.

``access`` holds the vote rule that turns matches into a grant (fed to
:class:`pi_facegate.core.policy.AccessPolicy`), the time zone schedules and validity dates
are read in, and the attempt limits (:class:`pi_facegate.core.attempts.AttemptLimiter`).
``schedules`` names weekly time windows (:mod:`pi_facegate.core.schedule`) that people are
put on with ``facegate people set NAME --schedule NAME``; each window is parsed here, so a
bad one is reported with its line before the daemon ever reads it.
"""

from __future__ import annotations

import zoneinfo
from typing import Any

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from pi_facegate.config.base import FacegateBaseModel, Violation, raise_violations
from pi_facegate.core.schedule import check_name, parse_window
from pi_facegate.exc import ConfigError

SCHEDULES_DESCRIPTION = (
    "named weekly time windows in the door's local time, e.g. office: ['Mon-Fri "
    "07:00-19:00']; a window whose end is not after its start crosses midnight ('Tue "
    "22:00-02:00' ends on Wednesday); a person on a schedule is let in only inside it"
)


class AlarmConfig(FacegateBaseModel):
    """Attempt limits: K refused faces within T seconds raise one alarm, then a slowdown."""

    attempts: int = Field(
        5,
        ge=1,
        le=1000,
        description="K: refused faces (each face once) within window_seconds that raise an "
        "alarm; smaller = more sensitive",
    )
    window_seconds: float = Field(
        60.0, gt=0.0, le=3600.0, description="T: how far back refused faces count, seconds"
    )
    slowdown_seconds: float = Field(
        30.0,
        ge=0.0,
        le=3600.0,
        description="after an alarm, seconds during which faces that are not an enrolled, "
        "valid person are not decided (enrolled people are let in as always); 0 = none",
    )


class AccessConfig(FacegateBaseModel):
    """When a run of matches becomes a grant: N votes in the last M frames within T seconds."""

    votes_required: int = Field(
        3,
        ge=1,
        le=60,
        description="N: frames that must match the same person to grant; larger = stricter",
    )
    window_frames: int = Field(
        5, ge=1, le=60, description="M: the votes are counted over the last M frames"
    )
    window_seconds: float = Field(
        2.0,
        gt=0.0,
        le=60.0,
        description="T: votes older than this many seconds are dropped",
    )
    cooldown_seconds: float = Field(
        5.0,
        ge=0.0,
        le=3600.0,
        description="after a grant, seconds before the same person can be granted again",
    )
    unknown_log_interval_seconds: float = Field(
        10.0,
        ge=0.0,
        le=3600.0,
        description="at most one 'unknown face' event per this many seconds; 0 = log each",
    )
    timezone: str | None = Field(
        None,
        description="tz database zone that schedules and valid_from/valid_until dates are "
        "read in, e.g. Europe/London; null = the system's local zone (/etc/localtime)",
    )
    alarm: AlarmConfig = Field(
        default_factory=AlarmConfig, description="attempt limits: alarm and slowdown"
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                load_zone(value)
            except ValueError as exc:
                message = str(exc).replace("{", "{{").replace("}", "}}")
                raise PydanticCustomError("time_zone", message) from None
        return value

    @model_validator(mode="after")
    def _check(self) -> AccessConfig:
        if self.votes_required > self.window_frames:
            raise_violations(
                [
                    Violation(
                        f"access.votes_required (N) must not exceed access.window_frames (M = "
                        f"{self.window_frames}): N votes are counted within the last M frames",
                        (("votes_required",), ("window_frames",)),
                        self.votes_required,
                    )
                ]
            )
        return self


def load_zone(name: str) -> zoneinfo.ZoneInfo:
    """The tz database zone ``name``; an unknown one is a ValueError saying what to write."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown time zone {name!r}: use a tz database name such as Europe/London or "
            "America/New_York (timedatectl list-timezones), or null for the system's zone"
        ) from None


def check_schedules(schedules: Any) -> Any:
    """Every schedule name and window valid, or one error listing each bad one at its key.

    Run before pydantic's type check (``mode="before"``), so one bad entry does not hide the
    others: a schedule that is not a list is reported here too. ``schedules:`` left empty
    means no schedules; a value that is not a mapping is left to the type check.
    """
    if schedules is None:
        return {}
    if not isinstance(schedules, dict):
        return schedules
    found = []
    for name, windows in schedules.items():
        try:
            check_name(name)
        except ConfigError as exc:
            found.append(Violation(str(exc), ((name,),), name))
            continue
        if not isinstance(windows, list):
            message = f"schedule {name!r} must be a list of windows, e.g. ['Mon-Fri 07:00-19:00']"
            found.append(Violation(message, ((name,),), windows))
            continue
        for position, spec in enumerate(windows):
            try:
                parse_window(spec)
            except ConfigError as exc:
                found.append(Violation(f"schedule {name!r}: {exc}", ((name, position),), spec))
    raise_violations(found)
    return schedules
