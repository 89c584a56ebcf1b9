"""The door's buttons: the request-to-exit button inside, the enrolment button outside.

Both are gpiozero :class:`~gpiozero.Button`\\ s on the door's pin factory, wired between the
pin and GND (``pull_up=True``, the internal pull-up is used) or 3V3. Their callbacks run on
gpiozero's pin-event thread and must only hand the press over.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from pi_facegate.door.pins import Pin, close_device
from pi_facegate.exc import DoorError

if TYPE_CHECKING:  # gpiozero is imported lazily: the pure core never needs it
    from gpiozero.pins import Factory

log = logging.getLogger("pi_facegate.door")  # journal name: stable across moves


def bounce_time(seconds: float) -> float | None:
    """gpiozero's ``bounce_time`` for a debounce in seconds (``None``: no debounce).

    A mechanical switch closes with a burst of edges over a few milliseconds; without a
    debounce one press can read as several (two exit requests, a press and a release).
    """
    if not (math.isfinite(seconds) and 0 <= seconds <= 1):
        raise DoorError(f"a debounce must be 0..1 seconds, not {seconds!r}")
    return float(seconds) or None


class ExitButton:
    """The request-to-exit button inside the door: a press asks the door to open.

    :param pin: GPIO of the button.
    :param pull_up: True if the button connects the pin to GND.
    :param pin_factory: gpiozero pin factory; None for gpiozero's default.
    :param bounce_seconds: debounce (gpiozero's ``bounce_time``); 0 = none.
    """

    def __init__(
        self, pin: Pin, pull_up: bool, pin_factory: Factory | None, bounce_seconds: float = 0.0
    ) -> None:
        from gpiozero import Button

        self._button = Button(
            pin, pull_up=pull_up, bounce_time=bounce_time(bounce_seconds), pin_factory=pin_factory
        )

    def attach(self, on_press: Callable[[], None]) -> None:
        """Call ``on_press()`` on each press (on gpiozero's event thread)."""
        self._button.when_pressed = on_press

    def close(self) -> None:
        """Release the pin. Idempotent."""
        close_device(self._button)


class EnrolmentButton:
    """The enrolment button at the door: a short press asks for a capture, a long one aborts.

    A press is reported on release, and only if the button was not held for
    ``long_press_seconds``: a long press therefore never starts a capture, it only calls
    ``on_long_press`` (once, when the hold time is reached). Both callbacks run on
    gpiozero's threads and must only hand the event over (set a flag, queue it).

    Wiring: the button between ``pin`` and GND (``pull_up=True``, internal pull-up) or 3V3.

    :param pin: BCM GPIO of the button.
    :param on_press: called after a short press.
    :param on_long_press: called when the button has been held ``long_press_seconds``.
    :param pin_factory: gpiozero pin factory (the door's, see
        :attr:`~pi_facegate.door.controller.DoorController.pin_factory`); None for gpiozero's default.
    :param bounce_seconds: debounce (gpiozero's ``bounce_time``); 0 = none.
    :raises DoorError: when the button cannot be set up.
    """

    def __init__(
        self,
        pin: Pin,
        on_press: Callable[[], None],
        on_long_press: Callable[[], None],
        pull_up: bool = True,
        long_press_seconds: float = 3.0,
        pin_factory: Factory | None = None,
        bounce_seconds: float = 0.0,
    ) -> None:
        self._button = None  # close() relies on it
        self._held = False
        self._on_press = on_press
        self._on_long_press = on_long_press
        if not (math.isfinite(long_press_seconds) and long_press_seconds > 0):
            raise DoorError(
                f"long_press_seconds must be a positive number, not {long_press_seconds!r}"
            )
        self.pin = pin
        try:
            from gpiozero import Button

            self._button = Button(
                pin,
                pull_up=pull_up,
                hold_time=long_press_seconds,
                bounce_time=bounce_time(bounce_seconds),
                pin_factory=pin_factory,
            )
            self._button.when_pressed = self._pressed
            self._button.when_held = self._long_pressed
            self._button.when_released = self._released
        except Exception as exc:
            self.close()
            raise DoorError(f"enrolment button on {pin} could not be set up: {exc}") from exc

    def _pressed(self) -> None:
        self._held = False

    def _long_pressed(self) -> None:
        self._held = True
        self._call(self._on_long_press, "long press")

    def _released(self) -> None:
        if not self._held:
            self._call(self._on_press, "press")
        self._held = False

    @staticmethod
    def _call(callback: Callable[[], None], what: str) -> None:
        try:
            callback()
        except Exception:
            log.exception("enrolment button: %s handler failed", what)

    @property
    def is_pressed(self) -> bool:
        return bool(self._button is not None and self._button.is_pressed)

    def close(self) -> None:
        """Release the pin; idempotent."""
        button, self._button = self._button, None
        if button is not None:
            try:
                button.close()
            except Exception:
                log.warning("closing the enrolment button failed", exc_info=True)

    def __enter__(self) -> EnrolmentButton:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
