"""Gallery export files: the format, its strict checks, and the one-transaction import.

Real SQLite galleries made with :class:`Gallery` in ``tmp_path`` (0700 folders, this user's),
the real fingerprint of the bundled embedder's manifest, random unit float32 vectors for
the mechanics (two of them are ~1.4 apart: strangers to the 0.6 threshold). A failure in
the middle of an import is a real one: an SQLite trigger that refuses the third person.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from pi_facegate.daemon.wiring import embedder_fingerprint
from pi_facegate.exc import GalleryError, GalleryMismatchError
from pi_facegate.storage.gallery import Gallery
from pi_facegate.storage.gallery_export_file import (
    check_embedder,
    export_gallery,
    parse_export,
    read_export,
    to_json,
    write_export,
)
from pi_facegate.storage.gallery_transfer import (
    ADD,
    SKIP,
    UPDATE,
    apply_import,
    plan_import,
)
from pi_facegate.vision.manifest import load_manifest

MANIFEST = load_manifest("dlib_resnet_v1_int8")
FP = embedder_fingerprint(MANIFEST)
D = int(MANIFEST["embedding"]["size"])
THRESHOLD = float(MANIFEST["embedding"]["threshold"])
MARGIN = float(MANIFEST["embedding"]["min_margin"])
NOBODY = 65534


def unit(n: int = 2, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, D)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def door(folder: Path) -> Path:
    folder.mkdir(mode=0o700, parents=True)
    return folder / "gallery.db"


def dump(path: Path) -> tuple[list, ...]:
    """Every row of the gallery's tables: what "unchanged" means."""
    conn = sqlite3.connect(path)
    try:
        return tuple(
            conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
            for table in ("meta", "people", "embeddings")
        )
    finally:
        conn.close()


@pytest.fixture
def door_a(tmp_path: Path) -> Path:
    """A door with four people: every flag and access field used at least once."""
    path = door(tmp_path / "a")
    with Gallery.open(path, FP, D) as g:
        g.add_person("Ada", unit(3, 1), note="engineer")
        g.add_person("Bob", unit(1, 2), enabled=False)
        g.add_person("pending-20270101-120000", unit(2, 3), pending=True)
        g.add_person("Émile", unit(2, 4))
        g.set_access("Émile", schedule="office", valid_from=date(2027, 1, 1))
        g.set_access("Ada", valid_until=date(2027, 12, 31))
    return path


def export_to(gallery_path: Path, file: Path) -> Path:
    with Gallery.open(gallery_path, None, create=False) as g:
        write_export(file, to_json(export_gallery(g)))
    return file


def import_into(
    gallery_path: Path, file: Path, update: bool = False, schedules=None, apply: bool = True
):
    export = read_export(file)
    check_embedder(export, file, FP, D)
    with Gallery.open(gallery_path, FP, D) as g:
        plan = plan_import(
            g, export, update=update, threshold=THRESHOLD, min_margin=MARGIN, schedules=schedules
        )
        if apply:
            apply_import(g, plan)
    return plan


def people_and_vectors(path: Path) -> dict[str, tuple]:
    with Gallery.open(path, None, create=False) as g:
        return {
            p.name: (
                (p.enabled, p.pending, p.created, p.note, p.schedule, p.valid_from, p.valid_until),
                g.vectors(p.id),
            )
            for p in g.people()
        }


# ------------------------------------------------------------------------------ round trip


def test_round_trip_gives_another_door_identical_people_and_vectors(tmp_path, door_a):
    file = export_to(door_a, tmp_path / "a" / "people.json")
    door_b = door(tmp_path / "b")
    plan = import_into(door_b, file)
    assert sorted(plan.names(ADD)) == sorted(people_and_vectors(door_a))
    a, b = people_and_vectors(door_a), people_and_vectors(door_b)
    assert a.keys() == b.keys()
    for name in a:
        assert a[name][0] == b[name][0], name  # flags, created, note, schedule, dates
        assert b[name][1].dtype == np.float32 and np.array_equal(a[name][1], b[name][1]), name
    with Gallery.open(door_b, FP, D) as g:
        assert g.emptied() is False and g.marker and g.marker.had_people


