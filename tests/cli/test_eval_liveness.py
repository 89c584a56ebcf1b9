"""``facegate eval liveness`` on real NUAA material: per-cue APCER/BPCER and the door's IAPMR.

A tiny NUAA-layout tree (links to one live and one print session of subject 0002) goes
through the real detector, face mesh, texture models and liveness rule, then through the
real daemon with the subject enrolled. The print must be an attack for every cue and never
unlock; the live session must be let in.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from pi_facegate.cli import main
from pi_facegate.exc import FacegateError


def _link_session(facedata: Path, kind: str, prefix: str, root: Path) -> None:
    folder = root / kind / prefix[:4]
    folder.mkdir(parents=True, exist_ok=True)
    for path in (facedata / "pad_nuaa" / kind / prefix[:4]).glob(f"{prefix}_*.jpg"):
        (folder / path.name).symlink_to(path)


@pytest.fixture
def nuaa_pair(facedata: Path, tmp_path: Path) -> Path:
    root = tmp_path / "nuaa"
    _link_session(facedata, "ClientRaw", "0002_01_00_01", root)  # live, 57 frames
    _link_session(facedata, "ImposterRaw", "0002_01_01_02", root)  # print, 25 frames
    return root


def test_a_print_is_an_attack_for_every_cue_and_never_unlocks(nuaa_pair, tmp_path, capsys):
    out, plot = tmp_path / "report.json", tmp_path / "det.png"
    assert main(["eval", "liveness", str(nuaa_pair), "--json", str(out), "--plot", str(plot), "--quiet"]) == 0
    report = json.loads(out.read_text())
    assert report["presentations"] == {"attack": 1, "bona_fide": 1}
    assert report["simulated_species"] == []
    for cue in ("texture", "planarity", "fused"):
        assert report["cues"][cue]["apcer"]["print (NUAA)"]["errors"] == 0
    assert report["cues"]["texture"]["bpcer"]["errors"] == 0
    assert report["cues"]["fused"]["bpcer"]["errors"] == 0  # this subject turns his head
    door = report["door"]
    assert door["subjects_enrolled"] == ["nuaa-0002"]
    assert door["iapmr_all"] == {"rate": 0.0, "errors": 0, "presentations": 1}
    assert door["recognised_attacks"]["errors"] == 1  # without liveness it would have opened
    assert door["bpcer"]["errors"] == 0
    text = capsys.readouterr().out
    assert "APCER print (NUAA)" in text and "IAPMR all attacks" in text
    assert cv2.imread(str(plot)) is not None


def test_simulated_material_is_labelled_and_folders_need_no_subject(facedata, tmp_path, capsys):
    root = tmp_path / "set"
    (root / "attack" / "print_still").mkdir(parents=True)
    (root / "live").mkdir()
    _link_session(facedata, "ImposterRaw", "0002_01_01_02", tmp_path / "n")
    (root / "attack" / "print_still" / "one").symlink_to(tmp_path / "n" / "ImposterRaw" / "0002")
    fire = facedata / "no_face_and_multi_face_misc" / "data" / "fire.mp4"
    (root / "live" / "fire.mp4").symlink_to(fire)  # no face in it: a failure to acquire
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "path,label,type,subject,simulated\n"
        f"{root / 'attack' / 'print_still' / 'one'},attack,screen_phone,,yes\n"
    )
    out = tmp_path / "r.json"
    assert main(["eval", "liveness", str(manifest), str(root), "--json", str(out), "--quiet"]) == 0
    report = json.loads(out.read_text())
    assert report["simulated_species"] == ["screen_phone"]
    assert "screen_phone (SIMULATED)" in report["cues"]["fused"]["apcer"]
    assert "print_still" in report["cues"]["fused"]["apcer"]  # the folder layout's species
    assert report["door"] is None  # nobody to enrol: no door figure
    assert report["failure_to_acquire"] == ["live/fire.mp4"]
    assert report["presentations"]["bona_fide"] == 0  # so it is in no BPCER
    assert "(SIMULATED)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("path,label\nx,attack\n", "no column type"),
        ("path,label,type\nmissing.mp4,attack,print\n", "does not exist"),
        ("path,label,type\nm.csv,spoof,print\n", "is not live/attack/enrol"),
        ("path,label,type,subject\nm.csv,enrol,,\n", "needs a subject"),
    ],
)
def test_a_broken_manifest_is_refused_with_its_line(tmp_path, body, message):
    from pi_facegate.devtools.pad_material import load

    manifest = tmp_path / "m.csv"
    manifest.write_text(body)
    with pytest.raises(FacegateError, match=message):
        load(manifest)


def test_material_without_attacks_is_refused(tmp_path, capsys):
    (tmp_path / "live").mkdir()
    assert main(["eval", "liveness", str(tmp_path), "--quiet"]) != 0
    assert "no attack presentations" in capsys.readouterr().err
