"""Rebuild dlib's face-recognition ResNet in TensorFlow and convert it to TFLite (float32 + INT8).

Run through ``tools/build_models.py`` (the single command that rebuilds every bundled model), or
alone: ``.venv/bin/python tools/build_embedder.py [--out models] [--facedata DIR]``.

Steps, each checked before the next:

1. :func:`tools.dlib_dat.read_net` parses ``dlib_face_recognition_resnet_model_v1.dat`` from the
   pip package ``face-recognition-models`` (no dlib needed);
2. :func:`make_plan` matches the parsed layers against the network definition of dlib's
   ``dnn_face_recognition_ex.cpp`` (:data:`ARCHITECTURE`) and folds every ``affine`` (a frozen
   batch norm) into the convolution before it, and the input layer's mean subtraction and
   ``/256`` into the first convolution (exact: that convolution has no padding), so the model
   takes the raw 0..255 RGB chip;
3. :class:`DlibResNet` runs the plan as a ``tf.function`` with a free batch dimension; the
   irregular residual adds of dlib (``add_prev`` between tensors of different channel count AND
   different size, which adds the overlap and treats missing elements as zero) are zero pads;
4. where dlib's Python module is installed, the TensorFlow graph and the float TFLite model are
   compared with ``dlib.face_recognition_model_v1.compute_face_descriptor`` on real chips;
5. the INT8 model is calibrated on real aligned faces made the dlib way (HOG detector, 5-point
   shape predictor, ``get_face_chip(size=150, padding=0.25)``) from a calibration split that
   excludes the evaluation people (``deepface_testset``): ``att_faces`` s1-s20 and
   ``five_celebrity_faces/train``;
6. both models get a JSON manifest (``pi_facegate.vision.manifest``).

Deterministic: no random numbers are drawn and files are visited in sorted order; two builds
with the same TensorFlow (2.21.0) gave byte-identical ``.tflite`` files.
"""

from __future__ import annotations

import argparse
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

from tools.dlib_dat import DlibNet, Layer, read_net  # noqa: E402

log = logging.getLogger("build_embedder")

CHIP_SIZE = 150
CHIP_PADDING = 0.25
EMBEDDING_SIZE = 128
FLOAT_NAME = "dlib_resnet_v1_float32"
INT8_NAME = "dlib_resnet_v1_int8"
SOURCE_PACKAGE = "face-recognition-models"
SOURCE_VERSION = "0.3.0"
SOURCE_FILE = "face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat"
LICENSE = "CC0-1.0 (weights by Davis King, public domain)"
CALIBRATION_SPLIT = "att_faces s1-s20 (all 10 photos each) + five_celebrity_faces/train"
#: default threshold and margin of the manifest (dlib's own 0.6; the margin is the matcher's)
THRESHOLD = 0.6
#: the loosest matching.threshold the appliance accepts: pair FAR 1e-2 on the calibration
#: split (five_celebrity_faces: 0.6616 INT8, 0.6643 float32, measured in the full pipeline)
LOOSEST_THRESHOLD = 0.66
MIN_MARGIN = 0.05


# --------------------------------------------------------------------------------------------
# the network definition (dlib/examples/dnn_face_recognition_ex.cpp), input-first


def _block(n: int, stride: int) -> list[tuple]:
    # block<N,BN,stride,SUBNET> = BN<con<N,3,3,1,1,relu<BN<con<N,3,3,stride,stride,SUBNET>>>>>
    return [("con", n, stride), ("affine",), ("relu",), ("con", n, 1), ("affine",)]


def _ares(n: int) -> list[tuple]:
    # relu<add_prev1<block<N,affine,1,tag1<SUBNET>>>>
    return [("tag", 1), *_block(n, 1), ("add_prev", 1), ("relu",)]


def _ares_down(n: int) -> list[tuple]:
    # relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,affine,2,tag1<SUBNET>>>>>>>
    return [
        ("tag", 1),
        *_block(n, 2),
        ("tag", 2),
        ("skip", 1),
        ("avg_pool", 2, 2),
        ("add_prev", 2),
        ("relu",),
    ]


