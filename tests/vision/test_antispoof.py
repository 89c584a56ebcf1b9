"""Texture liveness (MiniFASNet) with the real committed models on real NUAA photos.

The crop is upstream's CropImage rule, checked on hand-computed rectangles; the models must
tell NUAA's printed-photo attacks from the live captures of the same subject (AUC 1.0 over
all 1,382 evaluation crops in tools/check_antispoof.py, so the few frames here leave a wide
margin); a missing, corrupt or mismatched model file is a ModelError, never a "live".
"""

from __future__ import annotations

import json
import pickle
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from pi_facegate.core.faces import Face
from pi_facegate.exc import ImageError, ModelError
from pi_facegate.paths import models_dir
from pi_facegate.vision.antispoof import (
    DEFAULT_ANTISPOOF,
    TextureLiveness,
    crop_box,
    crop_face,
    softmax,
)
from pi_facegate.vision.detection.factory import create_detector
from pi_facegate.vision.images import load_image

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tools.pth_legacy import PthFormatError, read_state_dict  # noqa: E402

WEIGHTS = REPO.parent / "shared" / "models" / "minifasnet"
SUBJECT = "0002"
FRAMES = 4

# ---------------------------------------------------------------------------- the crop


@pytest.mark.parametrize(
    ("box", "frame", "scale", "want"),
    [
        # inside the frame: 50x60 box x 2.7 = 135x162 around the centre (125, 130)
        ((100, 100, 50, 60), (640, 480), 2.7, (57, 49, 192, 211)),
        # across the top-left corner: shifted right and down, size kept (160x160)
        ((0, 10, 40, 40), (640, 480), 4.0, (0, 0, 160, 160)),
        # across the bottom-right corner: shifted left and up to end on the last pixel
        ((600, 440, 40, 40), (640, 480), 2.7, (531, 371, 639, 479)),
        # too big for the frame: the scale drops to (H-1)/h = 479/300
        ((0, 0, 300, 300), (640, 480), 4.0, (0, 0, 479, 479)),
        # the width limits the scale (91/100), not the height: the crop keeps the box's shape
        ((10, 10, 100, 80), (92, 112), 2.7, (0, 13, 91, 86)),
    ],
)
def test_crop_box_scales_around_the_centre_and_shifts_inside_the_frame(box, frame, scale, want):
    assert crop_box(box, *frame, scale) == want


def test_crop_box_stays_in_the_frame_and_keeps_the_scaled_size():
    rng = np.random.default_rng(0)
    for _ in range(200):
        w, h = int(rng.integers(60, 1000)), int(rng.integers(60, 1000))
        bw, bh = rng.uniform(5, w / 2), rng.uniform(5, h / 2)
        box = (rng.uniform(-bw / 2, w - bw / 2), rng.uniform(-bh / 2, h - bh / 2), bw, bh)
        scale = float(rng.choice([2.7, 4.0]))
        left, top, right, bottom = crop_box(box, w, h, scale)
        assert 0 <= left < right <= w - 1 and 0 <= top < bottom <= h - 1
        s = min(scale, (h - 1) / bh, (w - 1) / bw)
        assert abs((right - left) - bw * s) <= 1.0 and abs((bottom - top) - bh * s) <= 1.0


def test_crop_face_cuts_the_inclusive_rectangle_and_resizes_it():
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[49:212, 57:193] = (200, 10, 30)  # exactly crop_box((100, 100, 50, 60), 640, 480, 2.7)
    crop = crop_face(frame, (100, 100, 50, 60), 2.7, 80, 80)
    assert crop.shape == (80, 80, 3) and crop.dtype == np.uint8
    assert (crop == (200, 10, 30)).all()  # nothing of the black around it, channels kept


def test_a_box_without_area_is_refused():
    with pytest.raises(ImageError):
        crop_box((10, 10, 0, 20), 640, 480, 2.7)
    with pytest.raises(ImageError):
        crop_box((10, 10, float("nan"), 20), 640, 480, 2.7)


def test_softmax_is_stable_for_large_logits():
    p = softmax(np.array([[1000.0, 1001.0, -5.0]]))
    assert np.isfinite(p).all() and p.sum() == pytest.approx(1.0) and p[0, 1] > p[0, 0]


# ---------------------------------------------------------------------------- real models


@pytest.fixture(scope="module")
def nuaa(facedata: Path) -> dict[str, list[tuple[np.ndarray, Face]]]:
    """A few live and attack frames of one NUAA subject, each with its detected face."""
    detector = create_detector("litert")
    out: dict[str, list[tuple[np.ndarray, Face]]] = {}
    try:
        for kind, folder in (("live", "ClientRaw"), ("attack", "ImposterRaw")):
            paths = sorted((facedata / "pad_nuaa" / folder / SUBJECT).glob("*.jpg"))
            pick = [paths[i] for i in np.linspace(0, len(paths) - 1, FRAMES).astype(int)]
            out[kind] = []
            for p in pick:
                image = load_image(p)
                faces = detector.detect(image)
                assert faces, f"no face in {p}"
                out[kind].append((image, faces[0]))
    finally:
        detector.close()
    return out


