"""The gallery's file on disk: created private, checked before SQLite opens it, and
SQLite's errors turned into one-line :class:`~pi_facegate.exc.GalleryError` messages.

Kept apart from :mod:`pi_facegate.storage.gallery` (people and embeddings) because these
rules are about the file, not its content: a file that is not a gallery is refused before
SQLite can touch (or "repair") it, so is a file someone else could have written or read
(:mod:`pi_facegate.storage.trust`), and so is a missing gallery that its marker
(:mod:`pi_facegate.storage.gallery_marker`) says existed; nothing here ever modifies an
existing file.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import urllib.parse
from pathlib import Path

from pi_facegate.exc import GalleryError
from pi_facegate.storage.gallery_marker import lost_gallery_message, read_marker
from pi_facegate.storage.trust import GALLERY, check_private_dir, check_private_file

log = logging.getLogger("pi_facegate.gallery")  # journal name: stable across moves

#: the first 16 bytes of every SQLite 3 database file
SQLITE_MAGIC = b"SQLite format 3\x00"


def check_gallery_file(path: Path, create: bool, recreate: bool = False) -> os.stat_result | None:
    """Every check :func:`prepare_file` makes, with nothing created or changed: the file's
    ``lstat``, or None when it is missing and may be created.

    Refused (:class:`GalleryError`): a file that is not a gallery, one that could have been
    planted (the rules of :mod:`pi_facegate.storage.trust`; readable by others too, as it
    holds biometric data), and -- unless ``recreate`` -- a gallery that is missing or an
    empty file while its marker says it existed. The daemon calls this before it loads any
    model, so a refused gallery stops it at once.
    """
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        _check_missing(path, create, recreate)
        return None
    except OSError as exc:
        raise GalleryError(f"cannot open gallery {path}: {exc.strerror or exc}") from exc
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)):
        raise GalleryError(f"{path} is not a pi-facegate gallery (not a regular file)")
    if stat.S_ISREG(info.st_mode) and info.st_size:
        check_header(path)
    check_private_file(path, GALLERY, info)
    if info.st_size == 0 and not recreate:
        marker = read_marker(path)
        if marker is not None:
            raise GalleryError(lost_gallery_message(path, marker, "is now an empty file"))
    return info


def file_key(path: Path) -> tuple[int, ...] | None:
    """The file's identity, owner, mode, size and times (``lstat``), None when it is gone:
    what changes when someone writes, replaces, chmods or chowns it behind SQLite's back."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_mode, st.st_uid, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def verify_file(path: Path) -> None:
    """Judge the gallery at ``path`` again as it is on disk now: every check of
    :func:`check_gallery_file`, then SQLite's ``quick_check`` through a connection of its own.

    For a file that changed under an open connection (:func:`file_key`): that connection's
    page cache would go on serving the old pages, so garbage written over the file, or a mode
    another user could exploit, would go unnoticed until the next start.

    :raises GalleryError: naming the file and what is wrong with it.
    """
    check_gallery_file(path, create=False)
    try:
        read_only = "file:" + urllib.parse.quote(str(path.absolute())) + "?mode=ro"
        conn = sqlite3.connect(read_only, uri=True)
        try:
            problems = [str(row[0]) for row in conn.execute("PRAGMA quick_check")]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise gallery_error(exc, "cannot read gallery", path, 0.0) from exc
    if problems != ["ok"]:
        raise GalleryError(f"gallery {path} is corrupt ({problems[0]}): restore it from a backup")


def prepare_file(
    path: Path, create: bool, may_create: bool, recreate: bool = False
) -> tuple[bool, bool]:
    """Check the file at ``path`` or create it (mode 0600): (created now, empty)."""
    info = check_gallery_file(path, create, recreate)
    if info is None:
        if not may_create:
            raise GalleryError(f"no gallery at {path} (a new one needs the embedder's fingerprint)")
        made = create_private_file(path)
        return made, made or is_empty(path)
    return False, info.st_size == 0


def _check_missing(path: Path, create: bool, recreate: bool) -> None:
    """A missing gallery may be created only where no marker says one existed."""
    if path.parent.is_dir():
        check_private_dir(path.parent, GALLERY)
        marker = read_marker(path)
        if marker is not None and not recreate:
            raise GalleryError(lost_gallery_message(path, marker, "is gone"))
    if not create:
        raise GalleryError(f"no gallery at {path}")


def is_empty(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except OSError as exc:
        raise GalleryError(f"cannot open gallery {path}: {exc.strerror or exc}") from exc


def create_private_file(path: Path) -> bool:
    """Create an empty file readable by its owner only, before SQLite ever opens it.

    Its directory is created (0700) if missing, and refused if another user could change
    what is in it.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except FileExistsError:
        raise GalleryError(f"cannot create gallery {path}: a part of its path is a file") from None
    except OSError as exc:
        raise GalleryError(f"cannot create gallery {path}: {exc.strerror or exc}") from exc
    check_private_dir(path.parent, GALLERY)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        if path.is_file():  # another process created it a moment ago
            return False
        raise GalleryError(f"cannot create gallery {path}: a part of its path is a file") from None
    except OSError as exc:
        raise GalleryError(f"cannot create gallery {path}: {exc.strerror or exc}") from exc
    os.close(fd)
    return True


def check_header(path: Path) -> None:
    """Refuse a file that is not an SQLite database before SQLite touches it."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise GalleryError(f"cannot read gallery {path}: {exc.strerror or exc}") from exc
    if head != SQLITE_MAGIC:
        raise GalleryError(f"{path} is not a pi-facegate gallery (not an SQLite database)")


def restrict_sidecars(path: Path) -> None:
    """Make SQLite's ``-wal``/``-shm`` files owner-only, like the database itself."""
    for suffix in ("-wal", "-shm"):
        sidecar = path.with_name(path.name + suffix)
        try:
            info = sidecar.stat()
            if info.st_mode & 0o077 and info.st_uid == os.geteuid():
                os.chmod(sidecar, stat.S_IMODE(info.st_mode) & 0o700)
        except OSError:
            continue  # absent or not ours: SQLite already gives it the database's mode


def rw_uri(path: Path) -> str:
    """An SQLite URI that opens ``path`` read-write but never creates it."""
    return "file:" + urllib.parse.quote(str(path.absolute())) + "?mode=rw"


def table_names(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def read_meta(conn: sqlite3.Connection, path: str | Path) -> dict[str, str]:
    try:
        return {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta")}
    except sqlite3.OperationalError as exc:
        raise GalleryError(f"{path} is not a pi-facegate gallery ({exc})") from exc


def meta_int(meta: dict[str, str], key: str, path: str | Path) -> int:
    try:
        return int(meta[key])
    except (KeyError, ValueError):
        raise GalleryError(f"gallery {path} is corrupt: its meta table lacks {key}") from None


def rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error as exc:  # the transaction is gone either way
            log.debug("rollback failed: %s", exc)


def gallery_error(
    exc: sqlite3.Error, action: str, path: str | Path, timeout: float
) -> GalleryError:
    """A one-line :class:`GalleryError` for an SQLite error, naming the file and the cause."""
    code = getattr(exc, "sqlite_errorname", "") or ""
    if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return GalleryError(
            f"{action} {path}: another process kept it locked for more than {timeout:g} s"
        )
    if code.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return GalleryError(f"{action} {path}: the file is corrupt ({exc})")
    if code.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")):
        return GalleryError(f"{action} {path}: no permission or read-only ({exc})")
    return GalleryError(f"{action} {path}: {exc}")
