"""The gallery file: CRUD, privacy, refusal of foreign files, change detection, crash safety.

Everything runs on real SQLite files in ``tmp_path``; other processes are real
subprocesses (one of them killed with SIGKILL while writing).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from pi_facegate.core.matcher import search
from pi_facegate.exc import (
    DuplicatePersonError,
    GalleryError,
    GalleryMismatchError,
    InvalidPersonError,
    PersonNotFoundError,
)
from pi_facegate.storage.gallery import Gallery
from pi_facegate.storage.gallery_schema import SCHEMA_VERSION
from pi_facegate.storage.names import MAX_NAME_LENGTH

FP = "test-embedder:0123456789abcdef"
D = 128
REPO = Path(__file__).resolve().parents[2]


def vecs(n: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, D)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "gallery.db"


@pytest.fixture
def gallery(path: Path):
    with Gallery.open(path, FP, D) as g:
        yield g


def raw(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection, to look at (or tamper with) the file behind the API."""
    return sqlite3.connect(path, isolation_level=None)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sidecars(path: Path) -> list[Path]:
    return [p for p in (Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]


def run_python(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        check=True,
    )


# ---------------------------------------------------------------------- people


def test_add_and_get_person(gallery):
    alice = gallery.add_person("  Alice ", vecs(3), note="front desk", source="camera")
    assert (alice.name, alice.enabled, alice.pending, alice.note) == (
        "Alice",
        True,
        False,
        "front desk",
    )
    assert alice.embedding_count == 3 and alice.active
    assert gallery.get("alice") == alice  # names are case-insensitive
    assert gallery.get(alice.id) == alice
    np.testing.assert_array_equal(gallery.vectors("Alice"), vecs(3))  # bit-exact round trip


def test_people_are_sorted_with_counts(gallery):
    gallery.add_person("zoe", vecs(1, 1))
    gallery.add_person("Bob", vecs(2, 2), pending=True)
    gallery.add_person("anna", vecs(4, 3), enabled=False)
    listed = [(p.name, p.embedding_count, p.enabled, p.pending) for p in gallery.people()]
    assert listed == [("anna", 4, False, False), ("Bob", 2, True, True), ("zoe", 1, True, False)]


def test_add_embeddings_by_name_and_id(gallery):
    bob = gallery.add_person("bob", vecs(1, 1))
    assert gallery.add_embeddings("BOB", vecs(2, 2), source=["a.jpg", "b.jpg"]).embedding_count == 3
    assert gallery.add_embeddings(bob.id, vecs(1, 3)[0]).embedding_count == 4
    stored = gallery.vectors(bob.id)
    np.testing.assert_array_equal(stored, np.vstack([vecs(1, 1), vecs(2, 2), vecs(1, 3)]))
    sources = raw(gallery.path).execute("SELECT source FROM embeddings ORDER BY id").fetchall()
    assert [s for (s,) in sources] == [None, "a.jpg", "b.jpg", None]


def test_rename_flags_approve_remove(gallery):
    gallery.add_person("carol", vecs(2), pending=True)
    gallery.add_person("dave", vecs(1, 1))
    assert gallery.rename("carol", "Carol K").name == "Carol K"
    assert gallery.rename("carol k", "CAROL K").name == "CAROL K"  # a change of case only
    with pytest.raises(DuplicatePersonError, match="dave"):
        gallery.rename("CAROL K", "Dave")
    assert gallery.set_enabled("carol k", False).enabled is False
    assert gallery.set_enabled("carol k", True).enabled is True
    approved = gallery.approve("carol k")
    assert approved.pending is False and approved.active
    removed = gallery.remove("carol k")
    assert removed.name == "CAROL K" and removed.embedding_count == 2
    assert [p.name for p in gallery.people()] == ["dave"]
    count = raw(gallery.path).execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
    assert count == 1  # the removed person's embeddings went with them (ON DELETE CASCADE)


@pytest.mark.parametrize(
    "call",
    [
        lambda g: g.get("nobody"),
        lambda g: g.get(999),
        lambda g: g.vectors("nobody"),
        lambda g: g.add_embeddings("nobody", vecs(1)),
        lambda g: g.rename("nobody", "somebody"),
        lambda g: g.set_enabled("nobody", False),
        lambda g: g.approve("nobody"),
        lambda g: g.remove("nobody"),
    ],
)
def test_unknown_person(gallery, call):
    gallery.add_person("somebody else", vecs(1))
    version = gallery.index().version
    with pytest.raises(PersonNotFoundError, match="no person"):
        call(gallery)
    assert gallery.index().version == version  # nothing was written


def test_duplicate_name_stores_nothing(gallery):
    gallery.add_person("Erin", vecs(1))
    with pytest.raises(DuplicatePersonError, match="'Erin' is already"):
        gallery.add_person("erin", vecs(2, 5))
    assert [(p.name, p.embedding_count) for p in gallery.people()] == [("Erin", 1)]


@pytest.mark.parametrize(
    "name",
    ["", "   ", "x" * (MAX_NAME_LENGTH + 1), "two\nlines", "esc\x1b[31m", "tab\there", None],
)
def test_bad_names_are_refused(gallery, name):
    with pytest.raises(InvalidPersonError, match="name"):
        gallery.add_person(name, vecs(1))
    assert gallery.people() == []


def test_longest_name_is_accepted(gallery):
    assert gallery.add_person("é" * MAX_NAME_LENGTH, vecs(1)).name == "é" * MAX_NAME_LENGTH


@pytest.mark.parametrize(
    ("embeddings", "error", "message"),
    [
        (np.zeros((0, D), np.float32), InvalidPersonError, "at least one embedding"),
        ([], InvalidPersonError, "at least one embedding"),
        (np.full((2, D), np.nan, np.float32), InvalidPersonError, "NaN"),
        (np.zeros((2, 512), np.float32), GalleryMismatchError, "512 values"),
        (np.zeros((2, 2, D), np.float32), InvalidPersonError, "at least one embedding"),
    ],
)
def test_bad_embeddings_store_nothing(gallery, embeddings, error, message):
    with pytest.raises(error, match=message):
        gallery.add_person("frank", embeddings)
    gallery.add_person("frank", vecs(1))
    with pytest.raises(error, match=message):
        gallery.add_embeddings("frank", embeddings)
    assert gallery.get("frank").embedding_count == 1


def test_memory_gallery_works():
    with Gallery.open(":memory:", FP, D) as g:
        g.add_person("mia", vecs(2))
        index = g.index()
        assert index.names == ("mia",) and index.fingerprint == FP
        assert search(index, vecs(2), 0.1, 0.05)[0].accepted


def test_close_is_idempotent_and_final(path):
    g = Gallery.open(path, FP, D)
    g.add_person("gus", vecs(1))
    g.close()
    g.close()
    assert g.closed
    with pytest.raises(GalleryError, match="closed"):
        g.people()
    with pytest.raises(GalleryError, match="closed"):
        g.index()


def test_reopen_keeps_everything(path):
    with Gallery.open(path, FP, D) as g:
        g.add_person("hana", vecs(2), enabled=False, note="n")
        version = g.index().version
    with Gallery.open(path, FP, D, create=False) as g:
        hana = g.get("hana")
        assert (hana.enabled, hana.note, hana.embedding_count) == (False, "n", 2)
        np.testing.assert_array_equal(g.vectors("hana"), vecs(2))
        assert g.index().version == version
        assert g.created and g.schema_version == SCHEMA_VERSION


def test_embedding_size_defaults_to_128_and_is_recorded(tmp_path):
    with Gallery.open(tmp_path / "default.db", FP) as g:
        assert g.embedding_size == 128
    with Gallery.open(tmp_path / "small.db", FP, 64) as g:
        g.add_person("lou", np.ones((1, 64), np.float32))
    with Gallery.open(tmp_path / "small.db", FP) as g:  # size not given: the file's applies
        assert g.embedding_size == 64 and g.index().dim == 64
        g.add_embeddings("lou", np.zeros((1, 64), np.float32))
        with pytest.raises(GalleryMismatchError, match="128 values"):
            g.add_embeddings("lou", np.zeros((1, 128), np.float32))


def test_admin_open_without_fingerprint(path):
    with Gallery.open(path, FP, D) as g:
        g.add_person("ivan", vecs(1))
    with Gallery.open(path, None, create=False) as g:
        assert g.fingerprint == FP and g.embedding_size == D  # adopted from the file
        assert g.set_enabled("ivan", False).enabled is False
        with pytest.raises(GalleryError, match="without an embedder fingerprint"):
            g.add_person("new", vecs(1))


@pytest.mark.parametrize("kwargs", [{"fingerprint": FP, "create": False}, {"fingerprint": None}])
def test_missing_file_is_not_created_unless_allowed(tmp_path, kwargs):
    target = tmp_path / "none.db"
    with pytest.raises(GalleryError, match=f"no gallery at {target}"):
        Gallery.open(target, **kwargs)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------- privacy


def test_files_are_private_whatever_the_umask(tmp_path):
    path = tmp_path / "new" / "dir" / "gallery.db"
    old = os.umask(0)
    try:
        with Gallery.open(path, FP, D) as g:
            g.add_person("jo", vecs(1))
            files = [path, *sidecars(path)]
            assert len(files) == 3  # the database, its -wal and its -shm
            modes = {p.name: oct(p.stat().st_mode & 0o777) for p in files}
    finally:
        os.umask(old)
    assert set(modes.values()) == {"0o600"}, modes
    assert path.parent.stat().st_mode & 0o777 == 0o700


def test_sidecars_of_an_existing_gallery_are_private(path):
    with Gallery.open(path, FP, D) as g:
        g.add_person("kim", vecs(1))
    old = os.umask(0)
    try:
        with Gallery.open(path, FP, D) as g:
            g.people()
            modes = {p.name: p.stat().st_mode & 0o777 for p in sidecars(path)}
    finally:
        os.umask(old)
    assert modes and set(modes.values()) == {0o600}, modes


# ---------------------------------------------------------------------- foreign files


def assert_refused_untouched(path: Path, error: type, message: str, **kwargs) -> None:
    """Opening ``path`` raises ``error`` and leaves the file exactly as it was."""
    before = digest(path)
    with pytest.raises(error, match=message):
        Gallery.open(path, kwargs.pop("fingerprint", FP), kwargs.pop("size", D), **kwargs)
    assert digest(path) == before
    assert sidecars(path) == []


def test_other_embedder_is_refused(path):
    with Gallery.open(path, FP, D) as g:
        g.add_person("lea", vecs(1))
    assert_refused_untouched(
        path, GalleryMismatchError, r"made by embedder 'test-embedder.*Re-enrol", fingerprint="x:1"
    )
    assert_refused_untouched(path, GalleryMismatchError, "512-value", size=512)
    with Gallery.open(path, FP, D) as g:  # and the right embedder still opens it
        assert g.get("lea").embedding_count == 1


@pytest.mark.parametrize(
    "photo",
    [
        "face_recognition_examples/examples/obama.jpg",
        "att_faces/s1/1.pgm",
        "yalefaces/subject01.happy",
    ],
)
def test_image_is_not_a_gallery(tmp_path, facedata, photo):
    copy = tmp_path / Path(photo).name  # a copy in tmp_path: the shared data stays untouched
    shutil.copyfile(facedata / photo, copy)
    assert_refused_untouched(copy, GalleryError, "is not a pi-facegate gallery")


@pytest.mark.parametrize("content", [b"name: not a database\n", b"x", b"SQLite format 3"])
def test_text_file_is_not_a_gallery(tmp_path, content):
    text = tmp_path / "notes.txt"
    text.write_bytes(content)
    assert_refused_untouched(text, GalleryError, "is not a pi-facegate gallery")


def test_other_sqlite_database_is_not_a_gallery(tmp_path):
    other = tmp_path / "other.db"
    with raw(other) as conn:
        conn.execute("CREATE TABLE things (x)")
    conn.close()
    other.chmod(0o600)  # private, like a gallery: refused for what it holds, not its mode
    assert_refused_untouched(other, GalleryError, "not a pi-facegate gallery .*meta")
    assert other.read_bytes()[18:20] == b"\x01\x01"  # still a rollback-journal file, not WAL


def test_empty_file_is_not_a_gallery_when_not_creating(tmp_path):
    empty = tmp_path / "empty.db"
    empty.touch(mode=0o600)  # as create_private_file leaves it
    assert_refused_untouched(empty, GalleryError, "not a pi-facegate gallery", create=False)
    with Gallery.open(empty, FP, D) as g:  # with create=True it becomes one
        assert g.people() == []


def test_directory_is_not_a_gallery(tmp_path):
    with pytest.raises(GalleryError, match="not a regular file"):
        Gallery.open(tmp_path, FP, D)


def test_newer_schema_is_refused(path):
    Gallery.open(path, FP, D).close()
    conn = raw(path)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION + 1,))
    conn.close()
    assert_refused_untouched(path, GalleryError, "made by a newer pi-facegate")
    assert_refused_untouched(path, GalleryError, "newer", fingerprint=None)


