"""``facegate enroll``: from photos, from the camera, and arming the door's enrolment."""

from pi_facegate.cli.enroll.photos import register

__all__ = ["register"]
