"""The door's GPIO sections (relay, contact, exit button, LEDs, buzzer) and the one-pin rule.

Every pin is a Broadcom (BCM) number of the 40-pin header. :data:`PIN_KEYS` lists every key
that holds one, across sections (the enrolment button too), and :func:`pin_conflicts` finds a
pin used twice: the root :class:`~pi_facegate.config.schema.Config` refuses it, and the loader
checks the raw data as well so a duplicate pin is reported next to any other problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field

from pi_facegate.config.base import FacegateBaseModel, KeyPath, Violation, dotted

#: A Broadcom (BCM) GPIO number of the 40-pin header: GPIO0..GPIO27.
BcmPin = Annotated[int, Field(ge=0, le=27)]


class RelayConfig(FacegateBaseModel):
    """The relay that drives the lock."""

    pin: BcmPin = Field(17, description="BCM GPIO number of the relay input (0..27)")
    active_high: bool = Field(
        True, description="true if the relay board switches on a high level (false: low)"
    )
    lock_type: Literal["fail_secure", "fail_safe"] = Field(
        "fail_secure",
        description="fail_secure: the lock opens while powered (strike); fail_safe: it opens "
        "when power is cut (maglock)",
    )
    unlock_seconds: float = Field(
        3.0, ge=0.5, le=60.0, description="how long a grant keeps the door unlocked, seconds"
    )


class ContactConfig(FacegateBaseModel):
    """An optional door contact (reed switch) to log opening and a door held open."""

    pin: BcmPin | None = Field(None, description="BCM GPIO number of the contact; null = none")
    closed_when: Literal["low", "high"] = Field(
        "low", description="the input level while the door is closed"
    )
    held_open_seconds: float = Field(
        30.0, ge=1.0, le=3600.0, description="seconds open before a 'held open' event"
    )
    bounce_seconds: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="seconds an edge must be stable before it counts (debounce: a bouncing switch gives one event); 0 = off",
    )


class ExitButtonConfig(FacegateBaseModel):
    """An optional request-to-exit button inside the door."""

    pin: BcmPin | None = Field(None, description="BCM GPIO number of the button; null = none")
    pull_up: bool = Field(
        True, description="true: button to ground with the internal pull-up; false: to 3V3"
    )
    bounce_seconds: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="seconds an edge must be stable before it counts (debounce: a bouncing switch gives one event); 0 = off",
    )


class LedsConfig(FacegateBaseModel):
    """Optional indicator LEDs."""

    granted: BcmPin | None = Field(None, description="BCM GPIO of the 'granted' LED; null = none")
    denied: BcmPin | None = Field(None, description="BCM GPIO of the 'denied' LED; null = none")
    enrolment: BcmPin | None = Field(
        None, description="BCM GPIO of the 'enrolment armed' LED; null = none"
    )


class BuzzerConfig(FacegateBaseModel):
    """An optional buzzer."""

    pin: BcmPin | None = Field(None, description="BCM GPIO of the buzzer; null = none")


class DoorConfig(FacegateBaseModel):
    """The door I/O: relay, contact, exit button, LEDs and buzzer."""

    simulate: bool = Field(
        False,
        description="drive a simulated GPIO (gpiozero MockFactory) instead of the real pins: "
        "the door never moves. Only ever on when set here",
    )
    relay: RelayConfig = Field(
        default_factory=RelayConfig, description="the relay that drives the lock"
    )
    contact: ContactConfig = Field(
        default_factory=ContactConfig, description="optional door contact (reed switch)"
    )
    exit_button: ExitButtonConfig = Field(
        default_factory=ExitButtonConfig, description="optional request-to-exit button inside"
    )
    leds: LedsConfig = Field(default_factory=LedsConfig, description="optional indicator LEDs")
    buzzer: BuzzerConfig = Field(default_factory=BuzzerConfig, description="optional buzzer")


#: Every key holding a BCM pin; no pin may be used twice.
PIN_KEYS: tuple[KeyPath, ...] = (
    ("door", "relay", "pin"),
    ("door", "contact", "pin"),
    ("door", "exit_button", "pin"),
    ("door", "leds", "granted"),
    ("door", "leds", "denied"),
    ("door", "leds", "enrolment"),
    ("door", "buzzer", "pin"),
    ("enrolment", "button_pin"),
)


def pin_conflicts(pins: Mapping[KeyPath, Any]) -> list[Violation]:
    """Each BCM pin used again after its first key, naming both keys."""
    found: list[Violation] = []
    seen: dict[int, KeyPath] = {}
    for path, pin in pins.items():
        if not _is_pin(pin):
            continue
        if pin in seen:
            first = seen[pin]
            message = (
                f"{dotted(first)} and {dotted(path)} both use BCM pin {pin}; "
                "each pin can drive only one device"
            )
            found.append(Violation(message, (path, first), pin))
        else:
            seen[pin] = path
    return found


def _is_pin(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 27
