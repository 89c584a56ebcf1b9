"""The gallery's table layout, how a new gallery gets it, and how an older one is migrated.

Kept apart from :mod:`pi_facegate.storage.gallery` (people and embeddings) so that the layout
and its history are read in one place. A gallery records its layout's version in its meta
table (``schema_version``); a newer one is refused by the gallery, an older one is migrated
when it is opened, in one ``BEGIN IMMEDIATE`` transaction: a power cut mid-migration leaves
the old layout, which the next open migrates again.

Versions:

1. people (name, enabled, pending, created, note) and their embeddings;
2. people gain their access rules: ``schedule`` (a schedule name of the config),
   ``valid_from`` and ``valid_until`` (ISO dates, inclusive), all NULL = no limit.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from pi_facegate.exc import GalleryError
from pi_facegate.storage.gallery_file import meta_int, read_meta, rollback, table_names

log = logging.getLogger("pi_facegate.gallery")  # journal name: stable across moves

#: Version of the table layout below; a file with a larger one is refused.
SCHEMA_VERSION = 2
#: SQLite header field identifying the file (``file(1)`` shows it); ASCII "FGal".
APPLICATION_ID = 0x4647616C

_SCHEMA = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE people (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE COLLATE NOCASE,
    enabled     INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    pending     INTEGER NOT NULL DEFAULT 0 CHECK (pending IN (0, 1)),
    created     TEXT NOT NULL,
    note        TEXT NOT NULL DEFAULT '',
    schedule    TEXT,
    valid_from  TEXT,
    valid_until TEXT
);
CREATE TABLE embeddings (
    id        INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    vector    BLOB NOT NULL,
    created   TEXT NOT NULL,
    source    TEXT
);
CREATE INDEX embeddings_by_person ON embeddings (person_id);
"""

#: The statements that take a gallery from version ``key`` to ``key + 1``.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "ALTER TABLE people ADD COLUMN schedule TEXT",
        "ALTER TABLE people ADD COLUMN valid_from TEXT",
        "ALTER TABLE people ADD COLUMN valid_until TEXT",
    ),
}


def create_schema(conn: sqlite3.Connection, meta: dict[str, object]) -> None:
    """Give the empty database on ``conn`` the current layout and ``meta``, in one transaction.

    Another process may have created it a moment before: then nothing is done.
    """
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("BEGIN IMMEDIATE")
    try:
        if not table_names(conn):  # another process may have won the race
            for statement in _SCHEMA.split(";"):  # not executescript: it would COMMIT
                if statement.strip():
                    conn.execute(statement)
            rows = {"schema_version": SCHEMA_VERSION, **meta}
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [(k, str(v)) for k, v in rows.items()],
            )
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise


def migrate(conn: sqlite3.Connection, path: str | Path) -> int:
    """Bring the gallery on ``conn`` up to :data:`SCHEMA_VERSION`; returns that version.

    The version is read again inside the write transaction, so two processes opening the
    same old gallery at once migrate it once.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = meta_int(read_meta(conn, path), "schema_version", path)
        start = version
        while version < SCHEMA_VERSION:
            steps = _MIGRATIONS.get(version)
            if steps is None:
                raise GalleryError(f"gallery {path}: no migration from schema {version}")
            for statement in steps:
                conn.execute(statement)
            version += 1
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),)
        )
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise
    if start < SCHEMA_VERSION:
        log.info("gallery %s migrated from schema %d to %d", path, start, SCHEMA_VERSION)
    return SCHEMA_VERSION
