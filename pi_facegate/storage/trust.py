"""Whether a file of the state directory may be trusted: one set of rules for every file.

The gallery decides who is let in, the arming file who is enrolled next, the event log is
the audit trail. A file another user could have written is worthless for all three, so
each is refused -- never merely warned about -- unless:

* it is a regular file, not a symbolic link (a link can point at a file someone else
  controls, and is never followed);
* it is owned by this process's user or by root;
* it is not writable by group or others; a file of biometric data (the gallery) is not
  readable by them either;
* the directory that holds it is owned by this process's user or by root and is not
  writable by group or others. Replacing a file is a write to its *directory* (a rename),
  not to the file, so a private file in a shared directory proves nothing; and it is what
  makes the check last: between the check and SQLite opening the path by name, only this
  user or root can swap the file.

A sticky ``/tmp`` is refused too: simple and strict, the state directory (``0700``, the
service user's) is the place for these files.

Each refusal is one line naming the file, the problem and the fix (``chmod 600 PATH``,
``chown USER PATH``), raised as the caller's own error class (:class:`FileKind`), so the
CLI prints it and ``facegate run`` exits non-zero before anything reads the file.
"""

from __future__ import annotations

import os
import pwd
import shlex
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pi_facegate.exc import EnrolmentError, EventLogError, FacegateError, GalleryError

_GROUP_OTHER_WRITE = stat.S_IWGRP | stat.S_IWOTH
_GROUP_OTHER_ANY = stat.S_IRWXG | stat.S_IRWXO


@dataclass(frozen=True)
class FileKind:
    """What a checked file is: its name in messages, its error class, how private it is."""

    name: str
    error: type[FacegateError]
    #: refuse a file group or others may read, not only one they may write
    private_read: bool = False
    #: what such a file holds, for that refusal's message
    holds: str = "biometric data"


GALLERY = FileKind("gallery", GalleryError, private_read=True)
GALLERY_MARKER = FileKind("gallery marker", GalleryError)  # a date and a flag: no secret
EVENT_LOG = FileKind("event log", EventLogError)  # the writer tightens a readable one itself
ARMING = FileKind("arming file", EnrolmentError)


def check_private_dir(path: Path, kind: FileKind) -> None:
    """Refuse the directory holding a ``kind`` file unless only this user (or root) can
    change what is in it.

    :raises kind.error: when it is not a directory, is owned by another user, or is
        writable by group or others.
    :raises FileNotFoundError: when it does not exist (nor, then, the file in it).
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise kind.error(f"{kind.name} directory {path}: {exc.strerror or exc}") from exc
    what = f"{kind.name} directory {path} refused"
    if not stat.S_ISDIR(st.st_mode):
        raise kind.error(f"{what}: not a directory")
    if st.st_mode & _GROUP_OTHER_WRITE:
        raise kind.error(
            f"{what}: writable by group or others (mode {_mode(st)}), so another user could "
            f"replace the {kind.name}; fix: chmod 700 {_q(path)}"
        )
    _check_owner(st, path, what, kind)


def check_private_file(path: Path, kind: FileKind, st: os.stat_result | None = None) -> None:
    """Refuse the ``kind`` file at ``path`` (and its directory) unless only this user (or
    root) can have written it.

    ``st`` is the file's status when the caller holds it open (``os.fstat`` of a descriptor
    opened with ``O_NOFOLLOW``); without it the path is ``lstat``-ed, so a symbolic link is
    seen as one and refused.

    :raises kind.error: on any of the module's rules, naming the file and the fix.
    :raises FileNotFoundError: when the file (or its directory) does not exist.
    """
    path = Path(path)
    check_private_dir(path.parent, kind)
    if st is None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise kind.error(f"{kind.name} {path}: {exc.strerror or exc}") from exc
    _check_file_status(path, kind, st)


def open_private(path: Path, kind: FileKind, flags: int = os.O_RDONLY, mode: int = 0o600) -> int:
    """A descriptor of ``path`` opened without following a symbolic link, checked by
    :func:`check_private_file` on the file actually opened (no window for a swap).

    ``flags`` may add ``O_CREAT``/``O_RDWR``; a new file gets ``mode`` (0600). The caller
    closes the descriptor. A missing file raises ``FileNotFoundError`` as ``os.open`` does.
    """
    path = Path(path)
    check_private_dir(path.parent, kind)
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, mode)
    except OSError as exc:
        if os.path.islink(path):  # O_NOFOLLOW's ELOOP: say what it is
            raise kind.error(f"{kind.name} {path} refused: {_link_problem(path)}") from None
        if isinstance(exc, FileNotFoundError):
            raise
        raise kind.error(f"{kind.name} {path}: cannot open it: {exc.strerror or exc}") from exc
    try:
        _check_file_status(path, kind, os.fstat(fd))
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_private_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically with mode 0600: readers see the old file or
    the new, even after a power cut.

    The temporary file is created in the same directory (``mkstemp`` makes it 0600),
    flushed to disk, then renamed over the old one; the directory is synced so the rename
    survives.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    sync_dir(path.parent)


def sync_dir(directory: Path) -> None:
    """fsync a directory so that a rename or unlink in it survives a power cut (best effort)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _check_file_status(path: Path, kind: FileKind, st: os.stat_result) -> None:
    what = f"{kind.name} {path} refused"
    if stat.S_ISLNK(st.st_mode):
        raise kind.error(f"{what}: {_link_problem(path)}")
    if not stat.S_ISREG(st.st_mode):
        raise kind.error(f"{what}: not a regular file")
    if st.st_mode & _GROUP_OTHER_WRITE:
        raise kind.error(
            f"{what}: writable by group or others (mode {_mode(st)}); fix: chmod 600 {_q(path)}"
        )
    if kind.private_read and st.st_mode & _GROUP_OTHER_ANY:
        raise kind.error(
            f"{what}: readable by group or others (mode {_mode(st)}), but it holds "
            f"{kind.holds}; fix: chmod 600 {_q(path)}"
        )
    _check_owner(st, path, what, kind)


def _check_owner(st: os.stat_result, path: Path, what: str, kind: FileKind) -> None:
    """Refuse another user's file; the advice covers the three ways it got there."""
    me = os.geteuid()
    if st.st_uid in (me, 0):
        return
    user, owner = _user_name(me), _user_name(st.st_uid)
    allowed = "root" if me == 0 else f"{user} (this process's user) or root"
    sudo = "" if me == 0 else "sudo "
    raise kind.error(
        f"{what}: owned by {_user_label(st.st_uid)}, not by {allowed}. If it is the service "
        f"user's, run facegate as that user (sudo -u {shlex.quote(owner)} facegate ...); if "
        f"it is yours, fix: {sudo}chown {shlex.quote(user)} {_q(path)}; else someone else may "
        f"have put it there: restore the {kind.name} from a backup"
    )


def _link_problem(path: Path) -> str:
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    return (
        f"a symbolic link (to {target}); links are not followed: put the file itself at {_q(path)}"
    )


def _mode(st: os.stat_result) -> str:
    return f"{stat.S_IMODE(st.st_mode):o}"


def _q(path: Path) -> str:
    return shlex.quote(str(path))


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _user_label(uid: int) -> str:
    name = _user_name(uid)
    return f"uid {uid}" if name == str(uid) else f"uid {uid} ({name})"
