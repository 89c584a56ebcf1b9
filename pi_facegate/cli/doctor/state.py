"""Doctor checks of the state dir: the gallery, the event log and the free disk.

The files are judged by the rules every command applies (:mod:`pi_facegate.storage.trust`)
and, on top, by who the service runs as: a gallery root made with ``sudo facegate enroll``
passes root's check but the service user cannot open it. Nothing is created or changed.
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import stat
from datetime import datetime
from pathlib import Path

from pi_facegate.cli.doctor.finding import Facts, Finding, error, ok, warning
from pi_facegate.exc import FacegateError

#: free space in the state dir below which the event log and gallery writes may fail
LOW_DISK_BYTES = 100 * 2**20
#: free space worth a warning
TIGHT_DISK_BYTES = 1 * 2**30


def check_gallery(facts: Facts) -> Finding:
    """Owner, mode, the embedder fingerprint it was made with, the people in it."""
    from pi_facegate.daemon.wiring import embedder_fingerprint
    from pi_facegate.storage.gallery import Gallery
    from pi_facegate.storage.gallery_file import check_gallery_file
    from pi_facegate.vision.manifest import load_manifest

    path = facts.gallery
    if path is None:
        return warning("gallery", "not checked: the config does not load", "fix the config first")
    if not _may_judge(facts):
        return _ask_service_user("gallery", facts)
    try:
        info = check_gallery_file(path, create=True)
    except FacegateError as exc:
        return _refused("gallery", str(exc), facts)
    if info is None:
        return warning(
            "gallery",
            f"no gallery at {path} yet: the service starts with an empty one and lets nobody in",
            f'{facts.sudo_prefix}facegate enroll "NAME" PHOTO...',
        )
    owner = _owner_problem(path, info, facts)
    if owner is not None:
        return owner
    try:
        with Gallery.open(path, fingerprint=None, create=False) as gallery:
            people = gallery.people()
            recorded = gallery.fingerprint
    except FacegateError as exc:
        return error("gallery", str(exc), "restore the gallery from a backup")
    mode = f"{path} ({_owner_name(info.st_uid)}, {stat.S_IMODE(info.st_mode):o})"
    try:
        current = embedder_fingerprint(load_manifest(facts.config.embedder.model, verify=False))
    except FacegateError as exc:
        current = f"unknown ({exc})"
    if recorded != current:
        return error(
            "gallery",
            f"{mode} was made by embedder {recorded}, the config's embedder is {current}: "
            "nobody in it can be recognised",
            "re-enrol everyone into a new gallery (move this one aside), or go back to the "
            "embedder that made it",
        )
    active = sum(1 for person in people if person.active)
    text = f"{mode}: {len(people)} people ({active} let in), embedder {recorded}"
    if not active:
        return warning(
            "gallery",
            f"{text}: nobody is let in",
            f'{facts.sudo_prefix}facegate enroll "NAME" PHOTO... or facegate people enable NAME',
        )
    return ok("gallery", text)


def check_event_log(facts: Facts) -> Finding:
    """Owner and mode of the event log, how many events it holds and the latest one."""
    from pi_facegate.storage.events import EventLog
    from pi_facegate.storage.trust import EVENT_LOG, check_private_file

    path = facts.events
    if path is None:
        return warning("event log", "not checked: the config does not load", "fix the config first")
    if not _may_judge(facts):
        return _ask_service_user("event log", facts)
    if not os.path.lexists(path):
        return warning(
            "event log",
            f"no event log at {path} yet: the daemon creates it when it first starts",
            None,
        )
    try:
        check_private_file(path, EVENT_LOG)
        info = os.lstat(path)
    except (FacegateError, OSError) as exc:
        return _refused("event log", str(exc), facts)
    owner = _owner_problem(path, info, facts, check="event log")
    if owner is not None:
        return owner
    try:
        with EventLog(path) as log:
            count = log.count()
            last = log.query(limit=1)
    except FacegateError as exc:
        return error("event log", str(exc), f"move {path} aside: the daemon starts a new one")
    text = f"{path} ({_owner_name(info.st_uid)}, {stat.S_IMODE(info.st_mode):o}): {count} events"
    if last:
        when = datetime.fromtimestamp(last[0].time).strftime("%Y-%m-%d %H:%M:%S")
        text += f", the latest {last[0].kind} at {when}"
    return ok("event log", text)


def check_disk(facts: Facts) -> Finding:
    """Free space where the gallery and the event log are written."""
    folder = facts.gallery.parent if facts.gallery else None
    if folder is None:
        return warning("disk", "not checked: the config does not load", "fix the config first")
    probe = folder
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    try:
        usage = shutil.disk_usage(probe)
    except OSError as exc:
        return warning("disk", f"cannot measure the free space of {probe}: {exc.strerror}", None)
    share = usage.free / usage.total if usage.total else 0.0
    text = f"{_size(usage.free)} free of {_size(usage.total)} ({share:.0%}) in {probe}"
    fix = (
        "free some space: sudo journalctl --vacuum-size=100M, sudo apt clean, remove old "
        "files; or lower storage.max_events"
    )
    if usage.free < LOW_DISK_BYTES:
        return error("disk", f"{text}: the event log and enrolments may fail to write", fix)
    if usage.free < TIGHT_DISK_BYTES or share < 0.05:
        return warning("disk", f"{text}: little room left", fix)
    return ok("disk", text)


def _may_judge(facts: Facts) -> bool:
    """Whether this process sees the files as the service does: it is the service user, or
    root (whose extra rights the owner check makes up for)."""
    return facts.user.is_me or os.geteuid() == 0


def _ask_service_user(check: str, facts: Facts) -> Finding:
    return warning(
        check,
        f"not checked: the service runs as {facts.user.name}, this is {_owner_name(os.geteuid())}",
        f"sudo -u {facts.user.name} facegate doctor",
    )


def _owner_problem(path: Path, info: os.stat_result, facts: Facts, check: str = "gallery"):
    """A finding when the file is not the service user's own (root's passes the trust check
    but the service cannot open a 0600 root file)."""
    user = facts.user
    if info.st_uid == user.uid:
        return None
    owner = _owner_name(info.st_uid)
    return error(
        check,
        f"{path} is owned by {owner}, but the service runs as {user.name} ({user.source}): "
        "it cannot open it",
        f"sudo chown {user.name}: {shlex.quote(str(path))}",
    )


def _refused(check: str, message: str, facts: Facts) -> Finding:
    """A trust refusal: the problem as the finding, the fix it names (if any) as the fix."""
    problem, sep, _ = message.partition("; fix: ")
    return error(check, problem if sep else message, _trust_fix(message, facts))


def _trust_fix(message: str, facts: Facts) -> str:
    """The fix a trust refusal names (``fix: chmod 600 PATH``), else the general one."""
    if "fix: " in message:
        return message.rsplit("fix: ", 1)[1].split("; else")[0].rstrip(".")
    if "sudo -u " in message:
        return f"sudo -u {facts.user.name} facegate doctor"
    return "restore the file from a backup (see README: the state-file trust rules)"


def _owner_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _size(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TB"
