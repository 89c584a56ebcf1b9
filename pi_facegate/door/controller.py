"""Door I/O: the relay, the door contact, the exit button, LEDs and buzzer.

This is the ONLY module that drives the lock relay. Everything is built from gpiozero devices
on a ``pin_factory`` that the caller chooses: gpiozero's default (lgpio on a Pi) for the real
door, or :class:`gpiozero.pins.mock.MockFactory` for tests and for an explicit simulation
(:func:`make_pin_factory`). The mock is never selected silently.

Lock wiring (``lock_type``):

* ``"fail_secure"`` (electric strike, bolt): the relay is energised ONLY during a grant pulse;
  power loss keeps the door locked.
* ``"fail_safe"`` (maglock): the relay is energised to hold the door locked and de-energised
  only during the pulse. Power loss -- and releasing the GPIO line when the process ends --
  opens such a lock; that is the nature of a fail-safe lock (fire codes), not a choice made here.

``active_high`` maps "energised" to the pin level (many relay boards are active-low).

Every state change is reported through ``on_event(name, data)``: ``"unlocked"``,
``"relocked"``, ``"exit_request"``, ``"door_opened"``, ``"door_closed"``, ``"door_forced"``,
``"door_held_open"``. The callback runs on whichever thread noticed the change (caller, timer,
or gpiozero's pin-event thread) with the controller's lock held, so it must be quick and must
not block: hand the event to a queue.
"""

from __future__ import annotations

import atexit
import logging
import math
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from pi_facegate.exc import DoorError

if TYPE_CHECKING:  # gpiozero is imported lazily: the pure core never needs it
    from gpiozero import Device
    from gpiozero.pins import Factory

log = logging.getLogger("pi_facegate.door")  # journal name: stable across moves

LockType = Literal["fail_secure", "fail_safe"]
LOCK_TYPES = ("fail_secure", "fail_safe")
EventCallback = Callable[[str, dict[str, Any]], None]
Pin = int | str

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

# signal(kind) patterns: (device attribute, on seconds, off seconds, repetitions). An on time of
# None means "as long as the unlock pulse", so the green LED shows while the door is open.
_SIGNAL_PATTERNS: dict[str, tuple[tuple[str, float | None, float, int], ...]] = {
    "granted": (("_led_granted", None, 0.0, 1), ("_buzzer", 0.1, 0.0, 1)),
    "denied": (("_led_denied", 0.2, 0.2, 3), ("_buzzer", 0.5, 0.0, 1)),
    "enrolment_start": (("_led_enrolment", 0.25, 0.25, 4), ("_buzzer", 0.05, 0.1, 2)),
    "enrolment_ok": (
        ("_led_enrolment", 1.0, 0.0, 1),
        ("_led_granted", 0.15, 0.15, 3),
        ("_buzzer", 0.1, 0.1, 2),
    ),
    "enrolment_failed": (
        ("_led_enrolment", 0.1, 0.1, 5),
        ("_led_denied", 0.1, 0.1, 5),
        ("_buzzer", 0.5, 0.0, 1),
    ),
}
SIGNAL_KINDS = frozenset(_SIGNAL_PATTERNS)

_SIMULATED_WARNING = (
    "GPIO is SIMULATED (gpiozero MockFactory): the door is not connected, no relay will ever switch"
)

# Controllers still open at interpreter exit are locked by _lock_all_at_exit. It is registered
# after gpiozero is imported (atexit runs last-registered first), so it locks the relay before
# gpiozero's own exit hook stops threads and releases the pins.
_OPEN_CONTROLLERS: weakref.WeakSet[DoorController] = weakref.WeakSet()
_exit_hook_registered = False