#: anet minus the loss layer, input-first: each entry is (kind, *arguments)
ARCHITECTURE: list[tuple] = [
    ("con", 32, 2),  # con<32,7,7,2,2,input_rgb_image_sized<150>>
    ("affine",),
    ("relu",),
    ("max_pool", 3, 2),
    *[s for _ in range(3) for s in _ares(32)],  # alevel4
    *_ares_down(64),
    *[s for _ in range(3) for s in _ares(64)],  # alevel3
    *_ares_down(128),
    *[s for _ in range(2) for s in _ares(128)],  # alevel2
    *_ares_down(256),
    *[s for _ in range(2) for s in _ares(256)],  # alevel1
    *_ares_down(256),  # alevel0
    ("avg_pool_everything",),
    ("fc", EMBEDDING_SIZE),
]


@dataclass
class Op:
    """One step of the folded network: what the TensorFlow graph executes."""

    kind: str  # conv | relu | max_pool | avg_pool | tag | skip | add_prev | global_avg | fc
    args: dict[str, Any] = field(default_factory=dict)


def make_plan(net: DlibNet) -> list[Op]:
    """Match ``net`` against :data:`ARCHITECTURE` and fold affine + input scaling into convs.

    Raises ``ValueError`` naming the first layer that differs, so a different ``.dat`` (or a
    parser error) cannot silently produce a wrong model.
    """
    layers = net.layers
    if len(layers) != len(ARCHITECTURE):
        raise ValueError(f"the file has {len(layers)} layers, the definition {len(ARCHITECTURE)}")
    mean = np.asarray(net.input.params["mean_rgb"], dtype=np.float64)
    plan: list[Op] = []
    first_conv = True
    i = 0
    while i < len(layers):
        spec, layer = ARCHITECTURE[i], layers[i]
        kind = spec[0]
        _expect(i, spec, layer)
        if kind == "con":
            affine = layers[i + 1]
            _expect(i + 1, ARCHITECTURE[i + 1], affine)
            plan.append(_fold_conv(layer, affine, mean if first_conv else None))
            first_conv = False
            i += 2
            continue
        if kind in ("tag", "skip", "add_prev"):
            plan.append(Op(kind, {"id": spec[1]}))
        elif kind == "relu":
            plan.append(Op("relu"))
        elif kind in ("max_pool", "avg_pool"):
            plan.append(Op(kind, {"size": spec[1], "stride": spec[2]}))
        elif kind == "avg_pool_everything":
            plan.append(Op("global_avg"))
        elif kind == "fc":
            plan.append(Op("fc", {"weights": layer.params["weights"].astype(np.float32)}))
        i += 1
    return plan


def _expect(i: int, spec: tuple, layer: Layer) -> None:
    kind = spec[0]
    want = "tag_or_skip" if kind in ("tag", "skip") else kind
    if kind == "avg_pool_everything":
        want = "avg_pool"
    if layer.kind != want:
        raise ValueError(f"layer {i}: the file has {layer.kind!r}, the definition {kind!r}")
    p = layer.params
    if kind == "con":
        n, stride = spec[1], spec[2]
        kh = p["weights"].shape[2]
        pad = 0 if stride != 1 else kh // 2  # dlib's default padding
        if p["weights"].shape[0] != n or p["stride"] != (stride, stride):
            raise ValueError(f"layer {i}: con {p['weights'].shape}/{p['stride']} != {spec}")
        if p["padding"] != (pad, pad):
            raise ValueError(f"layer {i}: con padding {p['padding']} != {pad}")
    elif kind == "affine" and p["mode"] != 0:
        raise ValueError(f"layer {i}: affine in FC mode, expected per-channel (CONV) mode")
    elif kind in ("max_pool", "avg_pool"):
        size, stride = spec[1], spec[2]
        if p["size"] != (size, size) or p["stride"] != (stride, stride) or p["padding"] != (0, 0):
            raise ValueError(f"layer {i}: pool {p} != {spec}")
    elif kind == "avg_pool_everything" and p["size"] != (0, 0):
        raise ValueError(f"layer {i}: expected avg_pool_everything, got {p}")
    elif kind == "fc":
        if p["weights"].shape[1] != spec[1] or p["bias"] is not None:
            raise ValueError(f"layer {i}: expected fc_no_bias<{spec[1]}>, got {p}")


