"""Rebuild the MiniFASNet anti-spoofing models in TensorFlow and convert them to TFLite.

``.venv/bin/python tools/build_antispoof.py [--out models] [--weights DIR] [--facedata DIR]``

The weights are minivision-ai/Silent-Face-Anti-Spoofing's two released PyTorch state_dicts
(Apache-2.0; ``../shared/models/minifasnet/``). Steps, each checked before the next:

1. :func:`tools.pth_legacy.read_state_dict` reads the legacy (pre-1.6, non-zip)
   ``torch.save`` format in pure Python, without torch; the file's sha256 must be the one
   recorded in :data:`SOURCES`;
2. :func:`make_plan` walks the network definition (:data:`STAGES`, upstream's
   ``src/model_lib/MiniFASNet.py``: MiniFASNetV2 and MiniFASNetV1SE, 80x80 input, 5x5 final
   depthwise kernel), takes every weight from the state_dict by name, checks its shape and
   that no weight is left over, and folds each frozen BatchNorm (eps 1e-5) into the
   convolution or linear layer before it;
3. :func:`make_module` runs the plan as a ``tf.function``: PyTorch's symmetric padding of the
   stride-2 convolutions is an explicit pad (TensorFlow's SAME pads the other way), PReLU is
   per channel (one PRELU op in the float model, ``x + (alpha - 1) * min(x, 0)`` in the INT8
   one, which XNNPACK can run), the SE block is mean -> 1x1 conv -> ReLU -> 1x1 conv ->
   sigmoid -> scale;
4. float32 and full-integer INT8 TFLite models are converted; INT8 is calibrated on 80x80
   crops of real faces found by the project's own BlazeFace detector (LiteRT backend) and cut
   by :func:`pi_facegate.vision.antispoof.crop_face` exactly as at run time, from a
   calibration split that is NOT the material liveness figures are reported on
   (:data:`CALIBRATION_SPLIT`);
5. each model gets a JSON manifest (``kind: antispoof``) in ``models/``.

The model takes what upstream's ``predict`` takes: a BGR crop (OpenCV order), raw 0..255
(upstream's ``ToTensor`` was modified not to divide by 255; no mean/std), and gives 3 logits,
class 1 = real face. ``tools/check_antispoof.py`` compares the result with a PyTorch
rebuild of the same network and measures it on NUAA.

Deterministic: nothing random, files visited in sorted order; two builds with the same
TensorFlow give byte-identical files.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:  # run as a script: make `tools` and `pi_facegate` importable
    sys.path.insert(0, str(REPO))

from tools.build_embedder import tensor_info  # noqa: E402
from tools.pth_legacy import file_sha256, read_state_dict  # noqa: E402

log = logging.getLogger("build_antispoof")

INPUT_SIZE = 80
NUM_CLASSES = 3
LIVE_CLASS = 1
BN_EPS = 1e-5
UPSTREAM_REPO = "https://github.com/minivision-ai/Silent-Face-Anti-Spoofing"
UPSTREAM_COMMIT = "b6d5f04ad78778917853b25c778acef6d5626d15"
LICENSE = "Apache-2.0"
#: the upstream LICENSE, copied beside the models by the build (Apache-2.0 section 4(a))
LICENSE_FILE = "LICENSE.minifasnet"
NOTICE = (
    "MiniFASNet weights and network definition from minivision-ai/Silent-Face-Anti-Spoofing, "
    "Copyright 2020 Minivision, licensed under the Apache License, Version 2.0 (copy in "
    "models/LICENSE.minifasnet); modified by pi-facegate: converted to TFLite by "
    "tools/build_antispoof.py (BatchNorm folded into the convolutions, INT8-quantized). "
    "Keep this notice and the licence with any copy of these files."
)
DEFAULT_WEIGHTS = REPO.parent / "shared" / "models" / "minifasnet"
CALIBRATION_SPLIT = (
    "live: five_celebrity_faces/train (all), att_faces s1-s10 (all), pad_nuaa/ClientRaw/0001 "
    "(every 4th frame); attack: pad_nuaa/ImposterRaw/0001 (every 4th frame). Faces found by "
    "BlazeFace short range (LiteRT backend), largest face per photo. Evaluation material "
    "(pad_nuaa subjects 0002-0003) is not in it."
)


@dataclass(frozen=True)
class Source:
    """One released checkpoint and what it is."""

    name: str  # our model name stem
    file: str
    sha256: str
    architecture: str
    se: bool  # MiniFASNetV1SE: an SE block on the last unit of each residual stage
    scale: float  # the crop scale upstream encodes in the file name


SOURCES = (
    Source(
        "minifasnet_v2",
        "2.7_80x80_MiniFASNetV2.pth",
        "a5eb02e1843f19b5386b953cc4c9f011c3f985d0ee2bb9819eea9a142099bec0",
        "MiniFASNetV2",
        False,
        2.7,
    ),
    Source(
        "minifasnet_v1se",
        "4_0_0_80x80_MiniFASNetV1SE.pth",
        "84ee1d37d96894d5e82de5a57df044ef80a58be2b218b5ed7cdfd875ec2f5990",
        "MiniFASNetV1SE",
        True,
        4.0,
    ),
)


# --------------------------------------------------------------------------------------------
# the network definition (upstream src/model_lib/MiniFASNet.py), input-first

#: (state_dict prefix, kind, stride, units); kinds: "conv" Conv_block (conv+BN+PReLU), "dw"
#: depthwise Conv_block, "unit" Depth_Wise (1x1 -> depthwise 3x3 -> 1x1 linear), "stage"
#: Residual/ResidualSE of `units` residual units (stride 1), "linear_dw" Linear_block depthwise
STAGES: tuple[tuple[str, str, int, int], ...] = (
    ("conv1", "conv", 2, 0),
    ("conv2_dw", "dw", 1, 0),
    ("conv_23", "unit", 2, 0),
    ("conv_3", "stage", 1, 4),
    ("conv_34", "unit", 2, 0),
    ("conv_4", "stage", 1, 6),
    ("conv_45", "unit", 2, 0),
    ("conv_5", "stage", 1, 2),
    ("conv_6_sep", "conv", 1, 0),
    ("conv_6_dw", "linear_dw", 1, 0),
)
#: the final depthwise kernel: upstream's get_kernel(80, 80) = ((80 + 15) // 16,) * 2
CONV6_KERNEL = (INPUT_SIZE + 15) // 16
EMBEDDING = 128
FEATURES = 512


@dataclass
class Op:
    """One step of the folded network: what the TensorFlow graph executes."""

    kind: str  # conv | dwconv | prelu | save | add | se | flatten | fc
    args: dict[str, Any] = field(default_factory=dict)


class _Weights:
    """The state_dict, handing out each tensor once and checking its shape."""

    def __init__(self, state: dict[str, np.ndarray]) -> None:
        self.state = state
        self.used: set[str] = set()

    def take(self, name: str, shape: tuple[int | None, ...] | None = None) -> np.ndarray:
        if name not in self.state:
            raise ValueError(f"the state_dict has no {name!r}")
        value = self.state[name]
        if shape is not None and (
            len(value.shape) != len(shape)
            or any(w is not None and w != v for w, v in zip(shape, value.shape, strict=True))
        ):
            raise ValueError(f"{name} has shape {value.shape}, the definition expects {shape}")
        self.used.add(name)
        return value.astype(np.float64)

    def bn(self, prefix: str, channels: int) -> tuple[np.ndarray, np.ndarray]:
        """A frozen BatchNorm as ``(scale, shift)``: ``y = scale * x + shift``."""
        gamma = self.take(f"{prefix}.weight", (channels,))
        beta = self.take(f"{prefix}.bias", (channels,))
        mean = self.take(f"{prefix}.running_mean", (channels,))
        var = self.take(f"{prefix}.running_var", (channels,))
        if f"{prefix}.num_batches_tracked" in self.state:
            self.used.add(f"{prefix}.num_batches_tracked")
        scale = gamma / np.sqrt(var + BN_EPS)
        return scale, beta - mean * scale

    def leftover(self) -> list[str]:
        return sorted(set(self.state) - self.used)


def _conv(
    w: _Weights, prefix: str, stride: int, depthwise: bool, in_c: int, prelu: bool
) -> tuple[list[Op], int]:
    """conv (no bias) -> BN [-> PReLU] as ops; returns the ops and the output channels."""
    weight = w.take(f"{prefix}.conv.weight")
    if weight.ndim != 4 or weight.shape[2] != weight.shape[3]:
        raise ValueError(f"{prefix}.conv.weight has shape {weight.shape}")
    out_c, k = weight.shape[0], weight.shape[2]
    if depthwise:
        if weight.shape[1] != 1 or out_c != in_c:
            raise ValueError(f"{prefix}: a depthwise conv of {in_c} channels has {weight.shape}")
    elif weight.shape[1] != in_c:
        raise ValueError(f"{prefix}: conv takes {weight.shape[1]} channels, gets {in_c}")
    if f"{prefix}.conv.bias" in w.state:
        raise ValueError(f"{prefix}: upstream convs have no bias")
    scale, shift = w.bn(f"{prefix}.bn", out_c)
    weight = weight * scale[:, None, None, None]
    pad = 0 if prefix == "conv_6_dw" else (k - 1) // 2  # upstream: 3x3 pad 1, 1x1 and 5x5 none
    if depthwise:
        kernel = np.transpose(weight, (2, 3, 0, 1))  # (out,1,kh,kw) -> (kh,kw,C,1)
        ops = [Op("dwconv", {"kernel": kernel, "bias": shift, "stride": stride, "pad": pad})]
    else:
        kernel = np.transpose(weight, (2, 3, 1, 0))  # (out,in,kh,kw) -> (kh,kw,in,out)
        ops = [Op("conv", {"kernel": kernel, "bias": shift, "stride": stride, "pad": pad})]
    if prelu:
        alpha = w.take(f"{prefix}.prelu.weight", (out_c,))
        ops.append(Op("prelu", {"alpha": alpha.reshape(1, 1, out_c)}))  # like Keras' PReLU
    return ops, out_c


def _unit(w: _Weights, prefix: str, stride: int, in_c: int) -> tuple[list[Op], int]:
    """Depth_Wise: 1x1 conv+BN+PReLU, depthwise 3x3 conv+BN+PReLU, 1x1 conv+BN (linear)."""
    ops, c = _conv(w, f"{prefix}.conv", 1, False, in_c, True)
    more, c = _conv(w, f"{prefix}.conv_dw", stride, True, c, True)
    ops += more
    more, c = _conv(w, f"{prefix}.project", 1, False, c, False)
    return ops + more, c


def _se(w: _Weights, prefix: str, channels: int) -> Op:
    """SEModule: global mean, 1x1 conv+BN, ReLU, 1x1 conv+BN, sigmoid, channel scale."""
    w1 = w.take(f"{prefix}.fc1.weight")
    if w1.shape[1:] != (channels, 1, 1):
        raise ValueError(f"{prefix}.fc1.weight has shape {w1.shape}")
    s1, b1 = w.bn(f"{prefix}.bn1", w1.shape[0])
    w2 = w.take(f"{prefix}.fc2.weight", (channels, w1.shape[0], 1, 1))
    s2, b2 = w.bn(f"{prefix}.bn2", channels)
    return Op(
        "se",
        {
            "w1": (w1[:, :, 0, 0] * s1[:, None]).T,  # (C, C/r)
            "b1": b1,
            "w2": (w2[:, :, 0, 0] * s2[:, None]).T,  # (C/r, C)
            "b2": b2,
        },
    )


def make_plan(state: dict[str, np.ndarray], se: bool) -> list[Op]:
    """The folded op list of a MiniFASNet state_dict (V2 if ``se`` is False, V1SE if True).

    Raises ``ValueError`` naming the first weight that is missing, of the wrong shape, or
    left over, so a different checkpoint cannot silently give a wrong model.
    """
    w = _Weights(state)
    plan: list[Op] = []
    c = 3
    for prefix, kind, stride, units in STAGES:
        if kind == "conv":
            ops, c = _conv(w, prefix, stride, False, c, True)
        elif kind == "dw":
            ops, c = _conv(w, prefix, stride, True, c, True)
        elif kind == "linear_dw":
            ops, c = _conv(w, prefix, stride, True, c, False)
            k = ops[0].args["kernel"].shape[0]
            if k != CONV6_KERNEL:
                raise ValueError(f"{prefix}: kernel {k}, expected {CONV6_KERNEL} for 80x80")
        elif kind == "unit":
            ops, c = _unit(w, prefix, stride, c)
        else:  # a residual stage
            ops = []
            for i in range(units):
                unit = f"{prefix}.model.{i}"
                body, out_c = _unit(w, unit, 1, c)
                if out_c != c:
                    raise ValueError(f"{unit}: residual unit maps {c} to {out_c} channels")
                ops.append(Op("save"))
                ops += body
                if se and i == units - 1:
                    ops.append(_se(w, f"{unit}.se_module", c))
                ops.append(Op("add"))
            if not se and any(k.startswith(f"{prefix}.model.{units - 1}.se_module") for k in state):
                raise ValueError(f"{prefix}: the checkpoint has an SE block (a V1SE/V2SE model)")
        plan += ops
    if c != FEATURES:
        raise ValueError(f"the last convolution gives {c} channels, expected {FEATURES}")
    plan.append(Op("flatten"))
    linear = w.take("linear.weight", (EMBEDDING, FEATURES))
    scale, shift = w.bn("bn", EMBEDDING)
    plan.append(Op("fc", {"weights": (linear * scale[:, None]).T, "bias": shift}))
    prob = w.take("prob.weight", (NUM_CLASSES, EMBEDDING))
    plan.append(Op("fc", {"weights": prob.T, "bias": None}))
    if w.leftover():
        raise ValueError(f"weights not used by the definition: {w.leftover()[:5]}")
    for op in plan:  # float32 from here on
        for key, value in op.args.items():
            if isinstance(value, np.ndarray):
                op.args[key] = value.astype(np.float32)
    return plan


def load_plan(source: Source, weights_dir: Path) -> list[Op]:
    path = weights_dir / source.file
    digest = file_sha256(path)
    if digest != source.sha256:
        raise ValueError(f"{path}: sha256 {digest}, expected {source.sha256}")
    return make_plan(read_state_dict(path), source.se)


# --------------------------------------------------------------------------------------------
# TensorFlow graph


def make_module(plan: Sequence[Op], name: str, prelu: str = "fused") -> Any:
    """A ``tf.Module`` mapping ``(1, 80, 80, 3)`` float 0..255 BGR to ``(1, 3)`` logits.

    ``prelu`` chooses how PReLU is written (the same function either way):

    - ``"fused"``: ``relu(x) - alpha * relu(-x)`` with alpha shaped ``(1, 1, C)``, the form the
      converter turns into one PRELU op: the float model, entirely run by XNNPACK;
    - ``"minimum"``: ``x + (alpha - 1) * min(x, 0)``, for the INT8 model: XNNPACK has no int8
      PRELU, so a PRELU op splits the int8 graph at every activation (33 times) and runs in
      TFLite's own slow kernel, 3-4x slower than this form, whose ops XNNPACK runs.
    """
    import tensorflow as tf

    if prelu not in ("fused", "minimum"):
        raise ValueError(f"unknown PReLU form {prelu!r}")

    def constants(op: Op) -> dict[str, Any]:
        args = dict(op.args)
        if op.kind == "prelu":
            alpha = args.pop("alpha")
            args["form"] = prelu
            args["k"] = tf.constant(-alpha if prelu == "fused" else alpha - 1.0)
        return {k: (tf.constant(v) if isinstance(v, np.ndarray) else v) for k, v in args.items()}

    class MiniFASNet(tf.Module):
        def __init__(self) -> None:
            super().__init__(name=name)
            self.steps = [(op.kind, constants(op)) for op in plan]

        @tf.function(
            input_signature=[
                tf.TensorSpec([1, INPUT_SIZE, INPUT_SIZE, 3], tf.float32, name="crop_bgr")
            ]
        )
        def __call__(self, x: Any) -> Any:
            saved: list[Any] = []
            for kind, a in self.steps:
                x = _apply(tf, kind, a, x, saved)
            return tf.identity(x, name="logits")

    return MiniFASNet()


def _pad(tf: Any, x: Any, pad: int) -> Any:
    return tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]]) if pad else x


def _apply(tf: Any, kind: str, a: dict[str, Any], x: Any, saved: list[Any]) -> Any:
    if kind in ("conv", "dwconv"):
        stride, pad = a["stride"], a["pad"]
        k = int(a["kernel"].shape[0])
        # stride 1 with (k-1)/2 padding is SAME in both frameworks; stride 2 is not (PyTorch
        # pads both sides, TensorFlow's SAME only the bottom/right), so pad explicitly
        same = stride == 1 and pad == (k - 1) // 2 and pad > 0
        if not same:
            x = _pad(tf, x, pad)
        padding = "SAME" if same else "VALID"
        if kind == "conv":
            y = tf.nn.conv2d(x, a["kernel"], strides=stride, padding=padding)
        else:
            y = tf.nn.depthwise_conv2d(x, a["kernel"], [1, stride, stride, 1], padding)
        return tf.nn.bias_add(y, a["bias"])
    if kind == "prelu":
        if a["form"] == "fused":  # k = -alpha
            return tf.nn.relu(x) + a["k"] * tf.nn.relu(-x)
        return x + a["k"] * tf.minimum(x, 0.0)  # k = alpha - 1
    if kind == "save":
        saved.append(x)
        return x
    if kind == "add":
        return tf.add(saved.pop(), x)
    if kind == "se":
        s = tf.reduce_mean(x, axis=[1, 2])  # (N, C)
        s = tf.nn.relu(tf.matmul(s, a["w1"]) + a["b1"])
        s = tf.sigmoid(tf.matmul(s, a["w2"]) + a["b2"])
        return x * tf.reshape(s, [-1, 1, 1, x.shape[-1]])
    if kind == "flatten":
        return tf.reshape(x, [-1, x.shape[-1]])
    if kind == "fc":
        y = tf.matmul(x, a["weights"])
        return y if a["bias"] is None else y + a["bias"]
    raise ValueError(f"unknown op {kind}")


# --------------------------------------------------------------------------------------------
# calibration crops (our detector, our crop function)


def calibration_files(facedata: Path) -> list[tuple[Path, str]]:
    """The calibration split as (file, "live"|"attack") in a fixed order (no NUAA 0002-0003)."""
    files = [(p, "live") for p in sorted((facedata / "five_celebrity_faces" / "train").glob("*/*"))]
    files += [
        (p, "live")
        for s in range(1, 11)
        for p in sorted((facedata / "att_faces" / f"s{s}").glob("*.pgm"))
    ]
    files += [(p, "live") for p in _every(facedata / "pad_nuaa" / "ClientRaw" / "0001", 4)]
    files += [(p, "attack") for p in _every(facedata / "pad_nuaa" / "ImposterRaw" / "0001", 4)]
    return files


def _every(folder: Path, n: int) -> list[Path]:
    return sorted(folder.glob("*.jpg"))[::n]


#: photos cropped tightly around the face get a black border for the detector only
DETECT_BORDER = 0.4


def find_face(detector: Any, image: np.ndarray) -> Any:
    """The largest face in ``image`` (retrying with a black border for tight crops), or None."""
    import cv2

    faces = detector.detect(image)
    if faces:
        return max(faces, key=lambda f: f.box[2] * f.box[3])
    pad = int(round(DETECT_BORDER * max(image.shape[:2])))
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    faces = detector.detect(padded)
    if not faces:
        return None
    from pi_facegate.core.faces import Face

    f = max(faces, key=lambda f: f.box[2] * f.box[3])
    x, y, w, h = f.box
    return Face((x - pad, y - pad, w, h), f.score, f.keypoints - pad)


def make_crops(
    files: Sequence[Path], scales: Sequence[float], detector: Any = None
) -> tuple[dict[float, np.ndarray], list[int]]:
    """BGR uint8 80x80 crops at each scale of the largest face per file, and the kept indices."""
    from pi_facegate.vision.antispoof import crop_face
    from pi_facegate.vision.detection.factory import create_detector
    from pi_facegate.vision.images import load_image

    own = detector is None
    detector = detector or create_detector("litert", num_threads=1)
    crops: dict[float, list[np.ndarray]] = {s: [] for s in scales}
    kept: list[int] = []
    try:
        for i, path in enumerate(files):
            image = load_image(path)
            face = find_face(detector, image)
            if face is None:
                continue
            kept.append(i)
            for s in scales:
                crop = crop_face(image, face.box, s, INPUT_SIZE, INPUT_SIZE)
                crops[s].append(np.ascontiguousarray(crop[:, :, ::-1]))  # RGB -> BGR
    finally:
        if own:
            detector.close()
    return {s: np.stack(c) for s, c in crops.items()}, kept


# --------------------------------------------------------------------------------------------
# conversion


def _converter(module: Any) -> Any:
    import tensorflow as tf

    fn = module.__call__.get_concrete_function()
    return tf.lite.TFLiteConverter.from_concrete_functions([fn], module)


def convert_float(module: Any) -> bytes:
    """The float32 TFLite flatbuffer (input float 0..255 BGR, output logits)."""
    return bytes(_converter(module).convert())


def convert_int8(module: Any, calibration: np.ndarray) -> bytes:
    """Full-integer INT8: uint8 BGR input, int8 weights/activations, int8 logits.

    ``module`` should be made with ``prelu="minimum"`` (see :func:`make_module`).
    """
    import tensorflow as tf

    def representative() -> Iterator[list[np.ndarray]]:
        for crop in calibration:
            yield [crop[None].astype(np.float32)]

    conv = _converter(module)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.uint8
    conv.inference_output_type = tf.int8
    # the MLIR quantizer gives MINIMUM's input (a conv output) the range of MINIMUM's output,
    # which cuts off every positive activation; the flatbuffer quantizer requantizes instead
    conv.experimental_new_quantizer = False
    return bytes(conv.convert())


def run_tflite(model: bytes | Path, crops: np.ndarray, num_threads: int = 2) -> np.ndarray:
    """Logits of BGR uint8 ``crops`` by a TFLite model, one invoke per crop, as float32."""
    from ai_edge_litert.interpreter import Interpreter

    from pi_facegate.vision.embedder import dequantize, quantize

    kwargs = {"model_content": model} if isinstance(model, bytes) else {"model_path": str(model)}
    interp = Interpreter(num_threads=num_threads, **kwargs)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    in_scale, in_zero = inp["quantization"]
    result = []
    for crop in crops:
        x = crop[None]
        if inp["dtype"] == np.float32:
            x = x.astype(np.float32)
        elif (in_scale, in_zero) != (1.0, 0):
            x = quantize(x.astype(np.float32), in_scale, in_zero, inp["dtype"])
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        y = interp.get_tensor(out["index"])[0]
        if out["dtype"] != np.float32:
            y = dequantize(y, *out["quantization"])
        result.append(y.astype(np.float32))
    return np.stack(result)


def live_probability(logits: np.ndarray) -> np.ndarray:
    from pi_facegate.vision.antispoof import softmax

    return softmax(logits)[..., LIVE_CLASS]


def op_names(model: bytes) -> list[str]:
    """The builtin operators a TFLite flatbuffer uses, sorted."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model)
    return sorted({d["op_name"] for d in interp._get_ops_details()})  # noqa: SLF001


