"""The recognition commands on real photos: enrol, identify, people, and every bad input.

Everything goes through ``facegate`` itself (``main([...])``) with the real models and a real
gallery file, so a broken detector, aligner, embedder or matcher fails these tests: an
embedder that returned random vectors could not name the right AT&T subject.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from pi_facegate.cli import main
from pi_facegate.storage.gallery import Gallery


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def gallery(tmp_path: Path) -> Path:
    return tmp_path / "state" / "gallery.db"


def enroll(capsys, gallery: Path, name: str, *images: Path, extra: tuple[str, ...] = ()) -> tuple[int, str, str]:
    return run(capsys, "enroll", "--gallery", str(gallery), name, *map(str, images), *extra)


def identify(capsys, gallery: Path, *images: Path) -> list[dict]:
    code, out, err = run(capsys, "identify", "--gallery", str(gallery), "--json", *map(str, images))
    assert code == 0, err
    return json.loads(out)


def test_att_subjects_are_named_and_strangers_rejected(capsys, facedata, gallery):
    att = facedata / "att_faces"
    for subject in ("s1", "s2", "s3", "s4"):
        code, _, err = enroll(capsys, gallery, subject, *(att / subject / f"{k}.pgm" for k in (1, 2, 3)))
        assert code == 0, err
    probes = [att / s / f"{k}.pgm" for s in ("s1", "s2", "s3", "s4") for k in (6, 8, 10)]
    named = [photo["faces"][0]["name"] for photo in identify(capsys, gallery, *probes)]
    truth = [p.parent.name for p in probes]
    correct = sum(n == t for n, t in zip(named, truth, strict=True))
    assert correct >= 10, list(zip(named, truth, strict=True))  # 12 probes
    assert not any(n not in (t, "unknown") for n, t in zip(named, truth, strict=True)), "a wrong person was accepted"
    strangers = [att / s / "1.pgm" for s in ("s30", "s31", "s32", "s33", "s34", "s35")]
    assert {p["faces"][0]["name"] for p in identify(capsys, gallery, *strangers)} == {"unknown"}


def test_yale_and_deepface_people(capsys, facedata, gallery):
    yale = facedata / "yalefaces"
    for subject in ("subject02", "subject03"):
        code, _, err = enroll(capsys, gallery, subject, yale / f"{subject}.normal", yale / f"{subject}.happy")
        assert code == 0, err
    deep = facedata / "deepface_testset"
    ids = {}
    for line in (deep / "identities_derived.csv").read_text().splitlines()[1:]:
        file, ident = line.split(",")
        ids.setdefault(ident, []).append(deep / file)
    person, photos = next((k, v) for k, v in sorted(ids.items()) if len(v) >= 3)
    assert enroll(capsys, gallery, person, photos[0])[0] == 0
    result = identify(capsys, gallery, yale / "subject02.sad", yale / "subject03.wink", *photos[1:3])
    assert [p["faces"][0]["name"] for p in result] == ["subject02", "subject03", person, person]


def test_multi_face_and_no_face_photos(capsys, facedata, gallery):
    examples = facedata / "face_recognition_examples" / "examples"
    assert enroll(capsys, gallery, "Joe Biden", examples / "biden.jpg")[0] == 0
    assert enroll(capsys, gallery, "Barack Obama", examples / "obama.jpg")[0] == 0
    two, nothing = identify(capsys, gallery, examples / "two_people.jpg", facedata / "no_face_and_multi_face_misc" / "data" / "apple.jpg")
    assert sorted(f["name"] for f in two["faces"]) == ["Barack Obama", "Joe Biden"]
    assert nothing["faces"] == [] and nothing["error"] is None


def test_enrolment_rejects_unusable_photos_and_stores_nothing(capsys, facedata, gallery, tmp_path):
    examples = facedata / "face_recognition_examples" / "examples"
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("this is not a JPEG")
    code, out, err = enroll(capsys, gallery, "Nobody", not_an_image, examples / "two_people.jpg",
                            facedata / "no_face_and_multi_face_misc" / "data" / "apple.jpg", tmp_path / "missing.png")
    assert code == 1
    assert "not an image file" in out and "2 faces found" in out and "no face found" in out and "no such image" in out
    assert "nothing stored" in err
    if gallery.exists():
        with Gallery.open(gallery, fingerprint=None, create=False) as g:
            assert g.people() == []


def test_one_good_photo_is_enough_and_bad_ones_are_reported(capsys, facedata, gallery):
    examples = facedata / "face_recognition_examples" / "examples"
    code, out, _ = enroll(capsys, gallery, "Joe Biden", examples / "biden.jpg", examples / "two_people.jpg")
    assert code == 0 and "rejected: 2 faces" in out and "1 of 2 photos used" in out


def test_a_face_already_enrolled_is_refused_unless_forced(capsys, facedata, gallery):
    examples = facedata / "face_recognition_examples" / "examples"
    assert enroll(capsys, gallery, "Barack Obama", examples / "obama.jpg")[0] == 0
    code, _, err = enroll(capsys, gallery, "Barry", examples / "obama2.jpg")
    assert code == 1 and "already matches 'Barack Obama'" in err
    assert enroll(capsys, gallery, "Barry", examples / "obama2.jpg", extra=("--force",))[0] == 0
    code, _, err = enroll(capsys, gallery, "Barack Obama", examples / "obama2.jpg")
    assert code == 1 and "--update" in err
    assert enroll(capsys, gallery, "Barack Obama", examples / "obama-480p.jpg", extra=("--update", "--force"))[0] == 0
    code, out, _ = run(capsys, "people", "show", "Barack Obama", "--gallery", str(gallery), "--json")
    assert code == 0 and json.loads(out)["embedding_count"] == 2


def test_people_management(capsys, facedata, gallery):
    examples = facedata / "face_recognition_examples" / "examples"
    assert enroll(capsys, gallery, "Joe Biden", examples / "biden.jpg")[0] == 0
    assert run(capsys, "people", "disable", "Joe Biden", "--gallery", str(gallery))[0] == 0
    [photo] = identify(capsys, gallery, examples / "knn_examples" / "train" / "biden" / "biden2.jpg")
    assert photo["faces"][0]["name"] == "unknown" and photo["faces"][0]["reason"] == "disabled"
    assert run(capsys, "people", "enable", "Joe Biden", "--gallery", str(gallery))[0] == 0
    assert run(capsys, "people", "rename", "Joe Biden", "Joseph Biden", "--gallery", str(gallery))[0] == 0
    code, out, _ = run(capsys, "people", "list", "--gallery", str(gallery), "--json")
    assert [p["name"] for p in json.loads(out)] == ["Joseph Biden"]
    code, _, err = run(capsys, "people", "remove", "Nobody Here", "--gallery", str(gallery))
    assert code == 1 and "Nobody Here" in err
    assert run(capsys, "people", "remove", "Joseph Biden", "--gallery", str(gallery))[0] == 0
    code, out, _ = run(capsys, "people", "list", "--gallery", str(gallery))
    assert "nobody is enrolled" in out


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_corrupt_and_foreign_galleries_are_refused_unchanged(capsys, facedata, tmp_path):
    photo = facedata / "face_recognition_examples" / "examples" / "biden.jpg"
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(np.random.default_rng(0).bytes(8192))
    foreign = tmp_path / "foreign.db"
    with Gallery.open(foreign, fingerprint="some-other-embedder:0123", embedding_size=128) as g:
        g.add_person("Someone", np.ones((1, 128), np.float32))
    for path, words in ((corrupt, "not a pi-facegate gallery"), (foreign, "some-other-embedder")):
        before = _digest(path)
        for args in (["identify", "--gallery", str(path), str(photo)], ["enroll", "--gallery", str(path), "X", str(photo)],
                     ["people", "list", "--gallery", str(path)] if path == corrupt else ["enroll", "--gallery", str(path), "Y", str(photo)]):
            code, out, err = run(capsys, *args)
            assert code == 1, (args, out, err)
            assert words in err and "Traceback" not in err
        assert _digest(path) == before


def test_gallery_in_an_impossible_place_is_a_clear_error(capsys, facedata, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    photo = facedata / "face_recognition_examples" / "examples" / "biden.jpg"
    code, _, err = run(capsys, "enroll", "--gallery", str(blocker / "gallery.db"), "Joe", str(photo))
    assert code == 1 and "gallery" in err and "Traceback" not in err


def test_identify_without_a_gallery_says_so(capsys, facedata, tmp_path):
    photo = facedata / "face_recognition_examples" / "examples" / "biden.jpg"
    code, _, err = run(capsys, "identify", "--gallery", str(tmp_path / "none.db"), str(photo))
    assert code == 1 and "none.db" in err


def test_gallery_file_is_private(capsys, facedata, gallery):
    assert enroll(capsys, gallery, "Joe", facedata / "face_recognition_examples" / "examples" / "biden.jpg")[0] == 0
    assert gallery.stat().st_mode & 0o777 == 0o600
    with sqlite3.connect(gallery) as conn:  # stores embeddings, never photos
        tables = {r[0] for r in conn.execute("select name from sqlite_master where type='table'")}
    assert not any("image" in t or "photo" in t for t in tables)


def test_one_call_enrols_one_person(capsys, facedata, gallery):
    """Three different people under one name were once stored as one person."""
    examples = facedata / "face_recognition_examples" / "examples"
    photos = (examples / "obama.jpg", examples / "biden.jpg", examples / "lin-manuel-miranda.png")
    code, _, err = enroll(capsys, gallery, "Mixed", *photos)
    assert code == 1 and "more than one person" in err and "biden.jpg" in err
    code, _, err = enroll(capsys, gallery, "Mixed", *photos, extra=("--force",))
    assert code == 1 and "more than one person" in err  # not overridable
    obamas = (examples / "obama.jpg", examples / "obama2.jpg", examples / "obama-480p.jpg")
    assert enroll(capsys, gallery, "Barack Obama", *obamas)[0] == 0


def test_an_update_must_show_the_same_person_and_may_follow_the_name(capsys, facedata, gallery):
    examples = facedata / "face_recognition_examples" / "examples"
    assert enroll(capsys, gallery, "Barack Obama", examples / "obama.jpg")[0] == 0
    for extra in ((), ("--force",)):
        code, _, err = run(
            capsys,
            "enroll",
            "--gallery",
            str(gallery),
            "Barack Obama",
            "--update",
            str(examples / "biden.jpg"),
            *extra,
        )
        assert code == 1 and "does not match 'Barack Obama'" in err
    # NAME --update IMAGE parses (the photo after the option is still a photo)
    code, out, err = run(
        capsys,
        "enroll",
        "--gallery",
        str(gallery),
        "Barack Obama",
        "--update",
        str(examples / "obama2.jpg"),
    )
    assert code == 0, err
    people = {
        p["name"]: p
        for p in json.loads(run(capsys, "people", "list", "--gallery", str(gallery), "--json")[1])
    }
    assert people["Barack Obama"]["embedding_count"] == 2


def test_the_lookalike_rule_ignores_the_case_of_the_name(capsys, facedata, gallery):
    """One rule everywhere (issue 15 bug 4): updating "barack obama" with his own photo is
    an update of Barack Obama, not a lookalike of him (the photo path compared names
    case-sensitively and refused it, while the door's rule casefolded)."""
    examples = facedata / "face_recognition_examples" / "examples"
    assert enroll(capsys, gallery, "Barack Obama", examples / "obama.jpg")[0] == 0
    code, _, err = enroll(capsys, gallery, "barack obama", examples / "obama2.jpg", extra=("--update",))
    assert code == 0, err
    code, _, err = enroll(capsys, gallery, "BARRY", examples / "obama-480p.jpg")
    assert code == 1 and "already matches 'Barack Obama'" in err