def test_the_file_is_private_json_naming_its_embedder_and_never_overwritten(tmp_path, door_a):
    file = export_to(door_a, tmp_path / "a" / "people.json")
    assert file.stat().st_mode & 0o777 == 0o600
    data = json.loads(file.read_text())
    assert data["format_version"] == 1 and data["pi_facegate_version"]
    assert data["embedder"] == {
        "fingerprint": FP,
        "embedding_size": D,
        "encoding": "base64 float32 little-endian",
    }
    assert len(base64.b64decode(data["people"][0]["embeddings"][0])) == 4 * D
    assert "photo" not in file.read_text()
    before = file.read_bytes()
    with pytest.raises(GalleryError, match="exists already: nothing written"):
        export_to(door_a, file)
    assert file.read_bytes() == before
    with Gallery.open(door_a, None, create=False) as g:
        write_export(file, to_json(export_gallery(g)), force=True)
    assert file.stat().st_mode & 0o777 == 0o600
    assert not [n for n in os.listdir(file.parent) if n.endswith(".tmp")]


def test_an_empty_gallery_exports_and_imports_nobody(tmp_path):
    empty = door(tmp_path / "a")
    Gallery.open(empty, FP, D).close()
    file = export_to(empty, tmp_path / "a" / "none.json")
    assert json.loads(file.read_text())["people"] == []
    target = door(tmp_path / "b")
    assert import_into(target, file).decisions == ()


# ------------------------------------------------------------------------------ refusals


def test_a_file_of_another_embedder_is_refused_naming_both(tmp_path, door_a):
    export = read_export(export_to(door_a, tmp_path / "a" / "people.json"))
    with pytest.raises(GalleryMismatchError) as e:
        check_embedder(export, "people.json", "other_model:0123456789abcdef", D)
    assert FP in str(e.value) and "other_model:0123456789abcdef" in str(e.value)
    with pytest.raises(GalleryMismatchError, match="128-value embeddings.*512-value"):
        check_embedder(export, "people.json", FP, 512)


def test_no_plan_puts_another_models_embeddings_into_a_gallery(tmp_path, door_a):
    export = read_export(export_to(door_a, tmp_path / "a" / "people.json"))
    other = door(tmp_path / "b")
    with Gallery.open(other, "other_model:0123456789abcdef", D) as g:
        before = dump(other)
        with pytest.raises(GalleryMismatchError, match="other_model:0123456789abcdef"):
            plan_import(g, export, update=False, threshold=THRESHOLD, min_margin=MARGIN)
    assert dump(other) == before


def test_a_normalising_embedder_refuses_vectors_that_are_not_unit_length():
    check_embedder(parse_export(json.dumps(_file())), "f", FP, D, normalised=True)
    longer = _file(person__embeddings=[_b64(unit(1)[0] * 1.5)])
    check_embedder(parse_export(json.dumps(longer)), "f", FP, D)  # dlib's are not unit
    with pytest.raises(GalleryError, match="'Ada' has embeddings that are not of length 1"):
        check_embedder(parse_export(json.dumps(longer)), "f", FP, D, normalised=True)


def _b64(vector: np.ndarray) -> str:
    return base64.b64encode(vector.astype("<f4").tobytes()).decode()


