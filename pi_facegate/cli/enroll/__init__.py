"""``facegate enroll``: from photos, from the camera, and arming the door's enrolment.

The room of the ``enroll`` command group. This module builds its parser (``register``, for
the CLI dispatcher) and routes each call; the work lives in one module per way in:

* :mod:`~pi_facegate.cli.enroll.photos`: ``facegate enroll NAME IMAGE...``;
* :mod:`~pi_facegate.cli.enroll.camera`: ``facegate enroll NAME --camera`` (the door's
  guided capture, in a terminal);
* :mod:`~pi_facegate.cli.enroll.arming`: ``facegate enroll arm|status|cancel`` (the
  administrator's arming file for enrolment at the door);
* :mod:`~pi_facegate.cli.enroll.actions`: the action words they share.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pi_facegate.cli.common import add_gallery_option, add_json_option
from pi_facegate.cli.enroll import arming, camera, photos
from pi_facegate.cli.enroll.actions import DOOR_ACTIONS
from pi_facegate.exc import UsageError


def register(subparsers, parents) -> None:
    """Add the ``enroll`` command: one parser for photos, the camera and the door's arming."""
    p = subparsers.add_parser(
        "enroll",
        parents=parents,
        help="enrol a person from photos, or at the door",
        description="Enrol NAME from photos that each show exactly one face "
        "(facegate enroll NAME IMAGE...). At the door: 'facegate enroll arm --name NAME' lets the "
        "next press of the enrolment button capture that person; 'enroll status' and "
        "'enroll cancel' show and end an armed window; 'enroll NAME --camera' captures from this "
        "machine's camera with progress in the terminal.",
    )
    p.add_argument(
        "name", metavar="NAME", help="the person's name, or one of: " + ", ".join(DOOR_ACTIONS)
    )
    p.add_argument("images", nargs="*", type=Path, metavar="IMAGE")
    p.add_argument(
        "--camera", action="store_true", help="capture from the configured camera instead of photos"
    )
    p.add_argument("--update", action="store_true", help="add these photos to an existing person")
    p.add_argument(
        "--force", action="store_true", help="store even if the face matches another person"
    )
    p.add_argument(
        "--disabled", action="store_true", help="store the person without access for now"
    )
    p.add_argument("--note", default="", help="free text kept with the person")
    door = p.add_argument_group(
        "enrolment at the door",
        "Run these as the service user, whose state directory holds the arming file: "
        'sudo -u facegate facegate enroll arm --name "Alice" --timeout 5m',
    )
    door.add_argument(
        "--name",
        dest="arm_name",
        metavar="NAME",
        help="with 'arm': the person the next button press enrols (with --update: adds views to)",
    )
    door.add_argument(
        "--timeout",
        metavar="DURATION",
        help="with 'arm': how long the arming lasts, e.g. 90s, 5m, 1h (default 5m; "
        "at most enrolment.max_armed_minutes)",
    )
    door.add_argument(
        "--replay",
        type=Path,
        metavar="PATH",
        help="with --camera: read this video file or image folder instead of the camera",
    )
    add_gallery_option(p)
    add_json_option(p)
    p.set_defaults(func=dispatch)


def dispatch(args: argparse.Namespace) -> int:
    """Route ``facegate enroll`` to arming, status, cancel, a camera capture or photos."""
    if args.name in DOOR_ACTIONS:
        if args.camera:
            raise UsageError(f"'enroll {args.name}' takes no --camera")
        actions = {"arm": arming.arm, "status": arming.status, "cancel": arming.cancel}
        return actions[args.name](args)
    if args.camera:
        return camera.capture(args)
    return photos.enroll(args)
