"""``facegate doctor [--json]``: why the door does not open, as a checklist.

One line per check, ✔ (fine), ⚠ (worth a look) or ✘ (the door cannot work like this),
with what was found and, under it, the fix as a command to run. The checks open the real
things the way the daemon would (the camera source, the GPIO chip, the model files and
their sha256, the config, the gallery and event log with the service user's eyes, the
systemd unit, the clock, the disk) and change nothing.

Exit status: 0 when every check passed, 1 when the worst is a warning, 2 when something
failed. ``--json`` prints a list of ``{check, status, finding, fix}`` (status ``ok``,
``warning`` or ``error``) with the same exit status.

The checks live in the modules of this package, one concern each: :mod:`.software`
(Python, packages, CPU and detector, config, models), :mod:`.hardware` (camera, GPIO,
groups), :mod:`.state` (gallery, event log, disk) and :mod:`.system` (systemd, the daemon,
the clock); :mod:`.finding` holds what they share.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from pi_facegate.cli.doctor import hardware, software, state, system
from pi_facegate.cli.doctor.finding import Facts, Finding, Status, error, gather, warning
from pi_facegate.cli.table import format_table

log = logging.getLogger("pi_facegate.doctor")

Check = Callable[[Facts], Finding]

#: the checks, in the order they are shown
CHECKS: tuple[Check, ...] = (
    software.check_python,
    software.check_detector,
    software.check_config,
    software.check_models,
    hardware.check_camera,
    hardware.check_gpio,
    hardware.check_groups,
    state.check_gallery,
    state.check_event_log,
    state.check_disk,
    system.check_systemd,
    system.check_daemon,
    system.check_clock,
)

#: the checks that judge what the config names: not run while it does not load
NEEDS_CONFIG = frozenset(
    {
        hardware.check_camera,
        hardware.check_gpio,
        state.check_gallery,
        state.check_event_log,
        state.check_disk,
        system.check_daemon,
    }
)

MARKS = {Status.OK: "✔", Status.WARNING: "⚠", Status.ERROR: "✘"}
ASCII_MARKS = {Status.OK: "ok", Status.WARNING: "warn", Status.ERROR: "FAIL"}


def register(subparsers, parents) -> None:
    """Add ``doctor [--json] [--replay PATH] [--gallery PATH] [--events PATH]``."""
    p = subparsers.add_parser(
        "doctor",
        parents=parents,
        help="check everything the door needs; each problem with its fix (exit 0/1/2)",
        description="Check the software, models, config, camera, GPIO, gallery, event log, "
        "systemd unit, clock and disk, one line each with the fix. Exit 0 if all is well, "
        "1 with warnings, 2 with errors.",
    )
    p.add_argument("--json", action="store_true", help="print a JSON list of the findings")
    p.add_argument(
        "--replay",
        type=Path,
        metavar="PATH",
        help="check this video file or image folder as the camera (as facegate run --replay)",
    )
    p.add_argument(
        "--gallery", type=Path, metavar="PATH", help="gallery file (default: from the config)"
    )
    p.add_argument(
        "--events", type=Path, metavar="PATH", help="event log file (default: from the config)"
    )
    p.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    """Run every check; print the checklist (or JSON); the exit status of the worst."""
    facts = gather(args)
    findings = run_checks(facts)
    if args.json:
        json.dump([f.to_dict() for f in findings], sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        print(render(findings, marks_for(sys.stdout)))
    return exit_status(findings)


def run_checks(facts: Facts) -> list[Finding]:
    """Every check in order; those that need the config are one line while it is broken."""
    findings, skipped = [], []
    for check in CHECKS:
        if facts.config is None and check in NEEDS_CONFIG:
            skipped.append(_name(check))
            continue
        findings.append(run_check(check, facts))
    if skipped:
        findings.append(
            warning("not checked", f"{', '.join(skipped)}: they need the config", "fix the config")
        )
    return findings


def _name(check: Check) -> str:
    return check.__name__.removeprefix("check_").replace("_", " ")


def run_check(check: Check, facts: Facts) -> Finding:
    """One check; a check that breaks is a finding of its own, never the end of the list."""
    try:
        return check(facts)
    except Exception as exc:  # noqa: BLE001 - a doctor reports, it does not crash
        name = _name(check)
        log.debug("check %s failed", name, exc_info=True)
        return error(name, f"the check itself failed: {type(exc).__name__}: {exc}", None)


def exit_status(findings: list[Finding]) -> int:
    """0 all passed, 1 warnings, 2 errors."""
    return max((f.status.exit_status for f in findings), default=0)


def render(findings: list[Finding], marks: dict[Status, str] = MARKS) -> str:
    """The checklist: mark, check, finding; the fix on the line below, aligned."""
    rows: list[tuple[str, str, str]] = []
    for finding in findings:
        rows.append((marks[finding.status], finding.check, finding.finding))
        if finding.fix:
            rows.append(("", "", f"fix: {finding.fix}"))
    counts = {s: sum(1 for f in findings if f.status is s) for s in Status}
    summary = ", ".join(
        f"{counts[status]} {word}{'' if counts[status] == 1 or status is Status.OK else 's'}"
        for status, word in (
            (Status.OK, "ok"),
            (Status.WARNING, "warning"),
            (Status.ERROR, "error"),
        )
    )
    return format_table(None, rows, align="<<<") + "\n" + summary


def marks_for(stream) -> dict[Status, str]:
    """✔ ⚠ ✘ where the stream's encoding has them, else ok/warn/FAIL."""
    try:
        "".join(MARKS.values()).encode(getattr(stream, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return ASCII_MARKS
    return MARKS