# --------------------------------------------------------------------------------------------
# manifests and the build


def manifest(
    name: str, model: bytes, source: Source, weights_sha: str, calibration: str | None
) -> dict[str, Any]:
    """The JSON manifest of one anti-spoofing model (see ``pi_facegate.vision.antispoof``)."""
    import tensorflow as tf

    inp, out = tensor_info(model)
    return {
        "name": name,
        "kind": "antispoof",
        "file": f"{name}.tflite",
        "sha256": hashlib.sha256(model).hexdigest(),
        "architecture": source.architecture,
        "input": {
            "width": INPUT_SIZE,
            "height": INPUT_SIZE,
            "color": "BGR",
            "dtype": inp["dtype"],
            "range": [0, 255],
            "normalization": {
                "mean": [0.0, 0.0, 0.0],
                "std": [1.0, 1.0, 1.0],
                "note": "none: raw 0..255 pixels, as upstream (its ToTensor does not divide by 255)",
            },
            "quantization": inp["quantization"],
        },
        "crop": {
            "scale": source.scale,
            "square": False,
            "method": (
                "upstream src/generate_patches.py CropImage: the face box (x, y, w, h) scaled by "
                "`scale` around its centre (width and height each; not made square), the scale "
                "first reduced to min(scale, (H-1)/h, (W-1)/w) so the crop fits the frame; a crop "
                "crossing a border is shifted inside; corners truncated to int; the inclusive "
                "rectangle resized to 80x80 with cv2.resize (bilinear)"
            ),
            "box": "pi_facegate Face.box from BlazeFace (upstream used a RetinaFace box)",
        },
        "output": {
            "kind": "logits",
            "classes": NUM_CLASSES,
            "live_class": LIVE_CLASS,
            "labels": ["attack", "live", "attack"],
            "activation": "softmax (applied by the runtime)",
            "ensemble": "mean of the live probability over minifasnet_v2 and minifasnet_v1se",
            "dtype": out["dtype"],
            "quantization": out["quantization"],
        },
        "source": {
            "repository": UPSTREAM_REPO,
            "commit": UPSTREAM_COMMIT,
            "file": f"resources/anti_spoof_models/{source.file}",
            "sha256": weights_sha,
        },
        "license": LICENSE,
        "license_file": LICENSE_FILE,
        "notice": NOTICE,
        "build": {
            "tool": "tools/build_antispoof.py",
            "calibration": calibration,
            "tensorflow": tf.__version__,
        },
    }


