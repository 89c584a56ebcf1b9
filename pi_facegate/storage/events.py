"""The event log: who came to the door, what was decided, what the door did.

Events are kept locally in their own SQLite file (stdlib ``sqlite3``, WAL mode), so they
survive restarts and ``facegate events`` can read them while the daemon writes. The file is
created with mode 0600 (SQLite gives its ``-wal``/``-shm`` files the same mode): a log of
who entered when is personal data. It is bounded: the writer keeps at most ``max_events``
rows and deletes the oldest after every batch it writes.

:class:`EventWriter` is the daemon's side. Like Frigate's workers, one thread owns the
SQLite connection and takes events from a bounded queue, so :meth:`EventWriter.record`
never waits for the disk: the frame loop calls it and moves on. When the queue is full the
event is dropped from the file, counted (:attr:`EventWriter.dropped`) and a warning is
logged (at most one per ten seconds). Every event is also logged through :mod:`logging`
(logger ``pi_facegate.storage.events``) *before* it is queued, so even a dropped event reaches the
journal. Its upper-case ``extra`` fields (``EVENT_KIND``, ``PERSON``, ``DISTANCE``,
``MARGIN``, ``DETAIL``) become journal fields: ``systemd.journal.JournalHandler`` (235)
sends every attribute of the log record, and journald keeps those whose names are valid
journal field names (upper case, digits, underscores), so ``journalctl PERSON=alice``
works.

:class:`EventLog` is the reader (``facegate events``): it opens the file read-only and
never creates or changes it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pi_facegate.exc import EventLogError

LOGGER = logging.getLogger("pi_facegate.events")  # journal name: stable across moves

#: Version of the file layout, kept in SQLite's ``PRAGMA user_version``.
SCHEMA_VERSION = 1

#: The kinds of event the appliance records (others are accepted, these are documented).
KINDS = (
    "started",
    "stopped",
    "granted",
    "denied",
    "unlocked",
    "relocked",
    "exit_request",
    "door_opened",
    "door_closed",
    "door_forced",
    "door_held_open",
    "config_reloaded",
    "config_rejected",
    "camera_error",
    "camera_recovered",
    "gallery_changed",
    "enrolment_armed",
    "enrolment_started",
    "enrolled",
    "enrolment_failed",
    "enrolment_cancelled",
    "enrolment_ignored",
    "enrolment_expired",
    "enrolment_disarmed",
)

#: Log level per kind (others are INFO): what an operator should notice stands out.
_LEVELS = {
    "door_forced": logging.WARNING,
    "door_held_open": logging.WARNING,
    "config_rejected": logging.WARNING,
    "enrolment_failed": logging.WARNING,
    "enrolment_ignored": logging.WARNING,
    "camera_error": logging.ERROR,
}

_KIND_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
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
_BUSY_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class Event:
    """One thing that happened.

    ``time`` is seconds since the epoch (UTC, ``time.time()``); ``kind`` one of
    :data:`KINDS` (or another lower-case word); ``person`` the name involved, if any;
    ``distance``/``margin`` the match figures of a recognition event (Euclidean, smaller
    distance = closer); ``detail`` anything else, JSON-compatible (reason, track,
    latency_ms, ...).
    """

    time: float
    kind: str
    person: str | None = None
    distance: float | None = None
    margin: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, with the time also as an ISO 8601 UTC string."""
        return {
            "time": self.time,
            "time_utc": datetime.fromtimestamp(self.time, UTC).isoformat(),
            "kind": self.kind,
            "person": self.person,
            "distance": self.distance,
            "margin": self.margin,
            "detail": self.detail,
        }

    def message(self) -> str:
        """One human line for the log, e.g. ``granted alice (distance 0.412, margin 0.180)``."""
        text = self.kind if self.person is None else f"{self.kind} {self.person}"
        figures = [
            f"{label} {value:.3f}"
            for label, value in (("distance", self.distance), ("margin", self.margin))
            if value is not None
        ]
        if figures:
            text += f" ({', '.join(figures)})"
        if self.detail:
            text += " " + format_detail(self.detail)
        return text

    def journal_fields(self) -> dict[str, str]:
        """Upper-case ``extra`` fields for :mod:`logging` that journald stores as fields.

        Values are strings (what the journal holds anyway); fields without a value are
        left out rather than sent as ``None``.
        """
        fields = {"EVENT_KIND": self.kind}
        if self.person is not None:
            fields["PERSON"] = self.person
        if self.distance is not None:
            fields["DISTANCE"] = f"{self.distance:.4f}"
        if self.margin is not None:
            fields["MARGIN"] = f"{self.margin:.4f}"
        if self.detail:
            fields["DETAIL"] = _dumps(self.detail)
        return fields


