"""The door contact: open or closed, and the alarms for a door forced or held open.

An optional reed contact between the pin and GND (``closed_when="low"``, the internal pull-up
is used) or 3V3 (``"high"``, pull-down). The pull is towards "open", so a cut wire reads as an
open (alarmed) door. An opening while the lock is not unlocked is *forced*; a door open longer
than ``held_open_seconds`` is reported once per opening by the door's
:class:`~pi_facegate.door.lock.RelockTimer`, which watches :meth:`DoorContact.next_deadline`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from pi_facegate.door.buttons import bounce_time
from pi_facegate.door.pins import Pin, close_device

if TYPE_CHECKING:  # gpiozero is imported lazily: the pure core never needs it
    from gpiozero.pins import Factory


class DoorContact:
    """A door contact and its open/closed, forced and held-open events.

    Events go to ``emit(name, **data)``: ``"door_opened"`` (``forced``), ``"door_forced"``,
    ``"door_closed"`` (``open_seconds``) and ``"door_held_open"`` (``open_seconds``). Call
    :meth:`change`, :meth:`fire_due` and :meth:`cancel_held_open` with the door's mutex held.

    :param pin: GPIO of the contact.
    :param closed_when: pin level, ``"low"`` or ``"high"``, that means "door closed".
    :param held_open_seconds: a door open longer than this raises ``"door_held_open"``.
    :param pin_factory: gpiozero pin factory; None for gpiozero's default.
    :param emit: ``emit(name, **data)`` for every event.
    :param wakeup: the door's condition; notified when a held-open deadline is set.
    :param clock: monotonic clock for deadlines, seconds.
    """

    def __init__(
        self,
        pin: Pin,
        closed_when: Literal["low", "high"],
        held_open_seconds: float,
        pin_factory: Factory | None,
        emit: Callable[..., None],
        wakeup: threading.Condition,
        clock: Callable[[], float] = time.monotonic,
        bounce_seconds: float = 0.0,
    ) -> None:
        self._door_open: bool | None = None
        self._opened_at: float | None = None
        self._held_open_at: float | None = None
        self._on_change: Callable[[bool], None] | None = None
        self._emit = emit
        self._wakeup = wakeup
        self._clock = clock
        self.held_open_seconds = held_open_seconds

        from gpiozero import DigitalInputDevice

        # Pulled towards "open", so a cut wire reads as an open (alarmed) door. The device
        # is active when the door is closed.
        self._device = DigitalInputDevice(
            pin,
            pull_up=closed_when == "low",
            bounce_time=bounce_time(bounce_seconds),
            pin_factory=pin_factory,
        )

    @property
    def is_open(self) -> bool | None:
        """What the contact says, or None before :meth:`attach`."""
        return self._door_open

    def attach(self, on_change: Callable[[bool], None]) -> None:
        """Send each edge to ``on_change(door_open)``, then read where the door is now.

        A door open at start starts the held-open clock (it is neither "opened" nor "forced").
        Call without the door's mutex: it is taken for the first reading.
        """
        self._on_change = on_change
        self._device.when_activated = self._on_closed
        self._device.when_deactivated = self._on_opened
        with self._wakeup:
            self._door_open = not self._device.is_active
            if self._door_open:  # open at start: the held-open clock starts now
                self._opened_at = self._clock()
                self._held_open_at = self._opened_at + self.held_open_seconds
                self._wakeup.notify_all()

    def change(self, door_open: bool, unlocked: bool) -> None:
        """The door opened or closed; ``unlocked`` says whether the lock was released."""
        if door_open == self._door_open:
            return
        self._door_open = door_open
        now = self._clock()
        if door_open:
            forced = not unlocked
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

    def next_deadline(self) -> float | None:
        """When an open door counts as held open, or None."""
        return self._held_open_at

    def fire_due(self, now: float) -> None:
        """Report a door held open, once per opening."""
        if self._held_open_at is not None and now >= self._held_open_at:
            self._held_open_at = None  # once per opening
            since = self._opened_at if self._opened_at is not None else now
            self._emit("door_held_open", open_seconds=now - since)

    def cancel_held_open(self) -> None:
        """The door is closing: no held-open event any more."""
        self._held_open_at = None

    def close(self) -> None:
        """Release the pin. Idempotent."""
        close_device(self._device)

    def _on_opened(self) -> None:
        if self._on_change is not None:
            self._on_change(True)

    def _on_closed(self) -> None:
        if self._on_change is not None:
            self._on_change(False)
