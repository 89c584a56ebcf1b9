"""The administrator's arming file: who the next press of the enrolment button enrols.

Anyone can press a button at the door, so a press alone never gives access.
An administrator arms enrolment for a name and a time (``facegate enroll arm``): a small
JSON file, ``enrolment-armed.json`` next to the gallery it enrols into (the service's state
directory, unless ``storage.gallery`` moves the gallery), written atomically (temporary
file, fsync, rename) with mode 0600. The daemon polls it with one ``stat`` per
frame (:class:`ArmingWatcher`) and re-reads it only when it changed. The state directory
belongs to the service user (mode 0700), so arming needs that user's rights
(``sudo -u facegate facegate enroll arm ...``), exactly like editing the gallery; a file
that could have been planted is refused by the rules every state file shares
(:mod:`pi_facegate.storage.trust`: a symbolic link, writable by group or others, owned by
another user, or in a directory others may write). The daemon, not the file, decides
expiry: never later than ``armed_at + max_armed_minutes``.

The capture itself is pure and lives in :mod:`pi_facegate.core.capture`; this module is
the file I/O around it (stat, atomic writes, trust checks), shared by the daemon and the CLI.
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from pi_facegate.exc import EnrolmentError
from pi_facegate.storage.trust import ARMING, open_private, sync_dir, write_private_text

log = logging.getLogger("pi_facegate.enrolment")  # journal name: stable across moves

ARMING_FILE_NAME = "enrolment-armed.json"
#: How long ``facegate enroll arm`` arms without ``--timeout``, seconds.
DEFAULT_ARMING_SECONDS = 300.0
#: An arming dated this far in the future (seconds) is refused: a clock jump or a forgery.
_CLOCK_SKEW_SECONDS = 60.0


@dataclass(frozen=True)
class Arming:
    """An administrator's permission for the next button press to enrol ``name``.

    Times are epoch seconds (``time.time()``): the CLI and the daemon are different
    processes, possibly different users. ``token`` tells one arming from the next with the
    same name, so the daemon consumes exactly the arming it used.
    """

    name: str
    update: bool
    armed_at: float
    expires_at: float
    token: str
    armed_by: str = ""

    def expiry(self, max_seconds: float | None = None) -> float:
        """When this arming ends, capped at ``armed_at + max_seconds`` (the daemon's limit)."""
        end = self.expires_at
        if max_seconds is not None:
            end = min(end, self.armed_at + max_seconds)
        return end

    def is_active(self, now: float, max_seconds: float | None = None) -> bool:
        """True from ``armed_at`` until :meth:`expiry`; an arming from the future is not."""
        return self.armed_at - _CLOCK_SKEW_SECONDS <= now < self.expiry(max_seconds)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "arming file") -> Arming:
        """Parse and validate; anything odd is an :class:`EnrolmentError` naming the problem."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise EnrolmentError(f"{source}: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise EnrolmentError(f"{source}: expected a JSON object")
        problems = []
        for key, kind in (("name", str), ("update", bool), ("token", str)):
            if not isinstance(data.get(key), kind):
                problems.append(f"{key} must be a {kind.__name__}")
        for key in ("armed_at", "expires_at"):
            value = data.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                problems.append(f"{key} must be a number")
            elif not math.isfinite(value):
                problems.append(f"{key} must be finite")
        if problems:
            raise EnrolmentError(f"{source}: " + "; ".join(problems))
        if not data["name"].strip():
            raise EnrolmentError(f"{source}: name is empty")
        return cls(
            name=data["name"],
            update=data["update"],
            armed_at=float(data["armed_at"]),
            expires_at=float(data["expires_at"]),
            token=data["token"],
            armed_by=str(data.get("armed_by", "")),
        )


def arming_path(directory: Path) -> Path:
    """The arming file in ``directory`` (the gallery's: the CLI and the daemon agree on it)."""
    return Path(directory) / ARMING_FILE_NAME


def new_arming(
    name: str, seconds: float, update: bool = False, now: float | None = None, armed_by: str = ""
) -> Arming:
    """An arming of ``name`` for ``seconds`` from ``now`` (epoch), with a fresh token."""
    if not (math.isfinite(seconds) and seconds > 0):
        raise EnrolmentError(f"an arming must last a positive time, not {seconds!r} s")
    start = time.time() if now is None else float(now)
    return Arming(name, bool(update), start, start + seconds, secrets.token_hex(8), armed_by)


def write_arming(path: Path, arming: Arming) -> None:
    """Write ``arming`` atomically with mode 0600: the daemon sees the old file or the new."""
    write_private_text(Path(path), arming.to_json())


def read_arming(path: Path) -> Arming | None:
    """The arming in ``path``, or None if there is none.

    :raises EnrolmentError: when the file cannot be read, is not an arming, or could have
        been planted (the rules of :mod:`pi_facegate.storage.trust`: a symbolic link, owned
        by another user than this process's or root, writable by group or others, or in a
        directory they may write).
    """
    path = Path(path)
    try:
        with os.fdopen(open_private(path, ARMING), encoding="utf-8") as handle:
            text = handle.read(64 * 1024)
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise EnrolmentError(f"{path}: cannot read the arming file: {exc}") from None
    return Arming.from_json(text, str(path))


def clear_arming(path: Path, token: str | None = None) -> Arming | None:
    """Remove the arming file; returns the arming removed (None if there was none).

    With ``token``, only that arming is removed: an administrator who re-armed in between
    keeps the new one (the daemon consumes exactly the arming it used).
    """
    try:
        arming = read_arming(path)
    except EnrolmentError:
        arming = None  # an invalid file is removed all the same (unless a token was asked)
        if token is not None:
            return None
    if token is not None and (arming is None or arming.token != token):
        return None
    try:
        Path(path).unlink()
    except FileNotFoundError:
        return None
    sync_dir(Path(path).parent)
    return arming


class ArmingWatcher:
    """The daemon's view of the arming file: one ``stat`` per poll, a read only on change.

    :meth:`poll` returns the active arming or None. An invalid file is logged once (per
    change of the file) and treated as "not armed": an error never arms anything.
    """

    def __init__(self, path: Path, max_seconds: float) -> None:
        self.path = Path(path)
        self.max_seconds = float(max_seconds)
        self._key: tuple[int, ...] | None = None
        self._arming: Arming | None = None
        self.error: str | None = None  # why the current file was refused, if it was

    def poll(self, now: float | None = None) -> Arming | None:
        """The arming in force at ``now`` (epoch seconds; default: the current time)."""
        now = time.time() if now is None else now
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._key, self._arming, self.error = None, None, None
            return None
        except OSError as exc:
            self._refuse(None, f"{self.path}: cannot stat the arming file: {exc}")
            return None
        key = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)
        if key != self._key:
            self._key = key
            try:
                self._arming, self.error = read_arming(self.path), None
            except EnrolmentError as exc:
                self._refuse(key, str(exc))
        arming = self._arming
        if arming is None or not arming.is_active(now, self.max_seconds):
            return None
        return arming

    def current(self) -> Arming | None:
        """The last arming read, active or not (to tell an expiry from a cancel)."""
        return self._arming

    def _refuse(self, key: tuple[int, ...] | None, error: str) -> None:
        if error != self.error:
            log.warning("enrolment is not armed: %s", error)
        self._key, self._arming, self.error = key, None, error
