"""The 160x160 alignment templates of a facenet-pytorch embedder, derived from the project's fit.

facenet-pytorch's models were trained and evaluated on MTCNN crops: MTCNN's face *box*
(widened by ``margin`` pixels of the output size), cut without rotation and resized to
160x160 -- not a landmark alignment like dlib's chips. The door aligns every face with a
similarity warp onto a template of keypoints (:mod:`pi_facegate.core.align`), so the converted
model needs templates that say where those keypoints sit in an MTCNN crop.

How they are derived (the choice, documented in the manifest's ``alignment.derivation``):

1. the *shape* -- where the eyes, nose and mouth sit relative to each other -- is taken from
   the project's existing templates (``tools/fit_alignment_template.py``, fitted on 88 faces
   of the calibration split into dlib's chips; both the detector-keypoint and the face-mesh
   template);
2. the *framing* of an MTCNN crop is measured on the crops facenet-pytorch itself made
   (``facenet_pytorch_samples/data/test_images_aligned``: ``MTCNN()`` with its defaults,
   image_size 160, margin 0; five people of the calibration split): our detector and face
   mesh find the same keypoints there, and per template an axis-aligned map takes the
   existing template onto their mean positions (x scale about the centre, y scale and
   offset: 3 numbers; see :func:`axis_map` for why x keeps the centre);
3. a margin other than 0 shrinks the template about the chip centre by
   ``(160 - margin) / 160``, as MTCNN's widened box does.

An MTCNN box is usually taller than wide and is stretched to a square; a similarity warp
cannot stretch, so the axis-aligned map keeps that aspect in the template and the aligner's
least-squares fit splits the difference (on the five crops: x scale ~1.2-1.3 and y scale
~1.0 of dlib's framing). Few faces measure the framing, and the shape comes from 88, which is
why only three numbers per template are measured here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tools.facenet_graph import CHIP_SIZE

#: facenet-pytorch's own MTCNN crops, in the shared face data
MTCNN_CROPS = Path("facenet_pytorch_samples") / "data" / "test_images_aligned"
#: a border around a crop so BlazeFace, which wants some context, finds the face
PAD_FRACTION = 0.4
#: the template keys of an embedder manifest's ``alignment`` block
TEMPLATE_KEYS = ("template", "mesh_template")


def measure_crops(facedata: Path, base: Any, detector: Any, refiner: Any) -> dict[str, np.ndarray]:
    """Mean keypoint positions (per template) in facenet-pytorch's MTCNN crops.

    ``base`` is the manifest whose templates name the keypoints; ``detector`` a pipeline
    detector, ``refiner`` the face-mesh model. Raises RuntimeError when too few crops work.
    """
    import cv2

    from pi_facegate.core.align import AlignmentTemplate
    from pi_facegate.vision.images import load_image

    templates = {key: AlignmentTemplate.from_manifest(base, key) for key in TEMPLATE_KEYS}
    found: dict[str, list[np.ndarray]] = {key: [] for key in TEMPLATE_KEYS}
    paths = sorted((facedata / MTCNN_CROPS).glob("*/*.png"))
    for path in paths:
        image = load_image(path)
        h, w = image.shape[:2]
        top, side = int(h * PAD_FRACTION), int(w * PAD_FRACTION)
        padded = cv2.copyMakeBorder(
            image, top, top, side, side, cv2.BORDER_CONSTANT, value=(128, 128, 128)
        )
        faces = detector.detect(padded)
        if len(faces) != 1:
            continue
        mesh = refiner.mesh(padded, faces[0])
        if mesh.score < refiner.min_score:
            continue
        shift = np.array([side, top], dtype=np.float64)
        points = {"template": faces[0].keypoints, "mesh_template": mesh.points}
        for key, template in templates.items():
            found[key].append(points[key][list(template.indices)] - shift)
    count = len(found["template"])
    if count < 3:
        raise RuntimeError(
            f"only {count} of {len(paths)} MTCNN crops under {facedata / MTCNN_CROPS} gave a "
            "face and a mesh: cannot measure the framing"
        )
    return {key: np.mean(found[key], axis=0) for key in TEMPLATE_KEYS}


def axis_map(src: np.ndarray, dst: np.ndarray, weights: np.ndarray, src_size: int) -> np.ndarray:
    """``[[sx, tx], [sy, ty]]`` with ``dst = s * src + t`` per axis (weighted least squares).

    Vertically both numbers are fitted. Horizontally only the scale is: the map keeps the
    source chip's centre on the crop's centre, because a frontal face at the door is centred
    in its MTCNN box, and the few measured crops are of turned heads (their mean eye midpoint
    sits about 4 px right of centre), which would otherwise shift every chip sideways.
    """
    root = np.sqrt(np.asarray(weights, dtype=np.float64))
    src_c, dst_c = src_size / 2.0, CHIP_SIZE / 2.0
    dx, sx = (src[:, 0] - src_c) * root, (dst[:, 0] - dst_c) * root
    scale_x = float(dx @ sx / (dx @ dx))
    a = np.stack([src[:, 1], np.ones(len(src))], axis=1) * root[:, None]
    scale_y, offset_y = np.linalg.lstsq(a, dst[:, 1] * root, rcond=None)[0]
    return np.asarray([[scale_x, dst_c - scale_x * src_c], [scale_y, offset_y]])


def with_margin(points: np.ndarray, margin: float) -> np.ndarray:
    """Points of a margin-0 crop in a crop whose box was widened by ``margin`` output pixels."""
    centre = CHIP_SIZE / 2.0
    return centre + (points - centre) * (CHIP_SIZE - margin) / CHIP_SIZE


def derive(base: Any, measured: dict[str, np.ndarray], margin: float, crops: int) -> dict:
    """The ``alignment`` block of the converted model's manifest."""
    from pi_facegate.core.align import AlignmentTemplate

    if not 0 <= margin < CHIP_SIZE / 2:
        raise ValueError(f"margin must be 0..{CHIP_SIZE // 2 - 1} pixels, got {margin}")
    section = base.get("alignment") or {}
    block: dict[str, Any] = {
        "size": CHIP_SIZE,
        "padding": None,
        "method": f"facenet-pytorch MTCNN crop (image_size {CHIP_SIZE}, margin {margin:g}), "
        "approximated by a similarity warp onto the templates below",
        "margin": margin,
        "derivation": (
            f"shape from {base.name}'s templates (tools/fit_alignment_template.py); framing "
            f"measured on {crops} MTCNN crops of facenet-pytorch ({MTCNN_CROPS}, MTCNN "
            "defaults: margin 0) with an axis-aligned scale (x about the centre) and y offset per template; margin "
            "applied about the chip centre; x kept centred (symmetry); see tools/facenet_alignment.py"
        ),
    }
    for key in TEMPLATE_KEYS:
        template = AlignmentTemplate.from_manifest(base, key)
        fit = axis_map(template.points, measured[key], template.weights, template.size)
        points = with_margin(template.points * fit[:, 0] + fit[:, 1], margin)
        residual = np.linalg.norm(template.points * fit[:, 0] + fit[:, 1] - measured[key], axis=1)
        entry = dict(section[key])
        entry.update(
            {
                "points": np.round(points, 3).tolist(),
                "framing": {
                    "scale": np.round(fit[:, 0], 4).tolist(),
                    "offset": np.round(fit[:, 1], 3).tolist(),
                    "max_residual_px": round(float(residual.max()), 2),
                },
                "derived_from": f"{base.name} alignment.{key}",
            }
        )
        for stale in ("fitted_on", "mean_distance_to_dlib_chips"):
            entry.pop(stale, None)
        block[key] = entry
    return block
