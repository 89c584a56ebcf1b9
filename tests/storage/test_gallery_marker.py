"""A gallery that existed is never quietly re-created empty (issue 15, item 9).

Real SQLite galleries in ``tmp_path``; the marker beside each is a real file, removed,
emptied or tampered with the way an accident or an attacker would.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from pi_facegate.exc import GalleryError
from pi_facegate.storage.gallery import Gallery
from pi_facegate.storage.gallery_marker import marker_path, read_marker

FP = "test-embedder:0123456789abcdef"
D = 128


def vec() -> np.ndarray:
    return np.ones((1, D), np.float32) / np.sqrt(D)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "gallery.db"


def lose(path: Path) -> None:
    """The gallery and its SQLite sidecars are gone; the rest of the directory is not."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def make(path: Path, people: int = 1) -> str:
    with Gallery.open(path, FP, D) as g:
        for i in range(people):
            g.add_person(f"person {i}", vec())
        return g.created


def test_a_new_gallery_leaves_a_private_marker_that_learns_of_its_first_person(path):
    with Gallery.open(path, FP, D) as g:
        marker = read_marker(path)
        assert marker is not None and marker.created == g.created and not marker.had_people
        g.add_person("Alice", vec())
        assert read_marker(path).had_people
    assert marker_path(path) == path.parent / ".gallery.db-created"
    assert os.stat(marker_path(path)).st_mode & 0o777 == 0o600


@pytest.mark.parametrize("create", [True, False])
def test_a_vanished_gallery_is_refused_not_re_created(path, create):
    created = make(path)
    lose(path)
    with pytest.raises(GalleryError) as refused:
        Gallery.open(path, FP, D, create=create)
    assert str(refused.value) == (
        f"the gallery {path} existed (created {created}) and is gone: restore it from a "
        "backup, or `facegate gallery init --force` to start empty"
    )
    assert not path.exists()


def test_a_gallery_emptied_to_a_zero_byte_file_is_refused_not_re_created(path):
    make(path)
    lose(path)
    path.touch(mode=0o600)
    with pytest.raises(GalleryError, match="existed .* and is now an empty file"):
        Gallery.open(path, FP, D)
    assert path.stat().st_size == 0


def test_starting_over_on_purpose_makes_a_new_empty_gallery_and_marker(path):
    make(path)
    lose(path)
    with Gallery.open(path, FP, D, recreate=True) as g:
        assert g.people() == [] and not g.emptied()  # new: not the old one emptied
    marker = read_marker(path)
    assert marker.created == g.created and not marker.had_people
    lose(path)  # and the new one, once gone, is refused in turn
    with pytest.raises(GalleryError, match="and is gone"):
        Gallery.open(path, FP, D)


def test_a_gallery_made_before_markers_gets_one_when_opened(path):
    created = make(path)
    marker_path(path).unlink()
    with Gallery.open(path, None, create=False) as g:  # e.g. `facegate people list`
        assert g.marker is None
    assert read_marker(path).created == created and read_marker(path).had_people
    lose(path)
    with pytest.raises(GalleryError, match="and is gone"):
        Gallery.open(path, FP, D)


def test_a_gallery_whose_people_were_all_removed_says_it_was_emptied(path):
    make(path, people=2)
    with Gallery.open(path, FP, D) as g:
        assert not g.emptied()
        g.remove("person 0")
        g.remove("person 1")
    with Gallery.open(path, FP, D) as g:
        assert g.emptied()
    assert read_marker(path).had_people  # and stays so: it keeps saying it at every start


def test_a_gallery_nobody_was_ever_enrolled_in_is_not_emptied(path):
    make(path, people=0)
    with Gallery.open(path, FP, D) as g:
        assert g.people() == [] and not g.emptied()


def test_a_marker_others_could_have_written_is_refused(path):
    make(path)
    os.chmod(marker_path(path), 0o666)
    with pytest.raises(GalleryError, match="gallery marker .* writable by group or others"):
        Gallery.open(path, FP, D)


def test_a_marker_that_is_not_one_is_refused_with_advice(path):
    make(path)
    marker_path(path).write_text(json.dumps(["not", "a", "marker"]))
    with pytest.raises(GalleryError, match="is not a gallery marker: remove it if"):
        Gallery.open(path, FP, D)
