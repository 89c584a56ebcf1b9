"""``facegate run`` as its own process, with the simulated door observable from outside.

Used by the fault-injection tests (``tests/faults``) instead of ``python -m pi_facegate``:
it is the same command line (:func:`pi_facegate.cli.run`: the native-log filter, the
signal handlers, the exit status), with two additions that only gpiozero's MockFactory
(``--simulate-gpio``) allows, because its pins live inside the daemon's process:

* every level change and function change of every mock pin (the relay above all) is
  appended to the file named by ``FACEGATE_PROBE_PINS``, one ``os.write`` per line, so the
  record survives a ``kill -9``: ``<unix time> <pin name> <function> <state>``;
* a line ``press N`` on stdin presses and releases the button on GPIO N (the enrolment
  button), as a person at the door would.

Usage: ``python tests/faults/door_probe.py run --config ... --simulate-gpio``.
"""

from __future__ import annotations

import os
import sys
import threading
import time

_factories: list = []
_ready = threading.Event()


def _recording_pin_class(fd: int):
    from gpiozero.pins.mock import MockPin

    class RecordingPin(MockPin):
        """A MockPin that writes each change of its level or function to ``fd``."""

        def _note(self) -> None:
            line = f"{time.time():.6f} {self.info.name} {self._function} {int(self._state)}\n"
            os.write(fd, line.encode())

        def _change_state(self, value):
            changed = super()._change_state(value)
            if changed:
                self._note()
            return changed

        def _set_function(self, value):
            before = self._function
            super()._set_function(value)
            if self._function != before:
                self._note()

    return RecordingPin


def _install() -> None:
    from pi_facegate.daemon import wiring

    path = os.environ.get("FACEGATE_PROBE_PINS")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600) if path else None
    make = wiring.make_pin_factory

    def make_pin_factory(simulate: bool):
        factory = make(simulate)
        if factory is not None:
            if fd is not None:
                factory.pin_class = _recording_pin_class(fd)
            _factories.append(factory)
            _ready.set()
        return factory

    wiring.make_pin_factory = make_pin_factory


def _serve_stdin() -> None:
    """``press N`` lines from the test: drive the button on GPIO N low, then high."""
    for line in sys.stdin:
        words = line.split()
        if len(words) == 2 and words[0] == "press" and _ready.wait(60):
            pin = _factories[-1].pin(int(words[1]))
            pin.drive_low()
            pin.drive_high()


if __name__ == "__main__":
    from pi_facegate.cli import main, native_logs

    native_logs.install()  # what pi_facegate.cli.run does first, before any native import
    _install()
    threading.Thread(target=_serve_stdin, name="probe-stdin", daemon=True).start()
    sys.exit(main())
