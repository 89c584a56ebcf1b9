"""The door's LEDs and buzzer, and the patterns they signal with.

Three optional LEDs ("granted", "denied", "enrolment armed") and an optional active buzzer,
each on its own pin. :meth:`Indicators.signal` blinks a named pattern in gpiozero background
threads; a device that is not configured is skipped, and a failing one is logged and
otherwise ignored: signalling never affects the lock.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from pi_facegate.door.pins import Pin, close_device
from pi_facegate.exc import DoorError

if TYPE_CHECKING:  # gpiozero is imported lazily: the pure core never needs it
    from gpiozero.pins import Factory

log = logging.getLogger("pi_facegate.door")  # journal name: stable across moves

# signal(kind) patterns: (device attribute, on seconds, off seconds, repetitions). An on time of
# None means "as long as the unlock pulse", so the green LED shows while the door is open.
_SIGNAL_PATTERNS: dict[str, tuple[tuple[str, float | None, float, int], ...]] = {
    "granted": (("_led_granted", None, 0.0, 1), ("_buzzer", 0.1, 0.0, 1)),
    "denied": (("_led_denied", 0.2, 0.2, 3), ("_buzzer", 0.5, 0.0, 1)),
    # an alarm (too many refused faces, a door forced or held open): 6 beeps, unlike any other
    "alarm": (("_led_denied", 0.1, 0.1, 10), ("_buzzer", 0.2, 0.1, 6)),
    # "turn your head a little" (liveness waits for the 3-D cue): quick green blinks, 2 chirps
    "move_prompt": (("_led_granted", 0.1, 0.1, 4), ("_buzzer", 0.05, 0.15, 2)),
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


class Indicators:
    """The LEDs and the buzzer of a door, built in that order; any of them may be None.

    If one cannot be set up, those already built are released before the error propagates.

    :param led_granted: GPIO of the "granted" LED, or None (likewise the other two LEDs).
    :param buzzer_pin: GPIO of an active buzzer, or None.
    :param pulse_seconds: how long the "granted" LED stays on (the unlock pulse), seconds.
    :param pin_factory: gpiozero pin factory; None for gpiozero's default.
    """

    def __init__(
        self,
        led_granted: Pin | None,
        led_denied: Pin | None,
        led_enrolment: Pin | None,
        buzzer_pin: Pin | None,
        pulse_seconds: float,
        pin_factory: Factory | None,
    ) -> None:
        # Everything close() relies on is set before anything can raise.
        self._mutex = threading.Lock()
        self._muted = False
        self._devices: list[Any] = []
        self._led_granted = self._led_denied = self._led_enrolment = self._buzzer = None
        self.pulse_seconds = pulse_seconds
        try:
            from gpiozero import LED, Buzzer

            if led_granted is not None:
                self._led_granted = self._add(LED(led_granted, pin_factory=pin_factory))
            if led_denied is not None:
                self._led_denied = self._add(LED(led_denied, pin_factory=pin_factory))
            if led_enrolment is not None:
                self._led_enrolment = self._add(LED(led_enrolment, pin_factory=pin_factory))
            if buzzer_pin is not None:
                self._buzzer = self._add(Buzzer(buzzer_pin, pin_factory=pin_factory))
        except Exception:
            self.close()
            raise

    def _add(self, device: Any) -> Any:
        self._devices.append(device)
        return device

    def signal(self, kind: str) -> None:
        """Show a short LED/buzzer pattern; a no-op for devices that are not configured.

        Patterns run in gpiozero background threads, so this returns at once. A failing LED
        is logged and otherwise ignored: signalling never affects the lock.

        :param kind: one of :data:`SIGNAL_KINDS`.
        :raises DoorError: for an unknown kind (a programming error).
        """
        pattern = _SIGNAL_PATTERNS.get(kind)
        if pattern is None:
            raise DoorError(f"unknown signal {kind!r}; expected one of {sorted(SIGNAL_KINDS)}")
        with self._mutex:
            if self._muted:
                return
            for attribute, on_time, off_time, repeat in pattern:
                device = getattr(self, attribute)
                if device is None:
                    continue
                on = self.pulse_seconds if on_time is None else on_time
                try:
                    device.blink(on_time=on, off_time=off_time, n=repeat, background=True)
                except Exception:
                    log.warning("signal %r failed on %r", kind, device, exc_info=True)

    def set_enrolment_led(self, on: bool) -> None:
        """Light the enrolment LED steadily or turn it off; a no-op without that LED."""
        with self._mutex:
            led = self._led_enrolment
            if self._muted or led is None:
                return
            try:
                led.on() if on else led.off()
            except Exception:
                log.warning("enrolment LED failed", exc_info=True)

    def mute(self) -> None:
        """From now on :meth:`signal` and :meth:`set_enrolment_led` do nothing (closing)."""
        self._muted = True

    def close(self) -> None:
        """Mute, then release the devices in reverse order. Idempotent.

        No pattern may start on a device being closed: this waits for a running
        :meth:`signal` to have started its blinking.
        """
        with self._mutex:
            self._muted = True
            for device in reversed(self._devices):
                close_device(device)
            self._devices.clear()
