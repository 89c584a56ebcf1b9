"""``facegate gallery export`` / ``gallery import``: people shared between two doors.

Each "door" is its own state dir (0700) and config file; the CLI runs through ``main([...])``
and imports load the real bundled embedder, as ``enroll`` does. The galleries are real files
made with :class:`Gallery` and the configured embedder's fingerprint; random unit vectors do
for the mechanics, real photos (through ``facegate enroll``) for the lookalike rule.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from pi_facegate.cli import main
from pi_facegate.config.loader import load_config
from pi_facegate.daemon import wiring as components
from pi_facegate.storage.gallery import Gallery
from pi_facegate.storage.gallery_export_file import write_export

CONFIG_A = "schedules:\n  office: ['Mon-Fri 07:00-19:00']\n"
CONFIG_B = "schedules:\n  weekend: ['Sat,Sun 10:00-14:00']\n"


def make_door(folder: Path, config: str) -> Path:
    folder.mkdir(mode=0o700)
    (folder / "config.yaml").write_text(config)
    return folder


def fingerprint(door: Path) -> str:
    config = load_config(door / "config.yaml")
    return components.embedder_fingerprint(components.load_manifest(config.embedder.model))


def unit(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, 128)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
def door_a(tmp_path: Path) -> Path:
    door = make_door(tmp_path / "a", CONFIG_A)
    with Gallery.open(door / "gallery.db", fingerprint(door)) as g:
        g.add_person("Ada", unit(2, 1), note="engineer")
        g.add_person("Bob", unit(1, 2), enabled=False)
        g.add_person("Cleo", unit(3, 3))
        g.set_access("Cleo", schedule="office")
    return door


@pytest.fixture
def door_b(tmp_path: Path) -> Path:
    return make_door(tmp_path / "b", CONFIG_B)


def facegate(capsys, door: Path, *words: str) -> tuple[int, str, str]:
    code = main([*words, "--config", str(door / "config.yaml"), "--state-dir", str(door)])
    out, err = capsys.readouterr()
    return code, out, err


def main_in(capsys, state: Path, *words: str) -> tuple[int, str, str]:
    """``facegate WORDS`` with the default config and ``state`` as the state dir."""
    code = main([*words, "--state-dir", str(state)])
    out, err = capsys.readouterr()
    return code, out, err


def export(capsys, door: Path, *extra: str) -> Path:
    file = door / "people.json"
    code, out, err = facegate(capsys, door, "gallery", "export", str(file), *extra)
    assert code == 0, err
    return file


def dump(door: Path) -> tuple[list, ...]:
    """Every row of the door's gallery: what "unchanged" means."""
    conn = sqlite3.connect(door / "gallery.db")
    try:
        tables = ("meta", "people", "embeddings")
        return tuple(conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in tables)
    finally:
        conn.close()


def people(door: Path) -> dict[str, tuple]:
    with Gallery.open(door / "gallery.db", None, create=False) as g:
        return {
            p.name: ((p.enabled, p.pending, p.created, p.note, p.schedule), g.vectors(p.id))
            for p in g.people()
        }


def rewrite(file: Path, change) -> Path:
    """The export at ``file`` with ``change(data)`` applied, written as export does (0600)."""
    data = json.loads(file.read_text())
    change(data)
    write_export(file, json.dumps(data), force=True)
    return file


def test_export_then_import_on_another_door_gives_the_same_people(capsys, door_a, door_b):
    code, out, err = facegate(capsys, door_a, "gallery", "export", str(door_a / "people.json"))
    assert code == 0, err
    assert out.startswith(f"exported 3 people from {door_a}/gallery.db to {door_a}/people.json")
    file = door_a / "people.json"
    assert file.stat().st_mode & 0o777 == 0o600
    code, out, err = facegate(capsys, door_b, "gallery", "import", str(file))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"{file}: 3 people, exported ")
    assert lines[1:] == [
        f"{door_b}/gallery.db: added 3, updated 0, skipped 0",
        "  added: Ada, Bob, Cleo",
        "warning: Cleo: schedule 'office' is not defined in this door's config: denied here "
        "until it is (or facegate people set NAME --schedule/--no-schedule)",
    ]
    a, b = people(door_a), people(door_b)
    assert a.keys() == b.keys()
    for name in a:
        assert a[name][0] == b[name][0] and np.array_equal(a[name][1], b[name][1]), name
    code, out, _ = facegate(capsys, door_b, "people", "list")
    assert "office (not in config: denied)" in out


def test_skip_then_update(capsys, door_a, door_b):
    with Gallery.open(door_b / "gallery.db", fingerprint(door_b)) as g:
        g.add_person("Ada", unit(1, 1)[:, ::-1].copy(), note="old")
    file = export(capsys, door_a)
    code, out, err = facegate(capsys, door_b, "gallery", "import", str(file))
    assert code == 0, err
    assert out.splitlines()[1:3] == [
        f"{door_b}/gallery.db: added 2, updated 0, skipped 1",
        "  added: Bob, Cleo",
    ]
    assert "  skipped Ada: already enrolled as 'Ada' (--update replaces)" in out
    assert people(door_b)["Ada"][0][3] == "old"
    code, out, err = facegate(capsys, door_b, "gallery", "import", str(file), "--update")
    assert code == 0, err
    assert f"{door_b}/gallery.db: added 0, updated 1, skipped 2" in out
    assert "  skipped Bob: unchanged" in out
    ada_here, ada_there = people(door_b)["Ada"], people(door_a)["Ada"]
    assert ada_here[0][3] == "engineer" and np.array_equal(ada_here[1], ada_there[1])