def test_truncated_file_is_corrupt(path):
    with Gallery.open(path, FP, D) as g:
        g.add_person("max", vecs(50))
    path.write_bytes(path.read_bytes()[:5000])
    assert_refused_untouched(path, GalleryError, "corrupt")


def test_garbage_pages_are_corrupt(path):
    with Gallery.open(path, FP, D) as g:
        for i in range(20):
            g.add_person(f"p{i}", vecs(5, i))
    data = bytearray(path.read_bytes())
    data[-8192:] = np.random.default_rng(0).integers(0, 256, 8192, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    with pytest.raises(GalleryError, match="corrupt"):
        with Gallery.open(path, FP, D) as g:
            g.index()


def test_malformed_embedding_blob_is_corrupt(gallery):
    gallery.add_person("ned", vecs(1))
    conn = raw(gallery.path)
    conn.execute("UPDATE embeddings SET vector = x'00010203'")
    conn.close()
    with pytest.raises(GalleryError, match="corrupt: an embedding is not 512 bytes"):
        gallery.index()


def test_path_under_a_regular_file(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    for target in (blocker / "gallery.db", blocker / "sub" / "gallery.db"):
        with pytest.raises(GalleryError, match=str(target)):
            Gallery.open(target, FP, D)
    assert blocker.read_text() == "in the way"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_directory(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        with pytest.raises(GalleryError, match=str(locked / "gallery.db")):
            Gallery.open(locked / "gallery.db", FP, D)
    finally:
        locked.chmod(0o700)


# ---------------------------------------------------------------------- index and changes


def test_index_reflects_people_and_flags(gallery):
    assert gallery.index().size == 0
    gallery.add_person("olga", vecs(2, 1))
    gallery.add_person("pete", vecs(1, 2), pending=True)
    gallery.add_person("quin", vecs(1, 3), enabled=False)
    index = gallery.index()
    assert index.names == ("olga", "pete", "quin")
    assert index.enabled.tolist() == [True, True, False]
    assert index.pending.tolist() == [False, True, False]
    assert index.fingerprint == FP and index.dim == D
    matches = search(index, np.vstack([vecs(2, 1)[1:], vecs(1, 2), vecs(1, 3)]), 0.3, 0.1)
    assert [(m.name, m.accepted, m.reason) for m in matches] == [
        ("olga", True, None),
        ("pete", False, "pending"),
        ("quin", False, "disabled"),
    ]


def test_index_is_cached_until_a_change(gallery):
    gallery.add_person("rosa", vecs(1))
    first = gallery.index()
    assert gallery.refresh_if_changed() is False
    assert gallery.index() is first
    gallery.set_enabled("rosa", False)
    assert gallery.refresh_if_changed() is True
    second = gallery.index()
    assert second is not first and second.version > first.version
    assert second.enabled.tolist() == [False]


def test_other_connection_commits_are_seen_at_the_next_call(path):
    with Gallery.open(path, FP, D) as daemon, Gallery.open(path, FP, D) as cli:
        cli.add_person("sam", vecs(1))
        before = daemon.index()
        assert before.names == ("sam",)
        cli.remove("sam")
        assert daemon.refresh_if_changed() is True
        assert daemon.index().size == 0 and daemon.index().version > before.version


ADD_IN_SUBPROCESS = """
import sys, numpy as np
from pi_facegate.storage.gallery import Gallery
path, fp, name, action = sys.argv[1:]
with Gallery.open(path, fp, 128, create=False) as g:
    if action == "add":
        g.add_person(name, np.ones((2, 128), np.float32) / np.sqrt(128))
    else:
        g.remove(name)
"""


def test_commit_in_another_process_is_seen_at_the_next_call(path):
    with Gallery.open(path, FP, D) as daemon:
        assert daemon.index().size == 0
        run_python(ADD_IN_SUBPROCESS, str(path), FP, "tess", "add")
        index = daemon.index()
        assert index.names == ("tess",)
        match = search(index, np.ones(D, np.float32) / np.sqrt(D), 0.1, 0.05)[0]
        assert match.accepted and match.name == "tess"
        run_python(ADD_IN_SUBPROCESS, str(path), FP, "tess", "remove")
        assert daemon.refresh_if_changed() is True
        assert daemon.index().size == 0


def test_writer_waits_for_another_writer_then_reports_busy(path):
    with Gallery.open(path, FP, D, timeout=0.2) as g:
        g.add_person("uma", vecs(1))
        other = raw(path)
        other.execute("BEGIN IMMEDIATE")  # another process is in the middle of a write
        try:
            assert g.index().names == ("uma",)  # reading is never blocked (WAL)
            with pytest.raises(GalleryError, match="locked for more than 0.2 s"):
                g.add_person("vic", vecs(1, 1))
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert g.add_person("vic", vecs(1, 1)).name == "vic"
        assert [p.name for p in g.people()] == ["uma", "vic"]


def test_one_gallery_shared_by_threads(gallery):
    errors: list[BaseException] = []

    def enrol(prefix: str) -> None:
        try:
            for i in range(10):
                gallery.add_person(f"{prefix}{i}", vecs(2, i))
                gallery.index()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=enrol, args=(p,)) for p in "abcd"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert gallery.index().size == 40
    assert {p.embedding_count for p in gallery.people()} == {2}


# ---------------------------------------------------------------------- crash safety

WRITE_FOREVER = """
import sys, numpy as np
from pi_facegate.storage.gallery import Gallery
path, fp, tag = sys.argv[1:]
rng = np.random.default_rng(int(tag))
with Gallery.open(path, fp, 128) as g:
    i = 0
    while True:
        g.add_person(f"{tag}-{i}", rng.standard_normal((20, 128)).astype(np.float32))
        print(i, flush=True)
        i += 1
"""


def test_kill_9_while_writing_never_leaves_half_a_person(path):
    committed = 0
    rounds = 8  # each kill lands at another point of a write; more rounds, more coverage
    for round_ in range(rounds):
        wanted = 2 + round_
        child = subprocess.Popen(
            [sys.executable, "-c", WRITE_FOREVER, str(path), FP, str(round_)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        try:
            for _ in range(wanted):
                line = child.stdout.readline()
                assert line, child.stderr.read()
            os.kill(child.pid, signal.SIGKILL)  # most likely inside the next transaction
            assert child.wait(timeout=30) == -signal.SIGKILL
        finally:
            child.kill()
            child.stdout.close()
            child.stderr.close()
        committed += wanted
    with Gallery.open(path, FP, D) as g:
        people = g.people()
        assert committed <= len(people) <= committed + rounds  # a round may finish one more
        assert {p.embedding_count for p in people} == {20}
        assert g.index().size == len(people)
    conn = raw(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    orphans = "SELECT COUNT(*) FROM embeddings WHERE person_id NOT IN (SELECT id FROM people)"
    assert conn.execute(orphans).fetchone()[0] == 0
    conn.close()
