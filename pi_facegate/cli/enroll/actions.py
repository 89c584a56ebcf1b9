"""Words the ``facegate enroll`` group shares between its modules, in one place (no cycles).

``facegate enroll arm|status|cancel`` (door enrolment, :mod:`pi_facegate.cli.enroll.arming`)
share the command with enrolment from photos and from the camera; these words are therefore
not usable as names there.
"""

from __future__ import annotations

DOOR_ACTIONS = ("arm", "status", "cancel")
