"""The LFW-protocol measures, checked against hand-computed cases and the pairs.txt format."""

from __future__ import annotations

import numpy as np
import pytest

from pi_facegate.devtools import evaluation as ev


def test_best_threshold_separates_separable_pairs():
    d = np.array([0.1, 0.2, 0.3, 0.7, 0.8])
    same = np.array([True, True, True, False, False])
    thr = ev.best_threshold(d, same)
    assert 0.3 < thr < 0.7
    assert ev.accuracy(d, same, thr) == 1.0


def test_kfold_never_tests_on_its_own_threshold():
    # fold 0 is separable at 0.5, fold 1 is inverted: out-of-fold thresholds must fail it
    d = np.array([0.1, 0.9, 0.1, 0.9])
    same = np.array([True, False, False, True])
    folds = np.array([0, 0, 1, 1])
    mean, _, _ = ev.kfold_accuracy(d, same, folds)
    assert mean <= 0.5  # in-sample thresholds would score 1.0


def test_tar_at_far_counts_only_allowed_impostors():
    impostor = np.linspace(1.0, 2.0, 100)  # FAR 1e-2 allows one impostor: threshold just below 1.0101
    genuine = np.array([0.5, 0.9, 1.005, 1.5])
    d = np.concatenate([genuine, impostor])
    same = np.concatenate([np.ones(4, bool), np.zeros(100, bool)])
    assert ev.tar_at_far(d, same, 1e-2) == pytest.approx(0.75)
    assert ev.tar_at_far(d, same, 1e-3) is None  # 100 impostors cannot measure 1e-3


def test_lfw_pairs_file_layout(tmp_path):
    text = "2\t1\nAlice\t1\t2\nAlice\t1\tBob\t3\nCarol\t2\t4\nDave\t1\tErin\t1\n"
    (tmp_path / "pairs.txt").write_text(text)
    pairs, folds = ev.parse_lfw_pairs(tmp_path / "pairs.txt", tmp_path)
    assert [p.same for p in pairs] == [True, False, True, False]
    assert pairs[0].left == tmp_path / "Alice" / "Alice_0001.jpg"
    assert pairs[1].right == tmp_path / "Bob" / "Bob_0003.jpg"
    assert folds.tolist() == [0, 0, 1, 1]


def test_lfw_pairs_count_mismatch_is_an_error(tmp_path):
    (tmp_path / "pairs.txt").write_text("10\t300\nAlice\t1\t2\n")
    with pytest.raises(ValueError, match="promises 6000"):
        ev.parse_lfw_pairs(tmp_path / "pairs.txt", tmp_path)


def test_csv_pairs_are_stratified(facedata):
    pairs, folds = ev.parse_csv_pairs(facedata / "deepface_testset" / "master.csv", facedata / "deepface_testset")
    same = np.array([p.same for p in pairs])
    assert len(pairs) == 300
    for f in range(10):
        assert same[folds == f].any() and (~same[folds == f]).any()
