"""The lock: the relay, the grant pulse and the timer that ends it, and locking at exit.

This is the ONLY module that drives the lock relay.

Lock wiring (``lock_type``):

* ``"fail_secure"`` (electric strike, bolt): the relay is energised ONLY during a grant pulse;
  power loss keeps the door locked.
* ``"fail_safe"`` (maglock): the relay is energised to hold the door locked and de-energised
  only during the pulse. Power loss -- and releasing the GPIO line when the process ends --
  opens such a lock; that is the nature of a fail-safe lock (fire codes), not a choice made here.

``active_high`` maps "energised" to the pin level (many relay boards are active-low).

:class:`DoorLock` and :class:`RelockTimer` share the door's mutex (the lock of the ``wakeup``
condition they are given): the timer holds it except while it waits, and every other call into
the lock is made with it held, so a pulse, its extension and its end never interleave.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pi_facegate.door.pins import Pin, close_device, warn_if_mock
from pi_facegate.exc import DoorError

if TYPE_CHECKING:  # gpiozero is imported lazily: the pure core never needs it
    from gpiozero.pins import Factory

log = logging.getLogger("pi_facegate.door")  # journal name: stable across moves

LockType = Literal["fail_secure", "fail_safe"]
LOCK_TYPES = ("fail_secure", "fail_safe")


class Deadline(Protocol):
    """Something with a deadline the :class:`RelockTimer` watches (the lock, the contact)."""

    def next_deadline(self) -> float | None:
        """When :meth:`fire_due` next has work, on the door's clock; None for never."""

    def fire_due(self, now: float) -> None:
        """Do what is due at ``now`` (called with the door's mutex held)."""


class _Closeable(Protocol):
    def close(self) -> None: ...


# Doors still open at interpreter exit are closed (locked first) by _lock_all_at_exit. It is
# registered after gpiozero is imported (atexit runs last-registered first), so it locks the
# relay before gpiozero's own exit hook stops threads and releases the pins.
_OPEN_DOORS: weakref.WeakSet[_Closeable] = weakref.WeakSet()
_exit_hook_registered = False


