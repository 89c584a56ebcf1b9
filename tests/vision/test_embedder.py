"""The runtime embedder: the bundled INT8 model on real faces, with ai-edge-litert.

Runs everywhere the appliance runs (numpy 1 or 2, no TensorFlow, no dlib). Faces come from
the shared photos: AT&T/ORL pictures all share one framing, so a fixed crop is a crude but
honest alignment that needs no detector; the test that uses dlib's own chips (the alignment
the model was trained with) is tools-marked and skipped where dlib is missing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pi_facegate.exc import ImageError, ModelError
from pi_facegate.vision.embedder import (
    DEFAULT_EMBEDDER,
    MAX_BATCH,
    Embedder,
    dequantize,
    load_embedder,
    quantize,
)
from pi_facegate.vision.images import load_image
from pi_facegate.vision.litert import make_interpreter
from pi_facegate.vision.manifest import load_manifest

# AT&T photos are 92x112 with the face at one place; dlib's chips of them (size 150, padding
# 0.25) cover x 0..92, y 25..117 on median (measured with dlib.get_face_chip_details)
ATT_CHIP_BOX = (0.0, 25.0, 92.0)


def att_chip(path: Path) -> np.ndarray:
    """A 150x150 RGB chip of an AT&T photo cut at the fixed box (no detector needed)."""
    import cv2

    x, y, side = ATT_CHIP_BOX
    s = 150.0 / side
    m = np.float32([[s, 0, -x * s], [0, s, -y * s]])
    return cv2.warpAffine(load_image(path), m, (150, 150), flags=cv2.INTER_LINEAR)


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    with load_embedder(DEFAULT_EMBEDDER, num_threads=2) as emb:
        yield emb


@pytest.fixture(scope="module")
def att(facedata: Path) -> tuple[np.ndarray, np.ndarray]:
    """Chips and person labels of AT&T people s31-s40 (not in the INT8 calibration split)."""
    chips, labels = [], []
    for person in range(31, 41):
        for k in range(1, 11):
            chips.append(att_chip(facedata / "att_faces" / f"s{person}" / f"{k}.pgm"))
            labels.append(person)
    return np.stack(chips), np.asarray(labels)


def pair_stats(emb: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    i, j = np.triu_indices(len(labels), k=1)
    return np.linalg.norm(emb[i] - emb[j], axis=1), labels[i] == labels[j]


# ---------------------------------------------------------------------------- quantization


@pytest.mark.parametrize(
    ("scale", "zero_point", "dtype"),
    [(0.0037, -16, np.int8), (1.0, 0, np.uint8), (0.05, 128, np.uint8), (0.02, 3, np.int8)],
)
def test_quantize_dequantize_round_trip_is_within_half_a_step(scale, zero_point, dtype):
    info = np.iinfo(dtype)
    lo = (info.min - zero_point) * scale
    hi = (info.max - zero_point) * scale
    x = np.linspace(lo, hi, 1001, dtype=np.float32)
    q = quantize(x, scale, zero_point, dtype)
    assert q.dtype == dtype
    back = dequantize(q, scale, zero_point)
    assert back.dtype == np.float32
    assert np.max(np.abs(back - x)) <= scale / 2 + 1e-6
    # and codes survive the trip exactly
    assert np.array_equal(quantize(dequantize(q, scale, zero_point), scale, zero_point, dtype), q)


def test_quantize_rounds_half_away_from_zero_and_saturates():
    q = quantize(np.array([0.5, -0.5, 1.49, 2.5, 1000.0, -1000.0]), 1.0, 0, np.int8)
    assert q.tolist() == [1, -1, 1, 3, 127, -128]
    assert quantize(np.array([-3.0, 300.0]), 1.0, 0, np.uint8).tolist() == [0, 255]
    with pytest.raises(ValueError, match="scale"):
        quantize(np.zeros(2), 0.0, 0, np.int8)


def test_dequantize_uses_the_model_output_parameters(embedder):
    q = embedder.manifest["output"]["quantization"]
    codes = np.array([-128, q["zero_point"], 127], dtype=np.int8)
    values = dequantize(codes, q["scale"], q["zero_point"])
    assert values[1] == 0.0
    assert values[0] == pytest.approx((-128 - q["zero_point"]) * q["scale"])


# ---------------------------------------------------------------------------- the model


def test_int8_model_loads_and_matches_its_manifest(embedder):
    manifest = load_manifest(DEFAULT_EMBEDDER)
    assert embedder.fingerprint == manifest.sha256
    assert embedder.size == 128 == manifest["embedding"]["size"]
    assert embedder.input_size == (150, 150)
    assert manifest["input"]["dtype"] == "uint8"
    assert manifest["output"]["dtype"] == "int8"
    assert manifest["embedding"]["metric"] == "euclidean"
    interp = make_interpreter(manifest.model_path, num_threads=1)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    assert np.dtype(inp["dtype"]) == np.uint8 and np.dtype(out["dtype"]) == np.int8
    for detail, key in ((inp, "input"), (out, "output")):
        q = manifest[key]["quantization"]
        assert detail["quantization"] == pytest.approx((q["scale"], q["zero_point"]))
    assert manifest["input"]["quantization"] == {"scale": 1.0, "zero_point": 0}


def test_same_person_is_near_and_different_people_are_far(embedder, att):
    chips, labels = att
    emb = embedder.embed(chips)
    assert emb.shape == (100, 128) and emb.dtype == np.float32
    assert np.all(np.isfinite(emb))
    d, same = pair_stats(emb, labels)
    threshold = embedder.manifest["embedding"]["threshold"]
    assert np.mean(d[same]) < 0.5 < np.mean(d[~same])
    assert np.mean((d < threshold) == same) > 0.9
    # each photo's nearest other photo shows the same person, for nearly all photos
    full = np.linalg.norm(emb[:, None] - emb[None], axis=2)
    np.fill_diagonal(full, np.inf)
    assert np.mean(labels[np.argmin(full, axis=1)] == labels) >= 0.95


def test_batch_gives_the_same_embeddings_as_one_by_one(embedder, att):
    chips = att[0][:: 100 // (MAX_BATCH + 3)]  # more than one batch, and a remainder
    assert len(chips) > MAX_BATCH
    one_by_one = np.stack([embedder.embed(c)[0] for c in chips])
    batched = embedder.embed(chips)
    np.testing.assert_allclose(batched, one_by_one, atol=1e-6)
    # and a single (150,150,3) chip is a batch of one
    assert embedder.embed(chips[0]).shape == (1, 128)


def test_embedding_depends_on_the_face_not_on_the_call(embedder, att):
    chips = att[0]
    first = embedder.embed(chips[:3])
    embedder.embed(chips[50:])
    np.testing.assert_array_equal(embedder.embed(chips[:3]), first)


def test_empty_batch_gives_no_embeddings(embedder):
    assert embedder.embed(np.zeros((0, 150, 150, 3), np.uint8)).shape == (0, 128)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((2, 112, 92, 3), np.uint8),
        np.zeros((150, 150), np.uint8),
        np.zeros((1, 150, 150, 3), np.float32),
    ],
)
def test_wrong_chips_are_refused_with_a_clear_error(embedder, bad):
    with pytest.raises(ImageError, match="chips must be"):
        embedder.embed(bad)


def test_float_model_agrees_with_int8(att):
    chips = att[0][::10]
    with load_embedder("dlib_resnet_v1_float32", num_threads=2) as ref:
        float_emb = ref.embed(chips)
    with load_embedder() as int8:
        d = np.linalg.norm(int8.embed(chips) - float_emb, axis=1)
    assert d.max() < 0.12  # measured 0.065 at most on the calibration chips (build report)


def test_int8_on_reference_kernels_agrees_with_float(att):
    """tflite-runtime 2.14 runs this model on TFLite's built-in int8 kernels, not XNNPACK.

    The two kernel sets round differently (embeddings differ by ~0.04); both must stay as
    close to the float model as the build measured.
    """
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    chips = att[0][::10]
    manifest = load_manifest(DEFAULT_EMBEDDER)
    interp = litert.Interpreter(
        model_path=str(manifest.model_path),
        experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    scale, zero_point = out["quantization"]
    ref_kernels = []
    for chip in chips:
        interp.set_tensor(inp["index"], chip[None])
        interp.invoke()
        ref_kernels.append(dequantize(interp.get_tensor(out["index"])[0], scale, zero_point))
    with load_embedder("dlib_resnet_v1_float32", num_threads=2) as ref:
        d = np.linalg.norm(np.stack(ref_kernels) - ref.embed(chips), axis=1)
    assert d.max() < 0.12


def test_closed_embedder_refuses_to_run_and_closes_twice(att):
    emb = load_embedder()
    emb.close()
    emb.close()
    with pytest.raises(ModelError, match="closed"):
        emb.embed(att[0][0])


def test_embedder_refuses_a_detector_manifest_and_a_tampered_model(tmp_path):
    manifest = load_manifest(DEFAULT_EMBEDDER)
    data = dict(manifest.data, kind="detector")
    with pytest.raises(ModelError, match="not an embedder"):
        Embedder(type(manifest)(manifest.path, data))
    # a copy of the model with one byte changed fails its sha256 check before loading
    model = tmp_path / manifest["file"]
    blob = bytearray(manifest.model_path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    model.write_bytes(bytes(blob))
    (tmp_path / manifest.path.name).write_text(manifest.path.read_text())
    with pytest.raises(ModelError, match="sha256"):
        load_embedder(tmp_path / manifest.path.name)


def test_manifest_size_that_disagrees_with_the_model_is_refused():
    manifest = load_manifest(DEFAULT_EMBEDDER)
    data = dict(manifest.data, input=dict(manifest["input"], width=112))
    with pytest.raises(ModelError, match="manifest says"):
        Embedder(type(manifest)(manifest.path, data))


def _variant(embedding: dict | None = None, **inputs) -> Embedder:
    """The bundled float32 model under a manifest changed as a converted model's would be."""
    manifest = load_manifest("dlib_resnet_v1_float32")
    data = dict(manifest.data, input=dict(manifest["input"], **inputs))
    data["embedding"] = dict(manifest["embedding"], **(embedding or {}))
    return Embedder(type(manifest)(manifest.path, data))


