"""The door daemon (``facegate run``): the frame loop under systemd.

* ``service.py`` -- ``DoorService``: start-up order, the frame loop, signals, reload.
* ``access_guard.py`` -- ``AccessGuard``: local time, access rules, attempt limits, alarms.
* ``door_enrolment.py`` -- ``DoorEnrolment``: the armed button-press enrolment at the door.
* ``enrolment_store.py`` -- storing a finished capture in the gallery.
* ``wiring.py`` -- builds the detector, embedder, recogniser, policy and door from a config.
* ``notify.py`` -- sd_notify (READY, WATCHDOG, STATUS) over ``NOTIFY_SOCKET``.
* ``logsetup.py`` -- journald or stderr logging.
"""