def _fold_conv(con: Layer, affine: Layer, input_mean: np.ndarray | None) -> Op:
    """conv -> affine (y = gamma * (W x + b) + beta) as one conv; optionally absorb the input.

    dlib's input layer feeds ``(pixel - mean) / 256``. For a convolution without padding,
    ``W * ((x - m) / 256) + b = (W / 256) * x + (b - sum(W * m) / 256)``, exactly.
    """
    w = con.params["weights"].astype(np.float64)  # (out, in, kh, kw)
    b = con.params["bias"].astype(np.float64)
    gamma = affine.params["gamma"].astype(np.float64)
    beta = affine.params["beta"].astype(np.float64)
    stride = con.params["stride"][0]
    padding = con.params["padding"][0]
    if input_mean is not None:
        if padding != 0:
            raise ValueError("cannot fold the input normalisation into a padded convolution")
        b = b - np.einsum("oikl,i->o", w, input_mean) / 256.0
        w = w / 256.0
    w = w * gamma[:, None, None, None]
    b = b * gamma + beta
    kernel = np.transpose(w, (2, 3, 1, 0)).astype(np.float32)  # -> (kh, kw, in, out)
    return Op(
        "conv",
        {"kernel": kernel, "bias": b.astype(np.float32), "stride": stride, "padding": padding},
    )


def load_plan(dat_path: Path | None = None) -> list[Op]:
    """The folded plan of the ``.dat`` (default: the one in ``face-recognition-models``)."""
    return make_plan(read_net(dat_path or source_path()))


def source_path() -> Path:
    """Where pip put ``dlib_face_recognition_resnet_model_v1.dat``."""
    import face_recognition_models

    return Path(face_recognition_models.face_recognition_model_location())


# --------------------------------------------------------------------------------------------
# TensorFlow graph


def make_module(plan: Sequence[Op]) -> Any:
    """A ``tf.Module`` whose ``__call__`` maps ``(N,150,150,3)`` float 0..255 RGB to ``(N,128)``."""
    import tensorflow as tf

    class DlibResNet(tf.Module):
        def __init__(self) -> None:
            super().__init__(name="dlib_resnet_v1")
            self.consts: list[tuple[Op, Any, Any]] = []
            for op in plan:
                if op.kind == "conv":
                    self.consts.append(
                        (op, tf.constant(op.args["kernel"]), tf.constant(op.args["bias"]))
                    )
                elif op.kind == "fc":
                    self.consts.append((op, tf.constant(op.args["weights"]), None))
                else:
                    self.consts.append((op, None, None))

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, CHIP_SIZE, CHIP_SIZE, 3], tf.float32, name="chip_rgb")
            ]
        )
        def __call__(self, x: Any) -> Any:
            tags: dict[int, Any] = {}
            for op, a, b in self.consts:
                x = _apply(tf, op, a, b, x, tags)
            return tf.identity(x, name="embedding")

    return DlibResNet()


def _apply(tf: Any, op: Op, a: Any, b: Any, x: Any, tags: dict[int, Any]) -> Any:
    kind = op.kind
    if kind == "conv":
        stride, pad = op.args["stride"], op.args["padding"]
        k = op.args["kernel"].shape[0]
        if pad == 0:
            padding = "VALID"
        elif stride == 1 and pad == k // 2:
            padding = "SAME"
        else:
            raise ValueError(f"unsupported conv padding {pad} for kernel {k}, stride {stride}")
        return tf.nn.bias_add(tf.nn.conv2d(x, a, strides=stride, padding=padding), b)
    if kind == "relu":
        return tf.nn.relu(x)
    if kind == "max_pool":
        return tf.nn.max_pool2d(x, op.args["size"], op.args["stride"], "VALID")
    if kind == "avg_pool":
        return tf.nn.avg_pool2d(x, op.args["size"], op.args["stride"], "VALID")
    if kind == "tag":
        tags[op.args["id"]] = x
        return x
    if kind == "skip":
        return tags[op.args["id"]]
    if kind == "add_prev":
        return _add_padded(tf, x, tags[op.args["id"]])
    if kind == "global_avg":
        h, w = x.shape[1], x.shape[2]
        return tf.reshape(tf.nn.avg_pool2d(x, (h, w), 1, "VALID"), [-1, x.shape[3]])
    if kind == "fc":
        return tf.matmul(x, a)
    raise ValueError(f"unknown op {kind}")


