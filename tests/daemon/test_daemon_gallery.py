"""``facegate run`` and its gallery: a planted gallery or a lost one stops the daemon.

Issue 15, items 8 and 9. The daemon runs in this process through the CLI's ``main`` (as
in ``test_daemon.py``), on real files: a gallery another user could have put in place is
refused before any model loads, with one line naming the file and the fix; a gallery
that existed and is gone is refused until it is restored or started over on purpose; a
first run, and a gallery emptied of everybody, start with a warning that nobody is let in.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pi_facegate.cli import main
from pi_facegate.storage.events import EventLog
from pi_facegate.storage.gallery_marker import marker_path, read_marker

pytestmark = pytest.mark.slow

LIN = "Lin-Manuel Miranda"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    # still photos for frames: liveness (which refuses photos) is off, this is about files
    path = tmp_path / "config.yaml"
    path.write_text("camera:\n  detect_width: 320\nliveness:\n  enabled: false\n")
    return path


@pytest.fixture
def var(tmp_path: Path) -> Path:
    folder = tmp_path / "var"
    folder.mkdir(mode=0o700)
    return folder


@pytest.fixture
def frames(facedata: Path, tmp_path: Path) -> Path:
    """Barack Obama at the door: three photos as a replayed camera."""
    examples = facedata / "face_recognition_examples" / "examples"
    folder = tmp_path / "frames"
    folder.mkdir()
    for name in ("obama.jpg", "obama2.jpg", "obama-480p.jpg"):
        (folder / name).symlink_to(examples / name)
    return folder


@pytest.fixture
def mallorys_gallery(facedata: Path, tmp_path: Path, in_process) -> Path:
    """Another user's gallery: Barack Obama enrolled as Lin-Manuel Miranda (mode 0600)."""
    home = tmp_path / "mallory"
    home.mkdir()
    (home / "config.yaml").write_text("liveness:\n  enabled: false\n")
    gallery = home / "gallery" / "gallery.db"
    obama = facedata / "face_recognition_examples" / "examples" / "obama.jpg"
    status = main(
        [
            "enroll",
            "--config",
            str(home / "config.yaml"),
            "--gallery",
            str(gallery),
            LIN,
            str(obama),
        ]
    )
    assert status == 0
    return gallery


def facegate(config: Path, var: Path, *words: str) -> int:
    """``facegate WORDS... --config CONFIG --state-dir VAR`` (options last: on the leaf)."""
    return main([*words, "--config", str(config), "--state-dir", str(var)])


def run(config: Path, var: Path, frames: Path) -> int:
    return facegate(
        config, var, "run", "--replay", str(frames), "--replay-fps", "0", "--simulate-gpio"
    )


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def plant(gallery: Path, var: Path) -> Path:
    """Put Mallory's gallery where the daemon looks for its own."""
    target = var / "gallery.db"
    shutil.copy2(gallery, target)  # her file, her mode (0600)
    return target


# ---------------------------------------------------------------------- item 8


def test_a_state_dir_others_may_write_stops_the_daemon(
    mallorys_gallery, config, var, frames, in_process, capfd
):
    # the case: in a 0777 state dir another user replaced gallery.db with her own
    os.chmod(var, 0o777)
    plant(mallorys_gallery, var)
    capfd.readouterr()
    assert run(config, var, frames) == 1
    assert last_line(capfd.readouterr().err) == (
        f"facegate: error: gallery directory {var} refused: writable by group or others "
        f"(mode 777), so another user could replace the gallery; fix: chmod 700 {var}"
    )
    assert not (var / "events.db").exists()  # refused before anything started: no grant


def test_a_gallery_owned_by_another_user_stops_the_daemon(
    mallorys_gallery, config, var, frames, in_process, capfd
):
    if os.geteuid() != 0:
        pytest.skip("only root can give the gallery to another user (os.chown)")
    gallery = plant(mallorys_gallery, var)
    os.chown(gallery, 65534, 65534)  # "their own file, 0600"
    capfd.readouterr()
    assert run(config, var, frames) == 1
    line = last_line(capfd.readouterr().err)
    assert line.startswith(
        f"facegate: error: gallery {gallery} refused: owned by uid 65534 (nobody), not by root"
    )
    assert f"fix: chown root {gallery}; else someone else may have put it there" in line
    assert line.endswith("restore the gallery from a backup")
    assert not (var / "events.db").exists()