def _file(**changes) -> dict:
    """A valid one-person file as a dict; ``person__KEY`` changes the person."""
    person = {
        "name": "Ada",
        "enabled": True,
        "pending": False,
        "created": "2027-01-01T00:00:00+00:00",
        "note": "",
        "schedule": None,
        "valid_from": None,
        "valid_until": None,
        "embeddings": [_b64(unit(1)[0])],
    }
    data = {
        "format": "pi-facegate-gallery-export",
        "format_version": 1,
        "pi_facegate_version": "0.1.0",
        "exported": "2027-01-02T00:00:00+00:00",
        "embedder": {
            "fingerprint": FP,
            "embedding_size": D,
            "encoding": "base64 float32 little-endian",
        },
        "people": [person],
    }
    for key, value in changes.items():
        target, key = (person, key[8:]) if key.startswith("person__") else (data, key)
        if value is KeyError:
            del target[key]
        else:
            target[key] = value
    return data


NAN = _b64(np.full(D, np.nan, np.float32))
INF = _b64(np.r_[np.inf, np.zeros(D - 1)].astype(np.float32))
MALFORMED = {
    "wrong format version": (_file(format_version=2), "format_version 2: this version reads 1 (made by a newer"),
    "not an export": (_file(format="something else"), "format is 'something else'"),
    "short vector": (_file(person__embeddings=[_b64(unit(1)[0][:127])]), "people[0] ('Ada').embeddings[0]: 127 values, not 128"),
    "NaN": (_file(person__embeddings=[NAN]), "NaN or infinite"),
    "infinity": (_file(person__embeddings=[INF]), "NaN or infinite"),
    "zero vector": (_file(person__embeddings=[_b64(np.zeros(D, np.float32))]), "a zero vector"),
    "no embeddings": (_file(person__embeddings=[]), "at least one embedding"),
    "not base64": (_file(person__embeddings=["!!!!" * 10]), "not base64"),
    "control character in name": (_file(person__name="Ada\x1b[2J"), "must not contain control characters"),
    "empty name": (_file(person__name="  "), "people[0].name: a person's name must not be empty"),
    "overlong name": (_file(person__name="A" * 101), "at most 100 characters"),
    "unknown key": (_file(person__photo="ada.jpg"), "has unknown keys photo"),
    "missing key": (_file(person__pending=KeyError), "lacks pending"),
    "int for a flag": (_file(person__enabled=1), "enabled is not true or false: 1"),
    "bad date": (_file(person__valid_until="31/12/2027"), "valid_until is not a date YYYY-MM-DD"),
    "dates reversed": (_file(person__valid_from="2027-02-01", person__valid_until="2027-01-01"), "is after valid_until"),
    "bad schedule name": (_file(person__schedule="no such\nschedule"), "cannot name a schedule"),
    "note with escapes": (_file(person__note="\x1b]0;owned\x07"), "control characters"),
    "bad time": (_file(person__created="yesterday"), "created is not an ISO 8601 time"),
    "string size": (_file(embedder={"fingerprint": FP, "embedding_size": "128", "encoding": "base64 float32 little-endian"}), "embedding_size is not an integer"),
}  # fmt: skip


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_a_malformed_file_is_refused_naming_the_problem(case):
    data, problem = MALFORMED[case]
    with pytest.raises(GalleryError) as e:
        parse_export(json.dumps(data), "people.json")
    assert str(e.value).startswith("gallery export people.json refused: ")
    assert problem in str(e.value) and str(e.value).endswith("; nothing imported")


@pytest.mark.parametrize(
    "text, problem",
    [
        ("{", "not valid JSON"),
        ('{"format": 1, "format": 2}', "the key 'format' appears twice"),
        (json.dumps(_file())[:-40], "not valid JSON"),
        (json.dumps(_file()).replace('"format_version": 1', '"format_version": NaN'), "NaN is not a number"),
        ("[]", "the file is not a JSON object"),
    ],
    ids=["truncated brace", "duplicate key", "truncated", "NaN literal", "a list"],
)  # fmt: skip
def test_text_that_is_not_strict_json_is_refused(text, problem):
    with pytest.raises(GalleryError, match=problem):
        parse_export(text, "people.json")