def _add_padded(tf: Any, a: Any, b: Any) -> Any:
    """dlib's ``tt::add`` of two tensors of different shapes: sum the overlap, zeros elsewhere.

    The output has the larger size in each dimension; each operand is zero-padded at the end
    (bottom, right, last channels), which is where dlib's index-aligned add puts nothing.
    """
    shape = [max(a.shape[i], b.shape[i]) for i in (1, 2, 3)]

    def pad(t: Any) -> Any:
        extra = [shape[i] - t.shape[i + 1] for i in range(3)]
        if not any(extra):
            return t
        return tf.pad(t, [[0, 0], [0, extra[0]], [0, extra[1]], [0, extra[2]]])

    return tf.add(pad(a), pad(b))


# --------------------------------------------------------------------------------------------
# aligned chips the dlib way (for calibration and checks; needs dlib)


class DlibAligner:
    """dlib's own face chips: HOG detector, 5-point landmarks, ``get_face_chip``.

    This is exactly how ``face_recognition``/dlib feed the ResNet (size 150, padding 0.25),
    so chips made here are what the converted model must reproduce dlib on.
    """

    #: detect on a copy no larger than this (HOG with one upsampling is slow on 20 MP photos);
    #: landmarks are still fitted on the full image
    MAX_DETECT_SIDE = 1000

    def __init__(self, upsample: int = 1) -> None:
        import dlib
        import face_recognition_models

        self.dlib = dlib
        self.upsample = upsample
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(
            face_recognition_models.pose_predictor_five_point_model_location()
        )

    def chip(self, image: np.ndarray, border: float = 0.0) -> np.ndarray | None:
        """The ``(150,150,3)`` uint8 chip of the largest face in an RGB image, or None.

        ``border`` (a fraction of the image size) adds a black frame first, for photos
        cropped so tightly around the face that the HOG detector misses it.
        """
        import cv2

        if border > 0:
            pad = int(round(border * max(image.shape[:2])))
            image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        image = np.ascontiguousarray(image)
        scale = min(1.0, self.MAX_DETECT_SIDE / max(image.shape[:2]))
        small = image
        if scale < 1.0:
            size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        rects = self.detector(small, self.upsample)
        if not rects:
            return None
        r = max(rects, key=lambda r: r.width() * r.height())
        rect = self.dlib.rectangle(
            round(r.left() / scale),
            round(r.top() / scale),
            round(r.right() / scale),
            round(r.bottom() / scale),
        )
        shape = self.predictor(image, rect)
        return np.asarray(
            self.dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
        )


def calibration_files(facedata: Path) -> list[tuple[Path, float]]:
    """The calibration split as (file, border) in a fixed order; no evaluation people in it."""
    files = [
        (p, 0.0)
        for s in range(1, 21)
        for p in sorted((facedata / "att_faces" / f"s{s}").glob("*.pgm"))
    ]
    files += [(p, 0.3) for p in sorted((facedata / "five_celebrity_faces" / "train").glob("*/*"))]
    return files


def calibration_chips(
    facedata: Path, aligner: DlibAligner | None = None
) -> tuple[np.ndarray, list[str], int]:
    """Chips of the calibration split, their labels (person) and the number of misses."""
    from pi_facegate.vision.images import load_image

    aligner = aligner or DlibAligner()
    chips, labels, missed = [], [], 0
    for path, border in calibration_files(facedata):
        chip = aligner.chip(load_image(path), border=border)
        if chip is None:
            missed += 1
            continue
        chips.append(chip)
        labels.append(f"{path.parent.parent.name}/{path.parent.name}")
    if not chips:
        raise RuntimeError(f"no calibration faces found under {facedata}")
    return np.stack(chips), labels, missed


