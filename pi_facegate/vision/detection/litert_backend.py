"""BlazeFace on LiteRT: MediaPipe's face detector re-implemented in numpy.

mediapipe's native library dies with SIGILL on the Pi 4 (see ``cpu``), but the model itself
is plain TFLite and runs anywhere LiteRT does. This backend reproduces, step by step, what
MediaPipe's FaceDetectorGraph does around the model, so both backends find the same faces:

1. ImageToTensorCalculator with ``keep_aspect_ratio``: the whole frame, padded to the
   tensor's aspect ratio around its centre (black borders), bilinearly warped to 128x128
   with OpenCV and normalised to ``(pixel - mean) / std``;
2. SsdAnchorsCalculator: the anchor grid, from the manifest's ``anchors`` options;
3. TensorsToDetectionsCalculator: box and keypoint offsets decoded against the anchors,
   scores through a clipped sigmoid, boxes under ``min_score`` dropped;
4. NonMaxSuppressionCalculator, WEIGHTED: overlapping boxes (IoU over the threshold)
   merged into their score-weighted mean;
5. DetectionProjectionCalculator: back from the padded tensor to frame pixels.

Every number comes from the model's manifest (``anchors`` and ``decoding``); nothing about
the model is written here twice. The functions are pure numpy so each step is testable.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pi_facegate.core.faces import KEYPOINT_NAMES, Detector, Face
from pi_facegate.exc import ImageError, ModelError
from pi_facegate.vision.images import to_rgb
from pi_facegate.vision.litert import make_interpreter
from pi_facegate.vision.manifest import Manifest, load_manifest

# --- shared by both backends ---------------------------------------------------------------


def detector_manifest(model: str | Path | Manifest) -> Manifest:
    """The verified manifest of a detector model, given as a name, a JSON path or a Manifest.

    Raises :class:`ModelError` if it is missing, corrupt, or not a detector.
    """
    manifest = model if isinstance(model, Manifest) else load_manifest(model)
    if manifest.kind != "detector":
        raise ModelError(
            f"model {manifest.name!r} ({manifest.path}) is a {manifest.kind}, not a detector"
        )
    names = manifest.get("keypoints")
    if names is not None and tuple(names) != KEYPOINT_NAMES:
        raise ModelError(
            f"detector {manifest.name!r} emits keypoints {names}, the code expects {KEYPOINT_NAMES}"
        )
    return manifest


def default_min_score(manifest: Manifest) -> float:
    """The detector's default confidence threshold, from its manifest (0.5 if unstated)."""
    return float((manifest.get("decoding") or {}).get("min_score_thresh", 0.5))


