"""The event log: real SQLite files in tmp_path, real threads and processes, the real CLI."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from pi_facegate.cli import main
from pi_facegate.cli.durations import parse_since
from pi_facegate.exc import EventLogError
from pi_facegate.storage.event_file import SCHEMA_VERSION
from pi_facegate.storage.event_record import Event, make_event
from pi_facegate.storage.events import EventLog, EventWriter


def mode_of(path):
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def db(tmp_path):
    return tmp_path / "state" / "events.db"


def read_all(path):
    with EventLog(path) as log:
        return log.query()


# ---------------------------------------------------------------- writing and reading


def test_events_are_stored_with_every_field_and_survive_a_restart(db):
    with EventWriter(db) as writer:
        assert writer.record("started")
        assert writer.record(
            "granted",
            person="alice",
            distance=np.float32(0.4125),
            margin=0.18,
            detail={"track": 3, "votes": 3},
            latency_ms=41.5,
        )
        assert writer.flush(timeout=10)
        assert writer.written == 2
    with EventWriter(db) as writer:  # the daemon restarts
        writer.record("denied", detail={"reason": "unknown", "track": 4}, distance=0.93)
    events = read_all(db)
    assert [e.kind for e in events] == ["started", "granted", "denied"]
    granted = events[1]
    assert granted.person == "alice"
    assert granted.distance == pytest.approx(0.4125)
    assert granted.margin == pytest.approx(0.18)
    assert granted.detail == {"track": 3, "votes": 3, "latency_ms": 41.5}
    assert events[2].person is None and events[2].margin is None
    assert events[0].time <= events[1].time <= events[2].time


def test_the_file_and_its_wal_files_are_private_whatever_the_umask(db):
    old = os.umask(0)
    try:
        with EventWriter(db) as writer:
            writer.record("started")
            assert writer.flush(timeout=10)
            wal_files = [db.with_name(db.name + suffix) for suffix in ("-wal", "-shm")]
            assert all(p.exists() for p in wal_files), "not in WAL mode"
            assert [mode_of(p) for p in (db, *wal_files)] == [0o600, 0o600, 0o600]
    finally:
        os.umask(old)
    assert mode_of(db.parent) == 0o700


def test_an_existing_file_readable_by_others_is_made_private(db):
    with EventWriter(db):
        pass
    os.chmod(db, 0o644)
    with EventWriter(db):
        assert mode_of(db) == 0o600


def test_the_log_is_bounded_to_the_newest_max_events(db):
    with EventWriter(db, max_events=50) as writer:
        for i in range(180):
            writer.record("denied", detail={"seq": i})
            if i % 40 == 0:
                assert writer.flush(timeout=10)  # several batches, each trimmed
    events = read_all(db)
    assert [e.detail["seq"] for e in events] == list(range(130, 180))
    # A smaller limit after a restart trims at once.
    with EventWriter(db, max_events=10):
        pass
    assert [e.detail["seq"] for e in read_all(db)] == list(range(170, 180))


def test_a_full_queue_drops_counts_and_warns_but_still_logs_every_event(db, caplog):
    writer = EventWriter(db, queue_size=5)
    writer.batch_size = 1
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock: the disk is "slow"
    try:
        with caplog.at_level(logging.INFO, logger="pi_facegate.events"):
            queued = [writer.record("denied", detail={"seq": i}) for i in range(20)]
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    assert writer.flush(timeout=30)
    writer.close()
    # At most the queue plus the one event the writer had taken could be kept.
    assert writer.dropped == queued.count(False) >= 20 - 5 - 1
    assert writer.written == queued.count(True) == len(read_all(db))
    assert writer.written + writer.dropped == 20
    logged = [r for r in caplog.records if getattr(r, "EVENT_KIND", None) == "denied"]
    assert len(logged) == 20  # the journal has them all, dropped or not
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # rate-limited: one warning, not one per dropped event
    assert "dropped" in warnings[0].getMessage()


def test_close_is_idempotent_and_later_events_are_dropped_not_raised(db, caplog):
    writer = EventWriter(db)
    writer.record("started")
    writer.close()
    writer.close()
    assert not writer.alive
    with caplog.at_level(logging.INFO, logger="pi_facegate.events"):
        assert writer.record("stopped") is False
    assert writer.dropped == 1
    assert [e.kind for e in read_all(db)] == ["started"]
    assert any(getattr(r, "EVENT_KIND", None) == "stopped" for r in caplog.records)


def test_reader_and_writer_work_at_the_same_time(db):
    total = 600
    writer = EventWriter(db)
    done = threading.Event()

    def produce():
        for i in range(total):
            writer.record("denied", detail={"seq": i})
            if i % 50 == 49:
                writer.flush(timeout=10)
        done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    counts = []
    with EventLog(db) as log:
        while not done.is_set():
            events = log.query()
            seqs = [e.detail["seq"] for e in events]
            assert seqs == list(range(len(seqs)))  # a consistent prefix, never a torn read
            counts.append(len(seqs))
        producer.join()
        writer.close()
        assert log.count() == total
    assert counts == sorted(counts)
    assert len(counts) > 1


def test_another_process_reads_while_the_daemon_writes(db):
    with EventWriter(db) as writer:
        for i in range(25):
            writer.record("granted", person=f"p{i}")
        assert writer.flush(timeout=10)
        script = (
            "import sys, json; from pi_facegate.storage.events import EventLog; "
            "print(json.dumps([e.person for e in EventLog(sys.argv[1]).query()]))"
        )
        result = subprocess.run(
            [sys.executable, "-c", script, str(db)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert json.loads(result.stdout) == [f"p{i}" for i in range(25)]


WRITER_SCRIPT = """
import sys
from pi_facegate.storage.events import EventWriter
writer = EventWriter(sys.argv[1])
i = 0
while True:
    writer.record("denied", detail={"seq": i})
    i += 1
    if i % 10 == 0:
        writer.flush(timeout=10)
        print(i, flush=True)