# --------------------------------------------------------------------------------------------
# conversion


def _converter(module: Any) -> Any:
    import tensorflow as tf

    fn = module.__call__.get_concrete_function()
    return tf.lite.TFLiteConverter.from_concrete_functions([fn], module)


def convert_float(module: Any) -> bytes:
    """The float32 TFLite flatbuffer (reference model; input 0..255 float RGB)."""
    return bytes(_converter(module).convert())


def convert_int8(module: Any, calibration: np.ndarray) -> bytes:
    """Full-integer INT8: uint8 RGB input (scale 1), int8 weights/activations, int8 output."""
    import tensorflow as tf

    def representative() -> Iterator[list[np.ndarray]]:
        for chip in calibration:
            yield [chip[None].astype(np.float32)]

    conv = _converter(module)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.uint8
    conv.inference_output_type = tf.int8
    return bytes(conv.convert())


def run_tflite(model: bytes | Path, chips: np.ndarray, num_threads: int = 2) -> np.ndarray:
    """Embeddings of ``chips`` (uint8) by a TFLite model, one invoke per chip, as float32."""
    from ai_edge_litert.interpreter import Interpreter

    kwargs = {"model_content": model} if isinstance(model, bytes) else {"model_path": str(model)}
    interp = Interpreter(num_threads=num_threads, **kwargs)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    result = []
    for chip in chips:
        x = chip[None]
        if inp["dtype"] == np.float32:
            x = x.astype(np.float32)
        elif inp["dtype"] != np.uint8:
            raise ValueError(f"unexpected input type {inp['dtype']}")
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        y = interp.get_tensor(out["index"])[0]
        if out["dtype"] != np.float32:
            scale, zero = out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        result.append(y.astype(np.float32))
    return np.stack(result)


def dlib_descriptors(chips: np.ndarray) -> np.ndarray:
    """dlib's own descriptors of aligned chips (the ground truth of the conversion)."""
    import dlib

    rec = dlib.face_recognition_model_v1(str(source_path()))
    return np.stack([np.asarray(rec.compute_face_descriptor(c), dtype=np.float32) for c in chips])


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Euclidean distances."""
    return np.linalg.norm(a.astype(np.float64) - b.astype(np.float64), axis=1)


# --------------------------------------------------------------------------------------------
# manifests and the build


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tensor_info(model: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """(input, output) detail dicts of a TFLite model: dtype and quantization."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model)
    res = []
    for d in (interp.get_input_details()[0], interp.get_output_details()[0]):
        scale, zero = d["quantization"]
        q = {"scale": float(scale), "zero_point": int(zero)} if scale else None
        res.append({"dtype": np.dtype(d["dtype"]).name, "quantization": q})
    return res[0], res[1]


def manifest(name: str, model: bytes, calibration: str | None) -> dict[str, Any]:
    """The JSON manifest of one embedder model (see ``pi_facegate.vision.manifest``)."""
    import tensorflow as tf

    inp, out = tensor_info(model)
    source = source_path()
    return {
        "name": name,
        "kind": "embedder",
        "file": f"{name}.tflite",
        "sha256": _sha256(model),
        "input": {
            "width": CHIP_SIZE,
            "height": CHIP_SIZE,
            "color": "RGB",
            "dtype": inp["dtype"],
            "range": [0, 255],
            "normalization": "inside the model: (pixel - mean_rgb[122.782, 117.001, 104.298]) / 256",
            "quantization": inp["quantization"],
        },
        "output": {"dtype": out["dtype"], "quantization": out["quantization"]},
        "embedding": {
            "size": EMBEDDING_SIZE,
            "metric": "euclidean",
            "normalized": False,
            "threshold": THRESHOLD,
            "min_margin": MIN_MARGIN,
            "loosest_threshold": LOOSEST_THRESHOLD,
        },
        "alignment": {
            "size": CHIP_SIZE,
            "padding": CHIP_PADDING,
            "method": "dlib get_face_chip_details(size=150, padding=0.25)",
            "template": None,
        },
        "source": {
            "package": SOURCE_PACKAGE,
            "version": SOURCE_VERSION,
            "file": SOURCE_FILE,
            "sha256": _sha256(source.read_bytes()),
        },
        "license": LICENSE,
        "build": {
            "tool": "tools/build_embedder.py",
            "calibration": calibration,
            "tensorflow": tf.__version__,
        },
    }


