"""``facegate eval`` on real photos: the report's keys, its protocol, and numbers only a working
pipeline reaches (always answering "different" scores 87 % on deepface's pairs, so the bar is
set above that)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from pi_facegate.cli import main


def test_pairs_on_deepface_master_csv(facedata, tmp_path, capsys):
    root = facedata / "deepface_testset"
    report_file, plot = tmp_path / "r.json", tmp_path / "roc.png"
    code = main(["eval", "pairs", str(root), "--pairs", str(root / "master.csv"),
                 "--json", str(report_file), "--plot", str(plot), "--quiet"])
    assert code == 0
    report = json.loads(report_file.read_text())
    for key in ("pairs", "accuracy_10fold", "accuracy_10fold_std", "tar_at_far", "accuracy_at_default_threshold", "no_face"):
        assert key in report
    assert report["pairs"] == 300 and set(report["tar_at_far"]) == {"1e-2", "1e-3"}
    assert report["accuracy_10fold"] >= 0.97
    assert report["tar_at_far"]["1e-2"] >= 0.9
    assert cv2.imread(str(plot)) is not None
    assert "accuracy 10-fold" in capsys.readouterr().out


def _lfw_layout(facedata: Path, root: Path) -> Path:
    """A tiny LFW-layout tree (links to shared photos) with a standard 2-fold pairs.txt."""
    sources = {
        "Barack_Obama": ["face_recognition_examples/examples/obama.jpg", "face_recognition_examples/examples/obama2.jpg"],
        "Joe_Biden": ["face_recognition_examples/examples/biden.jpg",
                      "face_recognition_examples/examples/knn_examples/train/biden/biden2.jpg"],
        "Nobody_Here": ["no_face_and_multi_face_misc/data/apple.jpg"],
    }
    for name, files in sources.items():
        (root / name).mkdir(parents=True)
        for i, rel in enumerate(files, start=1):
            (root / name / f"{name}_{i:04d}.jpg").symlink_to(facedata / rel)
    (root / "pairs.txt").write_text(
        "2\t1\nBarack_Obama\t1\t2\nBarack_Obama\t1\tJoe_Biden\t1\n"
        "Joe_Biden\t1\t2\nJoe_Biden\t2\tNobody_Here\t1\n"
    )
    return root


def test_pairs_on_the_standard_lfw_layout_never_drops_a_pair(facedata, tmp_path):
    root = _lfw_layout(facedata, tmp_path / "lfw")
    out = tmp_path / "lfw.json"
    assert main(["eval", "pairs", str(root), "--json", str(out), "--quiet"]) == 0
    report = json.loads(out.read_text())
    assert report["pairs"] == 4 and report["folds"] == 2
    assert report["no_face"] == 1  # the apple: centred-box fallback, counted, pair kept
    assert report["accuracy_at_default_threshold"] == 1.0


def test_pairs_file_that_disagrees_with_its_header_is_an_error(facedata, tmp_path, capsys):
    root = _lfw_layout(facedata, tmp_path / "lfw")
    (root / "pairs.txt").write_text("10\t300\nBarack_Obama\t1\t2\n")
    assert main(["eval", "pairs", str(root), "--quiet"]) == 1
    assert "promises 6000" in capsys.readouterr().err


@pytest.mark.slow
def test_identify_open_set_on_att(facedata, tmp_path):
    out = tmp_path / "att.json"
    att = tmp_path / "att"
    att.mkdir()
    for k in range(1, 13):  # 12 people keep the test quick
        (att / f"s{k}").symlink_to(facedata / "att_faces" / f"s{k}")
    assert main(["eval", "identify", str(att), "--enrol", "3", "--strangers", "0.25", "--seed", "1",
                 "--json", str(out), "--quiet"]) == 0
    r = json.loads(out.read_text())
    for key in ("people", "strangers", "genuine_probes", "stranger_probes", "rank1", "genuine_accept_rate",
                "false_accept_rate_genuine", "stranger_accept_rate", "no_face"):
        assert key in r
    assert (r["people"], r["strangers"], r["genuine_probes"], r["stranger_probes"]) == (9, 3, 63, 30)
    assert r["rank1"] >= 0.95 and r["genuine_accept_rate"] >= 0.9
    assert r["false_accept_rate_genuine"] <= 0.02


def test_identify_with_a_file_name_pattern(facedata, tmp_path):
    yale = tmp_path / "yale"
    yale.mkdir()
    for path in sorted((facedata / "yalefaces").glob("subject0[1-6].*")):
        (yale / path.name).symlink_to(path)
    out = tmp_path / "yale.json"
    assert main(["eval", "identify", str(yale), "--identity-pattern", r"subject\d+", "--enrol", "3",
                 "--strangers", "0", "--json", str(out), "--quiet"]) == 0
    r = json.loads(out.read_text())
    assert r["people"] == 6 and r["strangers"] == 0 and r["rank1"] >= 0.95
