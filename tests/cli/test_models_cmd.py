"""``facegate models list``: the models here, their sha256 check, what the config uses them
for, and whether the gallery was made by the configured embedder (real manifests, real
gallery files)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pi_facegate.cli import main
from pi_facegate.daemon.wiring import embedder_fingerprint
from pi_facegate.paths import models_dir
from pi_facegate.storage.gallery import Gallery
from pi_facegate.vision.manifest import load_manifest


@pytest.fixture
def state(tmp_path: Path) -> Path:
    (tmp_path / "config.yaml").write_text("camera:\n  detect_width: 320\n")
    return tmp_path


def listing(state: Path, capsys, *extra: str) -> dict:
    code = main(["models", "list", "--json", "--config", str(state / "config.yaml"),
                 "--state-dir", str(state), *extra])  # fmt: skip
    assert code == 0
    return json.loads(capsys.readouterr().out)


def make_gallery(path: Path, model: str) -> None:
    manifest = load_manifest(model)
    size = int(manifest["embedding"]["size"])
    with Gallery.open(path, embedder_fingerprint(manifest), size) as gallery:
        gallery.add_person("Ada", np.ones((1, size), np.float32))


def test_every_bundled_model_is_listed_checked_and_its_use_named(state, capsys):
    data = listing(state, capsys)
    rows = {r["name"]: r for r in data["models"]}
    assert rows["dlib_resnet_v1_int8"]["used_as"] == "embedder"
    assert rows["face_detection_short_range"]["used_as"] == "detector"
    assert "liveness texture" in rows["minifasnet_v2_int8"]["used_as"]
    assert rows["face_landmark"]["used_as"] == "alignment landmarks"
    assert rows["dlib_resnet_v1_float32"]["used_as"] == ""
    assert all(r["check"] == "ok" for r in rows.values())
    assert data["gallery"]["fingerprint"] is None  # no gallery yet: none is created
    assert not (state / "gallery.db").exists()


def test_a_model_file_that_is_not_what_its_manifest_says_is_a_mismatch(
    state, capsys, tmp_path, monkeypatch
):
    local = tmp_path / "models"
    shutil.copytree(models_dir(), local)
    with open(local / "face_detection_full_range.tflite", "r+b") as fh:
        fh.seek(100)
        fh.write(b"\x00\x01\x02\x03")
    (local / "face_detection_short_range.tflite").unlink()
    monkeypatch.setenv("FACEGATE_MODELS", str(local))
    rows = {r["name"]: r for r in listing(state, capsys)["models"]}
    assert rows["face_detection_full_range"]["check"] == "MISMATCH"
    assert rows["face_detection_short_range"]["check"] == "file missing"
    assert rows["dlib_resnet_v1_int8"]["check"] == "ok"


def test_the_gallery_of_another_embedder_is_named_with_how_to_switch(state, capsys):
    make_gallery(state / "gallery.db", "dlib_resnet_v1_int8")
    ok = listing(state, capsys)["gallery"]
    assert ok["matches"] is True and ok["people"] == 1
    assert ok["fingerprint"].startswith("dlib_resnet_v1_int8:")
    other = models_dir() / "dlib_resnet_v1_float32.json"
    (state / "config.yaml").write_text(f"embedder:\n  model: {other}\n")
    data = listing(state, capsys)
    gallery = data["gallery"]
    assert gallery["matches"] is False and gallery["configured"].startswith(
        "dlib_resnet_v1_float32"
    )
    assert "enrolled again" in gallery["text"] and "gallery init --force" in gallery["text"]
    rows = {r["name"]: r for r in data["models"]}
    assert rows["dlib_resnet_v1_float32"]["used_as"] == "embedder"  # named by its path
    assert rows["dlib_resnet_v1_int8"]["used_as"] == ""


def test_the_table_says_the_same_in_words(state, capsys):
    code = main(
        ["models", "list", "--config", str(state / "config.yaml"), "--state-dir", str(state)]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[0].split() == ["NAME", "KIND", "MB", "SHA256", "CHECK", "USED", "AS"]
    assert "dlib_resnet_v1_int8" in out and "models folder:" in out and "none yet" in out
