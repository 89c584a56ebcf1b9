"""The pin factory the door devices are built on, and the warning when it is simulated.

Every door device asks gpiozero for its pins through a ``pin_factory`` that the caller
chooses: gpiozero's default (lgpio on a Pi) for the real door, or
:class:`gpiozero.pins.mock.MockFactory` for tests and for an explicit simulation
(:func:`make_pin_factory`). The mock is never selected silently: a simulated door is announced
as a WARNING whether it was asked for here or picked by ``GPIOZERO_PIN_FACTORY``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # gpiozero is imported lazily: the pure core never needs it
    from gpiozero.pins import Factory

log = logging.getLogger("pi_facegate.door")  # journal name: stable across moves

#: A GPIO as gpiozero names it: a BCM number (17) or any pin name ("GPIO17", "BOARD11").
Pin = int | str

SIMULATED_WARNING = (
    "GPIO is SIMULATED (gpiozero MockFactory): the door is not connected, no relay will ever switch"
)


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

    log.warning(SIMULATED_WARNING)
    return MockFactory()


def warn_if_mock(factory: Factory) -> None:
    """gpiozero chose a mock by itself (``GPIOZERO_PIN_FACTORY=mock``): say so loudly."""
    from gpiozero.pins.mock import MockFactory

    if isinstance(factory, MockFactory):
        log.warning("%s (selected by GPIOZERO_PIN_FACTORY)", SIMULATED_WARNING)


def close_device(device: Any) -> None:
    """Close one gpiozero device; a failure is logged, never raised, so shutdown goes on."""
    try:
        device.close()
    except Exception:
        log.warning("closing %r failed", device, exc_info=True)
