"""``facegate run``: the door daemon (what the systemd unit starts)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
from pathlib import Path

from pi_facegate.cli import context


def register(subparsers, parents) -> None:
    p = subparsers.add_parser(
        "run",
        parents=parents,
        help="run the door controller (the service)",
        description="Camera → recognition → relay, until SIGTERM. SIGHUP re-reads the config.",
    )
    p.add_argument(
        "--replay",
        type=Path,
        metavar="PATH",
        help="use this video file or image folder instead of the camera; exit when it ends",
    )
    p.add_argument(
        "--replay-fps",
        type=float,
        metavar="N",
        help="replay pace in frames per second (0 = as fast as possible; default from config)",
    )
    p.add_argument(
        "--simulate-gpio",
        action="store_true",
        help="drive a simulated relay (gpiozero MockFactory) instead of real GPIO",
    )
    p.add_argument(
        "--gallery", type=Path, metavar="PATH", help="gallery file (default: from the config)"
    )
    p.add_argument(
        "--events", type=Path, metavar="PATH", help="event log file (default: from the config)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pi_facegate.daemon.logsetup import setup_logging
    from pi_facegate.daemon.service import DoorService, RunOptions

    config_path, config = context.resolve_config(args)
    level = "DEBUG" if args.verbose else config.logging.level
    setup_logging(level, config.logging.journal)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        logging.getLogger("pi_facegate").warning(
            "running as root: the service should run as its own user (see systemd/pi-facegate.service)"
        )
    options = RunOptions(
        config_path=config_path,
        state_dir=context.resolve_state_dir(args, config),
        replay=args.replay,
        replay_fps=args.replay_fps,
        simulate_gpio=args.simulate_gpio,
        gallery_path=context.gallery_path(args, config),
        events_path=context.events_path(args, config),
    )
    service = DoorService(options, config)
    service.install_signal_handlers()
    try:
        return service.run()
    finally:
        # Locked and closed: from here on a SIGHUP or SIGTERM (a reload or stop storm) must
        # not kill the exiting interpreter, which gives them back their default action
        # ("terminate") while it finalizes, turning exit 0 into death by that signal.
        for signum in (signal.SIGHUP, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
