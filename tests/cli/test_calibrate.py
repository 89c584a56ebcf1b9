"""``facegate calibrate``: threshold, margin and open-set table of an embedder from a labelled
photo set (real photos, the real bundled model on a copy of the models folder), and the
override it writes, which every later manifest load merges -- or refuses, if others could
have written it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from pi_facegate.cli import main
from pi_facegate.exc import ModelError
from pi_facegate.paths import models_dir
from pi_facegate.vision.manifest import load_manifest, override_path

pytestmark = pytest.mark.slow

MODEL = "dlib_resnet_v1_int8"


@pytest.fixture
def local_models(tmp_path: Path, monkeypatch) -> Path:
    folder = tmp_path / "models"
    shutil.copytree(models_dir(), folder)
    monkeypatch.setenv("FACEGATE_MODELS", str(folder))
    return folder


def calibrate(tmp_path: Path, root: Path, capsys, *extra: str) -> tuple[int, dict | str]:
    """Run it; the JSON result, or stderr."""
    (tmp_path / "config.yaml").write_text("camera:\n  detect_width: 320\n")
    args = ["calibrate", str(root), "--config", str(tmp_path / "config.yaml"),
            "--state-dir", str(tmp_path), *extra]  # fmt: skip
    code = main(args)
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if "--json" in extra and code == 0 else captured.err)


def test_it_reports_and_writes_nothing_without_write(facedata, local_models, tmp_path, capsys):
    train = facedata / "five_celebrity_faces" / "train"
    code, result = calibrate(tmp_path, train, capsys, "--far", "1e-2", "--json")
    assert code == 0
    cal = result["calibration"]
    assert cal["people"] == 5 and cal["photos"] > 50 and cal["model"] == MODEL
    # 1 % of the impostor pairs lie below the threshold, and most genuine pairs do
    assert cal["impostor_pairs_below_threshold"] == pytest.approx(
        cal["impostor_pairs"] * 0.01, abs=2
    )
    assert 0.5 < result["threshold"] < 0.8 and cal["tar_at_threshold"] > 0.9
    assert 0 <= result["min_margin"] < 0.3 and len(result["impostor_far"]) == 33
    assert not override_path(local_models / f"{MODEL}.json").exists()
    assert load_manifest(MODEL)["embedding"]["threshold"] == 0.6  # the manifest's own


def test_write_stores_an_override_every_load_merges(facedata, local_models, tmp_path, capsys):
    train = facedata / "five_celebrity_faces" / "train"
    code, result = calibrate(tmp_path, train, capsys, "--far", "1e-2", "--json", "--write")
    assert code == 0
    override = override_path(local_models / f"{MODEL}.json")
    assert oct(override.stat().st_mode & 0o777) == "0o644"
    embedding = load_manifest(MODEL)["embedding"]
    assert embedding["threshold"] == result["threshold"] and embedding["calibrated"] is True
    assert embedding["min_margin"] == result["min_margin"]
    assert embedding["impostor_far"] == result["impostor_far"]
    assert embedding["size"] == 128  # the rest is the manifest's own
    # a manifest's model file, digest and alignment are never the override's to change
    data = json.loads(override.read_text())
    data["embedding"]["size"] = 512
    override.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="may set only"):
        load_manifest(MODEL)


@pytest.mark.parametrize("how", ["group-writable", "symlink"])
def test_an_override_others_could_have_written_is_refused(local_models, tmp_path, how):
    override = override_path(local_models / f"{MODEL}.json")
    elsewhere = tmp_path / "planted.json"
    elsewhere.write_text(json.dumps({"embedding": {"threshold": 2.0}}))
    if how == "symlink":
        override.symlink_to(elsewhere)
    else:
        shutil.copy(elsewhere, override)
        os.chmod(override, 0o664)
    with pytest.raises(ModelError, match="refused"):
        load_manifest(MODEL)


def test_a_set_too_small_for_the_rate_is_an_error_naming_why(
    facedata, local_models, tmp_path, capsys
):
    train = facedata / "five_celebrity_faces" / "train"
    code, err = calibrate(tmp_path, train, capsys, "--far", "1e-6")
    assert code == 1
    assert "cannot resolve a false-accept rate of 1e-06" in err