def test_two_people_with_one_name_are_refused():
    data = _file()
    data["people"].append({**data["people"][0], "name": "ADA"})
    with pytest.raises(GalleryError, match="two people are named 'Ada' and 'ADA'"):
        parse_export(json.dumps(data))


def test_untrusted_files_are_refused(tmp_path, door_a):
    file = export_to(door_a, tmp_path / "a" / "people.json")
    link = tmp_path / "a" / "link.json"
    link.symlink_to(file)
    with pytest.raises(GalleryError, match="a symbolic link"):
        read_export(link)
    os.chmod(file, 0o620)
    with pytest.raises(GalleryError, match="writable by group or others"):
        read_export(file)
    os.chmod(file, 0o600)
    if os.geteuid() == 0:  # only root can give a file away
        os.chown(file, NOBODY, -1)
        with pytest.raises(GalleryError, match="owned by uid 65534"):
            read_export(file)
    with pytest.raises(GalleryError, match="no gallery export at"):
        read_export(tmp_path / "a" / "missing.json")


# ------------------------------------------------------------------------------ import rules


def test_people_already_here_are_skipped_unless_update_replaces_them(tmp_path, door_a):
    file = export_to(door_a, tmp_path / "a" / "people.json")
    door_b = door(tmp_path / "b")
    with Gallery.open(door_b, FP, D) as g:
        g.add_person("ada", unit(1, 99), note="local")  # another case: the same person
    plan = import_into(door_b, file)
    assert [d.reason for d in plan.decisions if d.action == SKIP] == [
        "already enrolled as 'ada' (--update replaces)"
    ]
    local = people_and_vectors(door_b)["ada"]
    assert local[0][3] == "local"
    plan = import_into(door_b, file, update=True)
    assert plan.names(UPDATE) == ["Ada"] and plan.names(ADD) == []
    here, there = people_and_vectors(door_b), people_and_vectors(door_a)
    assert np.array_equal(here["ada"][1], there["Ada"][1])  # the embeddings are replaced
    assert here["ada"][0][3:] == there["Ada"][0][3:]  # note, schedule, dates
    assert here["ada"][0][2] == local[0][2]  # this door's creation time and spelling stay
    again = import_into(door_b, file, update=True)
    assert {d.reason for d in again.decisions} == {"unchanged"} and not again.changes


def test_a_face_already_enrolled_under_another_name_is_skipped(tmp_path, door_a):
    """Obama's embeddings in the file under Miranda's name: skipped with the reason."""
    obama = unit(2, 50)
    with Gallery.open(door_a, FP, D) as g:
        noise = np.random.default_rng(7).normal(0, 0.01, obama.shape).astype(np.float32)
        g.add_person("Lin-Manuel Miranda", obama + noise)
        g.add_person("Miranda's twin", obama - noise)  # the same face twice in one file
    file = export_to(door_a, tmp_path / "a" / "people.json")
    door_b = door(tmp_path / "b")
    with Gallery.open(door_b, FP, D) as g:
        g.add_person("Barack Obama", obama)
    plan = import_into(door_b, file)
    skipped = {d.person.name: d.reason for d in plan.decisions if d.action == SKIP}
    assert set(skipped) == {"Lin-Manuel Miranda", "Miranda's twin"}
    assert skipped["Lin-Manuel Miranda"].startswith("the face matches 'Barack Obama' (distance 0.")
    assert sorted(plan.names(ADD)) == ["Ada", "Bob", "pending-20270101-120000", "Émile"]
    assert "Lin-Manuel Miranda" not in people_and_vectors(door_b)


def test_the_same_face_twice_in_a_file_comes_in_once(tmp_path):
    source = door(tmp_path / "a")
    face = unit(1, 5)
    with Gallery.open(source, FP, D) as g:
        g.add_person("Ann", face)
        g.add_person("Anne", face + 0.001)
    plan = import_into(door(tmp_path / "b"), export_to(source, tmp_path / "a" / "f.json"))
    assert plan.names(ADD) == ["Ann"]
    assert [d.reason[:26] for d in plan.decisions if d.action == SKIP] == [
        "the face matches 'Ann' (di"
    ]