def _keep_template(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    """Keep an ``alignment.template`` another build step already wrote into the manifest."""
    if path.is_file():
        try:
            old = json.loads(path.read_text())
            template = old.get("alignment", {}).get("template")
        except (OSError, ValueError):
            template = None
        if template is not None:
            data["alignment"]["template"] = template
    return data


def _write(out_dir: Path, name: str, model: bytes, calibration: str | None) -> None:
    (out_dir / f"{name}.tflite").write_bytes(model)
    path = out_dir / f"{name}.json"
    data = _keep_template(path, manifest(name, model, calibration))
    path.write_text(json.dumps(data, indent=2) + "\n")
    log.info("wrote %s (%d bytes) and %s", f"{name}.tflite", len(model), path.name)


@dataclass
class BuildReport:
    """Numbers measured while building (logged and returned for the caller)."""

    chips: int = 0
    missed: int = 0
    tf_vs_dlib_max: float | None = None
    float_vs_dlib_max: float | None = None
    int8_vs_float_mean: float = 0.0
    int8_vs_float_max: float = 0.0


#: the build fails if the conversion drifts further than this from dlib / the float model
MAX_FLOAT_DLIB_DISTANCE = 0.01
MAX_INT8_FLOAT_DISTANCE = 0.15


def build(out_dir: Path | str | None = None, facedata: Path | str | None = None) -> BuildReport:
    """Build both embedder models and their manifests into ``out_dir`` (default ``models/``)."""
    import tensorflow as tf

    from pi_facegate.paths import facedata_dir

    tf.random.set_seed(0)
    np.random.seed(0)
    out_dir = Path(out_dir or REPO / "models")
    facedata = Path(facedata or facedata_dir())
    out_dir.mkdir(parents=True, exist_ok=True)
    report = BuildReport()

    module = make_module(load_plan())
    chips, _, report.missed = calibration_chips(facedata)
    report.chips = len(chips)
    log.info(
        "calibration: %d chips (%d photos without a dlib detection)", len(chips), report.missed
    )

    float_model = convert_float(module)
    ref_tf = module(chips.astype(np.float32)).numpy()
    float_out = run_tflite(float_model, chips)
    try:
        truth = dlib_descriptors(chips)
    except ImportError:
        log.warning("dlib is not installed: the float model is not checked against dlib")
    else:
        report.tf_vs_dlib_max = float(distances(ref_tf, truth).max())
        report.float_vs_dlib_max = float(distances(float_out, truth).max())
        log.info(
            "TF vs dlib max %.2e, float TFLite vs dlib max %.2e",
            report.tf_vs_dlib_max,
            report.float_vs_dlib_max,
        )
        if report.float_vs_dlib_max > MAX_FLOAT_DLIB_DISTANCE:
            raise RuntimeError(f"float model differs from dlib by {report.float_vs_dlib_max:.4f}")

    int8_model = convert_int8(module, chips)
    d = distances(run_tflite(int8_model, chips), float_out)
    report.int8_vs_float_mean, report.int8_vs_float_max = float(d.mean()), float(d.max())
    log.info(
        "INT8 vs float on the calibration chips: mean %.4f max %.4f",
        report.int8_vs_float_mean,
        report.int8_vs_float_max,
    )
    if report.int8_vs_float_max > MAX_INT8_FLOAT_DISTANCE:
        raise RuntimeError(f"INT8 model differs from float by up to {report.int8_vs_float_max:.3f}")

    _write(out_dir, FLOAT_NAME, float_model, None)
    _write(out_dir, INT8_NAME, int8_model, CALIBRATION_SPLIT)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "models", help="output folder")
    parser.add_argument("--facedata", type=Path, default=None, help="shared face photos root")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    report = build(args.out, args.facedata)
    print(json.dumps(report.__dict__, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