def _write(out_dir: Path, name: str, model: bytes, data: dict[str, Any]) -> None:
    (out_dir / f"{name}.tflite").write_bytes(model)
    (out_dir / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    log.info("wrote %s (%d bytes) and %s.json", f"{name}.tflite", len(model), name)


#: the build fails if a conversion drifts further than this (live probability, absolute)
MAX_FLOAT_TF_DIFF = 1e-4
#: a guard against a broken conversion, not a quality claim: the INT8 error accumulates through
#: 30 thin layers (13-channel bottlenecks), and crops near the decision edge move by up to ~0.6
MAX_INT8_FLOAT_MEAN = 0.05


def build(
    out_dir: Path | str | None = None,
    facedata: Path | str | None = None,
    weights_dir: Path | str | None = None,
) -> dict[str, Any]:
    """Build both models (float32 + INT8) and their manifests; returns the measured numbers."""
    import tensorflow as tf

    from pi_facegate.paths import facedata_dir

    tf.random.set_seed(0)
    np.random.seed(0)
    out_dir = Path(out_dir or REPO / "models")
    facedata = Path(facedata or facedata_dir())
    weights_dir = Path(weights_dir or DEFAULT_WEIGHTS)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / LICENSE_FILE).write_bytes((weights_dir / "LICENSE").read_bytes())

    files = calibration_files(facedata)
    crops, kept = make_crops([p for p, _ in files], [s.scale for s in SOURCES])
    kinds = collections.Counter(files[i][1] for i in kept)
    log.info("calibration: %d crops (%s) of %d photos", len(kept), dict(kinds), len(files))
    report: dict[str, Any] = {"calibration_crops": len(kept), "calibration_photos": len(files)}
    for source in SOURCES:
        plan = load_plan(source, weights_dir)
        module = make_module(plan, source.name)
        module_int8 = make_module(plan, source.name, prelu="minimum")
        calib = crops[source.scale]

        def tf_probability(m: Any, calib: np.ndarray = calib) -> np.ndarray:
            return live_probability(
                np.concatenate([m(c[None].astype(np.float32)).numpy() for c in calib])
            )

        ref = tf_probability(module)
        d_form = float(np.abs(tf_probability(module_int8) - ref).max())
        float_model = convert_float(module)
        p_float = live_probability(run_tflite(float_model, calib))
        d_tf = float(np.abs(p_float - ref).max())
        if max(d_tf, d_form) > MAX_FLOAT_TF_DIFF:
            raise RuntimeError(
                f"{source.name}: float TFLite differs from TF by {d_tf:.2e}, "
                f"the two PReLU forms by {d_form:.2e}"
            )
        int8_model = convert_int8(module_int8, calib)
        d = np.abs(live_probability(run_tflite(int8_model, calib)) - p_float)
        numbers = {
            "float_vs_tf_max": d_tf,
            "prelu_forms_max": d_form,
            "int8_vs_float_mean": float(d.mean()),
            "int8_vs_float_max": float(d.max()),
            "ops_int8": op_names(int8_model),
        }
        log.info("%s: %s", source.name, numbers)
        if d.mean() > MAX_INT8_FLOAT_MEAN:
            raise RuntimeError(f"{source.name}: INT8 drifts from float: {numbers}")
        weights_sha = file_sha256(weights_dir / source.file)
        for suffix, model, calibration in (
            ("float32", float_model, None),
            ("int8", int8_model, CALIBRATION_SPLIT),
        ):
            name = f"{source.name}_{suffix}"
            _write(out_dir, name, model, manifest(name, model, source, weights_sha, calibration))
        report[source.name] = numbers
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "models", help="output folder")
    parser.add_argument("--facedata", type=Path, default=None, help="shared face photos root")
    parser.add_argument(
        "--weights", type=Path, default=None, help=f"folder of the .pth files ({DEFAULT_WEIGHTS})"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    report = build(args.out, args.facedata, args.weights)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
