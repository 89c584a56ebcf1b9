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
logged (at most one per ten seconds). When the *disk* fails (full, read-only, I/O error),
the events that could not be written wait in a bounded backlog, in order, and the worker
retries every few seconds: nothing is lost while the backlog holds (``backlog_size``
events), :attr:`EventWriter.trouble` says what is wrong (the daemon puts it in its status
text), and once the file takes writes again the backlog is written first and, if the
backlog overflowed, an ``events_lost`` event records how many of the oldest were lost. Every event is also logged through :mod:`logging`
(logger ``pi_facegate.events``, a name kept stable for the journal) *before* it is queued,
so even a dropped event reaches the journal. Its upper-case ``extra`` fields (``EVENT_KIND``, ``PERSON``, ``DISTANCE``,
``MARGIN``, ``DETAIL``) become journal fields: ``systemd.journal.JournalHandler`` (235)
sends every attribute of the log record, and journald keeps those whose names are valid
journal field names (upper case, digits, underscores), so ``journalctl PERSON=alice``
works.

:class:`EventLog` is the reader (``facegate events``): it opens the file read-only and
never creates or changes it.

What an event is lives in :mod:`pi_facegate.storage.event_record`, the file's layout in
:mod:`pi_facegate.storage.event_file`; reading ``--since`` and showing events are the
command line's (:mod:`pi_facegate.cli.durations`, :mod:`pi_facegate.cli.table`).
"""

from __future__ import annotations

import logging
import math
import os
import queue
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pi_facegate.exc import EventLogError
from pi_facegate.storage.event_file import (
    event_from_row,
    open_for_reading,
    open_for_writing,
    write_batch,
)
from pi_facegate.storage.event_record import Event, make_event

LOGGER = logging.getLogger("pi_facegate.events")  # journal name: stable across moves

#: Log level per kind (others are INFO): what an operator should notice stands out.
_LEVELS = {
    "presentation_attack": logging.WARNING,
    "door_forced": logging.WARNING,
    "door_held_open": logging.WARNING,
    "alarm": logging.WARNING,
    "config_rejected": logging.WARNING,
    "enrolment_failed": logging.WARNING,
    "enrolment_ignored": logging.WARNING,
    "camera_error": logging.ERROR,
    "fatal_error": logging.ERROR,
}


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
    #: events kept for a retry while the disk refuses writes (the oldest go beyond it)
    backlog_size = 10_000
    #: seconds between two attempts to write the backlog
    retry_interval = 2.0

    def __init__(self, path: str | Path, max_events: int = 100_000, queue_size: int = 1000):
        # Everything close() and record() rely on exists before anything can raise.
        self._thread: threading.Thread | None = None
        self._closed = False
        self._stopped = False
        self._cond = threading.Condition()
        self._queued = self._processed = self._written = self._failed = self._dropped = 0
        self._backlog_count = 0
        self._last_drop_warning = -math.inf
        self._last_error_log = -math.inf
        self._backlog: deque[Event] = deque()  # written by the worker only
        self._lost = 0  # backlog overflow not yet recorded as an events_lost event
        self._lost_total = 0
        self._trouble: str | None = None
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

        ``fields`` are those of :func:`~pi_facegate.storage.event_record.make_event`
        (``person``, ``distance``, ``margin``, ``detail``, ``time``; anything else goes into
        ``detail``). When the queue is full, or the writer is closed, the event is only
        logged, and counted in :attr:`dropped`.
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
        """Events lost to a database error: the oldest of a full backlog, and what was
        still in the backlog when the writer stopped (each is in the journal)."""
        with self._cond:
            return self._failed

    @property
    def backlog(self) -> int:
        """Events waiting for the disk to take writes again."""
        with self._cond:
            return self._backlog_count

    @property
    def trouble(self) -> str | None:
        """What stops events reaching the file now (``None``: nothing)."""
        with self._cond:
            return self._trouble

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
        """Write batches until the stop mark (``None``) arrives; retry a backlog meanwhile."""
        while True:
            try:
                first = self._queue.get(timeout=self.retry_interval if self._backlog else None)
            except queue.Empty:  # nothing new: try the backlog again
                self._write(conn, [])
                continue
            batch = [first]
            while batch[-1] is not None and len(batch) < self.batch_size:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            events = [e for e in batch if e is not None]
            if events or self._backlog:
                self._write(conn, events)
            if batch[-1] is None:
                self._give_up()
                return

    def _write(self, conn: sqlite3.Connection, events: list[Event]) -> None:
        """Write the backlog and ``events`` in order in one transaction, then trim the table
        to ``max_events``; on a database error keep them in the (bounded) backlog."""
        todo = [*self._backlog, *events]
        if self._lost:
            todo.append(make_event("events_lost", detail={"events": self._lost}))
        try:
            write_batch(conn, todo, self.max_events)
        except sqlite3.Error as exc:
            self._backlog.extend(events)
            overflow = max(0, len(self._backlog) - self.backlog_size)
            for _ in range(overflow):  # the oldest go: the newest say what happens now
                self._backlog.popleft()
            self._held(events, overflow, exc)
            return
        written = len(self._backlog) + len(events)
        recovered = self._trouble is not None
        held = len(self._backlog)
        self._backlog.clear()
        with self._cond:
            self._processed += len(events)
            self._written += written
            self._backlog_count = 0
            self._lost = 0
            self._trouble = None
            self._cond.notify_all()
        if recovered:
            LOGGER.warning(
                "event log %s: writable again; %d held event(s) written", self.path, held
            )

    def _held(self, events: list[Event], overflow: int, exc: sqlite3.Error) -> None:
        """``events`` wait in the backlog; ``overflow`` of the oldest were lost."""
        with self._cond:
            self._processed += len(events)  # handled: in the backlog, or counted as lost
            self._failed += overflow
            self._lost += overflow
            self._lost_total += overflow
            self._backlog_count = len(self._backlog)
            self._trouble = f"cannot write the event log: {exc} ({len(self._backlog)} held)"
            self._cond.notify_all()
        now = time.monotonic()
        if now - self._last_error_log >= self.drop_warning_interval:
            self._last_error_log = now
            LOGGER.error(
                "event log %s: cannot write: %s; %d event(s) held for a retry, %d lost so far "
                "(all of them are in the system log)",
                self.path,
                exc,
                len(self._backlog),
                self._lost_total,
            )

    def _give_up(self) -> None:
        """At stop: what the disk never took is lost from the file (it is in the journal)."""
        if not self._backlog:
            return
        count = len(self._backlog)
        LOGGER.error(
            "event log %s: stopping with %d event(s) never written (in the system log only)",
            self.path,
            count,
        )
        with self._cond:
            self._failed += count
            self._backlog_count = 0
        self._backlog.clear()


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
        """True when the file is there (the daemon creates it when it first starts).

        A symbolic link counts as there, even a dangling one, so that reading it is
        refused rather than taken for "no events yet".
        """
        return os.path.lexists(self.path)

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
        return [event_from_row(row) for row in rows]

    def after(self, event_id: int, limit: int = 100) -> list[tuple[int, Event]]:
        """``(id, event)`` pairs with an id above ``event_id``, in id order, at most ``limit``.

        Ids are the file's row ids: they grow by one per event and only the oldest rows are
        ever deleted, so they are the order events were recorded in and a reader's cursor
        (the MQTT publisher's). Never creates or changes the file.
        """
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        if not self.exists():
            return []
        rows = self._execute(
            "SELECT id, time, kind, person, distance, margin, detail FROM events "
            "WHERE id > ? ORDER BY id LIMIT ?",
            [int(event_id), int(limit)],
        )
        return [(int(row[0]), event_from_row(row[1:])) for row in rows]

    def last_id(self) -> int:
        """The id of the newest event, 0 when there is none (or no file)."""
        if not self.exists():
            return 0
        rows = self._execute("SELECT max(id) FROM events", [])
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

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
            self._conn, self._has_table = open_for_reading(self.path)
        return self._conn
