"""Fit the alignment templates of the embedder (BlazeFace keypoints, face mesh) into its manifest.

The embedder (dlib's ResNet) was trained on chips cut by dlib's
``get_face_chip_details(shape, size=150, padding=0.25)`` from its 5-point landmarks. Our
detector gives six other keypoints, so we learn where they land in such chips: for each
calibration photo, dlib (HOG detector + 5-point predictor, from face-recognition-models)
gives the exact image-to-chip mapping, our detector gives the keypoints, and the mapped
keypoints are averaged over all photos. Then several keypoint subsets and weights are tried
and the one whose chips give embeddings closest to the embeddings of dlib's own chips is
kept. Calibration split (never used for reported accuracy): five_celebrity_faces/train,
facenet_pytorch_samples/data/test_images and face_recognition_examples' single-face photos.

The same is done for the face-mesh landmarks (``models/face_landmark.tflite``): their mean
positions in dlib's chips give ``alignment.mesh_template``; candidates are dlib's own five
points (eye corners, nose base) and larger sets. ``--hamilton`` also reports, for both
templates, the distance of every close-up face of ``short_hamilton_clip.mp4`` to the enrolled
``lin-manuel-miranda.png`` (the measurement that motivated the mesh).

Usage: python tools/fit_alignment_template.py [--facedata DIR] [--manifest models/X.json] [--hamilton]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pi_facegate.core.align import Aligner, AlignmentTemplate  # noqa: E402
from pi_facegate.core.faces import KEYPOINT_NAMES  # noqa: E402
from pi_facegate.paths import facedata_dir  # noqa: E402
from pi_facegate.vision.detection.factory import create_detector  # noqa: E402
from pi_facegate.vision.embedder import Embedder  # noqa: E402
from pi_facegate.vision.images import load_image  # noqa: E402
from pi_facegate.vision.landmarks import LandmarkRefiner  # noqa: E402
from pi_facegate.vision.manifest import load_manifest  # noqa: E402

CHIP_SIZE = 150
CHIP_PADDING = 0.25
PAD_FRACTION = 0.4  # tight crops (150x150 celebrity faces) need a border for both detectors
# face-mesh landmarks (subject's right/left): dlib's 5 points are the four eye corners and the
# base of the nose; the mouth corners and nose bridge are candidates for a larger set
MESH_EYES = (33, 133, 362, 263)
MESH_NOSE_BASE = (2, 94)
MESH_MOUTH = (61, 291)
MESH_BRIDGE = 168


def calibration_images(root: Path) -> list[Path]:
    """The calibration split: people who are not in any reported evaluation."""
    paths = sorted((root / "five_celebrity_faces" / "train").glob("*/*.jpg"))
    paths += sorted((root / "facenet_pytorch_samples" / "data" / "test_images").glob("*/*.jpg"))
    ex = root / "face_recognition_examples" / "examples"
    paths += [
        ex / n
        for n in (
            "obama.jpg",
            "biden.jpg",
            "obama2.jpg",
            "lin-manuel-miranda.png",
            "alex-lacamoire.png",
        )
    ]
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
    corners = [
        np.array(p, dtype=float)
        for p in ((r.left(), r.top()), (r.right(), r.top()), (r.right(), r.bottom()))
    ]
    src = np.float32([rot @ (p - cent) + cent for p in corners])
    dst = np.float32([[0, 0], [details.cols - 1, 0], [details.cols - 1, details.rows - 1]])
    return cv2.getAffineTransform(src, dst).astype(np.float64)


def collect(root: Path, detector, refiner: LandmarkRefiner) -> tuple[list, np.ndarray, np.ndarray]:
    """(image, face, dlib chip) triples; detector keypoints and mesh landmarks in dlib's chips."""
    import dlib
    import face_recognition_models as frm

    hog = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    samples, mapped, mesh_mapped = [], [], []
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
        mesh_mapped.append(refiner.mesh(image, faces[0]).points @ matrix[:, :2].T + matrix[:, 2])
        chip = np.asarray(dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=CHIP_PADDING))
        samples.append((image, faces[0], chip))
    return samples, np.asarray(mapped), np.asarray(mesh_mapped)


def make_aligner(
    template: AlignmentTemplate, fallback: AlignmentTemplate, refiner: LandmarkRefiner
) -> Aligner:
    """An aligner on ``template``, with the refiner when it is a mesh template."""
    if template.source == "mesh":
        return Aligner(fallback, template, refiner)
    return Aligner(template)


