"""The face-mesh refiner finds dlib's alignment points on real photos, and aligning on them
brings our chips closer to dlib's own than BlazeFace's keypoints do."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pi_facegate.config.schema import Config
from pi_facegate.core.align import Aligner, AlignmentTemplate
from pi_facegate.core.faces import Face
from pi_facegate.daemon import wiring as components
from pi_facegate.exc import ModelError
from pi_facegate.vision.detection.factory import create_detector
from pi_facegate.vision.embedder import DEFAULT_EMBEDDER, Embedder
from pi_facegate.vision.images import load_image
from pi_facegate.vision.landmarks import LandmarkRefiner, roi_transform
from pi_facegate.vision.manifest import load_manifest

# subject's right eye outer/inner, left eye inner/outer, nose base
RIGHT_OUTER, RIGHT_INNER, LEFT_INNER, LEFT_OUTER, NOSE_BASE = 33, 133, 362, 263, 2
PHOTOS = (
    "face_recognition_examples/examples/obama.jpg",
    "face_recognition_examples/examples/biden.jpg",
    "face_recognition_examples/examples/lin-manuel-miranda.png",
    "facenet_pytorch_samples/data/test_images/angelina_jolie/1.jpg",
)


@pytest.fixture(scope="module")
def refiner():
    with LandmarkRefiner.load(num_threads=2) as r:
        yield r


@pytest.fixture(scope="module")
def detector():
    d = create_detector("mediapipe", min_score=0.5)
    yield d
    d.close()


@pytest.fixture(scope="module")
def photos(facedata: Path, detector) -> list[tuple[np.ndarray, Face]]:
    out = []
    for rel in PHOTOS:
        image = load_image(facedata / rel)
        faces = detector.detect(image)
        assert len(faces) == 1, rel
        out.append((image, faces[0]))
    return out


def test_roi_is_the_enlarged_square_turned_level_with_the_eyes():
    kps = np.zeros((6, 2))
    kps[0], kps[1] = (40.0, 60.0), (80.0, 100.0)  # eyes on a 45-degree line
    face = Face((20.0, 30.0, 100.0, 80.0), 0.9, kps)
    m = roi_transform(face, 192, scale=1.5)
    apply = lambda p: m[:, :2] @ np.asarray(p, float) + m[:, 2]  # noqa: E731
    np.testing.assert_allclose(apply((70.0, 70.0)), (96.0, 96.0))  # box centre -> crop centre
    a, b = apply(kps[0]), apply(kps[1])
    assert a[1] == pytest.approx(b[1]) and b[0] > a[0]  # eyes level, in order
    # the square's side is 1.5 x the longer box side: 150 px become the 192-px crop
    assert np.linalg.norm(b - a) == pytest.approx(np.hypot(40, 40) * 192 / 150)


def test_landmarks_fall_on_the_face_and_bracket_the_eye_centres(photos, refiner):
    for image, face in photos:
        mesh = refiner.mesh(image, face)
        assert mesh.points.shape == (468, 2) and mesh.score > 0.9
        x, y, w, h = face.box
        pts = mesh.points[[RIGHT_OUTER, RIGHT_INNER, LEFT_INNER, LEFT_OUTER, NOSE_BASE]]
        assert np.all((pts[:, 0] > x) & (pts[:, 0] < x + w) & (pts[:, 1] > y) & (pts[:, 1] < y + h))
        right_eye, left_eye = face.keypoints[0], face.keypoints[1]
        # the subject's right eye is on the image's left; its corners bracket BlazeFace's centre
        assert pts[0, 0] < right_eye[0] < pts[1, 0] < pts[2, 0] < left_eye[0] < pts[3, 0]
        eye_distance = np.linalg.norm(left_eye - right_eye)
        for corner, centre in ((0, right_eye), (1, right_eye), (2, left_eye), (3, left_eye)):
            assert abs(pts[corner, 1] - centre[1]) < 0.25 * eye_distance
        assert (
            pts[4, 1] > max(right_eye[1], left_eye[1]) + 0.3 * eye_distance
        )  # nose base under the eyes


def test_same_frame_same_landmarks(photos, refiner):
    image, face = photos[0]
    first = refiner.refine(image, [face])[0]
    again = refiner.refine(image.copy(), [face])[0]
    np.testing.assert_array_equal(first, again)


def test_landmarks_follow_a_rotated_face(photos, refiner, detector):
    """Rotating the photo moves the landmarks with it: the crop really follows the eyes."""
    image, face = photos[0]
    h, w = image.shape[:2]
    rot = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), 20.0, 1.0)
    turned = cv2.warpAffine(
        image, rot, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    (turned_face,) = detector.detect(turned)
    idx = [RIGHT_OUTER, RIGHT_INNER, LEFT_INNER, LEFT_OUTER, NOSE_BASE]
    expected = refiner.mesh(image, face).points[idx] @ rot[:, :2].T + rot[:, 2]
    got = refiner.mesh(turned, turned_face).points[idx]
    eye_distance = np.linalg.norm(face.keypoints[1] - face.keypoints[0])
    assert np.abs(got - expected).max() < 0.06 * eye_distance


def test_a_crop_without_a_face_scores_low_and_falls_back_to_the_detector_template(refiner):
    manifest = load_manifest(DEFAULT_EMBEDDER)
    image = np.full((300, 300, 3), 128, np.uint8)
    kps = np.array([[120, 130], [180, 130], [150, 160], [150, 190], [100, 140], [200, 140]], float)
    face = Face((90.0, 90.0, 120.0, 120.0), 0.9, kps)
    assert refiner.mesh(image, face).score < refiner.min_score
    with_mesh = Aligner.from_manifest(manifest, refiner)
    plain = Aligner.from_manifest(manifest)
    np.testing.assert_array_equal(with_mesh.face_transform(image, face), plain.transform(kps))


def test_wrong_manifests_are_refused(tmp_path):
    embedder_manifest = load_manifest(DEFAULT_EMBEDDER)
    with pytest.raises(ModelError, match="not a landmark model"):
        LandmarkRefiner(embedder_manifest)
    mesh = AlignmentTemplate.from_manifest(embedder_manifest, "mesh_template")
    assert mesh.source == "mesh" and mesh.keypoint_names[0].startswith("mesh:")
    with pytest.raises(ModelError, match="detector's keypoints"):
        Aligner(mesh)
    with pytest.raises(ModelError, match="no mesh template"):
        Aligner(AlignmentTemplate.from_manifest(embedder_manifest), None, object())


def test_recognizer_aligns_on_the_mesh_and_closes_the_model(photos):
    recognizer = components.build_recognizer(Config())
    try:
        assert (
            recognizer.aligner.refiner is not None and recognizer.aligner.mesh_template is not None
        )
        image, _ = photos[0]
        faces = recognizer.detect_still(image)
        (analysis,) = recognizer.analyse(image, faces)
        assert analysis.usable and recognizer.timings["align"] > 0
    finally:
        recognizer.close()
    with pytest.raises(ModelError, match="closed"):
        recognizer.aligner.refiner.mesh(image, faces[0])


@pytest.mark.tools
def test_mesh_alignment_is_closer_to_dlibs_chips_than_blazeface(photos, refiner):
    """The point of the mesh: our chips embed nearer to the chips the embedder was trained on."""
    dlib = pytest.importorskip("dlib")
    frm = pytest.importorskip("face_recognition_models")
    hog = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    manifest = load_manifest(DEFAULT_EMBEDDER)
    embedder = Embedder(manifest, num_threads=2)
    plain, meshed = Aligner.from_manifest(manifest), Aligner.from_manifest(manifest, refiner)
    gaps = []
    for image, face in photos:
        (rect,) = hog(image, 1)
        reference = np.asarray(
            dlib.get_face_chip(image, predictor(image, rect), size=150, padding=0.25)
        )
        chips = np.stack([reference, plain.align(image, face), meshed.align(image, face)])
        ref, ours_plain, ours_mesh = embedder.embed(chips)
        gaps.append((np.linalg.norm(ours_plain - ref), np.linalg.norm(ours_mesh - ref)))
    gaps = np.asarray(gaps)
    assert gaps[:, 1].mean() < 0.85 * gaps[:, 0].mean(), gaps
