"""Accuracy measures for ``facegate eval``: pure functions over distances and decisions.

Verification follows the LFW protocol: the pairs are split into 10 folds; for each fold the
threshold that maximises accuracy on the other 9 is applied to it, and the 10 accuracies
are averaged (so the reported accuracy never uses a threshold tuned on its own pairs).
TAR@FAR reads the genuine accept rate at the distance where the impostor accept rate is
the given FAR. Distances are Euclidean: smaller is more alike; a pair is "same" when its
distance is <= the threshold.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Pair:
    """Two image paths and whether they show the same person."""

    left: Path
    right: Path
    same: bool


def parse_lfw_pairs(pairs_file: Path, root: Path) -> tuple[list[Pair], np.ndarray]:
    """Read an LFW ``pairs.txt`` (header ``folds\\tn``), returning pairs and their fold ids.

    Each fold holds ``n`` same-person lines (``name i j``) then ``n`` different-person lines
    (``name1 i name2 j``); images are ``root/<name>/<name>_<i:04d>.jpg``.
    """
    lines = [ln.split() for ln in Path(pairs_file).read_text().splitlines() if ln.strip()]
    header, body = lines[0], lines[1:]
    if len(header) == 2:
        folds, per_half = int(header[0]), int(header[1])
    else:  # pairsDevTrain.txt style: a single count
        folds, per_half = 1, int(header[0])
    pairs: list[Pair] = []
    for parts in body:
        if len(parts) == 3:
            name, i, j = parts
            pairs.append(Pair(_lfw_path(root, name, i), _lfw_path(root, name, j), True))
        elif len(parts) == 4:
            n1, i, n2, j = parts
            pairs.append(Pair(_lfw_path(root, n1, i), _lfw_path(root, n2, j), False))
        else:
            raise ValueError(f"{pairs_file}: cannot parse pair line {' '.join(parts)!r}")
    expected = folds * 2 * per_half
    if len(pairs) != expected:
        raise ValueError(f"{pairs_file}: header promises {expected} pairs, found {len(pairs)}")
    fold_ids = np.repeat(np.arange(folds), 2 * per_half)
    return pairs, fold_ids


def _lfw_path(root: Path, name: str, index: str) -> Path:
    return Path(root) / name / f"{name}_{int(index):04d}.jpg"


def parse_csv_pairs(
    pairs_file: Path, root: Path, folds: int = 10, seed: int = 0
) -> tuple[list[Pair], np.ndarray]:
    """Read deepface's ``master.csv`` form (``file_x,file_y,Decision`` with Yes/No).

    Folds are assigned by a seeded shuffle, stratified so each fold has both kinds of pair.
    """
    pairs = []
    with open(pairs_file, newline="") as fh:
        for row in csv.DictReader(fh):
            same = row["Decision"].strip().lower() in ("yes", "true", "1", "same")
            pairs.append(Pair(Path(root) / row["file_x"], Path(root) / row["file_y"], same))
    same = np.array([p.same for p in pairs])
    fold_ids = np.empty(len(pairs), dtype=int)
    rng = np.random.default_rng(seed)
    for flag in (True, False):
        idx = np.flatnonzero(same == flag)
        rng.shuffle(idx)
        fold_ids[idx] = np.arange(len(idx)) % folds
    return pairs, fold_ids


def best_threshold(distances: np.ndarray, same: np.ndarray) -> float:
    """The threshold maximising accuracy on these pairs (midpoints between sorted distances)."""
    order = np.argsort(distances, kind="stable")
    d, s = distances[order], same[order]
    # accepting the first k pairs: correct = genuine among them + impostors after them
    genuine_upto = np.concatenate([[0], np.cumsum(s)])
    impostor_after = (~s).sum() - np.concatenate([[0], np.cumsum(~s)])
    correct = genuine_upto + impostor_after
    k = int(np.argmax(correct))
    if k == 0:
        return float(d[0] - 1e-6)
    if k == len(d):
        return float(d[-1] + 1e-6)
    return float((d[k - 1] + d[k]) / 2.0)


def accuracy(distances: np.ndarray, same: np.ndarray, threshold: float) -> float:
    """Fraction of pairs decided right at ``threshold``."""
    return float(np.mean((distances <= threshold) == same))


def kfold_accuracy(
    distances: np.ndarray, same: np.ndarray, fold_ids: np.ndarray
) -> tuple[float, float, list[float]]:
    """LFW-style accuracy: mean, std and per-fold accuracies, thresholds chosen out of fold."""
    accs, thresholds = [], []
    for fold in np.unique(fold_ids):
        test = fold_ids == fold
        train = ~test
        if not train.any():  # a single fold: nothing to train on, report in-sample
            train = test
        thr = best_threshold(distances[train], same[train])
        thresholds.append(thr)
        accs.append(accuracy(distances[test], same[test], thr))
    return float(np.mean(accs)), float(np.std(accs)), thresholds


def tar_at_far(distances: np.ndarray, same: np.ndarray, far: float) -> float | None:
    """Genuine accept rate at the largest threshold whose impostor accept rate is <= ``far``.

    None when there are too few impostor pairs to measure that FAR (fewer than 1/far).
    """
    impostor = np.sort(distances[~same])
    genuine = distances[same]
    if len(impostor) == 0 or len(genuine) == 0 or len(impostor) < 1.0 / far:
        return None
    allowed = int(np.floor(far * len(impostor)))  # impostors we may accept
    threshold = impostor[allowed] - 1e-9 if allowed < len(impostor) else np.inf
    return float(np.mean(genuine <= threshold))


def roc_curve(distances: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false accept rate, true accept rate, threshold) for every distinct threshold."""
    thresholds = np.unique(distances)
    genuine = np.sort(distances[same])
    impostor = np.sort(distances[~same])
    tar = np.searchsorted(genuine, thresholds, side="right") / max(len(genuine), 1)
    far = np.searchsorted(impostor, thresholds, side="right") / max(len(impostor), 1)
    return far, tar, thresholds


def verification_report(
    distances: np.ndarray, same: np.ndarray, fold_ids: np.ndarray, default_threshold: float
) -> dict:
    """Every verification number ``facegate eval pairs`` reports, as plain data."""
    distances = np.asarray(distances, dtype=np.float64)
    same = np.asarray(same, dtype=bool)
    mean, std, thresholds = kfold_accuracy(distances, same, fold_ids)
    return {
        "pairs": int(len(distances)),
        "same_pairs": int(same.sum()),
        "different_pairs": int((~same).sum()),
        "folds": int(len(np.unique(fold_ids))),
        "accuracy_10fold": mean,
        "accuracy_10fold_std": std,
        "fold_thresholds": thresholds,
        "tar_at_far": {key: tar_at_far(distances, same, float(key)) for key in ("1e-2", "1e-3")},
        "default_threshold": float(default_threshold),
        "accuracy_at_default_threshold": accuracy(distances, same, default_threshold),
        "best_threshold_all_pairs": best_threshold(distances, same),
    }