def score(aligner: Aligner, samples: list, embedder: Embedder, reference: np.ndarray) -> float:
    """Mean embedding distance between our chips and dlib's chips of the same photos."""
    chips = np.stack([aligner.align(img, face) for img, face, _ in samples])
    ours = embedder.embed(chips)
    return float(np.linalg.norm(ours - reference, axis=1).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--facedata", type=Path, default=facedata_dir())
    parser.add_argument(
        "--manifest",
        type=Path,
        action="append",
        default=None,
        help="embedder manifest(s) to update (default: every embedder in models/)",
    )
    parser.add_argument(
        "--hamilton",
        action="store_true",
        help="also compare the templates on the Hamilton clip's close-ups",
    )
    args = parser.parse_args(argv)
    manifests = args.manifest or sorted(
        p
        for p in (REPO / "models").glob("*.json")
        if json.loads(p.read_text()).get("kind") == "embedder"
    )
    detector = create_detector("mediapipe", min_score=0.5)
    refiner = LandmarkRefiner.load(num_threads=2)
    try:
        samples, mapped, mesh_mapped = collect(args.facedata, detector, refiner)
        if len(samples) < 20:
            print(f"only {len(samples)} usable calibration photos: not enough", file=sys.stderr)
            return 1
        embedder = Embedder(load_manifest(manifests[0]), num_threads=2)
        reference = embedder.embed(np.stack([chip for _, _, chip in samples]))
        blaze, blaze_label, blaze_score = fit_blazeface(samples, mapped, embedder, reference)
        mesh, mesh_label, mesh_score = fit_mesh(
            samples, mesh_mapped, blaze, refiner, embedder, reference
        )
        if args.hamilton:
            hamilton(
                args.facedata,
                detector,
                embedder,
                {"blazeface": Aligner(blaze), "mesh": Aligner(blaze, mesh, refiner)},
            )
    finally:
        detector.close()
        refiner.close()
    fitted_on = (
        f"{len(samples)} faces: five_celebrity_faces/train, facenet_pytorch_samples test_images, "
        "face_recognition_examples single photos (calibration split)"
    )
    for path in manifests:
        data = json.loads(path.read_text())
        data["alignment"]["template"] = template_json(blaze, fitted_on, blaze_score, blaze_label)
        data["alignment"]["mesh_template"] = template_json(
            mesh, fitted_on, mesh_score, mesh_label
        ) | {"landmarks": "face_landmark"}
        path.write_text(json.dumps(data, indent=2) + "\n")
        print(f"wrote templates to {path}")
    return 0


def template_json(template: AlignmentTemplate, fitted_on: str, distance: float, label: str) -> dict:
    """A template as the manifest stores it."""
    return {
        "keypoints": template.keypoint_names,
        "points": np.round(template.points, 3).tolist(),
        "weights": [float(w) for w in template.weights],
        "chosen": label,
        "fitted_on": fitted_on,
        "mean_distance_to_dlib_chips": round(distance, 4),
    }


def best_of(
    candidates: dict, samples: list, embedder: Embedder, reference: np.ndarray, make
) -> tuple:
    """(template, label, distance) of the candidate whose chips embed closest to dlib's."""
    results = {}
    for label, template in candidates.items():
        results[label] = score(make(template), samples, embedder, reference)
        print(f"  {label:34s} mean distance to dlib-chip embeddings {results[label]:.4f}")
    best = min(results, key=results.get)
    print(f"chosen: {best}")
    return candidates[best], best, results[best]


def fit_blazeface(
    samples: list, mapped: np.ndarray, embedder: Embedder, reference: np.ndarray
) -> tuple:
    """The best template on BlazeFace's keypoints."""
    mean = np.median(mapped, axis=0)
    spread = np.median(np.linalg.norm(mapped - mean, axis=2), axis=0)
    print(
        f"{len(samples)} calibration faces; BlazeFace keypoint spread in chip pixels:",
        dict(zip(KEYPOINT_NAMES, np.round(spread, 2), strict=True)),
    )
    options = {
        "eyes+nose+mouth": ((0, 1, 2, 3), (1, 1, 1, 1)),
        "eyes+nose+mouth, eyes x2": ((0, 1, 2, 3), (2, 2, 1, 1)),
        "eyes+mouth": ((0, 1, 3), (1, 1, 1)),
        "all six": ((0, 1, 2, 3, 4, 5), (1, 1, 1, 1, 1, 1)),
        "all six, ears x0.5": ((0, 1, 2, 3, 4, 5), (1, 1, 1, 1, 0.5, 0.5)),
    }
    candidates = {
        label: AlignmentTemplate(CHIP_SIZE, idx, mean[list(idx)], np.asarray(w, float))
        for label, (idx, w) in options.items()
    }
    return best_of(candidates, samples, embedder, reference, Aligner)


def fit_mesh(samples, mesh_mapped, fallback, refiner, embedder, reference) -> tuple:
    """The best template on face-mesh landmarks (dlib's 5 points first, then larger sets)."""
    mean = np.median(mesh_mapped, axis=0)
    spread = np.median(np.linalg.norm(mesh_mapped - mean, axis=2), axis=0)
    named = (*MESH_EYES, *MESH_NOSE_BASE, *MESH_MOUTH, MESH_BRIDGE)
    print("mesh landmark spread in chip pixels:", {i: round(float(spread[i]), 2) for i in named})
    stable = tuple(int(i) for i in np.argsort(spread)[:68])
    options = {
        "mesh dlib-5 (nose 2)": ((*MESH_EYES, 2), None),
        "mesh dlib-5 (nose 94)": ((*MESH_EYES, 94), None),
        "mesh eye corners+nose 2+mouth": ((*MESH_EYES, 2, *MESH_MOUTH), None),
        "mesh dlib-5 + bridge": ((*MESH_EYES, 2, MESH_BRIDGE), None),
        "mesh 68 most stable": (stable, None),
        "mesh all 468": (tuple(range(mean.shape[0])), None),
    }
    candidates = {
        label: AlignmentTemplate(
            CHIP_SIZE,
            idx,
            mean[list(idx)],
            np.ones(len(idx)) if w is None else np.asarray(w, float),
            "mesh",
        )
        for label, (idx, w) in options.items()
    }
    return best_of(
        candidates, samples, embedder, reference, lambda t: make_aligner(t, fallback, refiner)
    )


def hamilton(root: Path, detector, embedder: Embedder, aligners: dict[str, Aligner]) -> None:
    """Distances of the clip's faces to the enrolled lin-manuel-miranda.png, per aligner and dlib.

    Counted are the faces dlib recognises itself (HOG + 5 points + its own chip, distance < 0.6
    to its own chip of the photo): those are Lin-Manuel Miranda, whom every aligner should find.
    """
    import cv2
    import dlib
    import face_recognition_models as frm

    hog = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())

    def dlib_chip(image, rect):
        shape = predictor(image, rect)
        return np.asarray(dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=CHIP_PADDING))

    ex = root / "face_recognition_examples" / "examples"
    photo = load_image(ex / "lin-manuel-miranda.png")
    face = detector.detect(photo)[0]
    enrolled = {name: embedder.embed(a.align(photo, face)[None])[0] for name, a in aligners.items()}
    enrolled["dlib"] = embedder.embed(dlib_chip(photo, hog(photo, 1)[0])[None])[0]
    rows = []
    capture = cv2.VideoCapture(str(ex / "short_hamilton_clip.mp4"))
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        rects = hog(rgb, 1)
        for f in detector.detect(rgb):
            cx, cy = f.box[0] + f.box[2] / 2, f.box[1] + f.box[3] / 2
            same = [r for r in rects if r.left() < cx < r.right() and r.top() < cy < r.bottom()]
            if not same:
                continue
            row = [
                np.linalg.norm(embedder.embed(a.align(rgb, f)[None])[0] - enrolled[n])
                for n, a in aligners.items()
            ]
            row.append(
                np.linalg.norm(embedder.embed(dlib_chip(rgb, same[0])[None])[0] - enrolled["dlib"])
            )
            rows.append(row)
    capture.release()
    dist = np.asarray(rows)
    dist = dist[dist[:, -1] < 0.6]
    for k, name in enumerate([*aligners, "dlib"]):
        d = dist[:, k]
        print(
            f"  hamilton {name:9s}: distance to enrolled photo min {d.min():.3f} median {np.median(d):.3f} "
            f"max {d.max():.3f}; recognised (< 0.6) {(d < 0.6).sum()}/{len(d)}"
        )


if __name__ == "__main__":
    sys.exit(main())