@pytest.mark.parametrize("mode", [0o666, 0o644], ids=["0666", "0644"])
def test_a_gallery_others_may_read_or_write_stops_the_daemon_and_the_cli(
    mallorys_gallery, config, var, frames, in_process, capfd, mode
):
    gallery = plant(mallorys_gallery, var)
    os.chmod(gallery, mode)
    capfd.readouterr()
    assert run(config, var, frames) == 1
    line = last_line(capfd.readouterr().err)
    assert line.startswith(f"facegate: error: gallery {gallery} refused: ")
    assert line.endswith(f"fix: chmod 600 {gallery}")
    assert facegate(config, var, "people", "list") == 1  # the read-only paths refuse it too
    assert last_line(capfd.readouterr().err) == line


# ---------------------------------------------------------------------- item 9


def test_a_vanished_gallery_stops_the_daemon_until_restored_or_started_over(
    facedata, config, var, frames, in_process, capfd
):
    lin = facedata / "face_recognition_examples" / "examples" / "lin-manuel-miranda.png"
    assert facegate(config, var, "enroll", LIN, str(lin)) == 0
    gallery = var / "gallery.db"
    created = read_marker(gallery).created
    backup = var.parent / "backup.db"
    shutil.copy2(gallery, backup)
    gallery.unlink()
    capfd.readouterr()

    assert run(config, var, frames) == 1
    lost = (
        f"the gallery {gallery} existed (created {created}) and is gone: restore it from a "
        "backup, or `facegate gallery init --force` to start empty"
    )
    assert last_line(capfd.readouterr().err) == f"facegate: error: {lost}"
    assert not gallery.exists() and not (var / "events.db").exists()
    for command in (["people", "list"], ["gallery", "init"]):  # nothing else re-creates it
        assert facegate(config, var, *command) == 1
        assert last_line(capfd.readouterr().err) == f"facegate: error: {lost}"

    shutil.copy2(backup, gallery)  # restored: everything works again
    assert facegate(config, var, "people", "list", "--json") == 0
    assert LIN in capfd.readouterr().out

    gallery.unlink()
    assert facegate(config, var, "gallery", "init", "--force") == 0
    assert "created an empty gallery" in capfd.readouterr().out
    assert run(config, var, frames) == 0
    assert f"the gallery {gallery} is empty: nobody is let in" in capfd.readouterr().err


def test_a_first_run_starts_with_an_empty_gallery_and_says_nobody_is_let_in(
    config, var, frames, in_process, capfd
):
    # the README's Pi flow starts the service before anyone is enrolled: that still works
    assert run(config, var, frames) == 0
    err = capfd.readouterr().err
    assert f"the gallery {var / 'gallery.db'} is empty: nobody is let in" in err
    assert read_marker(var / "gallery.db") is not None
    assert os.stat(marker_path(var / "gallery.db")).st_mode & 0o777 == 0o600
    kinds = [e.kind for e in EventLog(var / "events.db").query()]
    assert kinds[0] == "started" and "granted" not in kinds


def test_a_gallery_emptied_of_everybody_is_reported_at_start(
    facedata, config, var, frames, in_process, capfd
):
    obama = facedata / "face_recognition_examples" / "examples" / "obama.jpg"
    assert facegate(config, var, "enroll", "Barack Obama", str(obama)) == 0
    assert facegate(config, var, "people", "remove", "Barack Obama") == 0
    capfd.readouterr()
    assert run(config, var, frames) == 0
    err = capfd.readouterr().err
    assert "holds nobody, but people were enrolled in it" in err and "it was emptied" in err
    kinds = [e.kind for e in EventLog(var / "events.db").query()]
    assert "granted" not in kinds