def make_event(
    kind: str,
    *,
    time: float | None = None,
    person: str | None = None,
    distance: float | None = None,
    margin: float | None = None,
    detail: Mapping[str, Any] | None = None,
    **more: Any,
) -> Event:
    """Build a clean :class:`Event`; keyword arguments beyond the columns go into ``detail``.

    Numbers become plain floats (numpy scalars too) and infinite or NaN ones ``None``
    (an infinite margin means "no second person"); ``detail`` is copied and made
    JSON-compatible, so the event stored is the event logged. A ``kind`` that is not a
    lower-case word is a :class:`ValueError`: that is a programming error.
    """
    if not isinstance(kind, str) or not _KIND_PATTERN.match(kind):
        raise ValueError(f"event kind must be a lower-case word like 'granted', got {kind!r}")
    merged = dict(detail or {})
    merged.update(more)
    return Event(
        time=float(_time_now() if time is None else time),
        kind=kind,
        person=None if person is None else str(person),
        distance=_finite(distance),
        margin=_finite(margin),
        detail=_json_safe(merged),
    )


class EventWriter:
    """The daemon's event recorder: one worker thread owns the SQLite file.

    :param path: the events file; created (mode 0600, parent folders 0700) if missing.
    :param max_events: the most rows kept; the oldest are deleted beyond it.
    :param queue_size: events that may wait for the disk before new ones are dropped.

    Construction opens the file in the worker thread and raises :class:`EventLogError`
    there and then if it cannot be used, so the daemon learns at start-up. ``close()``
    writes what is queued, stops the thread and is safe to call twice; the writer is a
    context manager.
    """

    #: seconds between two "queue full" warnings
    drop_warning_interval = 10.0
    #: events written in one transaction at most
    batch_size = 200

    def __init__(self, path: str | Path, max_events: int = 100_000, queue_size: int = 1000):
        # Everything close() and record() rely on exists before anything can raise.
        self._thread: threading.Thread | None = None
        self._closed = False
        self._stopped = False
        self._cond = threading.Condition()
        self._queued = self._processed = self._written = self._failed = self._dropped = 0
        self._last_drop_warning = -math.inf
        self._last_error_log = -math.inf
        if isinstance(max_events, bool) or int(max_events) != max_events or max_events < 1:
            raise ValueError(f"max_events must be a whole number >= 1, got {max_events!r}")
        if isinstance(queue_size, bool) or int(queue_size) != queue_size or queue_size < 1:
            raise ValueError(f"queue_size must be a whole number >= 1, got {queue_size!r}")
        self.path = Path(path)
        self.max_events = int(max_events)
        self._queue: queue.Queue[Event | None] = queue.Queue(maxsize=int(queue_size))
        started = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._run, args=(started, failure), name="EventWriter", daemon=True
        )
        self._thread.start()
        started.wait()
        if failure:
            self._thread.join()
            self._closed = self._stopped = True
            raise failure[0]

    # -- the caller's side (any thread) ---------------------------------------------------

    def record(self, kind: str, **fields: Any) -> bool:
        """Log an event and queue it for the file; never waits. True when it was queued.

        ``fields`` are those of :func:`make_event` (``person``, ``distance``, ``margin``,
        ``detail``, ``time``; anything else goes into ``detail``). When the queue is full,
        or the writer is closed, the event is only logged, and counted in :attr:`dropped`.
        """
        event = make_event(kind, **fields)
        LOGGER.log(
            _LEVELS.get(event.kind, logging.INFO), event.message(), extra=event.journal_fields()
        )
        with self._cond:
            if not (self._closed or self._stopped):
                try:
                    self._queue.put_nowait(event)
                except queue.Full:
                    pass
                else:
                    self._queued += 1
                    return True
            self._dropped += 1
            dropped = self._dropped
            warn = time.monotonic() - self._last_drop_warning >= self.drop_warning_interval
            if warn:
                self._last_drop_warning = time.monotonic()
        if warn:
            state = "closed" if (self._closed or self._stopped) else "busy (queue full)"
            LOGGER.warning(
                "event log %s is %s: %d event(s) dropped so far; they are in the system log only",
                self.path,
                state,
                dropped,
            )
        return False

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event queued so far is written (or failed); False on timeout."""
        with self._cond:
            target = self._queued
            self._cond.wait_for(lambda: self._processed >= target or self._stopped, timeout)
            return self._processed >= target

    def close(self, timeout: float | None = 10.0) -> None:
        """Write what is queued, then stop the worker. Idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        try:
            self._queue.put(None, timeout=timeout)  # the stop mark, after every event
        except queue.Full:
            LOGGER.error("event log %s: writer did not drain its queue; giving up", self.path)
            return
        thread.join(timeout)
        if thread.is_alive():
            LOGGER.error("event log %s: writer did not stop within %s s", self.path, timeout)

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def dropped(self) -> int:
        """Events not stored because the queue was full or the writer closed."""
        with self._cond:
            return self._dropped

    @property
    def written(self) -> int:
        """Events stored in the file by this writer."""
        with self._cond:
            return self._written

    @property
    def failed(self) -> int:
        """Events lost to a database error while writing (each logged as an error)."""
        with self._cond:
            return self._failed

    @property
    def pending(self) -> int:
        """Events queued and not yet written."""
        with self._cond:
            return self._queued - self._processed

    @property
    def alive(self) -> bool:
        """True while the worker runs and accepts events."""
        return self._thread is not None and self._thread.is_alive() and not self._closed

    # -- the worker thread ----------------------------------------------------------------

    def _run(self, started: threading.Event, failure: list[BaseException]) -> None:
        try:
            conn = open_for_writing(self.path, self.max_events)
        except BaseException as exc:  # reported to the constructor, which raises it
            failure.append(exc)
            started.set()
            return
        started.set()
        try:
            self._serve(conn)
        except Exception:
            LOGGER.exception("event log %s: writer stopped by an unexpected error", self.path)
        finally:
            conn.close()
            with self._cond:
                self._stopped = True
                self._cond.notify_all()

    def _serve(self, conn: sqlite3.Connection) -> None:
        """Write batches until the stop mark (``None``) arrives."""
        while True:
            batch = [self._queue.get()]
            while batch[-1] is not None and len(batch) < self.batch_size:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            events = [e for e in batch if e is not None]
            if events:
                self._write(conn, events)
            if batch[-1] is None:
                return

    def _write(self, conn: sqlite3.Connection, events: list[Event]) -> None:
        """Insert ``events`` in one transaction, then trim the table to ``max_events``."""
        ok = False
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "INSERT INTO events (time, kind, person, distance, margin, detail) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [_row(e) for e in events],
                )
                _trim(conn, self.max_events)
                conn.execute("COMMIT")
                ok = True
            finally:
                if not ok and conn.in_transaction:
                    conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            now = time.monotonic()
            if now - self._last_error_log >= self.drop_warning_interval:
                self._last_error_log = now
                LOGGER.error(
                    "event log %s: cannot write %d event(s): %s", self.path, len(events), exc
                )
        finally:
            with self._cond:
                self._processed += len(events)
                if ok:
                    self._written += len(events)
                else:
                    self._failed += len(events)
                self._cond.notify_all()