"""


def test_a_killed_daemon_loses_nothing_it_had_written(db):
    db.parent.mkdir(parents=True)
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER_SCRIPT, str(db)], stdout=subprocess.PIPE, text=True
    )
    try:
        written = 0
        for line in proc.stdout:
            written = int(line)
            if written >= 200:
                break
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()
    assert written >= 200
    seqs = [e.detail["seq"] for e in read_all(db)]  # read straight from the crashed files
    assert seqs[:written] == list(range(written))
    assert seqs == list(range(len(seqs)))
    with EventWriter(db) as writer:  # and the daemon starts again on them
        writer.record("started")
    assert read_all(db)[-1].kind == "started"


# ---------------------------------------------------------------- files that are not ours


@pytest.mark.parametrize("kind", ["jpeg", "text", "other_sqlite"])
def test_a_file_that_is_not_an_event_log_is_refused_untouched(tmp_path, facedata, kind):
    path = tmp_path / "events.db"
    if kind == "jpeg":
        shutil.copy(facedata / "face_recognition_examples" / "examples" / "obama.jpg", path)
    elif kind == "text":
        path.write_text("device: /dev/video0\n" * 50)
    else:
        with sqlite3.connect(path) as other:
            other.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT)")
        other.close()
    before = path.read_bytes()
    with pytest.raises(EventLogError, match="not a pi-facegate event log") as err:
        EventWriter(path)
    assert str(path) in str(err.value)
    with pytest.raises(EventLogError, match="not a pi-facegate event log"):
        EventLog(path).query()
    assert path.read_bytes() == before
    assert not path.with_name("events.db-wal").exists()


def test_a_newer_format_is_refused_with_advice(db):
    with EventWriter(db):
        pass
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(EventLogError, match="newer pi-facegate"):
        EventWriter(db)
    with pytest.raises(EventLogError, match="newer pi-facegate"):
        EventLog(db).query()


def test_an_impossible_location_is_an_error_naming_the_path(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(EventLogError, match="a-file"):
        EventWriter(blocker / "events.db")


def test_a_missing_file_has_no_events_and_is_not_created(tmp_path):
    path = tmp_path / "nothing" / "events.db"
    with EventLog(path) as log:
        assert not log.exists()
        assert log.query() == [] and log.count() == 0
    assert not path.parent.exists()


# ---------------------------------------------------------------- queries


def test_since_kinds_and_limit(db):
    base = 1_700_000_000.0
    with EventWriter(db) as writer:
        for i, kind in enumerate(["started", "denied", "granted", "denied", "unlocked", "denied"]):
            writer.record(kind, time=base + 60 * i, detail={"seq": i})
    with EventLog(db) as log:
        assert [e.detail["seq"] for e in log.query(since=base + 120)] == [2, 3, 4, 5]
        assert [e.detail["seq"] for e in log.query(kinds=["denied"])] == [1, 3, 5]
        assert [e.detail["seq"] for e in log.query(kinds=["denied", "granted"])] == [1, 2, 3, 5]
        # limit: the latest N, still oldest first
        assert [e.detail["seq"] for e in log.query(limit=2)] == [4, 5]
        assert [e.detail["seq"] for e in log.query(since=base + 60, kinds=["denied"], limit=1)] == [
            5
        ]
        assert log.query(limit=0) == []


def test_events_are_cleaned_into_plain_json_data():
    event = make_event(
        "granted",
        time=5,
        person="alice",
        distance=np.float64(0.25),
        margin=float("inf"),
        detail={"vector": np.arange(3, dtype=np.int16), "nan": float("nan"), "ok": True},
        track=np.int64(7),
    )
    assert event == Event(
        5.0,
        "granted",
        "alice",
        0.25,
        None,
        {"vector": [0, 1, 2], "nan": None, "ok": True, "track": 7},
    )
    json.dumps(event.to_dict(), allow_nan=False)
    assert event.to_dict()["time_utc"] == "1970-01-01T00:00:05+00:00"
    with pytest.raises(ValueError, match="lower-case word"):
        make_event("Granted!")


def test_every_event_is_logged_with_journal_fields(db, caplog):
    with caplog.at_level(logging.INFO, logger="pi_facegate.events"):
        with EventWriter(db) as writer:
            writer.record("granted", person="alice", distance=0.41234, margin=0.2, track=3)
            writer.record("door_forced")
    granted, forced = [r for r in caplog.records if hasattr(r, "EVENT_KIND")]
    assert granted.name == "pi_facegate.events" and granted.levelno == logging.INFO
    assert granted.getMessage() == "granted alice (distance 0.412, margin 0.200) track=3"
    assert (granted.EVENT_KIND, granted.PERSON, granted.DISTANCE, granted.MARGIN) == (
        "granted",
        "alice",
        "0.4123",
        "0.2000",
    )
    assert json.loads(granted.DETAIL) == {"track": 3}
    assert forced.levelno == logging.WARNING  # an operator must notice this one
    assert not hasattr(forced, "PERSON") and not hasattr(forced, "DISTANCE")
    # journald only keeps field names of upper-case letters, digits and underscores
    for record in (granted, forced):
        names = [k for k in vars(record) if k.isupper()]
        assert names and all(k.replace("_", "").isalnum() and k[0].isalpha() for k in names)


# ---------------------------------------------------------------- --since


NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("text", "seconds_ago"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("1h", 3600),
        (" 2H ", 7200),
        ("2d", 172800),
        ("1w", 604800),
        ("1h30m", 5400),
        ("0.5h", 1800),
    ],
)
def test_since_durations(text, seconds_ago):
    assert parse_since(text, now=NOW) == NOW - seconds_ago


def test_since_dates_and_times():
    assert (
        parse_since("2024-05-01T08:30:00+02:00")
        == datetime(2024, 5, 1, 6, 30, tzinfo=UTC).timestamp()
    )
    assert parse_since("2024-05-01T08:30Z") == datetime(2024, 5, 1, 8, 30, tzinfo=UTC).timestamp()
    # Without a zone: local time, like the table facegate events prints.
    assert parse_since("2024-05-01 08:30") == datetime(2024, 5, 1, 8, 30).timestamp()
    assert parse_since("2024-05-01") == datetime(2024, 5, 1).timestamp()
    midnight = datetime.fromtimestamp(NOW).replace(hour=0, minute=0, second=0, microsecond=0)
    assert parse_since("today", now=NOW) == midnight.timestamp()
    assert parse_since("yesterday", now=NOW) == (midnight - timedelta(days=1)).timestamp()


@pytest.mark.parametrize("text", ["", "soon", "10", "5x", "1h-", "2024-13-01"])
def test_since_nonsense_is_refused_saying_what_works(text):
    with pytest.raises(ValueError, match="90s, 30m, 1h"):
        parse_since(text, now=NOW)


# ---------------------------------------------------------------- facegate events


@pytest.fixture
def filled(db):
    with EventWriter(db) as writer:
        writer.record("started", time=NOW - 7200)
        writer.record("granted", time=NOW - 60, person="alice", distance=0.41, margin=0.2, track=1)
        writer.record("denied", time=NOW - 30, distance=0.9, reason="unknown", track=2)
    return db


def test_cli_json(filled, capsys):
    assert main(["events", "--events", str(filled), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [e["kind"] for e in out] == ["started", "granted", "denied"]
    assert out[1] == {
        "time": NOW - 60,
        "time_utc": datetime.fromtimestamp(NOW - 60, UTC).isoformat(),
        "kind": "granted",
        "person": "alice",
        "distance": 0.41,
        "margin": 0.2,
        "detail": {"track": 1},
    }


def test_cli_refuses_an_unknown_kind(filled, capsys):
    """A typo in --kind once printed nothing and succeeded: it looked like a quiet door."""
    assert main(["events", "--events", str(filled), "--kind", "granted,grantd"]) == 2
    err = capsys.readouterr().err
    assert "unknown event kind 'grantd'" in err and "presentation_attack" in err


def test_cli_filters(filled, capsys):
    since = datetime.fromtimestamp(NOW - 90).isoformat()
    assert main(["events", "--events", str(filled), "--json", "--since", since]) == 0
    assert [e["kind"] for e in json.loads(capsys.readouterr().out)] == ["granted", "denied"]
    assert main(["events", "--events", str(filled), "--json", "--kind", "started,denied"]) == 0
    assert [e["kind"] for e in json.loads(capsys.readouterr().out)] == ["started", "denied"]
    args = ["events", "--events", str(filled), "--json", "--kind", "granted", "--kind", "started"]
    assert main(args) == 0
    assert [e["kind"] for e in json.loads(capsys.readouterr().out)] == ["started", "granted"]
    assert main(["events", "--events", str(filled), "--json", "--limit", "1"]) == 0
    assert [e["kind"] for e in json.loads(capsys.readouterr().out)] == ["denied"]


def test_cli_table_in_local_time(filled, capsys):
    assert main(["events", "--events", str(filled)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["TIME", "KIND", "PERSON", "DISTANCE", "MARGIN", "DETAIL"]
    local = datetime.fromtimestamp(NOW - 60).strftime("%Y-%m-%d %H:%M:%S")
    assert lines[2].split() == [*local.split(), "granted", "alice", "0.410", "0.200", "track=1"]
    assert lines[3].split()[2:] == ["denied", "-", "0.900", "-", "reason=unknown", "track=2"]
    for column, values in (
        ("KIND", ["started", "granted", "denied"]),
        ("PERSON", ["-", "alice", "-"]),
    ):
        start = lines[0].index(column)  # every row's value starts under its heading
        assert [line[start:].split()[0] for line in lines[1:]] == values


def test_cli_shows_escape_codes_instead_of_obeying_them(db, capsys):
    """A name or detail with terminal escapes (written by another program) is shown escaped."""
    with EventWriter(db) as writer:
        writer.record("denied", time=NOW, person="\x1b[2JEvil", reason="a\nb", track=1)
    assert main(["events", "--events", str(db)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b[2JEvil" in out and "reason=a\\nb" in out
    assert len(out.splitlines()) == 2  # the header and one row: the newline did not split it


def test_cli_missing_file_is_no_events_yet(tmp_path, capsys):
    path = tmp_path / "none.db"
    assert main(["events", "--events", str(path)]) == 0
    assert "no events yet" in capsys.readouterr().err
    assert main(["events", "--events", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert not path.exists()


def test_cli_corrupt_file_is_a_one_line_error(tmp_path, capsys):
    path = tmp_path / "events.db"
    path.write_bytes(b"SQLite format 3\x00" + os.urandom(4000))
    assert main(["events", "--events", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("facegate: error:") and str(path) in err
    assert "\n" not in err


def test_cli_bad_since_is_a_usage_error(filled, capsys):
    assert main(["events", "--events", str(filled), "--since", "soonish"]) == 2
    assert "90s, 30m, 1h" in capsys.readouterr().err


def test_cli_finds_the_log_in_the_state_dir(tmp_path, capsys):
    state = tmp_path / "state"
    with EventWriter(state / "events.db") as writer:
        writer.record("started")
    assert main(["events", "--state-dir", str(state), "--json"]) == 0
    assert [e["kind"] for e in json.loads(capsys.readouterr().out)] == ["started"]
