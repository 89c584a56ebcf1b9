"""The gallery: the appliance's local embedding file (one SQLite database).

It holds people and their face embeddings -- never photos. The CLI writes it while the
daemon reads it, possibly at the same moment, so:

* **WAL mode**: readers never block the writer and see a consistent snapshot.
* **``synchronous=FULL``**: every commit is fsynced before it returns. Writes are rare
  (enrolment, administration), so the cost does not matter, and with ``NORMAL`` a power
  cut -- common on a Pi -- could undo the last commits: a person an administrator saw
  removed or disabled would get back in.
* **One transaction per change** (``BEGIN IMMEDIATE``): a ``kill -9`` or power cut mid-write
  never leaves half a person; a person is never stored without an embedding.
* **``busy_timeout``** (5 s by default): a writer waits for another writer instead of failing.
* **Private files**: the database is created with mode 0600 before SQLite opens it; SQLite
  gives its ``-wal``/``-shm`` files the database's mode, and the gallery tightens them too.
* **Trusted files only**: a gallery that is a symbolic link, owned by another user,
  readable or writable by group or others, or in a directory others may write is refused
  (:mod:`pi_facegate.storage.trust`), before SQLite opens it.
* **A marker beside it** (:mod:`pi_facegate.storage.gallery_marker`) remembers that the
  gallery existed and whether it had people: a vanished gallery is refused, not re-created.
* **Change detection**: :meth:`Gallery.index` returns a cached, immutable
  :class:`~pi_facegate.core.matcher.GalleryIndex` and rebuilds it only when ``PRAGMA
  data_version`` (commits by other connections, any process) or this object's own commit
  counter moved, so the running daemon sees an enrolment or removal at its next call.

The gallery records the embedder fingerprint that made its vectors and refuses to open
with another one: embeddings of two models cannot be compared. A file that is not a
gallery, a newer schema or a corrupt file is a :class:`~pi_facegate.exc.GalleryError`, and
nothing is modified; an older schema is migrated when it is opened
(:mod:`pi_facegate.storage.gallery_schema`). Each person also carries access rules
(schedule, validity dates; :mod:`pi_facegate.storage.access_rules`), read into the index.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np

from pi_facegate.core.matcher import GalleryIndex
from pi_facegate.exc import (
    DuplicatePersonError,
    GalleryError,
    GalleryMismatchError,
    PersonNotFoundError,
)
from pi_facegate.storage import access_rules
from pi_facegate.storage.access_rules import KEEP
from pi_facegate.storage.gallery_file import (
    file_key,
    gallery_error,
    meta_int,
    prepare_file,
    read_meta,
    restrict_sidecars,
    rollback,
    rw_uri,
    table_names,
    verify_file,
)
from pi_facegate.storage.gallery_marker import GalleryMarker, reconcile_marker, save_marker
from pi_facegate.storage.gallery_schema import SCHEMA_VERSION, create_schema, migrate
from pi_facegate.storage.gallery_vectors import check_vectors, decode, insert_vectors, sources_for
from pi_facegate.storage.names import normalise_name

log = logging.getLogger("pi_facegate.gallery")  # journal name: stable across moves

#: Length of an embedding when creating a gallery without saying (the dlib ResNet's).
DEFAULT_EMBEDDING_SIZE = 128
#: Seconds a write waits for another process's write to finish.
DEFAULT_TIMEOUT = 5.0
MEMORY = ":memory:"


_PERSON_SQL = """
SELECT p.id, p.name, p.enabled, p.pending, p.created, p.note,
       (SELECT COUNT(*) FROM embeddings e WHERE e.person_id = p.id),
       p.schedule, p.valid_from, p.valid_until
