"""The ``facegate`` command line.

``main(argv) -> int`` is callable from tests with an argument list, the way gpiozero's
``CliTool`` is. Each subcommand lives in its own module of this package and exposes
``register(subparsers, parents)``; this module only builds the parser, dispatches, and maps
exceptions to exit codes in one place: a :class:`~pi_facegate.exc.FacegateError` or an
``OSError`` is a one-line message and exit status 1, a usage error is status 2, anything
unexpected is a traceback (and status 70). ``DEBUG=1`` re-raises so a developer sees the
traceback of every error.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pi_facegate import __version__
from pi_facegate.cli import native_logs
from pi_facegate.exc import FacegateError, UsageError

# Subcommand modules, in the order `--help` lists them. A module that does not exist yet
# is simply not offered; a module that exists but fails to import is a real error.
COMMAND_MODULES = (
    "run",
    "enroll",
    "identify",
    "people",
    "gallery_cmd",
    "models_cmd",
    "events",
    "status",
    "doctor",
    "config_cmd",
    "eval_cmd",
    "calibrate",
    "bench",
)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_SOFTWARE = 70  # sysexits.h EX_SOFTWARE


def common_options() -> argparse.ArgumentParser:
    """Options every subcommand accepts, so tests and demos can run fully isolated."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="config file (default: /etc/pi-facegate/config.yaml if present, "
        "else the repository's config.yaml)",
    )
    common.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="where the gallery and the event log live unless the config names them "
        "(default: /var/lib/pi-facegate as a service, a per-user data folder otherwise)",
    )
    common.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (repeatable)"
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="facegate",
        description="Face-recognition door controller for the Raspberry Pi.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    parents = [common_options()]
    for name in COMMAND_MODULES:
        if importlib.util.find_spec(f"{__name__}.{name}") is None:
            continue
        module = importlib.import_module(f"{__name__}.{name}")
        module.register(subparsers, parents)
    return parser


def setup_logging(verbosity: int) -> None:
    """Plain stderr logging for CLI use (``facegate run`` switches to its configured level)."""
    from pi_facegate.daemon.logsetup import setup_logging as setup

    setup(logging.WARNING - 10 * min(verbosity, 2), journal=False)


def native_environment() -> None:
    """Settings the native libraries read once, when they load; an operator's own win.

    TensorFlow Lite's, MediaPipe's and OpenCV's C++ INFO chatter stays off the terminal and
    journal (what they print regardless is filtered by :mod:`pi_facegate.cli.native_logs`;
    with ``FACEGATE_NATIVE_LOGS=1`` their own levels are left alone too). OpenBLAS gets one
    thread: its threads otherwise fight the embedder for the Pi's cores (measured with
    ``facegate bench --strangers``: a 10k gallery search went from 6.6 to 0.7 ms and the next
    embedding from 15 to 10 ms on 2 cores).
    """
    quiet = {"TF_CPP_MIN_LOG_LEVEL": "2", "GLOG_minloglevel": "2", "OPENCV_LOG_LEVEL": "ERROR"}
    if native_logs.wanted():
        quiet = {}
    for key, value in {**quiet, "OPENBLAS_NUM_THREADS": "1"}.items():
        os.environ.setdefault(key, value)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``facegate`` with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    native_environment()
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        # argparse ends a "*" positional at the first option: `enroll NAME --update IMG`
        # leaves IMG over. Words left over are more positionals of a command that takes them
        # (``images``); anything else is the usual usage error.
        if extra and hasattr(args, "images") and not any(w.startswith("-") for w in extra):
            args.images = [*args.images, *map(Path, extra)]
        elif extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:  # argparse exits on --help, --version and usage errors
        return int(exc.code or 0)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    setup_logging(getattr(args, "verbose", 0))
    if logging.getLogger().isEnabledFor(logging.DEBUG):  # -vv: the native lines too
        native_logs.show()
    debug = os.environ.get("DEBUG") == "1"
    try:
        return int(args.func(args) or EXIT_OK)
    except KeyboardInterrupt:
        return 130
    except UsageError as exc:  # arguments that do not fit together: argparse's status, 2
        if debug:
            raise
        print(f"facegate: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (FacegateError, OSError) as exc:
        if debug:
            raise
        print(f"facegate: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception:
        if debug:
            raise
        logging.getLogger("pi_facegate").exception("unexpected error")
        return EXIT_SOFTWARE


def run() -> None:
    """Console-script entry point: native log noise filtered from here on, then ``main``."""
    native_logs.install()
    sys.exit(main())
