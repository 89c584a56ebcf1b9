"""The bundled embedder models against their source: dlib's own ResNet (needs the [tools] extra).

The float model must reproduce ``dlib.face_recognition_model_v1`` on real dlib-aligned chips,
and the INT8 model must stay within the drift measured when it was built. Also checks the
pure-Python ``.dat`` reader and the build's refusal of a network it does not recognise.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.tools

pytest.importorskip("dlib")
pytest.importorskip("face_recognition_models")

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from pi_facegate.vision.embedder import load_embedder  # noqa: E402
from pi_facegate.vision.images import load_image  # noqa: E402
from pi_facegate.vision.manifest import load_manifest  # noqa: E402
from tools import build_embedder as be  # noqa: E402
from tools.dlib_dat import DlibFormatError, Reader, read_net  # noqa: E402

# measured by tools/check_embedder.py and the build (INT8 vs float embedding distance):
# mean 0.046, max 0.065; the bounds leave room for other CPUs' integer kernels
INT8_MEAN_BOUND = 0.07
INT8_MAX_BOUND = 0.12


@pytest.fixture(scope="module")
def net():
    return read_net(be.source_path())


@pytest.fixture(scope="module")
def chips(facedata: Path) -> np.ndarray:
    """dlib chips of real faces outside the calibration split (various photos and sizes)."""
    aligner = be.DlibAligner()
    paths = sorted((facedata / "face_recognition_examples" / "examples").glob("*.jpg"))
    paths += [facedata / "att_faces" / f"s{p}" / f"{k}.pgm" for p in (25, 33) for k in (1, 5)]
    paths += sorted((facedata / "deepface_testset").glob("img1*.jpg"))
    out = [c for c in (aligner.chip(load_image(p)) for p in paths) if c is not None]
    assert len(out) >= 15
    return np.stack(out)


@pytest.fixture(scope="module")
def dlib_truth(chips: np.ndarray) -> np.ndarray:
    return be.dlib_descriptors(chips)


# ---------------------------------------------------------------------------- the reader


def test_reader_decodes_dlib_primitives():
    r = Reader(b"\x01\x05" + b"\x81\x05" + b"\x02\x2c\x01" + b"\x01\x03\x81\x01" + b"\x01\x02hi1")
    assert r.int() == 5
    assert r.int() == -5
    assert r.int() == 300
    assert r.float() == 1.5  # mantissa 3, exponent -1
    assert r.string() == "hi"
    assert r.bool() is True
    with pytest.raises(DlibFormatError, match="end of data"):
        r.int()


def test_reader_reads_the_face_resnet(net):
    assert net.loss.params["dist_thresh"] == pytest.approx(0.6)
    assert net.input.params["size"] == (150, 150)
    assert net.input.params["mean_rgb"] == pytest.approx([122.782, 117.001, 104.298], abs=1e-4)
    convs = [layer for layer in net.layers if layer.kind == "con"]
    assert len(convs) == 29
    assert convs[0].params["weights"].shape == (32, 3, 7, 7)
    fc = net.layers[-1]
    assert (
        fc.kind == "fc" and fc.params["weights"].shape == (256, 128) and fc.params["bias"] is None
    )
    # stride-2 convs without padding open each down-sampling level (alevel3..alevel0)
    down = [i for i, c in enumerate(convs) if c.params["stride"] == (2, 2)]
    assert down == [0, 7, 15, 21, 27]
    assert all(convs[i].params["padding"] == (0, 0) for i in down)


def test_reader_refuses_a_truncated_file():
    data = be.source_path().read_bytes()
    with pytest.raises(DlibFormatError):
        read_net(data[: len(data) // 3])


def test_build_refuses_a_network_that_is_not_the_face_resnet(net):
    altered = type(net)(net.loss, net.input, net.layers[:4] + net.layers[5:])
    with pytest.raises(ValueError, match="layers"):
        be.make_plan(altered)
    swapped = type(net)(net.loss, net.input, [net.layers[1], net.layers[0], *net.layers[2:]])
    with pytest.raises(ValueError, match="layer 0"):
        be.make_plan(swapped)


# ---------------------------------------------------------------------------- the models


def test_float_model_reproduces_dlib_on_every_chip(chips, dlib_truth):
    with load_embedder("dlib_resnet_v1_float32") as emb:
        d = be.distances(emb.embed(chips), dlib_truth)
    assert d.max() < 0.01, d


def test_int8_model_stays_close_to_the_float_model(chips, dlib_truth):
    with load_embedder("dlib_resnet_v1_int8") as emb:
        d = be.distances(emb.embed(chips), dlib_truth)
    assert d.mean() < INT8_MEAN_BOUND, d
    assert d.max() < INT8_MAX_BOUND, d


def test_tensorflow_graph_is_the_model_that_was_converted(chips, dlib_truth):
    pytest.importorskip("tensorflow")
    module = be.make_module(be.load_plan())
    ours = module(chips[:4].astype(np.float32)).numpy()
    assert be.distances(ours, dlib_truth[:4]).max() < 1e-4


def test_manifests_record_source_quantization_and_calibration():
    source_sha = hashlib.sha256(be.source_path().read_bytes()).hexdigest()
    for name in ("dlib_resnet_v1_float32", "dlib_resnet_v1_int8"):
        m = load_manifest(name)
        assert m.kind == "embedder"
        assert m["source"]["sha256"] == source_sha
        assert m["alignment"]["size"] == 150 and m["alignment"]["padding"] == 0.25
        assert "template" in m["alignment"]
    int8 = load_manifest("dlib_resnet_v1_int8")
    assert int8["build"]["calibration"] == be.CALIBRATION_SPLIT
    inp, out = be.tensor_info(int8.model_path.read_bytes())
    assert int8["input"]["quantization"] == inp["quantization"] == {"scale": 1.0, "zero_point": 0}
    assert int8["output"]["quantization"] == out["quantization"]