def make_pin_factory(simulate: bool) -> Factory | None:
    """The pin factory for the daemon: a mock only when simulation was asked for explicitly.

    :param simulate: True to run without GPIO hardware (demo, CI). The door is then not
        connected at all, which is logged as a WARNING every time so it cannot go unnoticed.
    :returns: a :class:`~gpiozero.pins.mock.MockFactory`, or None for gpiozero's default
        (lgpio on a Pi 4/5), which fails loudly on a machine without GPIO.
    """
    if not simulate:
        return None
    from gpiozero.pins.mock import MockFactory

    log.warning(_SIMULATED_WARNING)
    return MockFactory()


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
    :param lock_type: ``"fail_secure"`` or ``"fail_safe"`` (see the module docstring).
    :param unlock_seconds: length of a grant pulse, seconds (> 0).
    :param contact_pin: GPIO of the door contact, or None.
    :param contact_closed_when: pin level, ``"low"`` or ``"high"``, that means "door closed".
    :param held_open_seconds: a door open longer than this raises ``"door_held_open"``.
    :param exit_button_pin: GPIO of the request-to-exit button, or None.
    :param exit_button_pull_up: True if the button connects the pin to GND.
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
        self._devices: list[Device] = []
        self._relay = self._contact = self._exit_button = self._buzzer = None
        self._led_granted = self._led_denied = self._led_enrolment = None
        self._timer: threading.Thread | None = None
        self._closed = False
        self._unlocked = False
        self._unlocked_since: float | None = None
        self._relock_at: float | None = None
        self._door_open: bool | None = None
        self._opened_at: float | None = None
        self._held_open_at: float | None = None
        self._signal_mutex = threading.Lock()
        self._on_event = on_event
        self._clock = clock

        self._check_arguments(lock_type, unlock_seconds, held_open_seconds, contact_closed_when)
        self.relay_pin = relay_pin
        self.lock_type = lock_type
        self.unlock_seconds = float(unlock_seconds)
        self.held_open_seconds = float(held_open_seconds)
        self._energised_when_locked = lock_type == "fail_safe"
        try:
            self._build_devices(
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
        _OPEN_CONTROLLERS.add(self)

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

    def _build_devices(
        self,
        relay_pin: Pin,
        active_high: bool,
        contact_pin: Pin | None,
        contact_closed_when: str,
        exit_button_pin: Pin | None,
        exit_button_pull_up: bool,
        led_pins: tuple[Pin | None, Pin | None, Pin | None],
        buzzer_pin: Pin | None,
        pin_factory: Factory | None,
    ) -> None:
        """Create the devices, relay first and already locked, each recorded for close()."""
        from gpiozero import LED, Button, Buzzer, DigitalInputDevice, DigitalOutputDevice

        _register_exit_hook()
        # initial_value is the LOCKED state: the pin goes straight from input to "locked".
        self._relay = self._add(
            DigitalOutputDevice(
                relay_pin,
                active_high=active_high,
                initial_value=self._energised_when_locked,
                pin_factory=pin_factory,
            )
        )
        if pin_factory is None:
            self._warn_if_mock(self._relay.pin_factory)
        if contact_pin is not None:
            # Pulled towards "open", so a cut wire reads as an open (alarmed) door. The device
            # is active when the door is closed.
            self._contact = self._add(
                DigitalInputDevice(
                    contact_pin, pull_up=contact_closed_when == "low", pin_factory=pin_factory
                )
            )
        if exit_button_pin is not None:
            self._exit_button = self._add(
                Button(exit_button_pin, pull_up=exit_button_pull_up, pin_factory=pin_factory)
            )
        granted, denied, enrolment = led_pins
        if granted is not None:
            self._led_granted = self._add(LED(granted, pin_factory=pin_factory))
        if denied is not None:
            self._led_denied = self._add(LED(denied, pin_factory=pin_factory))
        if enrolment is not None:
            self._led_enrolment = self._add(LED(enrolment, pin_factory=pin_factory))
        if buzzer_pin is not None:
            self._buzzer = self._add(Buzzer(buzzer_pin, pin_factory=pin_factory))

    def _add(self, device: Any) -> Any:
        self._devices.append(device)
        return device

    @staticmethod
    def _warn_if_mock(factory: Factory) -> None:
        """gpiozero chose a mock by itself (``GPIOZERO_PIN_FACTORY=mock``): say so loudly."""
        from gpiozero.pins.mock import MockFactory

        if isinstance(factory, MockFactory):
            log.warning("%s (selected by GPIOZERO_PIN_FACTORY)", _SIMULATED_WARNING)

    def _start_timer(self) -> None:
        self._timer = threading.Thread(
            target=self._run_timer, name=f"DoorTimer-{self.relay_pin}", daemon=True
        )
        self._timer.start()

    def _wire_inputs(self) -> None:
        """Attach callbacks last, once the timer that relocks exists."""
        if self._contact is not None:
            self._contact.when_activated = self._on_contact_closed
            self._contact.when_deactivated = self._on_contact_opened
            with self._mutex:
                self._door_open = not self._contact.is_active
                if self._door_open:  # open at start: the held-open clock starts now
                    self._opened_at = self._clock()
                    self._held_open_at = self._opened_at + self.held_open_seconds
                    self._wakeup.notify_all()
        if self._exit_button is not None:
            self._exit_button.when_pressed = self._on_exit_pressed

    # -- public API -------------------------------------------------------------------------

    @property
    def is_unlocked(self) -> bool:
        """True while a grant pulse is active (the relay is in its unlocked state)."""
        with self._mutex:
            return self._unlocked

    @property
    def is_door_open(self) -> bool | None:
        """What the door contact says, or None without a contact."""
        with self._mutex:
            return self._door_open

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
        relay = self._relay
        return None if relay is None else relay.pin_factory

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
            now = self._clock()
            extended = self._unlocked
            if not extended:
                try:
                    self._drive(unlocked=True)
                except Exception as exc:
                    self._drive_locked_quietly()
                    raise DoorError(
                        f"could not drive the relay on {self.relay_pin}: {exc}"
                    ) from exc
                self._unlocked = True
                self._unlocked_since = now
            self._relock_at = now + self.unlock_seconds
            self._emit(
                "unlocked",
                reason=reason,
                person=person,
                seconds=self.unlock_seconds,
                extended=extended,
            )
            self._wakeup.notify_all()

    def lock(self) -> None:
        """Lock now, ending any pulse.

        :raises DoorError: if the relay cannot be driven.
        """
        with self._mutex:
            if self._closed:
                return  # close() locked it already
            try:
                self._relock("lock")
            except Exception as exc:
                raise DoorError(f"could not drive the relay on {self.relay_pin}: {exc}") from exc

    def signal(self, kind: str) -> None:
        """Show a short LED/buzzer pattern; a no-op for devices that are not configured.

        Patterns run in gpiozero background threads, so this returns at once. A failing LED
        is logged and otherwise ignored: signalling never affects the lock.

        :param kind: one of :data:`SIGNAL_KINDS` ("granted", "denied", "enrolment_start",
            "enrolment_ok", "enrolment_failed").
        :raises DoorError: for an unknown kind (a programming error).
        """
        pattern = _SIGNAL_PATTERNS.get(kind)
        if pattern is None:
            raise DoorError(f"unknown signal {kind!r}; expected one of {sorted(SIGNAL_KINDS)}")
        with self._signal_mutex:
            if self._closed:
                return
            for attribute, on_time, off_time, repeat in pattern:
                device = getattr(self, attribute)
                if device is None:
                    continue
                on = self.unlock_seconds if on_time is None else on_time
                try:
                    device.blink(on_time=on, off_time=off_time, n=repeat, background=True)
                except Exception:
                    log.warning("signal %r failed on %r", kind, device, exc_info=True)

    def set_enrolment_led(self, on: bool) -> None:
        """Light the enrolment LED steadily (enrolment armed) or turn it off.

        A no-op without that LED. A later :meth:`signal` pattern on the LED replaces the
        steady light (the pattern ends with the LED off; call this again afterwards).
        """
        with self._signal_mutex:
            led = self._led_enrolment
            if self._closed or led is None:
                return
            try:
                led.on() if on else led.off()
            except Exception:
                log.warning("enrolment LED failed", exc_info=True)

    def close(self) -> None:
        """Lock, stop the timer, then close the devices in reverse order. Idempotent.

        Safe on a half-built controller. Devices are closed without holding the controller's
        lock, so a gpiozero event thread blocked on it cannot deadlock the shutdown.
        """
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            self._held_open_at = None
            if self._relay is not None:
                try:
                    self._relock("close")
                except Exception:
                    log.critical("could not lock the door on close", exc_info=True)
            self._wakeup.notify_all()
        _OPEN_CONTROLLERS.discard(self)
        timer = self._timer
        if timer is not None and timer is not threading.current_thread():
            timer.join(timeout=5)
            if timer.is_alive():
                log.error("door timer thread did not stop within 5 s")
        with self._signal_mutex:  # no signal() may blink a device being closed
            for device in reversed(self._devices):
                try:
                    device.close()
                except Exception:
                    log.warning("closing %r failed", device, exc_info=True)
            self._devices.clear()

    def __enter__(self) -> DoorController:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("unlocked" if self._unlocked else "locked")
        return f"<DoorController relay={self.relay_pin!r} {self.lock_type} {state}>"

    # -- internals (call with self._mutex held) ---------------------------------------------

    def _drive(self, unlocked: bool) -> None:
        """Set the relay coil for the wanted lock state; only the relay decides the door."""
        assert self._relay is not None
        self._relay.value = unlocked != self._energised_when_locked

    def _drive_locked_quietly(self) -> None:
        """Best effort after a failure: try to lock, never raise (the caller raises)."""
        try:
            if self._relay is not None and not self._relay.closed:
                self._drive(unlocked=False)
        except Exception:
            log.critical("could not drive the relay on %s to locked", self.relay_pin, exc_info=True)

    def _relock(self, reason: str) -> None:
        """Drive locked (even if we think we are: the pin is the truth), emit if a pulse ended."""
        self._drive(unlocked=False)
        self._relock_at = None  # only once locked: a failed relock is retried by the timer
        if self._unlocked:
            self._unlocked = False
            since, self._unlocked_since = self._unlocked_since, None
            open_for = self._clock() - since if since is not None else None
            self._emit("relocked", reason=reason, unlocked_for=open_for)

    def _emit(self, name: str, **data: Any) -> None:
        """Report an event; a failing callback is logged, never allowed to stop the door."""
        log.debug("door event %s %s", name, data)
        if self._on_event is None:
            return
        try:
            self._on_event(name, data)
        except Exception:
            log.exception("on_event callback failed for %r", name)

    def _run_timer(self) -> None:
        """The one thread that relocks and watches the held-open deadline."""
        with self._mutex:
            while not self._closed:
                try:
                    self._fire_due_deadlines()
                    timeout = self._seconds_to_next_deadline()
                except Exception:
                    log.critical("door timer failed; locking", exc_info=True)
                    self._drive_locked_quietly()
                    timeout = 0.1  # retry the relock deadline, without spinning
                if not self._closed:
                    self._wakeup.wait(timeout)

    def _fire_due_deadlines(self) -> None:
        now = self._clock()
        if self._relock_at is not None and now >= self._relock_at:
            self._relock("timeout")
        if self._held_open_at is not None and now >= self._held_open_at:
            self._held_open_at = None  # once per opening
            since = self._opened_at if self._opened_at is not None else now
            self._emit("door_held_open", open_seconds=now - since)

    def _seconds_to_next_deadline(self) -> float | None:
        deadlines = [d for d in (self._relock_at, self._held_open_at) if d is not None]
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - self._clock())

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

    def _on_contact_opened(self) -> None:
        self._on_contact_change(door_open=True)

    def _on_contact_closed(self) -> None:
        self._on_contact_change(door_open=False)

    def _on_contact_change(self, door_open: bool) -> None:
        with self._mutex:
            if self._closed or door_open == self._door_open:
                return
            self._door_open = door_open
            now = self._clock()
            if door_open:
                forced = not self._unlocked
                self._opened_at = now
                self._held_open_at = now + self.held_open_seconds
                self._emit("door_opened", forced=forced)
                if forced:
                    self._emit("door_forced")
                self._wakeup.notify_all()
            else:
                since, self._opened_at = self._opened_at, None
                self._held_open_at = None
                self._emit("door_closed", open_seconds=now - since if since is not None else None)


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
        :attr:`DoorController.pin_factory`); None for gpiozero's default.
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
                pin, pull_up=pull_up, hold_time=long_press_seconds, pin_factory=pin_factory
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


def _register_exit_hook() -> None:
    """Register :func:`_lock_all_at_exit` once, after gpiozero registered its own hook."""
    global _exit_hook_registered
    if not _exit_hook_registered:
        atexit.register(_lock_all_at_exit)
        _exit_hook_registered = True


def _lock_all_at_exit() -> None:
    """A controller someone forgot to close still ends locked when Python exits."""
    for controller in list(_OPEN_CONTROLLERS):
        try:
            controller.close()
        except Exception:  # pragma: no cover - best effort at exit
            log.critical("could not close %r at exit", controller, exc_info=True)
