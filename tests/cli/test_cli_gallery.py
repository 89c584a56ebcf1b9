"""``facegate gallery init`` and the read-only commands' refusal of untrusted files.

Real files in ``tmp_path`` (0700, this user's), the CLI through ``main([...])``; no model
is loaded by these commands.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pi_facegate.cli import main
from pi_facegate.storage.events import EventWriter
from pi_facegate.storage.gallery import Gallery
from pi_facegate.storage.gallery_marker import read_marker


@pytest.fixture
def var(tmp_path: Path) -> Path:
    folder = tmp_path / "var"
    folder.mkdir(mode=0o700)
    return folder


def facegate(var: Path, *words: str) -> int:
    return main([*words, "--state-dir", str(var)])


def test_gallery_init_creates_an_empty_private_gallery_once(var, capsys):
    gallery = var / "gallery.db"
    assert facegate(var, "gallery", "init") == 0
    assert capsys.readouterr().out == (
        f"created an empty gallery {gallery}: enrol people with facegate enroll NAME PHOTO...\n"
    )
    assert gallery.stat().st_mode & 0o777 == 0o600
    assert read_marker(gallery) is not None
    assert facegate(var, "gallery", "init") == 0  # again: says so, changes nothing
    assert "exists already (0 people): nothing changed" in capsys.readouterr().out


def test_gallery_init_never_touches_an_existing_gallery_even_with_force(var, capsys):
    assert facegate(var, "gallery", "init") == 0
    gallery = var / "gallery.db"
    with Gallery.open(gallery, None, create=False) as g:
        fingerprint = g.fingerprint
    with Gallery.open(gallery, fingerprint) as g:
        g.add_person("Alice", [[1.0] + [0.0] * (g.embedding_size - 1)])
    before = gallery.read_bytes()
    assert facegate(var, "gallery", "init", "--force") == 0
    assert "exists already (1 people)" in capsys.readouterr().out
    assert gallery.read_bytes() == before


def test_gallery_init_refuses_to_replace_a_lost_gallery_unless_forced(var, capsys):
    assert facegate(var, "gallery", "init") == 0
    (var / "gallery.db").unlink()
    capsys.readouterr()
    assert facegate(var, "gallery", "init") == 1
    assert "and is gone: restore it from a backup, or `facegate gallery init --force`" in (
        capsys.readouterr().err
    )
    assert facegate(var, "gallery", "init", "--force") == 0
    assert (var / "gallery.db").is_file()


def test_people_list_refuses_a_gallery_others_may_read(var, capsys):
    assert facegate(var, "gallery", "init") == 0
    os.chmod(var / "gallery.db", 0o644)
    capsys.readouterr()
    assert facegate(var, "people", "list") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"facegate: error: gallery {var}/gallery.db")
    assert err.rstrip().endswith(f"fix: chmod 600 {var}/gallery.db")


def test_events_refuses_an_event_log_others_may_write(var, capsys):
    with EventWriter(var / "events.db") as writer:
        writer.record("started")
    os.chmod(var / "events.db", 0o666)
    assert facegate(var, "events") == 1
    err = capsys.readouterr().err
    assert err == (
        f"facegate: error: event log {var}/events.db refused: writable by group or others "
        f"(mode 666); fix: chmod 600 {var}/events.db\n"
    )


def test_events_refuses_an_event_log_behind_a_symbolic_link(var, tmp_path, capsys):
    os.symlink(tmp_path / "elsewhere.db", var / "events.db")
    assert facegate(var, "events") == 1  # not "no events yet": the link is not followed
    assert "refused: a symbolic link" in capsys.readouterr().err
