"""The running daemon's status, as a small JSON file that ``facegate status`` reads.

No socket and no network: the daemon rewrites ``status.json`` beside the gallery (the state
dir) every ``service.status_interval_seconds``, when it refreshes systemd's STATUS= line,
and marks it ``stopped`` when it stops. The CLI finds it the way it finds the gallery (and the
enrolment arming file), so both always agree on the place. A reader takes the daemon for
gone when the file is older than :func:`stale_after` (three intervals, at least
:data:`MIN_STALE_SECONDS`) or its pid no longer exists: a daemon killed with ``SIGKILL`` or a
power cut cannot mark its file.

The file is written atomically (a temporary file renamed over it, mode 0600: it names who
came to the door) but not fsync-ed: it is rewritten every few seconds, means nothing after
a restart, and an SD card should not be flushed that often for it. A failure to write is
logged once and never stops the door.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from pi_facegate import __version__

log = logging.getLogger("pi_facegate.service")  # journal name: the service's

STATUS_NAME = "status.json"
FORMAT = 1
#: a status file is stale after three intervals, and never sooner than this (seconds)
MIN_STALE_SECONDS = 10.0
#: the kinds of event that are a decision about a face at the door
DECISION_KINDS = frozenset({"granted", "denied", "presentation_attack", "enrolled"})


def status_path(directory: Path) -> Path:
    """The status file in ``directory`` (the gallery's folder, the service's state dir)."""
    return Path(directory) / STATUS_NAME


class StatusWriter:
    """The daemon's side: remembers the last decision, writes the file when asked.

    :param path: the status file (its folder is created 0700 if missing)
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.started_at = time.time()
        self.last_decision: dict[str, Any] | None = None
        self._written = False
        self._warned = False

    def note(self, kind: str, fields: dict[str, Any]) -> None:
        """An event was recorded: keep it if it is a decision (text, reason, time)."""
        if kind not in DECISION_KINDS:
            return
        detail = fields.get("detail") or {}
        person = fields.get("person")
        self.last_decision = {
            "kind": kind,
            "person": person,
            "reason": detail.get("reason"),
            "text": kind if person is None else f"{kind} {person}",
            "time": time.time(),
        }

    def write(self, state: dict[str, Any], running: bool = True) -> bool:
        """Replace the file with ``state`` plus pid, version and times; False if it failed."""
        now = time.time()
        document = {
            "format": FORMAT,
            "state": "running" if running else "stopped",
            "pid": os.getpid(),
            "version": __version__,
            "started_at": self.started_at,
            "updated_at": now,
            "uptime_seconds": now - self.started_at,
            **state,
            "last_decision": self.last_decision,
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            _replace(self.path, json.dumps(document, indent=1, allow_nan=False) + "\n")
        except (OSError, ValueError) as exc:
            if not self._warned:
                self._warned = True
                log.warning("cannot write the status file %s (facegate status): %s", self.path, exc)
            return False
        self._written = True
        return True

    def close(self, state: dict[str, Any] | None = None) -> None:
        """Mark the file ``stopped`` (only if this daemon wrote it: a daemon that never
        started leaves no file); idempotent."""
        if self._written:
            self.write(state or {}, running=False)
            self._written = False


def _replace(path: Path, text: str) -> None:
    """Write ``text`` to a 0600 temporary file beside ``path`` and rename it over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def service_state(service: Any, camera_ok: bool = True) -> dict[str, Any]:
    """What a :class:`~pi_facegate.daemon.service.DoorService` is doing now, as plain data."""
    camera = service.camera
    events = service.events
    index = service.index
    latest = service.liveness.latest()
    liveness = None
    if latest is not None:
        track, result = latest
        liveness = {
            "track": track,
            "state": result.state.value,
            "reason": result.reason,
            "texture": result.texture,
            "planarity": result.planarity.verdict.value,
            "waited_seconds": result.waited,
        }
    return {
        "interval_seconds": service.config.service.status_interval_seconds,
        "fps": service.fps(),
        "frames": service.frames,
        "grants": service.grants,
        "camera": {
            "source": None if camera is None else camera.describe(),
            "state": "ok" if camera_ok else str(getattr(camera, "state", "failed")),
        },
        "people": None if index is None else len(index.names),
        "liveness": liveness,
        "enrolment": service.enrolment.describe(),
        "storage": None
        if events is None
        else {
            "event_log": str(events.path),
            "alive": events.alive,
            "written": events.written,
            "pending": events.pending,
            "dropped": events.dropped,
            "failed": events.failed,
            "backlog": events.backlog,
            "trouble": events.trouble,
        },
    }


# -------------------------------------------------------------------- the reader's side


class StatusFileError(ValueError):
    """The status file exists but cannot be read as one."""


def read_status(path: Path) -> dict[str, Any] | None:
    """The status file's content, or None when there is none (the daemon never ran here).

    A symbolic link is not followed (it is no file this daemon wrote).

    :raises StatusFileError: unreadable or not a status file.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except PermissionError as exc:
        raise StatusFileError(
            f"cannot read the status file {path}: {exc.strerror} (run it as the service user, "
            "e.g. sudo -u facegate facegate status)"
        ) from exc
    except OSError as exc:
        raise StatusFileError(f"cannot read the status file {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise StatusFileError(f"{path} is not a status file: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StatusFileError(f"{path} is not a status file of this version")
    return data


def stale_after(status: dict[str, Any]) -> float:
    """Seconds after its last update at which a status file means the daemon is gone."""
    interval = status.get("interval_seconds")
    interval = float(interval) if isinstance(interval, (int, float)) else 5.0
    return max(3 * interval, MIN_STALE_SECONDS)


def not_running_reason(status: dict[str, Any] | None, now: float | None = None) -> str | None:
    """Why the daemon is not running by this status, or None when it is running."""
    if status is None:
        return "no status file: the daemon has not run with this state dir"
    now = time.time() if now is None else now
    age = now - float(status.get("updated_at", 0))
    if status.get("state") == "stopped":
        return f"stopped {_ago(age)}"
    pid = status.get("pid")
    if isinstance(pid, int) and not _pid_exists(pid):
        return f"its process {pid} is gone (last update {_ago(age)}): it was killed or crashed"
    if age > stale_after(status):
        return f"no update for {age:.0f} s (every {status.get('interval_seconds')} s expected)"
    return None


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"
