"""The calibrated impostor table in the embedder manifests, and the rule the config makes of it.

``tools/calibrate_open_set.py`` wrote ``embedding.impostor_far`` and its provenance; these
tests read the committed manifests as every reader does (``load_manifest``), and check that
the wiring turns ``matching`` into the threshold for a gallery's size with the bounds the
config documents.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pi_facegate.config.schema import Config
from pi_facegate.core.matcher import GalleryIndex
from pi_facegate.daemon import wiring
from pi_facegate.exc import ConfigError, ModelError
from pi_facegate.vision.manifest import impostor_table, load_manifest

EMBEDDERS = ("dlib_resnet_v1_int8", "dlib_resnet_v1_float32")


def config(**matching) -> Config:
    return Config.model_validate({"matching": matching})


def gallery(people: int) -> GalleryIndex:
    rows = [(i, f"p{i}", True, False) for i in range(people)]
    vectors = np.random.default_rng(0).standard_normal((people, 128)).astype(np.float32)
    return GalleryIndex.build(rows, list(range(people)), vectors, "t", 1)


@pytest.mark.parametrize("name", EMBEDDERS)
def test_the_manifest_table_loads_and_covers_1e5_to_1e1(name):
    manifest = load_manifest(name)
    table = impostor_table(manifest)
    assert table is not None and len(table.fars) >= 30
    assert table.fars[0] == pytest.approx(1e-5) and table.fars[-1] == pytest.approx(1e-1)
    assert np.all(np.diff(np.log10(table.fars)) < 0.2)  # log-spaced, no gap
    embedding = manifest["embedding"]
    # the fixed threshold sits inside the table: it is the bound for small galleries
    assert table.distances[0] < embedding["threshold"] < table.distances[-1]
    calibration = embedding["calibration"]
    # the calibration people only, never a reported set (eval strangers pools att_faces,
    # yalefaces, deepface_testset and face_recognition_examples)
    assert calibration["people"] == ["five_celebrity_faces", "extended_yaleb_calib"]
    assert calibration["probe_person_pairs"] > 0 and calibration["impostor_photo_pairs"] > 0
    assert 0 < calibration["measured_down_to"] < 0.1
    assert calibration["embeddings_per_person"] == Config().enrolment.embeddings


def test_a_malformed_table_stops_the_manifest_loading(tmp_path: Path):
    data = json.loads(load_manifest("dlib_resnet_v1_int8").path.read_text())
    data["embedding"]["impostor_far"] = [[0.6, 1e-2], [0.5, 1e-3]]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="impostor_far"):
        load_manifest(path, verify=False)


def test_the_threshold_follows_the_gallery_size_within_the_manifest_bounds():
    manifest = load_manifest("dlib_resnet_v1_int8")
    rule, margin = wiring.match_rule(config(), manifest)
    embedding = manifest["embedding"]
    assert margin == embedding["min_margin"]
    assert rule.per_attempt == Config().matching.false_accept_per_attempt == 0.01
    assert rule.ceiling == min(embedding["threshold"], embedding["loosest_threshold"])
    thresholds = [rule.for_index(gallery(n)).threshold for n in (1, 10, 50)]
    assert thresholds[0] <= embedding["threshold"]
    assert thresholds[0] > thresholds[1] > thresholds[2]
    # a looser target is still held to the fixed threshold
    loose, _ = wiring.match_rule(config(false_accept_per_attempt=0.1), manifest)
    assert loose.choose(1).threshold == embedding["threshold"]


def test_an_explicit_threshold_wins_and_a_loose_one_is_still_refused():
    manifest = load_manifest("dlib_resnet_v1_int8")
    rule, _ = wiring.match_rule(config(threshold=0.58), manifest)
    assert rule.for_index(gallery(200)).threshold == 0.58
    with pytest.raises(ConfigError, match="loosest_threshold"):
        wiring.match_rule(config(threshold=0.7), manifest)


def test_the_target_is_validated_in_the_config():
    for bad in (0, -0.1, 0.5, "1e-3"):
        with pytest.raises(ValueError, match="false_accept_per_attempt"):
            config(false_accept_per_attempt=bad)