def rgb_frame(image: np.ndarray) -> np.ndarray:
    """``image`` as a contiguous ``(H, W, 3)`` uint8 RGB array, or :class:`ImageError`."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ImageError(f"detector needs a uint8 image, got {image.dtype}")
    if image.ndim < 2 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ImageError(f"detector needs a non-empty (H, W, 3) image, got shape {image.shape}")
    return to_rgb(image)


def select_faces(faces: list[Face], min_score: float, min_face_size: float) -> list[Face]:
    """Faces at or over both thresholds, best score first (stable for equal scores)."""
    kept = [f for f in faces if f.score >= min_score and f.size >= min_face_size]
    return sorted(kept, key=lambda face: -face.score)


# --- 1. preprocessing ---------------------------------------------------------------------


@dataclass(frozen=True)
class Letterbox:
    """The frame region the tensor shows: the whole frame padded to the tensor's aspect.

    ``center_x``, ``center_y``, ``width`` and ``height`` are in frame pixels; the padded
    region extends past the frame on the two short sides (MediaPipe's ``PadRoi``).
    """

    center_x: float
    center_y: float
    width: float
    height: float

    @classmethod
    def around(cls, frame_w: int, frame_h: int, tensor_w: int, tensor_h: int) -> Letterbox:
        tensor_aspect = tensor_h / tensor_w
        frame_aspect = frame_h / frame_w
        if tensor_aspect > frame_aspect:
            width, height = float(frame_w), frame_w * tensor_aspect
        else:
            width, height = frame_h / tensor_aspect, float(frame_h)
        return cls(frame_w / 2.0, frame_h / 2.0, width, height)

    def to_frame(self, xy: np.ndarray) -> np.ndarray:
        """Tensor-normalised ``(..., 2)`` points (0..1 across the tensor) to frame pixels."""
        scale = np.array([self.width, self.height])
        origin = np.array([self.center_x - self.width / 2, self.center_y - self.height / 2])
        return np.asarray(xy, dtype=np.float64) * scale + origin


def to_input_tensor(
    frame: np.ndarray, box: Letterbox, tensor_w: int, tensor_h: int, mean: float, std: float
) -> np.ndarray:
    """The ``(1, tensor_h, tensor_w, 3)`` float32 model input for ``frame``.

    Same operations as MediaPipe's OpenCV ImageToTensor converter: the padded region's
    corners map to the tensor's corners by a perspective warp (bilinear, zero border), then
    each value becomes ``(v - mean) / std`` as ``v * scale + offset``.
    """
    x0, x1 = box.center_x - box.width / 2, box.center_x + box.width / 2
    y0, y1 = box.center_y - box.height / 2, box.center_y + box.height / 2
    src = np.array([[x0, y1], [x0, y0], [x1, y0], [x1, y1]], dtype=np.float32)
    dst = np.array([[0, tensor_h], [0, 0], [tensor_w, 0], [tensor_w, tensor_h]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(
        frame,
        matrix,
        (tensor_w, tensor_h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )
    scale = np.float32(1.0 / std)
    offset = np.float32(-mean / std)
    return (warped.astype(np.float32) * scale + offset)[np.newaxis]


# --- 2. anchors ---------------------------------------------------------------------------


def _layer_scale(min_scale: float, max_scale: float, index: int, count: int) -> float:
    if count == 1:
        return (min_scale + max_scale) * 0.5
    return min_scale + (max_scale - min_scale) * index / (count - 1.0)


def ssd_anchors(options: Mapping[str, Any]) -> np.ndarray:
    """``(N, 4)`` float32 anchors ``(x_center, y_center, w, h)``, normalised, in model order.

    MediaPipe's SsdAnchorsCalculator (non-multiscale): layers sharing a stride are merged,
    each feature-map cell gets one anchor per (aspect ratio, scale), plus an interpolated
    scale when ``interpolated_scale_aspect_ratio`` > 0. With ``fixed_anchor_size`` every
    anchor is 1x1, so the regressors are offsets in tensor units.
    """
    strides = [int(s) for s in options["strides"]]
    num_layers = int(options["num_layers"])
    min_scale, max_scale = float(options["min_scale"]), float(options["max_scale"])
    ratios = [float(r) for r in options.get("aspect_ratios", [1.0])]
    interpolated = float(options.get("interpolated_scale_aspect_ratio", 1.0))
    fm_heights = options.get("feature_map_height") or []
    fm_widths = options.get("feature_map_width") or []
    if len(strides) != num_layers and not fm_heights:
        raise ModelError(f"anchor options: {num_layers} layers but {len(strides)} strides")
    parts = []
    layer = 0
    while layer < num_layers:
        sizes: list[tuple[float, float]] = []  # (width, height) per anchor of a cell
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            scale = _layer_scale(min_scale, max_scale, last, len(strides))
            if last == 0 and options.get("reduce_boxes_in_lowest_layer", False):
                pairs = [(1.0, 0.1), (2.0, scale), (0.5, scale)]
            else:
                pairs = [(ratio, scale) for ratio in ratios]
                if interpolated > 0.0:
                    following = (
                        1.0
                        if last == len(strides) - 1
                        else _layer_scale(min_scale, max_scale, last + 1, len(strides))
                    )
                    pairs.append((interpolated, math.sqrt(scale * following)))
            sizes += [(s * math.sqrt(r), s / math.sqrt(r)) for r, s in pairs]
            last += 1
        if fm_heights:
            fm_h, fm_w = int(fm_heights[layer]), int(fm_widths[layer])
        else:
            fm_h = math.ceil(int(options["input_size_height"]) / strides[layer])
            fm_w = math.ceil(int(options["input_size_width"]) / strides[layer])
        ys, xs = np.meshgrid(np.arange(fm_h), np.arange(fm_w), indexing="ij")
        cx = (xs.astype(np.float32) + np.float32(options.get("anchor_offset_x", 0.5))) / fm_w
        cy = (ys.astype(np.float32) + np.float32(options.get("anchor_offset_y", 0.5))) / fm_h
        size = np.ones((len(sizes), 2)) if options.get("fixed_anchor_size") else np.array(sizes)
        grid = np.empty((fm_h, fm_w, len(sizes), 4), dtype=np.float32)
        grid[..., 0] = cx[..., None]
        grid[..., 1] = cy[..., None]
        grid[..., 2:] = size
        parts.append(grid.reshape(-1, 4))
        layer = last
    return np.concatenate(parts)


# --- 3. decoding --------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidates:
    """Decoded detections in tensor-normalised coordinates, before suppression.

    ``boxes`` is ``(N, 4)`` as ``(xmin, ymin, xmax, ymax)``; ``keypoints`` is ``(N, K, 2)``.
    """

    scores: np.ndarray
    boxes: np.ndarray
    keypoints: np.ndarray


def decode(
    raw_boxes: np.ndarray,
    raw_scores: np.ndarray,
    anchors: np.ndarray,
    decoding: Mapping[str, Any],
    min_score: float,
) -> Candidates:
    """MediaPipe's TensorsToDetections (CPU path) over all anchors at once.

    ``raw_boxes`` is ``(N, num_coords)``, ``raw_scores`` ``(N, num_classes)`` logits.
    """
    raw_boxes = raw_boxes.astype(np.float32, copy=False)
    logits = raw_scores.astype(np.float32, copy=False)
    if decoding.get("sigmoid_score", True):
        clip = decoding.get("score_clipping_thresh")
        if clip is not None:
            logits = np.clip(logits, -clip, clip)
        with np.errstate(over="ignore"):  # exp(100) is inf in float32: the score is 0, as in C++
            scores = (1.0 / (1.0 + np.exp(-logits))).max(axis=1)
    else:
        scores = logits.max(axis=1)
    keep = scores >= min_score
    scores, raw, anc = scores[keep], raw_boxes[keep], anchors[keep]

    xy_order = decoding.get("box_format", "xywh") == "xywh"
    off = int(decoding.get("box_coord_offset", 0))
    cols = [off, off + 1, off + 2, off + 3] if xy_order else [off + 1, off, off + 3, off + 2]
    x, y, w, h = (raw[:, c] for c in cols)
    a_x, a_y, a_w, a_h = anc[:, 0], anc[:, 1], anc[:, 2], anc[:, 3]
    x_scale, y_scale = np.float32(decoding["x_scale"]), np.float32(decoding["y_scale"])
    w_scale, h_scale = np.float32(decoding["w_scale"]), np.float32(decoding["h_scale"])
    cx = x / x_scale * a_w + a_x
    cy = y / y_scale * a_h + a_y
    if decoding.get("apply_exponential_on_box_size", False):
        w, h = np.exp(w / w_scale) * a_w, np.exp(h / h_scale) * a_h
    else:
        w, h = w / w_scale * a_w, h / h_scale * a_h
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)

    count = int(decoding.get("num_keypoints", 0))
    start = int(decoding.get("keypoint_coord_offset", 4))
    step = int(decoding.get("num_values_per_keypoint", 2))
    kp = raw[:, start : start + count * step].reshape(-1, count, step)[..., :2]
    if not xy_order:
        kp = kp[..., ::-1]
    keypoints = np.empty_like(kp)
    keypoints[..., 0] = kp[..., 0] / x_scale * a_w[:, None] + a_x[:, None]
    keypoints[..., 1] = kp[..., 1] / y_scale * a_h[:, None] + a_y[:, None]

    valid = (w >= 0) & (h >= 0)  # also drops NaN sizes, as MediaPipe does
    return Candidates(scores[valid], boxes[valid], keypoints[valid])


# --- 4. suppression -----------------------------------------------------------------------


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one ``(xmin, ymin, xmax, ymax)`` box with each of ``boxes``."""
    ix = np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0])
    iy = np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1])
    inter = np.clip(ix, 0, None) * np.clip(iy, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def weighted_nms(found: Candidates, threshold: float) -> Candidates:
    """MediaPipe's WEIGHTED non-maximum suppression.

    Taking the best remaining detection, every remaining one whose IoU with it exceeds
    ``threshold`` (itself included) is merged into one detection: corners and keypoints
    averaged with the scores as weights, the best score kept. BlazeFace fires on several
    neighbouring anchors per face, and the mean of those is steadier than any one of them.
    """
    order = np.argsort(-found.scores, kind="stable")
    scores, boxes, points = [], [], []
    while order.size:
        lead = order[0]
        overlap = iou(found.boxes[lead], found.boxes[order]) > threshold
        group, rest = order[overlap], order[~overlap]
        if group.size:
            weight = found.scores[group].astype(np.float64)
            total = weight.sum()
            boxes.append((found.boxes[group] * weight[:, None]).sum(axis=0) / total)
            points.append((found.keypoints[group] * weight[:, None, None]).sum(axis=0) / total)
        else:  # a degenerate (zero-area) box overlaps nothing, not even itself
            boxes.append(found.boxes[lead].astype(np.float64))
            points.append(found.keypoints[lead].astype(np.float64))
        scores.append(found.scores[lead])
        if rest.size == order.size:
            break
        order = rest
    count = found.keypoints.shape[1]
    return Candidates(
        np.array(scores, dtype=np.float64),
        np.array(boxes, dtype=np.float64).reshape(-1, 4),
        np.array(points, dtype=np.float64).reshape(-1, count, 2),
    )


# --- 5. back to the frame -----------------------------------------------------------------


def to_faces(found: Candidates, box: Letterbox, frame_w: int, frame_h: int) -> list[Face]:
    """Faces in frame pixels; boxes clipped to the frame, keypoints left where they fall."""
    corners = box.to_frame(found.boxes.reshape(-1, 2, 2))
    x0 = np.clip(corners[:, 0, 0], 0, frame_w)
    y0 = np.clip(corners[:, 0, 1], 0, frame_h)
    x1 = np.clip(corners[:, 1, 0], 0, frame_w)
    y1 = np.clip(corners[:, 1, 1], 0, frame_h)
    points = box.to_frame(found.keypoints)
    return [
        Face(
            (float(x0[i]), float(y0[i]), float(x1[i] - x0[i]), float(y1[i] - y0[i])),
            float(found.scores[i]),
            points[i],
        )
        for i in range(len(found.scores))
    ]


class LiteRTDetector(Detector):
    """BlazeFace on the LiteRT interpreter, with MediaPipe's pre- and post-processing.

    :param manifest: the detector's manifest (or its name / JSON path)
    :param min_score: lowest face confidence kept, 0..1 (MediaPipe's min_detection_confidence);
        None for the manifest's default
    :param min_face_size: smallest face kept, as the shorter box side in frame pixels
    :param num_threads: CPU threads for the interpreter (the Pi 4/5 have four cores)

    One instance is for one thread at a time: the interpreter is not re-entrant.
    """

    backend = "litert"

    def __init__(
        self,
        manifest: str | Path | Manifest,
        min_score: float | None = None,
        min_face_size: float = 0,
        num_threads: int = 1,
    ) -> None:
        self._interpreter: Any = None  # close() relies on it; set before anything can raise
        self.manifest = detector_manifest(manifest)
        self.min_score = default_min_score(self.manifest) if min_score is None else float(min_score)
        self.min_face_size = float(min_face_size)
        spec = self.manifest.get("input") or {}
        try:
            self._decoding = dict(self.manifest["decoding"])
            self._tensor_w, self._tensor_h = int(spec["width"]), int(spec["height"])
            self._mean, self._std = float(spec["mean"]), float(spec["std"])
            self._anchors = ssd_anchors(self.manifest["anchors"])
            self._nms_threshold = float(self._decoding["min_suppression_threshold"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(
                f"detector manifest {self.manifest.path} is incomplete: {exc}"
            ) from exc
        if len(self._anchors) != int(self._decoding["num_boxes"]):
            raise ModelError(
                f"{self.manifest.path}: anchor options give {len(self._anchors)} anchors, "
                f"decoding expects {self._decoding['num_boxes']}"
            )
        self._interpreter = make_interpreter(self.manifest.model_path, num_threads)
        self._input, self._boxes_out, self._scores_out = self._check_tensors()

    def _check_tensors(self) -> tuple[int, int, int]:
        """Tensor indices of the image input and the box/score outputs, checked against the
        manifest. MediaPipe takes the outputs in model order (boxes, then scores), so do we."""
        (image,) = self._interpreter.get_input_details()
        want = (1, self._tensor_h, self._tensor_w, 3)
        if tuple(image["shape"]) != want or image["dtype"] != np.float32:
            raise ModelError(
                f"{self.manifest.model_path}: input is {image['shape']}, manifest says {want}"
            )
        outputs = self._interpreter.get_output_details()
        boxes, scores = outputs[0], outputs[1]
        n = int(self._decoding["num_boxes"])
        if tuple(boxes["shape"]) != (1, n, int(self._decoding["num_coords"])) or tuple(
            scores["shape"]
        ) != (1, n, int(self._decoding["num_classes"])):
            raise ModelError(
                f"{self.manifest.model_path}: outputs {boxes['shape']} and {scores['shape']} "
                "do not match the manifest's decoding options"
            )
        return image["index"], boxes["index"], scores["index"]

    def detect(self, image: np.ndarray, timestamp_ms: int | None = None) -> list[Face]:
        """Faces in the RGB ``image``, best first; ``timestamp_ms`` is not needed here."""
        if self._interpreter is None:
            raise ModelError("the LiteRT detector is closed")
        frame = rgb_frame(image)
        frame_h, frame_w = frame.shape[:2]
        box = Letterbox.around(frame_w, frame_h, self._tensor_w, self._tensor_h)
        tensor = to_input_tensor(frame, box, self._tensor_w, self._tensor_h, self._mean, self._std)
        self._interpreter.set_tensor(self._input, tensor)
        self._interpreter.invoke()
        raw_boxes = self._interpreter.get_tensor(self._boxes_out)[0]
        raw_scores = self._interpreter.get_tensor(self._scores_out)[0]
        found = decode(raw_boxes, raw_scores, self._anchors, self._decoding, self.min_score)
        merged = weighted_nms(found, self._nms_threshold)
        faces = to_faces(merged, box, frame_w, frame_h)
        return select_faces(faces, self.min_score, self.min_face_size)

    def close(self) -> None:
        """Drop the interpreter; safe to call twice."""
        self._interpreter = None
