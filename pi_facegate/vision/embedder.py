"""Face embeddings: aligned RGB chips in, vectors out, with a TFLite model and its manifest.

The default model is dlib's face-recognition ResNet converted to full-integer INT8
(``models/dlib_resnet_v1_int8.tflite``, built by ``tools/build_embedder.py``: 150x150 chips,
128-D); ``tools/convert_facenet.py`` makes others (a FaceNet: 160x160, 512-D, unit length).
Everything model-specific comes from the manifest: chip size, embedding size, input
normalisation, whether vectors are L2-normalised, the metric. The bundled models take the raw
``uint8`` RGB chip (normalisation inside the graph) and give ``int8``;
:func:`quantize`/:func:`dequantize` translate at the edges with the scale and zero point the
model itself declares. Distances are Euclidean (the only metric the matcher has), in the
model's own units; the manifest gives threshold, margin and alignment.

Nothing here imports TensorFlow: the interpreter comes from :mod:`pi_facegate.vision.litert`
(ai-edge-litert, else tflite-runtime), and everything works with numpy 1 and 2.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from pi_facegate.exc import ImageError, ModelError
from pi_facegate.vision.litert import make_interpreter
from pi_facegate.vision.manifest import Manifest, load_manifest

#: the bundled embedder used unless the config names another
DEFAULT_EMBEDDER = "dlib_resnet_v1_int8"
#: faces per invoke at most: bounds the interpreter's memory when many faces arrive at once
MAX_BATCH = 8
#: the metrics :mod:`pi_facegate.core.matcher` implements (a manifest naming another is refused)
METRICS = ("euclidean",)
#: how a manifest says the normalisation needs nothing from us (``"inside the model: ..."``)
_NO_NORMALIZATION = ("inside the model", "none")


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: Any) -> np.ndarray:
    """Real values to a TFLite integer tensor: ``round(x / scale) + zero_point``, saturated.

    Rounds half away from zero like TFLite's reference kernels, and clips to ``dtype``'s
    range instead of wrapping, so an out-of-range value becomes the nearest valid code.
    """
    if scale <= 0:
        raise ValueError(f"quantization scale must be positive, got {scale}")
    info = np.iinfo(dtype)
    values = np.asarray(x, dtype=np.float64) / scale
    q = np.sign(values) * np.floor(np.abs(values) + 0.5) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """A TFLite integer tensor back to real values: ``(q - zero_point) * scale`` as float32."""
    return ((np.asarray(q, dtype=np.float32) - np.float32(zero_point)) * np.float32(scale)).astype(
        np.float32
    )


def _quantization(detail: dict[str, Any]) -> tuple[float, int] | None:
    """``(scale, zero_point)`` of an interpreter tensor, or None for a float tensor."""
    scale, zero_point = detail.get("quantization", (0.0, 0))
    if np.dtype(detail["dtype"]) == np.float32 or not scale:
        return None
    return float(scale), int(zero_point)


class Embedder:
    """Turns aligned face chips into embeddings with one TFLite interpreter.

    :param manifest: the model's manifest (see :func:`load_embedder` to load one by name)
    :param num_threads: CPU threads for the interpreter (the Pi has 4; the camera needs some)

    The interpreter is not thread-safe, so :meth:`embed` holds a lock; ``close()`` is
    idempotent and the object is a context manager.
    """

    def __init__(self, manifest: Manifest, num_threads: int = 2) -> None:
        self._interpreter: Any = None
        self._lock = threading.Lock()
        self.manifest = manifest
        if manifest.kind != "embedder":
            raise ModelError(f"{manifest.path} describes a {manifest.kind!r}, not an embedder")
        try:
            self._width = int(manifest["input"]["width"])
            self._height = int(manifest["input"]["height"])
            self._size = int(manifest["embedding"]["size"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"model manifest {manifest.path} lacks input/embedding sizes") from exc
        embedding = manifest["embedding"]
        metric = str(embedding.get("metric", "euclidean")).lower()
        if metric not in METRICS:
            raise ModelError(
                f"{manifest.path}: metric {metric!r} is not one the matcher implements "
                f"({', '.join(METRICS)})"
            )
        #: the model promises unit vectors: re-normalised after dequantization (INT8 rounding
        #: leaves lengths of 1 +- 1 %), so distances stay in the units its threshold is in
        self.normalized = bool(embedding.get("normalized", False))
        self._norm = _input_normalization(manifest)
        self._interpreter = make_interpreter(manifest.model_path, num_threads=num_threads)
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._batch = int(self._input["shape"][0])
        self._check_model()
        self._in_q = _quantization(self._input)
        self._out_q = _quantization(self._output)

    def _check_model(self) -> None:
        """The interpreter's tensors must be what the manifest promises, or we refuse to run."""
        shape = tuple(int(v) for v in self._input["shape"][1:])
        if shape != (self._height, self._width, 3):
            raise ModelError(
                f"{self.manifest.model_path.name} takes {shape}, its manifest says "
                f"{(self._height, self._width, 3)}"
            )
        declared = self.manifest["input"].get("dtype")
        actual = np.dtype(self._input["dtype"]).name
        if declared and declared != actual:
            raise ModelError(
                f"{self.manifest.model_path.name} takes {actual}, its manifest says {declared}"
            )
        if int(self._output["shape"][-1]) != self._size:
            raise ModelError(
                f"{self.manifest.model_path.name} gives {self._output['shape'][-1]} values, "
                f"its manifest says {self._size}"
            )

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def fingerprint(self) -> str:
        """The model file's sha256: a gallery stores it and refuses embeddings from another."""
        return self.manifest.sha256

    @property
    def size(self) -> int:
        """Length of one embedding (the manifest's ``embedding.size``: 128 for the dlib ResNet)."""
        return self._size

    @property
    def input_size(self) -> tuple[int, int]:
        """``(width, height)`` of the chips :meth:`embed` takes."""
        return self._width, self._height

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """Embeddings of ``(N, H, W, 3)`` (or one ``(H, W, 3)``) uint8 RGB chips: ``(N, size)``.

        Chips must be aligned the way the manifest's ``alignment`` says. Several chips go
        through the model in one invoke (up to :data:`MAX_BATCH` at a time).
        """
        batch = self._check_chips(chips)
        if len(batch) == 0:
            return np.zeros((0, self._size), dtype=np.float32)
        parts = [
            self._run(batch[start : start + MAX_BATCH]) for start in range(0, len(batch), MAX_BATCH)
        ]
        return np.concatenate(parts, axis=0)

    def _check_chips(self, chips: np.ndarray) -> np.ndarray:
        arr = np.asarray(chips)
        if arr.ndim == 3:
            arr = arr[None]
        if arr.ndim != 4 or arr.shape[1:] != (self._height, self._width, 3):
            raise ImageError(
                f"face chips must be (N, {self._height}, {self._width}, 3) RGB, got {arr.shape}"
            )
        if arr.dtype != np.uint8:
            raise ImageError(f"face chips must be uint8 RGB, got {arr.dtype}")
        return arr

    def _prepare(self, batch: np.ndarray) -> np.ndarray:
        """The model's input tensor for uint8 chips: raw, quantized, or float, normalised
        first when the manifest declares a normalisation outside the model."""
        dtype = np.dtype(self._input["dtype"])
        values = batch
        if self._norm is not None:
            mean, std = self._norm
            values = (batch.astype(np.float32) - mean) / std
        if self._in_q is None:
            return values.astype(dtype)
        scale, zero_point = self._in_q
        if self._norm is None and dtype == np.uint8 and scale == 1.0 and zero_point == 0:
            return np.ascontiguousarray(batch)  # the chip is already the input code
        return quantize(values.astype(np.float32), scale, zero_point, dtype)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:
            interp = self._interpreter
            if interp is None:
                raise ModelError(f"embedder {self.name} is closed")
            self._resize(len(batch))
            interp.set_tensor(self._input["index"], self._prepare(batch))
            interp.invoke()
            raw = interp.get_tensor(self._output["index"])
        out = raw.astype(np.float32) if self._out_q is None else dequantize(raw, *self._out_q)
        out = out.reshape(len(batch), self._size)
        if self.normalized:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out = out / np.maximum(norms, np.float32(1e-12))
        return out

    def _resize(self, n: int) -> None:
        """Give the input tensor a batch of ``n`` (re-planning only when ``n`` changes)."""
        if n == self._batch:
            return
        interp = self._interpreter
        try:
            interp.resize_tensor_input(
                self._input["index"], [n, self._height, self._width, 3], strict=False
            )
            interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{self.name} cannot take a batch of {n}: {exc}") from exc
        self._batch = n
        self._input = interp.get_input_details()[0]
        self._output = interp.get_output_details()[0]

    def close(self) -> None:
        """Drop the interpreter; safe to call twice."""
        with self._lock:
            self._interpreter = None

    def __enter__(self) -> Embedder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Embedder({self.name!r}, size={self._size}, input={self.input_size})"