@pytest.fixture(scope="module")
def liveness():
    with TextureLiveness() as model:
        yield model


def test_the_default_models_are_the_int8_pair_from_their_manifests(liveness):
    assert liveness.names == DEFAULT_ANTISPOOF
    for name, sha in zip(liveness.names, liveness.fingerprints, strict=True):
        manifest = json.loads((models_dir() / f"{name}.json").read_text())
        assert manifest["kind"] == "antispoof" and manifest["sha256"] == sha
        assert manifest["input"]["color"] == "BGR" and manifest["output"]["live_class"] == 1


def test_nuaa_attacks_score_below_live_frames_of_the_same_subject(nuaa, liveness):
    live = [liveness.score(image, face) for image, face in nuaa["live"]]
    attack = [liveness.score(image, face) for image, face in nuaa["attack"]]
    assert all(0.0 <= s <= 1.0 for s in live + attack)
    # measured on all of subjects 0002-0003: live median 0.999, attack median 0.000, AUC 1.0
    assert np.mean(live) > 0.8 and np.mean(attack) < 0.2
    assert min(live) > max(attack)


def test_score_is_the_mean_of_both_models_and_int8_follows_float(nuaa, liveness):
    image, face = nuaa["live"][0]
    both = liveness.scores(image, face)
    assert len(both) == 2 and liveness.score(image, face) == pytest.approx(np.mean(both))
    with TextureLiveness([n.replace("_int8", "_float32") for n in DEFAULT_ANTISPOOF]) as ref:
        for image, face in nuaa["live"] + nuaa["attack"]:
            # INT8 vs float, mean of both models, NUAA 0002-0003: mean 0.001, max 0.18
            assert abs(liveness.score(image, face) - ref.score(image, face)) < 0.25


def test_a_closed_model_refuses_to_score(nuaa):
    image, face = nuaa["live"][0]
    model = TextureLiveness(DEFAULT_ANTISPOOF[:1])
    model.close()
    model.close()
    with pytest.raises(ModelError):
        model.score(image, face)


# ---------------------------------------------------------------------------- broken models


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    """A private copy of the V2 INT8 model and its manifest; returns the manifest path."""
    for suffix in (".json", ".tflite"):
        shutil.copy(models_dir() / f"minifasnet_v2_int8{suffix}", tmp_path)
    return tmp_path / "minifasnet_v2_int8.json"


def test_a_missing_model_file_is_a_model_error(model_copy):
    model_copy.with_suffix(".tflite").unlink()
    with pytest.raises(ModelError, match="missing"):
        TextureLiveness([model_copy])


def test_a_corrupt_model_file_is_a_model_error(model_copy):
    model_copy.with_suffix(".tflite").write_bytes(b"not a flatbuffer" * 100)
    with pytest.raises(ModelError, match="sha256"):
        TextureLiveness([model_copy])
    with pytest.raises(ModelError, match="cannot load"):  # even unverified, it never loads
        TextureLiveness([model_copy], verify=False)


def test_a_sha256_mismatch_is_a_model_error(model_copy):
    data = json.loads(model_copy.read_text())
    data["sha256"] = "0" * 64
    model_copy.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="does not match"):
        TextureLiveness([model_copy])


@pytest.mark.parametrize("breakage", ["no_crop", "live_class", "wrong_kind", "wrong_size"])
def test_an_incomplete_or_wrong_manifest_is_a_model_error(model_copy, breakage):
    data = json.loads(model_copy.read_text())
    if breakage == "no_crop":
        del data["crop"]
    elif breakage == "live_class":
        data["output"]["live_class"] = 3
    elif breakage == "wrong_kind":
        data["kind"] = "embedder"
    else:
        data["input"]["width"] = 112
    model_copy.write_text(json.dumps(data))
    with pytest.raises(ModelError):
        TextureLiveness([model_copy])


# ---------------------------------------------------------------------------- the .pth reader


def test_the_legacy_pth_reader_gives_upstreams_tensors():
    if not WEIGHTS.is_dir():
        pytest.skip(f"the MiniFASNet weights are not at {WEIGHTS}")
    state = read_state_dict(WEIGHTS / "2.7_80x80_MiniFASNetV2.pth")
    assert state["conv1.conv.weight"].shape == (32, 3, 3, 3)
    assert state["conv_6_dw.conv.weight"].shape == (512, 1, 5, 5)
    assert state["prob.weight"].shape == (3, 128)
    assert not any(k.startswith("module.") for k in state)
    assert (state["conv1.bn.running_var"] > 0).all()


def test_the_pth_reader_refuses_foreign_globals(tmp_path: Path):
    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as fh:
        for obj in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}, {"x": Evil()}, []):
            pickle.dump(obj, fh, protocol=2)
    with pytest.raises(PthFormatError, match="refusing"):
        read_state_dict(path)
