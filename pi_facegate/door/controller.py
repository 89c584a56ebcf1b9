"""The door: the lock, the door contact, the exit button, LEDs and buzzer, as one device.

:class:`DoorController` composes the door from small named parts, the way gpiozero's
``CompositeOutputDevice`` and ``LEDBoard`` compose theirs, all built on one ``pin_factory``
(:mod:`pi_facegate.door.pins`): the relay and its grant pulse (:mod:`pi_facegate.door.lock`,
the only module that drives the relay; the lock wiring is explained there), the contact
(:mod:`pi_facegate.door.contact`), the exit button (:mod:`pi_facegate.door.buttons`) and the
LEDs and buzzer (:mod:`pi_facegate.door.indicators`). It owns the one mutex they share and
the timer thread that relocks, and it wires the inputs to the lock: a press of the exit button
unlocks, an opening while locked is forced.

Every state change is reported through ``on_event(name, data)``: ``"unlocked"``,
``"relocked"``, ``"exit_request"``, ``"door_opened"``, ``"door_closed"``, ``"door_forced"``,
``"door_held_open"``. The callback runs on whichever thread noticed the change (caller, timer,
or gpiozero's pin-event thread) with the controller's lock held, so it must be quick and must
not block: hand the event to a queue.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from pi_facegate.door.buttons import ExitButton
from pi_facegate.door.contact import DoorContact
from pi_facegate.door.indicators import Indicators
from pi_facegate.door.lock import (
    LOCK_TYPES,
    DoorLock,
    LockType,
    RelockTimer,
    forget_at_exit,
    lock_at_exit,
)
from pi_facegate.door.pins import Pin
from pi_facegate.exc import DoorError

if TYPE_CHECKING:  # gpiozero is imported lazily: the pure core never needs it
    from gpiozero.pins import Factory

log = logging.getLogger("pi_facegate.door")  # journal name: stable across moves

EventCallback = Callable[[str, dict[str, Any]], None]

#: Every event name ``on_event`` can receive.
EVENTS = frozenset(
    {
        "unlocked",
        "relocked",
        "exit_request",
        "door_opened",
        "door_closed",
        "door_forced",
        "door_held_open",
    }
)


class DoorController:
    """The door: a relay pulse per grant, plus contact, exit button, LEDs and buzzer.

    Wiring (BCM numbers; any gpiozero pin name works): the relay input on ``relay_pin``; an
    optional reed contact between ``contact_pin`` and GND (``contact_closed_when="low"``, the
    internal pull-up is used) or 3V3 (``"high"``, pull-down); an optional request-to-exit button
    between ``exit_button_pin`` and GND (``exit_button_pull_up=True``) or 3V3; optional LEDs
    and an active buzzer on their own pins.

    >>> from gpiozero.pins.mock import MockFactory
    >>> with DoorController(17, unlock_seconds=3, pin_factory=MockFactory()) as door:
    ...     door.unlock("face", person="ada")   # relay pulses for 3 s, then relocks

    :param relay_pin: GPIO of the relay driver.
    :param active_high: True if a high pin level energises the relay.
    :param lock_type: ``"fail_secure"`` or ``"fail_safe"`` (see :mod:`pi_facegate.door.lock`).
    :param unlock_seconds: length of a grant pulse, seconds (> 0).
    :param contact_pin: GPIO of the door contact, or None.
    :param contact_closed_when: pin level, ``"low"`` or ``"high"``, that means "door closed".
    :param held_open_seconds: a door open longer than this raises ``"door_held_open"``.
    :param exit_button_pin: GPIO of the request-to-exit button, or None.
    :param exit_button_pull_up: True if the button connects the pin to GND.
    :param contact_bounce_seconds: debounce of the contact (0..1 s; 0 = none), likewise
        ``exit_button_bounce_seconds``: a bouncing switch gives one edge, not a burst.
    :param led_granted: GPIO of the "granted" LED, or None (likewise the other two LEDs).
    :param buzzer_pin: GPIO of an active buzzer, or None.
    :param pin_factory: gpiozero pin factory; None for gpiozero's default.
    :param on_event: ``on_event(name, data)`` for every event (see :data:`EVENTS`).
    :param clock: monotonic clock for deadlines, seconds.
    :raises DoorError: on a bad argument or when any device cannot be set up; nothing stays
        reserved and the relay (if it was created) is left locked and released.
    """

    def __init__(
        self,
        relay_pin: Pin,
        active_high: bool = True,
        lock_type: LockType = "fail_secure",
        unlock_seconds: float = 3.0,
        contact_pin: Pin | None = None,
        contact_closed_when: Literal["low", "high"] = "low",
        held_open_seconds: float = 30,
        exit_button_pin: Pin | None = None,
        exit_button_pull_up: bool = True,
        contact_bounce_seconds: float = 0.0,
        exit_button_bounce_seconds: float = 0.0,
        led_granted: Pin | None = None,
        led_denied: Pin | None = None,
        led_enrolment: Pin | None = None,
        buzzer_pin: Pin | None = None,
        pin_factory: Factory | None = None,
        on_event: EventCallback | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # Everything close() relies on is set before anything can raise.
        self._mutex = threading.RLock()
        self._wakeup = threading.Condition(self._mutex)
        self._parts: list[DoorLock | DoorContact | ExitButton | Indicators] = []
        self._lock: DoorLock | None = None
        self._contact: DoorContact | None = None
        self._exit_button: ExitButton | None = None
        self._indicators: Indicators | None = None
        self._timer: RelockTimer | None = None
        self._closed = False
        self._on_event = on_event
        self._clock = clock

        self._check_arguments(lock_type, unlock_seconds, held_open_seconds, contact_closed_when)
        self.relay_pin = relay_pin
        self.lock_type = lock_type
        self.unlock_seconds = float(unlock_seconds)
        self.held_open_seconds = float(held_open_seconds)
        self.contact_bounce_seconds = contact_bounce_seconds
        self.exit_button_bounce_seconds = exit_button_bounce_seconds
        try:
            self._build_parts(
                relay_pin,
                active_high,
                contact_pin,
                contact_closed_when,
                exit_button_pin,
                exit_button_pull_up,
                (led_granted, led_denied, led_enrolment),
                buzzer_pin,
                pin_factory,
            )
            self._start_timer()
            self._wire_inputs()
        except Exception as exc:
            self.close()
            raise DoorError(f"door I/O could not be set up: {exc}") from exc
        lock_at_exit(self)

    # -- construction -----------------------------------------------------------------------

    @staticmethod
    def _check_arguments(
        lock_type: str, unlock_seconds: float, held_open_seconds: float, closed_when: str
    ) -> None:
        """Reject settings that would make the door behave unpredictably, before any GPIO."""
        if lock_type not in LOCK_TYPES:
            raise DoorError(f"lock_type must be one of {LOCK_TYPES}, not {lock_type!r}")
        for name, value in (
            ("unlock_seconds", unlock_seconds),
            ("held_open_seconds", held_open_seconds),
        ):
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise DoorError(f"{name} must be a positive number of seconds, not {value!r}")
        if closed_when not in ("low", "high"):
            raise DoorError(f"contact_closed_when must be 'low' or 'high', not {closed_when!r}")

    def _build_parts(
        self,
        relay_pin: Pin,
        active_high: bool,
        contact_pin: Pin | None,
        contact_closed_when: Literal["low", "high"],
        exit_button_pin: Pin | None,
        exit_button_pull_up: bool,
        led_pins: tuple[Pin | None, Pin | None, Pin | None],
        buzzer_pin: Pin | None,
        pin_factory: Factory | None,
    ) -> None:
        """Create the parts, the lock first and already locked, each recorded for close()."""
        self._lock = self._add(
            DoorLock(
                relay_pin,
                active_high,
                self.lock_type,
                self.unlock_seconds,
                pin_factory,
                emit=self._emit,
                wakeup=self._wakeup,
                clock=self._clock,
            )
        )
        if contact_pin is not None:
            self._contact = self._add(
                DoorContact(
                    contact_pin,
                    contact_closed_when,
                    self.held_open_seconds,
                    pin_factory,
                    emit=self._emit,
                    wakeup=self._wakeup,
                    clock=self._clock,
                    bounce_seconds=self.contact_bounce_seconds,
                )
            )
        if exit_button_pin is not None:
            self._exit_button = self._add(
                ExitButton(
                    exit_button_pin,
                    exit_button_pull_up,
                    pin_factory,
                    self.exit_button_bounce_seconds,
                )
            )
        granted, denied, enrolment = led_pins
        self._indicators = self._add(
            Indicators(granted, denied, enrolment, buzzer_pin, self.unlock_seconds, pin_factory)
        )

    def _add(self, part: Any) -> Any:
        self._parts.append(part)
        return part

    def _start_timer(self) -> None:
        assert self._lock is not None
        watched = () if self._contact is None else (self._contact,)
        self._timer = RelockTimer(self._lock, self._wakeup, watched, clock=self._clock)
        self._timer.start()

    def _wire_inputs(self) -> None:
        """Attach callbacks last, once the timer that relocks exists."""
        if self._contact is not None:
            self._contact.attach(self._on_contact_change)
        if self._exit_button is not None:
            self._exit_button.attach(self._on_exit_pressed)

    # -- public API -------------------------------------------------------------------------

    @property
    def is_unlocked(self) -> bool:
        """True while a grant pulse is active (the relay is in its unlocked state)."""
        with self._mutex:
            return self._lock is not None and self._lock.is_unlocked

    @property
    def is_door_open(self) -> bool | None:
        """What the door contact says, or None without a contact."""
        with self._mutex:
            return None if self._contact is None else self._contact.is_open

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run; a closed controller never unlocks."""
        return self._closed

    @property
    def pin_factory(self) -> Factory | None:
        """The pin factory the relay was built on (None if the relay was never built).

        Other door devices (the enrolment button) are built on the same factory, so a
        simulated door is simulated throughout and a test can drive their mock pins.
        """
        lock = self._lock
        return None if lock is None else lock.pin_factory

    def unlock(self, reason: str, person: str | None = None) -> None:
        """Release the lock for ``unlock_seconds``; while already unlocked, extend to then.

        :param reason: why, for the event log ("face", "exit_button", "admin", ...).
        :param person: who, if known.
        :raises DoorError: if the controller is closed or the relay cannot be driven (the door
            is then driven locked, as far as the hardware still allows).
        """
        with self._mutex:
            if self._closed:
                raise DoorError(f"door on {self.relay_pin} is closed; not unlocking ({reason})")
            assert self._lock is not None
            self._lock.unlock(reason, person)

    def lock(self) -> None:
        """Lock now, ending any pulse.

        :raises DoorError: if the relay cannot be driven.
        """
        with self._mutex:
            if self._closed:
                return  # close() locked it already
            assert self._lock is not None
            try:
                self._lock.relock("lock")
            except Exception as exc:
                raise DoorError(f"could not drive the relay on {self.relay_pin}: {exc}") from exc

    def signal(self, kind: str) -> None:
        """Show a short LED/buzzer pattern; a no-op for devices that are not configured.

        Patterns run in gpiozero background threads, so this returns at once. A failing LED
        is logged and otherwise ignored: signalling never affects the lock.

        :param kind: one of :data:`~pi_facegate.door.indicators.SIGNAL_KINDS` ("granted",
            "denied", "alarm", "move_prompt", "enrolment_start", "enrolment_ok",
            "enrolment_failed").
        :raises DoorError: for an unknown kind (a programming error).
        """
        if self._indicators is not None:
            self._indicators.signal(kind)

    def set_enrolment_led(self, on: bool) -> None:
        """Light the enrolment LED steadily (enrolment armed) or turn it off.

        A no-op without that LED. A later :meth:`signal` pattern on the LED replaces the
        steady light (the pattern ends with the LED off; call this again afterwards).
        """
        if self._indicators is not None:
            self._indicators.set_enrolment_led(on)

    def close(self) -> None:
        """Lock, stop the timer, then close the devices in reverse order. Idempotent.

        Safe on a half-built controller. Devices are closed without holding the controller's
        lock, so a gpiozero event thread blocked on it cannot deadlock the shutdown.
        """
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            if self._indicators is not None:
                self._indicators.mute()  # no signal() may blink a device being closed
            if self._contact is not None:
                self._contact.cancel_held_open()
            if self._lock is not None:
                try:
                    self._lock.relock("close")
                except Exception:
                    log.critical("could not lock the door on close", exc_info=True)
            if self._timer is not None:
                self._timer.stop()
        forget_at_exit(self)
        if self._timer is not None:
            self._timer.join()
        for part in reversed(self._parts):
            part.close()
        self._parts.clear()

    def __enter__(self) -> DoorController:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        unlocked = self._lock is not None and self._lock.is_unlocked
        state = "closed" if self._closed else ("unlocked" if unlocked else "locked")
        return f"<DoorController relay={self.relay_pin!r} {self.lock_type} {state}>"

    # -- internals --------------------------------------------------------------------------

    def _emit(self, name: str, **data: Any) -> None:
        """Report an event; a failing callback is logged, never allowed to stop the door."""
        log.debug("door event %s %s", name, data)
        if self._on_event is None:
            return
        try:
            self._on_event(name, data)
        except Exception:
            log.exception("on_event callback failed for %r", name)

    # -- input callbacks (gpiozero's event thread) ------------------------------------------

    def _on_exit_pressed(self) -> None:
        with self._mutex:
            if self._closed:
                return
            self._emit("exit_request")
            try:
                self.unlock("exit_button")
            except DoorError:
                log.exception("exit button: could not unlock")

    def _on_contact_change(self, door_open: bool) -> None:
        with self._mutex:
            if self._closed:
                return
            assert self._contact is not None and self._lock is not None
            self._contact.change(door_open, unlocked=self._lock.is_unlocked)