def test_dry_run_reports_and_changes_nothing(capsys, door_a, door_b):
    file = export(capsys, door_a)
    code, out, err = facegate(capsys, door_b, "gallery", "import", str(file), "--dry-run")
    assert code == 0, err
    assert f"dry run, nothing changed: {door_b}/gallery.db: would add 3, update 0, skip 0" in out
    assert "  to add: Ada, Bob, Cleo" in out
    assert not (door_b / "gallery.db").exists()  # not even an empty gallery
    with Gallery.open(door_b / "gallery.db", fingerprint(door_b)) as g:
        g.add_person("Bob", unit(1, 9))
    before = dump(door_b)
    code, out, _ = facegate(capsys, door_b, "gallery", "import", str(file), "--dry-run", "--update")
    assert "would add 2, update 1, skip 0" in out and dump(door_b) == before


def test_a_file_from_another_model_is_refused_and_the_gallery_unchanged(capsys, door_a, door_b):
    with Gallery.open(door_b / "gallery.db", fingerprint(door_b)) as g:
        g.add_person("Zed", unit(1, 7))
    before = dump(door_b)
    file = rewrite(
        export(capsys, door_a),
        lambda d: d["embedder"].update(fingerprint="facenet_512:0123456789abcdef"),
    )
    code, out, err = facegate(capsys, door_b, "gallery", "import", str(file))
    assert code == 1 and out == ""
    assert err.startswith(f"facegate: error: gallery export {file} was made by embedder ")
    assert "'facenet_512:0123456789abcdef' (128-value embeddings)" in err
    assert f"this door's embedder is '{fingerprint(door_b)}' (128-value)" in err
    assert dump(door_b) == before


@pytest.mark.parametrize(
    "change, problem",
    [
        (lambda d: d["people"][2]["embeddings"].append("AAAA"), "people[2] ('Cleo').embeddings[3]: 0.75 values, not 128"),
        (lambda d: d["people"][2].update(name="Cl\neo"), "people[2].name: a person's name must not contain control"),
        (lambda d: d.update(format_version=2), "format_version 2"),
    ],
    ids=["short vector in the 3rd person", "bad name of the 3rd person", "newer format"],
)  # fmt: skip
def test_a_malformed_file_is_refused_and_the_gallery_unchanged(
    capsys, door_a, door_b, change, problem
):
    with Gallery.open(door_b / "gallery.db", fingerprint(door_b)) as g:
        g.add_person("Zed", unit(1, 7))
    before = dump(door_b)
    file = rewrite(export(capsys, door_a), change)
    code, out, err = facegate(capsys, door_b, "gallery", "import", str(file))
    assert code == 1 and out == "" and err.count("\n") == 1
    assert problem in err and err.rstrip().endswith("nothing imported")
    assert dump(door_b) == before


def test_truncated_and_untrusted_files_are_refused(capsys, door_a, door_b):
    file = export(capsys, door_a)
    cut = door_a / "cut.json"
    write_export(cut, file.read_text()[:500])
    code, _, err = facegate(capsys, door_b, "gallery", "import", str(cut))
    assert code == 1 and "refused: not valid JSON" in err
    os.chmod(file, 0o666)
    code, _, err = facegate(capsys, door_b, "gallery", "import", str(file))
    assert code == 1 and err.rstrip().endswith(f"fix: chmod 600 {file}")
    assert not (door_b / "gallery.db").exists()


def test_export_refuses_a_missing_gallery_and_an_existing_file(capsys, tmp_path, door_a):
    missing = tmp_path / "nowhere"
    code, _, err = main_in(capsys, missing, "gallery", "export", str(tmp_path / "x.json"))
    assert code == 1 and f"no gallery at {missing}/gallery.db" in err
    assert not missing.exists() and not (tmp_path / "x.json").exists()
    file = export(capsys, door_a)
    code, _, err = facegate(capsys, door_a, "gallery", "export", str(file))
    assert code == 1 and "exists already: nothing written (--force replaces it)" in err
    assert export(capsys, door_a, "--force") == file
    code, _, err = facegate(
        capsys, door_a, "gallery", "export", str(door_a / "gallery.db"), "--force"
    )
    assert code == 1 and "is the gallery itself" in err


def test_an_empty_gallery_exports_zero_people(capsys, door_b):
    assert facegate(capsys, door_b, "gallery", "init")[0] == 0
    code, out, _ = facegate(capsys, door_b, "gallery", "export", str(door_b / "none.json"))
    assert code == 0 and out.startswith("exported 0 people")


def test_usage_errors_exit_2(capsys, door_b):
    assert facegate(capsys, door_b, "gallery", "import")[0] == 2
    assert facegate(capsys, door_b, "gallery", "export", "f.json", "--update")[0] == 2


def test_obama_enrolled_as_miranda_elsewhere_is_not_imported(capsys, facedata, door_a, door_b):
    """Real photos: door A has Obama's face under Lin-Manuel Miranda's name (enrolled there
    by mistake, or on purpose); door B knows Obama. Miranda's entry is refused at B."""
    photos = facedata / "face_recognition_examples" / "examples"
    code, _, err = facegate(
        capsys, door_a, "enroll", "Lin-Manuel Miranda", str(photos / "obama.jpg")
    )
    assert code == 0, err
    code, _, err = facegate(capsys, door_b, "enroll", "Barack Obama", str(photos / "obama2.jpg"))
    assert code == 0, err
    code, out, err = facegate(capsys, door_b, "gallery", "import", str(export(capsys, door_a)))
    assert code == 0, err
    assert f"{door_b}/gallery.db: added 3, updated 0, skipped 1" in out
    assert "  skipped Lin-Manuel Miranda: the face matches 'Barack Obama' (distance 0." in out
    assert "Lin-Manuel Miranda" not in people(door_b)
