"""The gallery-size threshold from the command line: ``people list`` and ``eval strangers``.

``people list`` loads no model (random embeddings in a gallery with the real embedder's
fingerprint do); ``eval strangers`` runs the real pipeline on a small subset of the shared
photos, linked into a temporary face-data root.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from pi_facegate.cli import main
from pi_facegate.config.loader import load_config
from pi_facegate.daemon import wiring as components
from pi_facegate.storage.gallery import Gallery


@pytest.fixture
def var(tmp_path: Path) -> Path:
    folder = tmp_path / "var"
    folder.mkdir(mode=0o700)
    (folder / "config.yaml").write_text("{}\n")
    return folder


def _add(var: Path, names: list[str], enabled: bool = True) -> None:
    config = load_config(var / "config.yaml")
    fingerprint = components.embedder_fingerprint(components.load_manifest(config.embedder.model))
    rng = np.random.default_rng(len(names))
    with Gallery.open(var / "gallery.db", fingerprint) as gallery:
        for name in names:
            gallery.add_person(
                name, rng.standard_normal((2, gallery.embedding_size)), enabled=enabled
            )


def _threshold_line(var: Path, capsys) -> tuple[float, str]:
    code = main(["people", "list", "--config", str(var / "config.yaml"), "--state-dir", str(var)])
    out = capsys.readouterr().out
    assert code == 0
    line = out.splitlines()[-1]
    found = re.fullmatch(r"threshold (0\.\d{3}) for \d+ (person|people) \(.*\)", line)
    assert found, out
    return float(found.group(1)), line


def test_people_list_shows_the_threshold_and_it_tightens_as_people_are_added(var, capsys):
    _add(var, ["Ada"])
    one, line = _threshold_line(var, capsys)
    assert "for 1 person (false accepts per attempt ≤ 0.01" in line
    _add(var, [f"P{i}" for i in range(9)])
    ten, line = _threshold_line(var, capsys)
    assert "for 10 people" in line and ten < one
    _add(var, [f"Off{i}" for i in range(20)], enabled=False)  # no access: no extra chance
    assert _threshold_line(var, capsys)[0] == ten
    _add(var, [f"Q{i}" for i in range(40)])
    assert _threshold_line(var, capsys)[0] < ten


def test_an_explicit_threshold_is_listed_as_fixed(var, capsys):
    (var / "config.yaml").write_text("matching:\n  threshold: 0.55\n")
    _add(var, [f"P{i}" for i in range(30)])
    assert _threshold_line(var, capsys) == (
        0.55,
        "threshold 0.550 for 30 people (matching.threshold, fixed)",
    )


def test_people_list_json_stays_a_list_of_people(var, capsys):
    _add(var, ["Ada"])
    main(
        ["people", "list", "--json", "--config", str(var / "config.yaml"), "--state-dir", str(var)]
    )
    assert [p["name"] for p in json.loads(capsys.readouterr().out)] == ["Ada"]


@pytest.fixture
def small_facedata(facedata: Path, tmp_path: Path) -> Path:
    """12 AT&T people, deepface's celebrities and the calibration people, linked."""
    root = tmp_path / "facedata"
    (root / "att_faces").mkdir(parents=True)
    for k in range(1, 13):
        (root / "att_faces" / f"s{k}").symlink_to(facedata / "att_faces" / f"s{k}")
    for name in ("deepface_testset", "five_celebrity_faces"):
        (root / name).symlink_to(facedata / name)
    return root


@pytest.mark.slow
def test_eval_strangers_runs_on_a_small_subset(small_facedata, tmp_path, capsys):
    report_file, cache = tmp_path / "s.json", tmp_path / "cache.npz"
    words = ["eval", "strangers", str(small_facedata), "--sizes", "4,8,500", "--seeds", "3",
             "--min-strangers", "5", "--cache", str(cache), "--quiet"]  # fmt: skip
    assert main([*words, "--json", str(report_file)]) == 0
    out = capsys.readouterr().out
    assert "left out (the embedder's calibration people): five_celebrity_faces" in out
    report = json.loads(report_file.read_text())
    proto = report["protocol"]
    assert proto["sources"] == ["att_faces", "deepface_testset"]  # no calibration person
    assert proto["identities"] == 12 + 13 and proto["photos"] == 120 + 61
    assert proto["cross_source_near_matches"] == []
    curve = report["curve"]
    assert [(p["people"], p["asked"]) for p in curve] == [(4, 4), (8, 8), (20, 500)]
    for point in curve:
        fixed, size = point["fixed"], point["gallery_size"]
        assert size["threshold"] <= fixed["threshold"]
        assert point["stranger_probes"] == 3 * (25 - point["people"])
        assert fixed["genuine_accept"] > 0.8 and size["genuine_accept"] > 0.8
        assert size["strangers_accepted_count"] <= fixed["strangers_accepted_count"]
    assert curve[0]["gallery_size"]["threshold"] > curve[-1]["gallery_size"]["threshold"]
    # the second run embeds nothing: every photo comes from the cache, same report
    assert cache.is_file()
    assert main([*words, "--json", str(tmp_path / "again.json")]) == 0
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["curve"] == curve
