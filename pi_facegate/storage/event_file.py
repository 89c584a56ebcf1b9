"""The event log's SQLite file: its schema, how it is opened, checked, written and trimmed.

Shared by the writer thread and the reader of :mod:`pi_facegate.storage.events`, so both
agree on one layout (``PRAGMA user_version`` = :data:`SCHEMA_VERSION`) and refuse the same
files: a file that is not a pi-facegate event log is never changed.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pi_facegate.exc import EventLogError
from pi_facegate.storage.event_record import Event
from pi_facegate.storage.trust import EVENT_LOG, check_private_file, open_private

LOGGER = logging.getLogger("pi_facegate.events")  # journal name: stable across moves

#: Version of the file layout, kept in SQLite's ``PRAGMA user_version``.
SCHEMA_VERSION = 1

#: Seconds a connection waits for another's lock before it reports the file busy.
BUSY_TIMEOUT_SECONDS = 5.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    kind TEXT NOT NULL,
    person TEXT,
    distance REAL,
    margin REAL,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS events_time ON events(time);
"""


def open_for_writing(path: Path, max_events: int) -> sqlite3.Connection:
    """Open (creating if needed) the events file for the writer thread.

    The file is created with mode 0600 *before* SQLite touches it. An existing file that
    could have been planted or altered (:mod:`pi_facegate.storage.trust`: a symbolic link,
    another user's, writable by group or others, in a directory others may write) is
    refused; one merely readable by others is tightened to 0600. A file that is not an
    event log is refused untouched.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise EventLogError(f"{path}: cannot create the event log: {exc.strerror or exc}") from exc
    try:
        fd = open_private(path, EVENT_LOG, os.O_RDWR | os.O_CREAT, 0o600)
    except FileNotFoundError as exc:  # the directory went away in between
        raise EventLogError(f"{path}: cannot create the event log: {exc.strerror or exc}") from exc
    try:
        _restrict_mode(fd, path)
    finally:
        os.close(fd)
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=True
    )
    try:
        check_is_event_log(conn, path, allow_empty=True)
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            LOGGER.warning(
                "event log %s: journal mode is %s, not WAL: readers may wait for the writer",
                path,
                mode,
            )
        # An audit log on an SD card that may lose power: each batch is fsynced. The cost
        # is the worker thread's, never the frame loop's.
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(_SCHEMA)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("BEGIN IMMEDIATE")
        _trim(conn, max_events)
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        conn.close()
        raise EventLogError(f"{path}: cannot use the event log: {exc}") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def open_for_reading(path: Path) -> tuple[sqlite3.Connection, bool]:
    """A read-only connection to ``path`` and whether its events table exists yet.

    The file is opened with ``mode=ro``: reading never creates or changes it. A file the
    daemon created but has not set up yet has no table (``False``); a file that is not an
    event log, or that could have been planted or altered (the writer's rules, except that
    a file readable by others is read as it is), is an :class:`EventLogError`.
    """
    try:
        check_private_file(path, EVENT_LOG)
    except FileNotFoundError as exc:
        raise EventLogError(f"{path}: cannot open the event log: {exc.strerror or exc}") from exc
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS)
    except sqlite3.Error as exc:
        raise EventLogError(f"{path}: cannot open the event log: {exc}") from exc
    try:
        has_table = check_is_event_log(conn, path, allow_empty=True)
    except BaseException:
        conn.close()
        raise
    return conn, has_table


def write_batch(conn: sqlite3.Connection, events: Sequence[Event], max_events: int) -> None:
    """Insert ``events`` in one transaction, then trim the table to ``max_events``.

    Rolled back as a whole on any error, which is raised (``sqlite3.Error``) for the
    writer to count and log.
    """
    ok = False
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(
            "INSERT INTO events (time, kind, person, distance, margin, detail) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [_row(e) for e in events],
        )
        _trim(conn, max_events)
        conn.execute("COMMIT")
        ok = True
    finally:
        if not ok and conn.in_transaction:
            conn.execute("ROLLBACK")


def event_from_row(row: tuple[Any, ...]) -> Event:
    """The :class:`Event` of a ``time, kind, person, distance, margin, detail`` row.

    A detail that is not a JSON object is kept rather than lost: under ``unparsed`` when
    it is not JSON at all, under ``value`` when it is JSON of another type.
    """
    time_, kind, person, distance, margin, detail_text = row
    try:
        detail = json.loads(detail_text) if detail_text else {}
    except ValueError:
        detail = {"unparsed": detail_text}
    if not isinstance(detail, dict):
        detail = {"value": detail}
    return Event(float(time_), str(kind), person, distance, margin, detail)


def check_is_event_log(conn: sqlite3.Connection, path: Path, allow_empty: bool) -> bool:
    """Refuse a file that is not (or not yet) ours, without changing it.

    Returns whether the events table exists; a file without any table (just created) is
    accepted when ``allow_empty``.
    """
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise EventLogError(f"{path} is not a pi-facegate event log: {exc}") from exc
    if version > SCHEMA_VERSION:
        raise EventLogError(
            f"{path} was made by a newer pi-facegate (event log format {version}, this "
            f"version reads up to {SCHEMA_VERSION}): upgrade pi-facegate"
        )
    if "events" in tables:
        return True
    if allow_empty and not tables:
        return False
    raise EventLogError(f"{path} is an SQLite file but not a pi-facegate event log")


def _restrict_mode(fd: int, path: Path) -> None:
    """Make the open events file private (0600) if others may read it; warn if that fails."""
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    except OSError as exc:
        LOGGER.warning("event log %s: cannot make it private (mode 0600): %s", path, exc)


def _trim(conn: sqlite3.Connection, max_events: int) -> None:
    """Delete the oldest rows beyond ``max_events``.

    Row ids grow by one per insert and only the oldest rows are ever deleted, so the
    newest ``max_events`` rows are those with ``id > max(id) - max_events``: one indexed
    range delete, no count of the table.
    """
    conn.execute("DELETE FROM events WHERE id <= (SELECT max(id) FROM events) - ?", (max_events,))


def _row(event: Event) -> tuple[Any, ...]:
    return (
        event.time,
        event.kind,
        event.person,
        event.distance,
        event.margin,
        event.detail_json(),
    )