def _input_normalization(manifest: Manifest) -> tuple[np.ndarray, np.ndarray] | None:
    """``(mean, std)`` per RGB channel to apply before the model, or None (it is inside).

    A manifest says ``"inside the model: ..."`` (the bundled models: the chip goes in raw) or
    gives ``{"mean": [r, g, b], "std": [r, g, b]}`` in pixel units; anything else is refused
    rather than guessed, since a wrong normalisation gives plausible but wrong embeddings.
    """
    norm = (manifest.get("input") or {}).get("normalization")
    if norm is None or (isinstance(norm, str) and norm.lower().startswith(_NO_NORMALIZATION)):
        return None
    try:
        mean = np.asarray(norm["mean"], dtype=np.float32).reshape(3)
        std = np.asarray(norm["std"], dtype=np.float32).reshape(3)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(
            f"{manifest.path}: input.normalization must be 'inside the model: ...' or "
            f"{{mean: [3 values], std: [3 values]}}, got {norm!r}"
        ) from exc
    if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
        raise ModelError(f"{manifest.path}: input.normalization needs finite means, positive stds")
    return mean, std


def load_embedder(
    name: str | Path = DEFAULT_EMBEDDER, num_threads: int = 2, verify: bool = True
) -> Embedder:
    """The bundled embedder ``name`` (or a manifest path), its sha256 checked first."""
    return Embedder(load_manifest(name, verify=verify), num_threads=num_threads)
