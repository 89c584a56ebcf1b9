"""What a doctor check returns (:class:`Finding`) and what every check may look at
(:class:`Facts`: the config, the data files, the service user), gathered once.
"""

from __future__ import annotations

import argparse
import os
import pwd
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from pi_facegate.cli import context
from pi_facegate.config.schema import Config
from pi_facegate.daemon.status_file import (
    StatusFileError,
    not_running_reason,
    read_status,
    status_path,
)
from pi_facegate.exc import ConfigError

#: where tools/install_pi.sh puts the unit (first) and where a package would
UNIT_NAME = "pi-facegate.service"
UNIT_DIRS = (
    Path("/etc/systemd/system"),
    Path("/usr/lib/systemd/system"),
    Path("/lib/systemd/system"),
)


class Status(Enum):
    """How a check came out, worst last (the exit status is the worst one's)."""

    OK = "ok"
    WARNING = "warning"
    ERROR = "error"

    @property
    def exit_status(self) -> int:
        return {Status.OK: 0, Status.WARNING: 1, Status.ERROR: 2}[self]


@dataclass(frozen=True)
class Finding:
    """One line of the checklist: what was checked, how it came out, and the fix."""

    check: str
    status: Status
    finding: str
    fix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "status": self.status.value,
            "finding": self.finding,
            "fix": self.fix,
        }


def ok(check: str, finding: str) -> Finding:
    return Finding(check, Status.OK, finding)


def warning(check: str, finding: str, fix: str | None = None) -> Finding:
    return Finding(check, Status.WARNING, finding, fix)


def error(check: str, finding: str, fix: str | None = None) -> Finding:
    return Finding(check, Status.ERROR, finding, fix)


@dataclass(frozen=True)
class ServiceUser:
    """The user the door daemon runs as, and how that is known."""

    name: str
    uid: int
    gid: int
    source: str  # "the unit's User=" or "this user: no unit installed"

    @property
    def is_me(self) -> bool:
        return self.uid == os.geteuid()


@dataclass
class Facts:
    """What several checks need, found once: ``config`` is None when it does not load."""

    args: argparse.Namespace
    config_path: Path
    config: Config | None
    config_error: str | None
    gallery: Path | None
    events: Path | None
    user: ServiceUser
    unit_file: Path | None
    unit: dict[str, str] = field(default_factory=dict)  # the installed unit's [Service] keys
    status: dict[str, Any] | None = None  # the daemon's status file
    not_running: str | None = "not checked"  # why the daemon is not running, None: running

    @property
    def daemon_running(self) -> bool:
        return self.not_running is None

    @property
    def sudo_prefix(self) -> str:
        """How to run a facegate command as the service user, for a fix."""
        return "" if self.user.is_me else f"sudo -u {self.user.name} "


def gather(args: argparse.Namespace) -> Facts:
    """Load the config, resolve the data files, find the unit and the service user."""
    path = context.config_path(args)
    config, problem = None, None
    try:
        _, config = context.resolve_config(args)
    except ConfigError as exc:
        problem = str(exc)
    gallery = events = None
    if config is not None:
        gallery = context.gallery_path(args, config, create=False)
        events = context.events_path(args, config, create=False)
    unit_file = find_unit()
    unit = read_unit(unit_file) if unit_file else {}
    facts = Facts(args, path, config, problem, gallery, events, service_user(unit), unit_file, unit)
    if gallery is not None:
        try:
            facts.status = read_status(status_path(gallery.parent))
            facts.not_running = not_running_reason(facts.status)
        except StatusFileError as exc:
            facts.not_running = str(exc)
    return facts


def find_unit() -> Path | None:
    """The installed unit file, if any."""
    for directory in UNIT_DIRS:
        candidate = directory / UNIT_NAME
        if candidate.is_file():
            return candidate
    return None


def read_unit(path: Path) -> dict[str, str]:
    """The ``Key=value`` lines of a unit file (the last one of a key wins, as in systemd)."""
    keys: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return keys
    for line in lines:
        key, sep, value = line.strip().partition("=")
        if sep and not key.startswith(("#", ";", "[")):
            keys[key.strip()] = value.strip()
    return keys


def service_user(unit: dict[str, str]) -> ServiceUser:
    """The unit's ``User=`` if it exists here, else this process's user."""
    name = unit.get("User")
    if name:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            pass
        else:
            return ServiceUser(entry.pw_name, entry.pw_uid, entry.pw_gid, "the unit's User=")
    uid = os.geteuid()
    try:
        entry = pwd.getpwuid(uid)
        return ServiceUser(entry.pw_name, uid, entry.pw_gid, "this user: no unit installed")
    except KeyError:
        return ServiceUser(str(uid), uid, os.getegid(), "this user: no unit installed")
