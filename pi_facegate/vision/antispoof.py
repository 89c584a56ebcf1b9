"""Passive texture liveness: MiniFASNet anti-spoofing models on a crop around the face.

Two small CNNs from minivision-ai/Silent-Face-Anti-Spoofing (Apache-2.0), converted to TFLite
by ``tools/build_antispoof.py``, look at the skin, print and screen texture around a face and
give three class scores, one of which means "real face". Upstream averages the two models'
softmax outputs; :meth:`TextureLiveness.score` does the same and returns the live probability,
0..1. It is evidence for the liveness decision, not the decision: these open models are weak
on some cameras (see ``models/README.md`` for the numbers measured on NUAA).

Everything about a model comes from its manifest (``kind: antispoof``): the crop scale, the
input size, colour order and normalisation, and which output class means live. The crop is
upstream's ``CropImage``, reproduced by :func:`crop_box`/:func:`crop_face`:

- the face box is scaled by ``scale`` around its centre (width and height each, so the crop
  keeps the box's aspect ratio), the scale first reduced so that the crop fits in the frame
  (``min(scale, (H-1)/box_h, (W-1)/box_w)``);
- a crop that sticks out of the frame is shifted back in (never shrunk), then its corners are
  truncated to integers and the inclusive rectangle is resized to the model's input with
  OpenCV's bilinear ``resize``.

Nothing here imports TensorFlow; numpy 1 and 2 both work.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pi_facegate.core.faces import Face
from pi_facegate.exc import ImageError, ModelError
from pi_facegate.vision.embedder import dequantize, quantize
from pi_facegate.vision.litert import make_interpreter
from pi_facegate.vision.manifest import Manifest, load_manifest

#: the bundled models whose live probabilities are averaged, as upstream does
DEFAULT_ANTISPOOF = ("minifasnet_v2_int8", "minifasnet_v1se_int8")


def crop_box(
    box: Sequence[float], frame_w: int, frame_h: int, scale: float
) -> tuple[int, int, int, int]:
    """The ``(left, top, right, bottom)`` pixel rectangle (inclusive) the model sees.

    ``box`` is ``(x, y, width, height)`` in frame pixels (a :class:`Face` box). The box is
    enlarged ``scale`` times around its centre, the scale reduced first if the result would
    not fit in the frame; a rectangle that crosses a border is shifted back inside.
    """
    x, y, box_w, box_h = (float(v) for v in box)
    if not (box_w > 0 and box_h > 0 and np.isfinite([x, y, box_w, box_h]).all()):
        raise ImageError(f"face box {tuple(box)} has no area")
    if frame_w < 2 or frame_h < 2:
        raise ImageError(f"frame {frame_w}x{frame_h} is too small to crop")
    scale = min((frame_h - 1) / box_h, (frame_w - 1) / box_w, float(scale))
    new_w, new_h = box_w * scale, box_h * scale
    cx, cy = x + box_w / 2, y + box_h / 2
    left, top = cx - new_w / 2, cy - new_h / 2
    right, bottom = cx + new_w / 2, cy + new_h / 2
    if left < 0:
        right -= left
        left = 0.0
    if top < 0:
        bottom -= top
        top = 0.0
    if right > frame_w - 1:
        left -= right - (frame_w - 1)
        right = frame_w - 1.0
    if bottom > frame_h - 1:
        top -= bottom - (frame_h - 1)
        bottom = frame_h - 1.0
    # int() truncates like upstream; max() only guards against -1e-13 rounding residue
    return max(0, int(left)), max(0, int(top)), int(right), int(bottom)


def crop_face(
    frame: np.ndarray, box: Sequence[float], scale: float, width: int, height: int
) -> np.ndarray:
    """The ``(height, width, C)`` crop of :func:`crop_box`, resized bilinearly (same channels)."""
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.dtype != np.uint8:
        raise ImageError(f"frame must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
    h, w = frame.shape[:2]
    left, top, right, bottom = crop_box(box, w, h, scale)
    patch = frame[top : bottom + 1, left : right + 1]
    return cv2.resize(patch, (int(width), int(height)))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in float64 for stability, returned as float32."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


@dataclass(frozen=True)
class ModelSpec:
    """What one anti-spoofing manifest says about its model's input and output."""

    name: str
    width: int
    height: int
    bgr: bool
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    scale: float
    classes: int
    live_class: int

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> ModelSpec:
        if manifest.kind != "antispoof":
            raise ModelError(
                f"{manifest.path} describes a {manifest.kind!r}, not an antispoof model"
            )
        try:
            inp, out, crop = manifest["input"], manifest["output"], manifest["crop"]
            color = str(inp["color"]).upper()
            norm = inp["normalization"]
            spec = cls(
                name=manifest.name,
                width=int(inp["width"]),
                height=int(inp["height"]),
                bgr=color == "BGR",
                mean=tuple(float(v) for v in norm["mean"]),  # type: ignore[arg-type]
                std=tuple(float(v) for v in norm["std"]),  # type: ignore[arg-type]
                scale=float(crop["scale"]),
                classes=int(out["classes"]),
                live_class=int(out["live_class"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"antispoof manifest {manifest.path} is incomplete: {exc!r}") from exc
        if color not in ("BGR", "RGB"):
            raise ModelError(f"{manifest.path}: input color must be BGR or RGB, not {color!r}")
        if len(spec.mean) != 3 or len(spec.std) != 3 or min(spec.std) <= 0:
            raise ModelError(f"{manifest.path}: normalization needs 3 means and 3 positive stds")
        if not 0 <= spec.live_class < spec.classes or spec.scale <= 0:
            raise ModelError(f"{manifest.path}: bad live_class/classes/crop scale")
        return spec


class _Model:
    """One interpreter with the manifest that describes it."""

    def __init__(self, manifest: Manifest, num_threads: int) -> None:
        self.manifest = manifest
        self.spec = ModelSpec.from_manifest(manifest)
        self.interpreter = make_interpreter(manifest.model_path, num_threads=num_threads)
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self._check()
        scale, zero = self.input.get("quantization", (0.0, 0))
        self.in_q = None if not scale else (float(scale), int(zero))
        scale, zero = self.output.get("quantization", (0.0, 0))
        self.out_q = None if not scale else (float(scale), int(zero))

    def _check(self) -> None:
        s, name = self.spec, self.manifest.model_path.name
        shape = tuple(int(v) for v in self.input["shape"])
        if shape != (1, s.height, s.width, 3):
            raise ModelError(
                f"{name} takes {shape}, its manifest says (1, {s.height}, {s.width}, 3)"
            )
        declared = self.manifest["input"].get("dtype")
        actual = np.dtype(self.input["dtype"]).name
        if declared and declared != actual:
            raise ModelError(f"{name} takes {actual}, its manifest says {declared}")
        if int(self.output["shape"][-1]) != s.classes:
            raise ModelError(
                f"{name} gives {self.output['shape'][-1]} classes, its manifest says {s.classes}"
            )

    def tensor(self, crop: np.ndarray) -> np.ndarray:
        """The input tensor for a uint8 crop in the model's colour order."""
        s = self.spec
        dtype = np.dtype(self.input["dtype"])
        identity = s.mean == (0.0, 0.0, 0.0) and s.std == (1.0, 1.0, 1.0)
        if self.in_q is not None and identity and self.in_q == (1.0, 0) and dtype == np.uint8:
            return crop[None]  # the pixel is already the input code
        x = crop.astype(np.float32)
        if not identity:
            x = (x - np.float32(s.mean)) / np.float32(s.std)
        if self.in_q is None:
            return x[None].astype(dtype)
        return quantize(x[None], *self.in_q, dtype)

    def live_probability(self, frame_rgb: np.ndarray, box: Sequence[float]) -> float:
        s = self.spec
        crop = crop_face(frame_rgb, box, s.scale, s.width, s.height)
        if s.bgr:
            crop = np.ascontiguousarray(crop[:, :, ::-1])
        self.interpreter.set_tensor(self.input["index"], self.tensor(crop))
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self.output["index"])[0]
        logits = raw.astype(np.float32) if self.out_q is None else dequantize(raw, *self.out_q)
        return float(softmax(logits)[s.live_class])


class TextureLiveness:
    """The live probability of a face from the bundled texture anti-spoofing models.

    :param manifests: the models, as names in ``models/``, manifest paths or Manifests
        (default :data:`DEFAULT_ANTISPOOF`, the two INT8 MiniFASNets); each is sha256-checked
    :param num_threads: interpreter threads per model

    :meth:`score` holds a lock (the interpreters are not re-entrant); ``close()`` is idempotent
    and the object is a context manager. Missing or broken models raise :class:`ModelError`
    here, never a silent "live".
    """

    def __init__(
        self,
        manifests: Sequence[str | Path | Manifest] = DEFAULT_ANTISPOOF,
        num_threads: int = 1,
        verify: bool = True,
    ) -> None:
        self._lock = threading.Lock()
        self._models: list[_Model] = []
        if isinstance(manifests, (str, Path, Manifest)):
            manifests = [manifests]
        if not manifests:
            raise ModelError("texture liveness needs at least one antispoof model")
        for m in manifests:
            manifest = m if isinstance(m, Manifest) else load_manifest(m, verify=verify)
            if verify and isinstance(m, Manifest):
                manifest.verify()
            self._models.append(_Model(manifest, num_threads))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.spec.name for m in self._models)

    @property
    def fingerprints(self) -> tuple[str, ...]:
        """The models' sha256, in order (what an event can record as the evidence's source)."""
        return tuple(m.manifest.sha256 for m in self._models)

    def scores(self, frame_rgb: np.ndarray, face: Face) -> tuple[float, ...]:
        """Each model's live probability (0..1) for ``face`` in the RGB uint8 frame."""
        frame = np.asarray(frame_rgb)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ImageError(f"frame must be (H, W, 3) uint8 RGB, got {frame.shape} {frame.dtype}")
        with self._lock:
            if not self._models:
                raise ModelError("texture liveness is closed")
            return tuple(m.live_probability(frame, face.box) for m in self._models)

    def score(self, frame_rgb: np.ndarray, face: Face) -> float:
        """The live probability of ``face``: the mean of the models' softmax live class."""
        values = self.scores(frame_rgb, face)
        return float(sum(values) / len(values))

    def close(self) -> None:
        """Drop the interpreters; safe to call twice."""
        with self._lock:
            self._models = []

    def __enter__(self) -> TextureLiveness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TextureLiveness({self.names!r})"
