"""Fit the BlazeFace-keypoint alignment template of the embedder and write it to its manifest.

The embedder (dlib's ResNet) was trained on chips cut by dlib's
``get_face_chip_details(shape, size=150, padding=0.25)`` from its 5-point landmarks. Our
detector gives six other keypoints, so we learn where they land in such chips: for each
calibration photo, dlib (HOG detector + 5-point predictor, from face-recognition-models)
gives the exact image-to-chip mapping, our detector gives the keypoints, and the mapped
keypoints are averaged over all photos. Then several keypoint subsets and weights are tried
and the one whose chips give embeddings closest to the embeddings of dlib's own chips is
kept. Calibration split (never used for reported accuracy): five_celebrity_faces/train,
facenet_pytorch_samples/data/test_images and face_recognition_examples' single-face photos.

Usage: python tools/fit_alignment_template.py [--facedata DIR] [--manifest models/X.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pi_facegate.align import Aligner, AlignmentTemplate  # noqa: E402
from pi_facegate.detection import KEYPOINT_NAMES  # noqa: E402
from pi_facegate.detection.factory import create_detector  # noqa: E402
from pi_facegate.embedder import Embedder  # noqa: E402
from pi_facegate.images import load_image  # noqa: E402
from pi_facegate.manifest import load_manifest  # noqa: E402
from pi_facegate.paths import facedata_dir  # noqa: E402

CHIP_SIZE = 150
CHIP_PADDING = 0.25
PAD_FRACTION = 0.4  # tight crops (150x150 celebrity faces) need a border for both detectors


def calibration_images(root: Path) -> list[Path]:
    """The calibration split: people who are not in any reported evaluation."""
    paths = sorted((root / "five_celebrity_faces" / "train").glob("*/*.jpg"))
    paths += sorted((root / "facenet_pytorch_samples" / "data" / "test_images").glob("*/*.jpg"))
    ex = root / "face_recognition_examples" / "examples"
    paths += [ex / n for n in ("obama.jpg", "biden.jpg", "obama2.jpg", "lin-manuel-miranda.png", "alex-lacamoire.png")]
    return [p for p in paths if p.is_file()]


def pad(image: np.ndarray, fraction: float = PAD_FRACTION) -> np.ndarray:
    """A grey border around ``image`` so a face filling the photo is detectable."""
    import cv2

    h, w = image.shape[:2]
    t, s = int(h * fraction), int(w * fraction)
    return cv2.copyMakeBorder(image, t, t, s, s, cv2.BORDER_CONSTANT, value=(128, 128, 128))


def dlib_chip_mapping(details) -> np.ndarray:
    """The 2x3 affine matrix dlib's ``extract_image_chip`` uses (its ``get_mapping_to_chip``)."""
    import cv2

    r = details.rect
    cent = np.array([(r.left() + r.right()) / 2.0, (r.top() + r.bottom()) / 2.0])
    c, s = np.cos(details.angle), np.sin(details.angle)
    rot = np.array([[c, -s], [s, c]])
    corners = [np.array(p, dtype=float) for p in ((r.left(), r.top()), (r.right(), r.top()), (r.right(), r.bottom()))]
    src = np.float32([rot @ (p - cent) + cent for p in corners])
    dst = np.float32([[0, 0], [details.cols - 1, 0], [details.cols - 1, details.rows - 1]])
    return cv2.getAffineTransform(src, dst).astype(np.float64)


def collect(root: Path, detector) -> tuple[list, np.ndarray]:
    """(image, keypoints, dlib chip) triples and the keypoints mapped into dlib's chips."""
    import dlib
    import face_recognition_models as frm

    hog = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    samples, mapped = [], []
    for path in calibration_images(root):
        image = pad(load_image(path))
        dets = hog(image, 1)
        faces = detector.detect(image)
        if len(dets) != 1 or len(faces) != 1:
            continue
        shape = predictor(image, dets[0])
        details = dlib.get_face_chip_details(shape, size=CHIP_SIZE, padding=CHIP_PADDING)
        matrix = dlib_chip_mapping(details)
        kps = faces[0].keypoints
        mapped.append(kps @ matrix[:, :2].T + matrix[:, 2])
        chip = np.asarray(dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=CHIP_PADDING))
        samples.append((image, faces[0], chip))
    return samples, np.asarray(mapped)


def score(template: AlignmentTemplate, samples: list, embedder: Embedder, reference: np.ndarray) -> float:
    """Mean embedding distance between our chips and dlib's chips of the same photos."""
    aligner = Aligner(template)
    chips = np.stack([aligner.align(img, face) for img, face, _ in samples])
    ours = embedder.embed(chips)
    return float(np.linalg.norm(ours - reference, axis=1).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--facedata", type=Path, default=facedata_dir())
    parser.add_argument("--manifest", type=Path, action="append", default=None,
                        help="embedder manifest(s) to update (default: every embedder in models/)")
    args = parser.parse_args(argv)
    manifests = args.manifest or sorted(p for p in (REPO / "models").glob("*.json")
                                        if json.loads(p.read_text()).get("kind") == "embedder")
    detector = create_detector("mediapipe", min_score=0.5)
    try:
        samples, mapped = collect(args.facedata, detector)
    finally:
        detector.close()
    if len(samples) < 20:
        print(f"only {len(samples)} usable calibration photos: not enough", file=sys.stderr)
        return 1
    mean = np.median(mapped, axis=0)
    spread = np.median(np.linalg.norm(mapped - mean, axis=2), axis=0)
    print(f"{len(samples)} calibration faces; keypoint spread in chip pixels:",
          dict(zip(KEYPOINT_NAMES, np.round(spread, 2), strict=True)))
    embedder = Embedder(load_manifest(manifests[0]), num_threads=2)
    reference = embedder.embed(np.stack([chip for _, _, chip in samples]))
    candidates = {
        "eyes+nose+mouth": ((0, 1, 2, 3), (1, 1, 1, 1)),
        "eyes+nose+mouth, eyes x2": ((0, 1, 2, 3), (2, 2, 1, 1)),
        "eyes+mouth": ((0, 1, 3), (1, 1, 1)),
        "all six": ((0, 1, 2, 3, 4, 5), (1, 1, 1, 1, 1, 1)),
        "all six, ears x0.5": ((0, 1, 2, 3, 4, 5), (1, 1, 1, 1, 0.5, 0.5)),
    }
    results = {}
    for label, (idx, weights) in candidates.items():
        template = AlignmentTemplate(CHIP_SIZE, idx, mean[list(idx)], np.asarray(weights, float))
        results[label] = score(template, samples, embedder, reference)
        print(f"  {label:28s} mean distance to dlib-chip embeddings {results[label]:.4f}")
    best = min(results, key=results.get)
    idx, weights = candidates[best]
    print(f"chosen: {best}")
    for path in manifests:
        data = json.loads(path.read_text())
        data["alignment"]["template"] = {
            "keypoints": [KEYPOINT_NAMES[i] for i in idx],
            "points": np.round(mean[list(idx)], 3).tolist(),
            "weights": list(map(float, weights)),
            "fitted_on": f"{len(samples)} faces: five_celebrity_faces/train, facenet_pytorch_samples test_images, "
            "face_recognition_examples single photos (calibration split)",
            "mean_distance_to_dlib_chips": round(results[best], 4),
        }
        path.write_text(json.dumps(data, indent=2) + "\n")
        print(f"wrote template to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