class EventLog:
    """Reads an event file without changing it (``facegate events``, tests).

    A missing file has no events. A file that is not a pi-facegate event log, or is
    corrupt, is an :class:`EventLogError` naming the file.
    """

    def __init__(self, path: str | Path) -> None:
        self._conn: sqlite3.Connection | None = None
        self._has_table = False
        self.path = Path(path)

    def exists(self) -> bool:
        """True when the file is there (the daemon creates it when it first starts)."""
        return self.path.is_file()

    def query(
        self,
        since: float | None = None,
        kinds: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        """Events oldest first: from ``since`` (epoch seconds) on, of ``kinds`` if given.

        With ``limit`` the *latest* ``limit`` matching events are returned (like ``tail``).
        """
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        if not self.exists():
            return []
        where, params = [], []
        if since is not None:
            where.append("time >= ?")
            params.append(float(since))
        kind_list = list(kinds or ())
        if kind_list:
            where.append(f"kind IN ({', '.join('?' * len(kind_list))})")
            params.extend(kind_list)
        sql = "SELECT time, kind, person, distance, margin, detail FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        if limit is None:
            sql += " ORDER BY time, id"
        else:
            sql += " ORDER BY time DESC, id DESC LIMIT ?"
            params.append(int(limit))
        rows = self._execute(sql, params)
        if limit is not None:
            rows.reverse()
        return [_event_from_row(row) for row in rows]

    def count(self) -> int:
        """How many events the file holds."""
        if not self.exists():
            return 0
        rows = self._execute("SELECT count(*) FROM events", [])
        return int(rows[0][0]) if rows else 0

    def close(self) -> None:
        """Close the connection; idempotent."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _execute(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        """Rows of ``sql``; none from a file the daemon created but has not set up yet."""
        try:
            conn = self._connection()
            if not self._has_table:
                self.close()  # look again next time: the writer may be setting it up
                return []
            return conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            self.close()
            raise EventLogError(f"{self.path}: cannot read the event log: {exc}") from exc

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
            try:
                conn = sqlite3.connect(uri, uri=True, timeout=_BUSY_TIMEOUT_SECONDS)
            except sqlite3.Error as exc:
                raise EventLogError(f"{self.path}: cannot open the event log: {exc}") from exc
            try:
                self._has_table = _check_is_event_log(conn, self.path, allow_empty=True)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn


def open_for_writing(path: Path, max_events: int) -> sqlite3.Connection:
    """Open (creating if needed) the events file for the writer thread.

    The file is created with mode 0600 *before* SQLite touches it, and an existing file
    readable by others is tightened to 0600. A file that is not an event log is refused
    untouched.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
    except OSError as exc:
        raise EventLogError(f"{path}: cannot create the event log: {exc.strerror or exc}") from exc
    _restrict_mode(path)
    conn = sqlite3.connect(
        path, timeout=_BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=True
    )
    try:
        _check_is_event_log(conn, path, allow_empty=True)
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


def _restrict_mode(path: Path) -> None:
    """Make an existing events file private (0600) if it is not; warn when that fails."""
    try:
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
    except OSError as exc:
        LOGGER.warning("event log %s: cannot make it private (mode 0600): %s", path, exc)


def _check_is_event_log(conn: sqlite3.Connection, path: Path, allow_empty: bool) -> bool:
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


def _trim(conn: sqlite3.Connection, max_events: int) -> None:
    """Delete the oldest rows beyond ``max_events``.

    Row ids grow by one per insert and only the oldest rows are ever deleted, so the
    newest ``max_events`` rows are those with ``id > max(id) - max_events``: one indexed
    range delete, no count of the table.
    """
    conn.execute("DELETE FROM events WHERE id <= (SELECT max(id) FROM events) - ?", (max_events,))


def parse_since(text: str, now: float | None = None) -> float:
    """Epoch seconds from ``--since``: a duration ago or a date/time.

    Durations: a number with ``s``, ``m``, ``h``, ``d`` or ``w``, also combined
    (``90s``, ``30m``, ``1h30m``, ``2d``). ``today``/``yesterday`` mean local midnight.
    Otherwise an ISO 8601 date or date/time (``2024-05-01``, ``2024-05-01T08:30``,
    ``2024-05-01 08:30:00+02:00``); without a zone it is local time. Anything else is a
    :class:`ValueError` saying what is understood.
    """
    value = str(text).strip().lower()
    current = time.time() if now is None else float(now)
    if re.fullmatch(r"(?:\d+(?:\.\d+)?\s*[smhdw]\s*)+", value):
        seconds = sum(
            float(number) * _UNIT_SECONDS[unit]
            for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([smhdw])", value)
        )
        return current - seconds
    if value in ("today", "yesterday"):
        midnight = datetime.fromtimestamp(current).astimezone()
        midnight = midnight.replace(hour=0, minute=0, second=0, microsecond=0)
        if value == "yesterday":
            midnight -= timedelta(days=1)
        return midnight.timestamp()
    try:
        return datetime.fromisoformat(str(text).strip()).timestamp()
    except ValueError:
        raise ValueError(
            f"cannot understand {text!r} as a time: use a duration like 90s, 30m, 1h, 2d "
            "or 1w, 'today', or a date/time like 2024-05-01 or 2024-05-01T08:30"
        ) from None


_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def format_detail(detail: Mapping[str, Any]) -> str:
    """``key=value`` pairs for humans; strings bare, everything else as JSON."""
    parts = []
    for key, value in detail.items():
        shown = value if isinstance(value, str) else _dumps(value)
        parts.append(f"{key}={shown}")
    return " ".join(parts)


def _row(event: Event) -> tuple[Any, ...]:
    return (
        event.time,
        event.kind,
        event.person,
        event.distance,
        event.margin,
        _dumps(event.detail),
    )


def _event_from_row(row: tuple[Any, ...]) -> Event:
    time_, kind, person, distance, margin, detail_text = row
    try:
        detail = json.loads(detail_text) if detail_text else {}
    except ValueError:
        detail = {"unparsed": detail_text}
    if not isinstance(detail, dict):
        detail = {"value": detail}
    return Event(float(time_), str(kind), person, distance, margin, detail)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _json_safe(value: Any) -> Any:
    """``value`` as plain JSON data: numpy scalars/arrays unwrapped, NaN/inf as ``None``."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _finite(value)
    if hasattr(value, "tolist"):  # numpy scalar or array, without importing numpy
        return _json_safe(value.tolist())
    return str(value)


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _time_now() -> float:
    return time.time()