FROM people p
"""


@dataclass(frozen=True)
class Person:
    """One enrolled person as stored (``created`` is an ISO 8601 UTC timestamp).

    ``schedule`` names a schedule of the config (``None``: any time); ``valid_from`` and
    ``valid_until`` are ISO dates, inclusive (``None``: no limit).
    """

    id: int
    name: str
    enabled: bool
    pending: bool
    created: str
    note: str
    embedding_count: int
    schedule: str | None = None
    valid_from: str | None = None
    valid_until: str | None = None

    @property
    def active(self) -> bool:
        """True when this person may be granted access (enabled and approved)."""
        return self.enabled and not self.pending


class Gallery:
    """People and their embeddings in one SQLite file (or ``":memory:"``).

    ``fingerprint`` names the embedder (see ``components.embedder_fingerprint``); an
    existing gallery made by another one is a :class:`GalleryMismatchError`. With
    ``fingerprint=None`` an existing gallery opens for administration whatever made it
    (list, rename, remove, ...) but refuses new embeddings. ``embedding_size`` is the
    embedder's vector length: used when creating (default 128), checked when opening if
    given (the fingerprint implies it anyway). ``create=False``
    makes a missing file an error instead of a new gallery. A gallery that is missing (or an
    empty file) where its marker says one existed is an error even with ``create``, unless
    ``recreate`` (``facegate gallery init --force``): a lost gallery is never quietly
    replaced by an empty one. Thread-safe; ``close()`` is idempotent and the object is a
    context manager.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fingerprint: str | None,
        embedding_size: int | None = None,
        *,
        create: bool = True,
        recreate: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._conn: sqlite3.Connection | None = None  # close() relies on it: set first
        self._lock = threading.RLock()
        self._index: GalleryIndex | None = None
        self._index_key: tuple[int, int] | None = None
        self._own_commits = 0
        self._file_key: tuple[int, ...] | None = None  # the file as last judged (file_key)
        self.timeout = float(timeout)
        self.path: str | Path = MEMORY if str(path) == MEMORY else Path(path)
        self.fingerprint = fingerprint
        self._given_fingerprint = fingerprint  # None: administration only, no new embeddings
        self._given_size = embedding_size  # None: whatever the gallery records
        self.embedding_size = (
            DEFAULT_EMBEDDING_SIZE if embedding_size is None else int(embedding_size)
        )
        self.created = ""
        self.schema_version = SCHEMA_VERSION
        self.marker: GalleryMarker | None = None  # this gallery's, as found at open
        self._marker: GalleryMarker | None = None  # as it is now (None: no file, no marker)
        if self.path == MEMORY:
            self._conn = self._connect(MEMORY)
            self._setup(is_new=True)
            return
        made_file, empty = prepare_file(
            self.path, create, may_create=fingerprint is not None, recreate=recreate
        )
        is_new = made_file or (create and empty)
        try:
            self._conn = self._connect(rw_uri(self.path))
            self._setup(is_new=is_new)
            self.marker, self._marker = reconcile_marker(
                self.path, self.created, self._holds_people(), new=is_new
            )
        except BaseException:
            self.close()
            if made_file:
                self.path.unlink(missing_ok=True)
            raise
        restrict_sidecars(self.path)
        self._file_key = file_key(self.path)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        fingerprint: str | None,
        embedding_size: int | None = None,
        *,
        create: bool = True,
        recreate: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Gallery:
        """Open (or create) the gallery at ``path``; same arguments as the constructor."""
        return cls(
            path, fingerprint, embedding_size, create=create, recreate=recreate, timeout=timeout
        )

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the database; safe to call twice."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                try:
                    conn.close()
                except sqlite3.Error as exc:  # pragma: no cover - nothing left to do
                    log.warning("closing gallery %s: %s", self.path, exc)

    @property
    def closed(self) -> bool:
        return self._conn is None

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Gallery {str(self.path)!r} {state} fingerprint={self.fingerprint!r}>"

    # ------------------------------------------------------------------ people

    def add_person(
        self,
        name: str,
        embeddings: np.ndarray,
        *,
        enabled: bool = True,
        pending: bool = False,
        note: str = "",
        source: str | Sequence[str | None] | None = None,
    ) -> Person:
        """Store a new person with at least one embedding, in one transaction.

        ``embeddings`` is ``(n, D)`` or one ``(D,)`` vector; ``source`` says where they came
        from (``"camera"``, a file name, or one entry per embedding). A name already taken
        (case-insensitively) is a :class:`DuplicatePersonError`.
        """
        name = normalise_name(name)
        vectors = self._check_vectors(embeddings)
        sources = sources_for(source, len(vectors))
        with self._write() as conn:
            self._refuse_taken(conn, name)
            cursor = conn.execute(
                "INSERT INTO people (name, enabled, pending, created, note) VALUES (?, ?, ?, ?, ?)",
                (name, int(bool(enabled)), int(bool(pending)), _now(), str(note)),
            )
            person_id = int(cursor.lastrowid)
            insert_vectors(conn, person_id, vectors, sources, _now())
            person = self._person_by_id(conn, person_id)
        self._note_enrolment()
        return person

    def add_embeddings(
        self,
        who: str | int,
        embeddings: np.ndarray,
        *,
        source: str | Sequence[str | None] | None = None,
    ) -> Person:
        """Add embeddings to an existing person (name or id); returns the updated person."""
        vectors = self._check_vectors(embeddings)
        sources = sources_for(source, len(vectors))
        with self._write() as conn:
            person = self._lookup(conn, who)
            insert_vectors(conn, person.id, vectors, sources, _now())
            return self._person_by_id(conn, person.id)

    def get(self, who: str | int) -> Person:
        """The person of that name (case-insensitive) or id; else :class:`PersonNotFoundError`."""
        with self._read() as conn:
            return self._lookup(conn, who)

    def people(self) -> list[Person]:
        """Everyone, sorted by name, with their embedding counts."""
        with self._read() as conn:
            rows = conn.execute(_PERSON_SQL + " ORDER BY p.name COLLATE NOCASE, p.id").fetchall()
        return [_person(row) for row in rows]

    def vectors(self, who: str | int) -> np.ndarray:
        """The ``(n, D)`` float32 embeddings stored for a person, oldest first."""
        with self._read() as conn:
            person = self._lookup(conn, who)
            rows = conn.execute(
                "SELECT vector FROM embeddings WHERE person_id = ? ORDER BY id", (person.id,)
            ).fetchall()
        return decode([row[0] for row in rows], self.embedding_size, self.path)

    def rename(self, who: str | int, new_name: str) -> Person:
        """Give a person another name (a change of case only is allowed)."""
        new_name = normalise_name(new_name)
        with self._write() as conn:
            person = self._lookup(conn, who)
            self._refuse_taken(conn, new_name, except_id=person.id)
            conn.execute("UPDATE people SET name = ? WHERE id = ?", (new_name, person.id))
            return self._person_by_id(conn, person.id)

    def set_enabled(self, who: str | int, enabled: bool) -> Person:
        """Enable or disable a person; a disabled person is matched but never let in."""
        return self._set_flag(who, "enabled", enabled)

    def approve(self, who: str | int) -> Person:
        """Clear a person's pending flag: their enrolment at the door becomes access."""
        return self._set_flag(who, "pending", False)

    def set_access(
        self,
        who: str | int,
        *,
        schedule: str | None = KEEP,
        valid_from: date | None = KEEP,
        valid_until: date | None = KEEP,
        note: str = KEEP,
    ) -> Person:
        """Change a person's access rules and note; what is not given stays as it is.

        ``None`` clears a schedule or a date. The schedule name is not checked against a
        config here (the gallery knows none): ``facegate people set`` does that.
        """
        with self._write() as conn:
            person = self._lookup(conn, who)
            current = {"valid_from": person.valid_from, "valid_until": person.valid_until}
            found = access_rules.changes(current, schedule, valid_from, valid_until, note)
            for column, value in found.items():
                assert column in (*access_rules.COLUMNS, "note")  # never a caller's text
                conn.execute(f"UPDATE people SET {column} = ? WHERE id = ?", (value, person.id))
            return self._person_by_id(conn, person.id)

    def remove(self, who: str | int) -> Person:
        """Delete a person and all their embeddings; returns what was removed."""
        with self._write() as conn:
            person = self._lookup(conn, who)
            conn.execute("DELETE FROM people WHERE id = ?", (person.id,))
            return person

    @contextmanager
    def transaction(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """The connection inside ONE transaction, for work on many people at once: a read
        sees one snapshot (an export), a write (an import) commits all or nothing and, like
        every write, bumps the generation the daemon polls."""
        if not write:
            with self._read() as conn:
                conn.execute("BEGIN")
                try:
                    yield conn
                finally:
                    rollback(conn)
            return
        with self._write() as conn:
            yield conn
        if self._holds_people():
            self._note_enrolment()

    def emptied(self) -> bool:
        """True when this gallery's marker says people were enrolled in it, and it holds
        nobody now: everyone removed, or the tables emptied behind the CLI's back."""
        m = self.marker
        return bool(m and m.had_people and not self._holds_people())

    # ------------------------------------------------------------------ matching

    def index(self) -> GalleryIndex:
        """The matcher's snapshot of the gallery, rebuilt only if the gallery changed."""
        with self._lock:
            self.refresh_if_changed()
            assert self._index is not None
            return self._index

    def refresh_if_changed(self) -> bool:
        """Rebuild the cached index if anyone committed a change since; True if rebuilt.

        ``PRAGMA data_version`` changes when another connection (any process) commits,
        and this object counts its own commits, so the check costs one tiny query. A file
        changed behind SQLite's back (its ``lstat`` moved) is judged again first, as at
        open (:func:`~pi_facegate.storage.gallery_file.verify_file`): a
        :class:`GalleryError` if it is no longer a trusted, sound gallery.
        """
        with self._read() as conn:
            if self.path != MEMORY and file_key(self.path) != self._file_key:
                verify_file(self.path)
                self._file_key = file_key(self.path)
            key = (int(conn.execute("PRAGMA data_version").fetchone()[0]), self._own_commits)
            if self._index is not None and key == self._index_key:
                return False
            self._index = self._load_index(conn)
            self._index_key = key
            return True

    # ------------------------------------------------------------------ internals

    def _holds_people(self) -> bool:
        with self._read() as conn:
            return conn.execute("SELECT EXISTS (SELECT 1 FROM people)").fetchone()[0] == 1

    def _note_enrolment(self) -> None:
        """Record in the marker that somebody was enrolled (once: it only ever turns on)."""
        if self._marker is not None and not self._marker.had_people:
            self._marker = GalleryMarker(self._marker.created, had_people=True)
            save_marker(self.path, self._marker)

    def _connect(self, target: str) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                target,
                timeout=self.timeout,
                isolation_level=None,  # autocommit; transactions are explicit
                check_same_thread=False,  # guarded by self._lock instead
                uri=target.startswith("file:"),
            )
        except sqlite3.Error as exc:
            raise GalleryError(f"cannot open gallery {self.path}: {exc}") from exc
        return conn

    def _setup(self, is_new: bool) -> None:
        """Check (or create) the schema, then set the connection's pragmas."""
        assert self._conn is not None
        with self._sql_errors("cannot open gallery"):
            self._conn.execute("PRAGMA trusted_schema = OFF")
            tables = table_names(self._conn)
            if not tables and is_new:
                self._create_schema()
            elif "meta" not in tables:
                raise GalleryError(
                    f"{self.path} is not a pi-facegate gallery (an SQLite database without "
                    "its meta table)"
                )
            self._check_meta(read_meta(self._conn, self.path))
            # only now, after the checks: switching to WAL rewrites a foreign file's header
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = FULL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            if self.schema_version < SCHEMA_VERSION:
                self.schema_version = migrate(self._conn, self.path)

    def _create_schema(self) -> None:
        assert self._conn is not None
        if self.fingerprint is None:
            raise GalleryError(f"cannot create gallery {self.path} without an embedder fingerprint")
        meta = {"fingerprint": self.fingerprint, "embedding_size": self.embedding_size}
        create_schema(self._conn, {**meta, "created": _now(), "generation": 0})

    def _check_meta(self, meta: dict[str, str]) -> None:
        """Refuse newer schemas and other embedders; adopt the recorded values."""
        version = meta_int(meta, "schema_version", self.path)
        if version > SCHEMA_VERSION:
            raise GalleryError(
                f"gallery {self.path} was made by a newer pi-facegate (schema {version}; this "
                f"version reads up to {SCHEMA_VERSION}): upgrade pi-facegate"
            )
        stored_fp = meta.get("fingerprint")
        stored_size = meta_int(meta, "embedding_size", self.path)
        if not stored_fp:
            raise GalleryError(f"gallery {self.path} is corrupt: it records no embedder")
        if self.fingerprint is not None and stored_fp != self.fingerprint:
            raise GalleryMismatchError(
                f"gallery {self.path} was made by embedder {stored_fp!r}, not by the current "
                f"embedder {self.fingerprint!r}: their embeddings cannot be compared. "
                "Re-enrol everyone into a new gallery (move this file aside or choose another "
                "gallery path), or go back to the embedder that made it"
            )
        if self._given_size is not None and stored_size != self._given_size:
            raise GalleryMismatchError(
                f"gallery {self.path} holds {stored_size}-value embeddings but the embedder "
                f"makes {self._given_size}-value ones: re-enrol into a new gallery"
            )
        self.schema_version = version
        self.fingerprint = stored_fp
        self.embedding_size = stored_size
        self.created = meta.get("created", "")

    def _require_conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise GalleryError(f"gallery {self.path} is closed")
        return self._conn

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._sql_errors("cannot read gallery"):
            yield self._require_conn()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction that also bumps the gallery's generation."""
        with self._lock, self._sql_errors("cannot write gallery"):
            conn = self._require_conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute(
                    "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'"
                )
                conn.execute("COMMIT")
            except BaseException:
                rollback(conn)
                raise
            finally:
                self._own_commits += 1  # even a failed COMMIT may have changed the file

    @contextmanager
    def _sql_errors(self, action: str) -> Iterator[None]:
        """Turn SQLite's exceptions into a one-line :class:`GalleryError`."""
        try:
            yield
        except sqlite3.Error as exc:
            raise gallery_error(exc, action, self.path, self.timeout) from exc

    def _check_vectors(self, embeddings: np.ndarray) -> np.ndarray:
        if self._given_fingerprint is None:
            raise GalleryError(
                f"gallery {self.path} was opened without an embedder fingerprint: "
                "it cannot take new embeddings"
            )
        return check_vectors(embeddings, self.embedding_size, self.path)

    def _set_flag(self, who: str | int, column: str, value: bool) -> Person:
        assert column in ("enabled", "pending")
        with self._write() as conn:
            person = self._lookup(conn, who)
            conn.execute(f"UPDATE people SET {column} = ? WHERE id = ?", (int(value), person.id))
            return self._person_by_id(conn, person.id)

    def _lookup(self, conn: sqlite3.Connection, who: str | int) -> Person:
        """The person named ``who`` (str) or with id ``who`` (int)."""
        if isinstance(who, bool) or not isinstance(who, (str, int, np.integer)):
            raise TypeError(f"a person is named by a str or an int id, not {who!r}")
        if isinstance(who, str):
            key = unicodedata.normalize("NFC", who).strip()
            row = conn.execute(_PERSON_SQL + " WHERE p.name = ?", (key,)).fetchone()
        else:
            row = conn.execute(_PERSON_SQL + " WHERE p.id = ?", (int(who),)).fetchone()
        if row is None:
            what = f"named {who!r}" if isinstance(who, str) else f"with id {int(who)}"
            raise PersonNotFoundError(f"no person {what} in gallery {self.path}")
        return _person(row)

    def _person_by_id(self, conn: sqlite3.Connection, person_id: int) -> Person:
        return self._lookup(conn, int(person_id))

    def _refuse_taken(self, conn: sqlite3.Connection, name: str, except_id: int = -1) -> None:
        row = conn.execute(
            "SELECT name FROM people WHERE name = ? AND id != ?", (name, except_id)
        ).fetchone()
        if row is not None:
            raise DuplicatePersonError(
                f"a person named {row[0]!r} is already in gallery {self.path}"
            )

    def _load_index(self, conn: sqlite3.Connection) -> GalleryIndex:
        """Read everything needed for matching in one read transaction (one snapshot)."""
        conn.execute("BEGIN")
        try:
            generation = meta_int(read_meta(conn, self.path), "generation", self.path)
            people = conn.execute("SELECT id, name, enabled, pending FROM people").fetchall()
            restricted = conn.execute(
                "SELECT id, name, schedule, valid_from, valid_until FROM people WHERE "
                "schedule IS NOT NULL OR valid_from IS NOT NULL OR valid_until IS NOT NULL"
            ).fetchall()
            rows = conn.execute(
                "SELECT person_id, vector FROM embeddings ORDER BY person_id, id"
            ).fetchall()
        finally:
            rollback(conn)
        owners = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vectors = decode([r[1] for r in rows], self.embedding_size, self.path)
        try:
            return GalleryIndex.build(
                [(int(i), str(n), bool(e), bool(p)) for i, n, e, p in people],
                owners,
                vectors,
                fingerprint=str(self.fingerprint),
                version=generation,
                rules=access_rules.rules_from_rows(restricted, self.path),
            )
        except ValueError as exc:
            raise GalleryError(f"gallery {self.path} is corrupt: {exc}") from exc


# ---------------------------------------------------------------------- helpers


def _person(row: tuple) -> Person:
    pid, name, enabled, pending, created, note, count, schedule, first, last = row
    flags = (bool(enabled), bool(pending))
    stored = (str(created), str(note), int(count))
    return Person(int(pid), str(name), *flags, *stored, schedule, first, last)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