def test_everything_model_specific_comes_from_the_manifest(att):
    chips = att[0][:4]
    with _variant() as plain, _variant({"normalized": True}) as unit:
        raw, normalised = plain.embed(chips), unit.embed(chips)
    # a model whose manifest says normalized gives exact unit vectors (INT8 rounding aside)
    np.testing.assert_allclose(np.linalg.norm(normalised, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(
        normalised, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-6
    )
    # a normalisation declared in the manifest (not inside the model) is applied before it
    identity = {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}
    with _variant(normalization=identity) as same:
        np.testing.assert_allclose(same.embed(chips), raw, atol=1e-5)
    shifted = {"mean": [20.0, 20.0, 20.0], "std": [1.0, 1.0, 1.0]}
    bright = np.maximum(chips, 20)  # so that bright - 20 needs no clipping
    with _variant(normalization=shifted) as darker, _variant() as plain:
        np.testing.assert_allclose(darker.embed(bright), plain.embed(bright - 20), atol=1e-4)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"embedding": {"metric": "cosine"}}, "metric 'cosine' is not one the matcher implements"),
        ({"normalization": "divide by 255"}, "input.normalization must be"),
        ({"normalization": {"mean": [0, 0, 0], "std": [1, 0, 1]}}, "positive stds"),
    ],
)
def test_a_manifest_the_pipeline_cannot_honour_is_refused(change, message):
    embedding = change.pop("embedding", None)
    with pytest.raises(ModelError, match=message):
        _variant(embedding, **change)


# ---------------------------------------------------------------------------- dlib's chips


@pytest.mark.tools
def test_dlib_aligned_chips_separate_people(embedder, facedata):
    """With the alignment the model was trained on (dlib's chips), evaluation people only."""
    pytest.importorskip("dlib")
    pytest.importorskip("face_recognition_models")
    import dlib
    import face_recognition_models as frm

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    chips, labels = [], []
    for person in range(31, 41):
        for k in range(1, 11):
            image = load_image(facedata / "att_faces" / f"s{person}" / f"{k}.pgm")
            rects = detector(image, 1)
            if rects:
                shape = predictor(image, rects[0])
                chips.append(dlib.get_face_chip(image, shape, size=150, padding=0.25))
                labels.append(person)
    assert len(chips) >= 85  # dlib misses 11 of 100 (measured)
    emb = embedder.embed(np.stack(chips))
    d, same = pair_stats(emb, np.asarray(labels))
    assert np.mean(d[same]) < 0.45 < 0.7 < np.mean(d[~same])
    assert np.mean((d < embedder.manifest["embedding"]["threshold"]) == same) > 0.95
