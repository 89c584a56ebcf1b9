"""Access rules in the gallery: stored per person, read into the index's snapshot, and an
old (schema 1) gallery migrated when it is opened. Real SQLite files in ``tmp_path``."""

from __future__ import annotations

import os
import sqlite3
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from pi_facegate.core.access_rules import PersonRules
from pi_facegate.exc import InvalidPersonError
from pi_facegate.storage.gallery import Gallery
from pi_facegate.storage.gallery_schema import SCHEMA_VERSION

FP = "test-embedder:0123456789abcdef"
D = 128

#: the table layout of schema 1, as pi-facegate made galleries before access rules
SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE people (
    id      INTEGER PRIMARY KEY,
    name    TEXT NOT NULL UNIQUE COLLATE NOCASE,
    enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    pending INTEGER NOT NULL DEFAULT 0 CHECK (pending IN (0, 1)),
    created TEXT NOT NULL,
    note    TEXT NOT NULL DEFAULT ''
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


def vecs(n: int = 2, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, D)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    return folder / "gallery.db"


@pytest.fixture
def gallery(path: Path):
    with Gallery.open(path, FP, D) as g:
        g.add_person("Alice", vecs(seed=1))
        g.add_person("Cleaner", vecs(seed=2), note="Tuesdays")
        yield g


def test_new_people_have_no_rules(gallery):
    alice = gallery.get("Alice")
    assert (alice.schedule, alice.valid_from, alice.valid_until) == (None, None, None)
    assert dict(gallery.index().rules) == {}


def test_rules_are_stored_and_read_into_the_index(gallery):
    person = gallery.set_access(
        "cleaner", schedule="cleaner", valid_until=date(2027, 1, 31), note="key in the box"
    )
    assert (person.name, person.schedule, person.valid_until) == (
        "Cleaner",
        "cleaner",
        "2027-01-31",
    )
    assert person.valid_from is None and person.note == "key in the box"
    index = gallery.index()
    assert dict(index.rules) == {
        person.id: PersonRules(schedule="cleaner", valid_until=date(2027, 1, 31))
    }
    # what is not given stays; None clears
    person = gallery.set_access("Cleaner", valid_from=date(2027, 1, 1))
    assert (person.schedule, person.valid_from, person.valid_until) == (
        "cleaner",
        "2027-01-01",
        "2027-01-31",
    )
    person = gallery.set_access("Cleaner", schedule=None, valid_from=None, valid_until=None)
    assert (person.schedule, person.valid_from, person.valid_until) == (None, None, None)
    assert person.note == "key in the box" and dict(gallery.index().rules) == {}


def test_a_change_is_a_new_index_for_a_reader_in_another_connection(gallery, path):
    with Gallery.open(path, FP, D) as daemon:
        before = daemon.index()
        gallery.set_access("Alice", valid_until=date(2020, 1, 1))
        assert daemon.refresh_if_changed()
        after = daemon.index()
    assert after.version > before.version and len(after.rules) == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"valid_from": date(2027, 2, 1), "valid_until": date(2027, 1, 31)}, "is after"),
        ({"schedule": "the office"}, "cannot name a schedule"),
        ({"note": "a\nb"}, "control characters"),
        ({"note": "x" * 501}, "at most 500"),
        ({"valid_until": "2027-01-31"}, "must be a date"),
    ],
)
def test_impossible_rules_are_refused_and_nothing_changes(gallery, changes, message):
    gallery.set_access("Alice", valid_until=date(2027, 1, 15))
    before = gallery.get("Alice")
    with pytest.raises(InvalidPersonError, match=message):
        gallery.set_access("Alice", **changes)
    assert gallery.get("Alice") == before


def test_from_after_the_stored_until_is_refused(gallery):
    gallery.set_access("Alice", valid_until=date(2027, 1, 31))
    with pytest.raises(InvalidPersonError, match="valid_from 2027-02-01 is after valid_until"):
        gallery.set_access("Alice", valid_from=date(2027, 2, 1))


def test_an_unreadable_stored_date_refuses_the_person(gallery, path, caplog):
    alice = gallery.get("Alice")
    with sqlite3.connect(path) as conn:  # edited behind the CLI's back
        conn.execute(
            "UPDATE people SET valid_until = 'soon', valid_from = 'x' WHERE id = ?", (alice.id,)
        )
    rules = gallery.index().rules[alice.id]
    assert rules.valid_until == date.min and rules.valid_from == date.max
    assert "valid_until of Alice is 'soon', not a date" in caplog.text


def test_an_old_gallery_is_migrated_when_opened(path):
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(SCHEMA_1)
    conn.execute("PRAGMA journal_mode = WAL")
    meta = {"schema_version": 1, "fingerprint": FP, "embedding_size": D, "created": "x"}
    conn.executemany(
        "INSERT INTO meta VALUES (?, ?)",
        [(k, str(v)) for k, v in {**meta, "generation": 3}.items()],
    )
    conn.execute(
        "INSERT INTO people (name, enabled, pending, created, note) "
        "VALUES ('Old Timer', 1, 0, '2025-01-01T00:00:00+00:00', 'from v1')"
    )
    conn.execute(
        "INSERT INTO embeddings (person_id, vector, created) VALUES (1, ?, 'x')",
        (vecs(1)[0].astype("<f4").tobytes(),),
    )
    conn.close()
    os.chmod(path, 0o600)

    with Gallery.open(path, FP, D) as gallery:
        assert gallery.schema_version == SCHEMA_VERSION == 2
        person = gallery.get("Old Timer")
        assert (person.note, person.embedding_count, person.schedule) == ("from v1", 1, None)
        assert gallery.index().names == ("Old Timer",)
        gallery.set_access("Old Timer", schedule="office")
    with sqlite3.connect(path) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(people)")]
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    assert columns[-3:] == ["schedule", "valid_from", "valid_until"] and version == ("2",)
    with Gallery.open(path, FP, D) as again:  # opening a migrated gallery changes nothing
        assert again.get("Old Timer").schedule == "office"