def test_a_face_between_two_people_is_recognised_as_neither_and_comes_in(tmp_path):
    """The lookalike rule is the door's: within the threshold of two people but not clearly
    nearer one (the margin) is recognised as nobody, so it is no lookalike."""
    base, u, w = unit(3, 11)
    w = w - (w @ u) * u  # at right angles to u (a unit vector)
    a, b = 0.1 * u, 0.3 * w / np.linalg.norm(w)
    source, target = door(tmp_path / "a"), door(tmp_path / "b")
    with Gallery.open(source, FP, D) as g:
        g.add_person("Pat", base + b)
    with Gallery.open(target, FP, D) as g:
        g.add_person("Sam", base + a)
        g.add_person("Sid", base - a)  # Pat is 0.316 from both: margin 0
    plan = import_into(target, export_to(source, tmp_path / "a" / "f.json"))
    assert plan.names(ADD) == ["Pat"]


def test_a_schedule_this_door_lacks_is_imported_and_warned_about(tmp_path, door_a):
    file = export_to(door_a, tmp_path / "a" / "people.json")
    door_b = door(tmp_path / "b")
    plan = import_into(door_b, file, schedules={"weekend": []})
    warnings = [w for d in plan.decisions for w in d.warnings]
    assert warnings == [
        "Émile: schedule 'office' is not defined in this door's config: denied here until it "
        "is (or facegate people set NAME --schedule/--no-schedule)"
    ]
    assert people_and_vectors(door_b)["Émile"][0][4] == "office"  # kept: never any time


# ------------------------------------------------------------------------------ all or nothing


def test_a_write_that_fails_at_the_third_person_leaves_the_gallery_as_it_was(tmp_path, door_a):
    file = export_to(door_a, tmp_path / "a" / "people.json")
    door_b = door(tmp_path / "b")
    with Gallery.open(door_b, FP, D) as g:
        g.add_person("Zed", unit(1, 77))
    conn = sqlite3.connect(door_b)
    conn.execute(
        "CREATE TRIGGER refuse_third BEFORE INSERT ON people WHEN NEW.name = "
        "'pending-20270101-120000' BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
    )
    conn.close()
    before = dump(door_b)
    with pytest.raises(
        GalleryError, match="nothing imported, the gallery is as it was: .*disk says no"
    ):
        import_into(door_b, file)  # Ada and Bob were written before the third failed
    assert dump(door_b) == before


def test_a_change_between_the_checks_and_the_write_imports_nothing(tmp_path, door_a):
    file = export_to(door_a, tmp_path / "a" / "people.json")
    door_b = door(tmp_path / "b")
    export = read_export(file)
    with Gallery.open(door_b, FP, D) as g, Gallery.open(door_b, FP, D) as other:
        plan = plan_import(g, export, update=False, threshold=THRESHOLD, min_margin=MARGIN)
        other.add_person("Ada", unit(1, 42))  # enrolled meanwhile, e.g. at the door
        before = dump(door_b)
        with pytest.raises(GalleryError, match="changed while the import was checked"):
            apply_import(g, plan)
    assert dump(door_b) == before


def test_the_daemons_gallery_object_sees_the_import_at_its_next_poll(tmp_path, door_a):
    file = export_to(door_a, tmp_path / "a" / "people.json")
    door_b = door(tmp_path / "b")
    with Gallery.open(door_b, FP, D) as daemon:
        version = daemon.index().version
        plan = import_into(door_b, file, apply=False)
        assert daemon.index().version == version  # a plan writes nothing
        import_into(door_b, file)
        index = daemon.index()
        assert index.version == version + 1  # one transaction: one generation
        assert sorted(index.names) == sorted(plan.names(ADD))
