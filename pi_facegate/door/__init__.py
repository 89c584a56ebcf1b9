"""The door room: the GPIO devices at the door, composed into one controller.

* ``controller.py`` -- ``DoorController``: builds the parts below on one pin factory, shares
  one mutex and the relock timer between them, wires the inputs to the lock and reports every
  change as an event.
* ``lock.py`` -- the relay (fail_secure or fail_safe), the grant pulse and its extension, the
  timer thread that relocks, and the exit hook that locks every door still open. The only
  module that drives the relay.
* ``contact.py`` -- the door contact: open or closed, forced and held-open detection.
* ``buttons.py`` -- the request-to-exit button and the enrolment button (short press asks for a
  capture, long press aborts).
* ``indicators.py`` -- the LEDs and buzzer and the patterns they signal with.
* ``pins.py`` -- ``make_pin_factory`` (a mock only when simulation is asked for, always
  announced) and the helpers every door device shares.

Every module logs as ``pi_facegate.door`` (the journal name is part of the interface).
"""