class DoorLock:
    """The relay that drives the lock, built locked, and the grant pulse on it.

    The relay pin goes straight from input to "locked"; :meth:`unlock` starts a pulse of
    ``unlock_seconds`` (or extends a running one to end that long from now) and the
    :class:`RelockTimer` ends it. Call every method with the door's mutex held.

    :param relay_pin: GPIO of the relay driver.
    :param active_high: True if a high pin level energises the relay.
    :param lock_type: ``"fail_secure"`` or ``"fail_safe"`` (see the module docstring).
    :param unlock_seconds: length of a grant pulse, seconds (> 0, checked by the caller).
    :param pin_factory: gpiozero pin factory; None for gpiozero's default.
    :param emit: ``emit(name, **data)`` reports ``"unlocked"`` and ``"relocked"``.
    :param wakeup: the door's condition; notified when a pulse gets a new end.
    :param clock: monotonic clock for deadlines, seconds.
    """

    def __init__(
        self,
        relay_pin: Pin,
        active_high: bool,
        lock_type: LockType,
        unlock_seconds: float,
        pin_factory: Factory | None,
        emit: Callable[..., None],
        wakeup: threading.Condition,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._relay: Any = None
        self._unlocked = False
        self._unlocked_since: float | None = None
        self._relock_at: float | None = None
        self._emit = emit
        self._wakeup = wakeup
        self._clock = clock
        self.relay_pin = relay_pin
        self.unlock_seconds = unlock_seconds
        self._energised_when_locked = lock_type == "fail_safe"

        from gpiozero import DigitalOutputDevice

        register_exit_hook()
        # initial_value is the LOCKED state: the pin goes straight from input to "locked".
        self._relay = DigitalOutputDevice(
            relay_pin,
            active_high=active_high,
            initial_value=self._energised_when_locked,
            pin_factory=pin_factory,
        )
        try:
            if pin_factory is None:
                warn_if_mock(self._relay.pin_factory)
        except Exception:
            self.close()
            raise

    @property
    def is_unlocked(self) -> bool:
        """True while a grant pulse is active (the relay is in its unlocked state)."""
        return self._unlocked

    @property
    def pin_factory(self) -> Factory:
        """The pin factory the relay was built on."""
        return self._relay.pin_factory

    def unlock(self, reason: str, person: str | None = None) -> None:
        """Release the lock for ``unlock_seconds``; while already unlocked, extend to then.

        :raises DoorError: if the relay cannot be driven (it is then driven locked, as far as
            the hardware still allows).
        """
        now = self._clock()
        extended = self._unlocked
        if not extended:
            try:
                self._drive(unlocked=True)
            except Exception as exc:
                self.drive_locked_quietly()
                raise DoorError(f"could not drive the relay on {self.relay_pin}: {exc}") from exc
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

    def relock(self, reason: str) -> None:
        """Drive locked (even if we think we are: the pin is the truth), emit if a pulse ended."""
        self._drive(unlocked=False)
        self._relock_at = None  # only once locked: a failed relock is retried by the timer
        if self._unlocked:
            self._unlocked = False
            since, self._unlocked_since = self._unlocked_since, None
            open_for = self._clock() - since if since is not None else None
            self._emit("relocked", reason=reason, unlocked_for=open_for)

    def drive_locked_quietly(self) -> None:
        """Best effort after a failure: try to lock, never raise (the caller raises)."""
        try:
            if self._relay is not None and not self._relay.closed:
                self._drive(unlocked=False)
        except Exception:
            log.critical("could not drive the relay on %s to locked", self.relay_pin, exc_info=True)

    def next_deadline(self) -> float | None:
        """When the running pulse ends, or None."""
        return self._relock_at

    def fire_due(self, now: float) -> None:
        """Relock if the pulse has run out."""
        if self._relock_at is not None and now >= self._relock_at:
            self.relock("timeout")

    def close(self) -> None:
        """Release the relay pin (lock first with :meth:`relock`). Idempotent."""
        if self._relay is not None:
            close_device(self._relay)

    def _drive(self, unlocked: bool) -> None:
        """Set the relay coil for the wanted lock state; only the relay decides the door."""
        assert self._relay is not None
        self._relay.value = unlocked != self._energised_when_locked


class RelockTimer:
    """The one thread that relocks and watches the other door deadlines (a door held open).

    It holds the door's mutex except while it waits on ``wakeup`` for the next deadline, so
    whoever sets a new deadline notifies ``wakeup`` with the mutex held. If a deadline fails
    (a relay that cannot be driven), it drives the lock locked and tries again shortly.

    :param lock: the lock whose pulses it ends (its deadline comes first).
    :param wakeup: the door's condition.
    :param watched: further deadlines, fired after the lock's, in this order.
    :param clock: the clock the deadlines are on.
    """

    def __init__(
        self,
        lock: DoorLock,
        wakeup: threading.Condition,
        watched: Sequence[Deadline] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = lock
        self._wakeup = wakeup
        self._deadlines: tuple[Deadline, ...] = (lock, *watched)
        self._clock = clock
        self._stopped = False
        self._thread = threading.Thread(
            target=self._run, name=f"DoorTimer-{lock.relay_pin}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end (call with the door's mutex held); :meth:`join` waits."""
        self._stopped = True
        self._wakeup.notify_all()

    def join(self) -> None:
        """Wait up to 5 s for the thread to end; a no-op on the timer's own thread."""
        timer = self._thread
        if timer is not threading.current_thread():
            timer.join(timeout=5)
            if timer.is_alive():
                log.error("door timer thread did not stop within 5 s")

    def _run(self) -> None:
        with self._wakeup:
            while not self._stopped:
                try:
                    self._fire_due_deadlines()
                    timeout = self._seconds_to_next_deadline()
                except Exception:
                    log.critical("door timer failed; locking", exc_info=True)
                    self._lock.drive_locked_quietly()
                    timeout = 0.1  # retry the relock deadline, without spinning
                if not self._stopped:
                    self._wakeup.wait(timeout)

    def _fire_due_deadlines(self) -> None:
        now = self._clock()
        for deadline in self._deadlines:
            deadline.fire_due(now)

    def _seconds_to_next_deadline(self) -> float | None:
        deadlines = [d for d in (w.next_deadline() for w in self._deadlines) if d is not None]
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - self._clock())


def lock_at_exit(door: _Closeable) -> None:
    """Have ``door.close()`` (which locks first) called at exit if it is still open then."""
    _OPEN_DOORS.add(door)


def forget_at_exit(door: _Closeable) -> None:
    """``door`` was closed: nothing left to do for it at exit."""
    _OPEN_DOORS.discard(door)


def register_exit_hook() -> None:
    """Register :func:`_lock_all_at_exit` once, after gpiozero registered its own hook."""
    global _exit_hook_registered
    if not _exit_hook_registered:
        atexit.register(_lock_all_at_exit)
        _exit_hook_registered = True


def _lock_all_at_exit() -> None:
    """A controller someone forgot to close still ends locked when Python exits."""
    for controller in list(_OPEN_DOORS):
        try:
            controller.close()
        except Exception:  # pragma: no cover - best effort at exit
            log.critical("could not close %r at exit", controller, exc_info=True)
