"""Convert a facenet-pytorch ``InceptionResnetV1`` checkpoint into door embedders (float32 + INT8).

    .venv/bin/python tools/convert_facenet.py CHECKPOINT --out DIR [--name NAME]
        [--licence TEXT] [--source TEXT] [--calibration ROOT] [--margin PIXELS]
        [--calibration-chips N]

writes ``DIR/NAME_float32.{tflite,json}`` and ``DIR/NAME_int8.{tflite,json}`` (NAME defaults
to ``facenet``); ``embedder.model: DIR/NAME_int8.json`` in the config then runs the door on it.

Steps, each checked before the next (any failure stops the conversion with the reason):

1. :mod:`tools.facenet_checkpoint` reads the state_dict (``torch.load(weights_only=True)``),
   unwraps ``state_dict``/``model``, strips ``module.``, drops a classifier head and refuses
   anything that is not exactly the embedding network;
2. :mod:`tools.facenet_graph` rebuilds the network in TensorFlow with every batch norm, block
   scale and the input normalisation ``(x - 127.5) / 128`` folded in (the route of
   ``tools/build_embedder.py``): input the raw 0..255 RGB chip, output the L2-normalised 512-D
   embedding;
3. :mod:`tools.facenet_alignment` derives the 160x160 alignment templates (MTCNN framing);
4. real aligned chips are cut by the door's own pipeline (LiteRT BlazeFace, face mesh, the new
   templates) from the project's embedder calibration split (``att_faces`` s1-s20 and
   ``five_celebrity_faces/train``: no people accuracy is reported on); every other chip
   calibrates the INT8 model, the rest check it;
5. float32 TFLite is compared with facenet-pytorch's own class on those chips (max |difference|
   at most :data:`MAX_FLOAT_ABS`); full-integer INT8 (uint8 chip in, scale 1; int8 out) with the
   embedding cosine to float (median at least :data:`MIN_INT8_COSINE_MEDIAN`);
6. manifests in the format of ``models/dlib_resnet_v1_int8.json``, with a *provisional*
   threshold and margin marked uncalibrated.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:  # run as a script: make `tools` and `pi_facegate` importable
    sys.path.insert(0, str(REPO))

from tools import facenet_alignment, facenet_reference  # noqa: E402
from tools.build_embedder import (  # noqa: E402
    calibration_files,
    convert_float,
    convert_int8,
    run_tflite,
    tensor_info,
)
from tools.facenet_checkpoint import Checkpoint, CheckpointError, read_checkpoint  # noqa: E402
from tools.facenet_graph import CHIP_SIZE, EMBEDDING_SIZE, make_module  # noqa: E402

log = logging.getLogger("convert_facenet")

#: the manifest the templates' shape comes from (the project's own fit)
BASE_EMBEDDER = "dlib_resnet_v1_int8"
#: the build fails beyond these (float vs PyTorch; INT8 vs float on held-out chips)
MAX_FLOAT_ABS = 1e-4
MIN_INT8_COSINE_MEDIAN = 0.98
#: PROVISIONAL matching defaults for an L2-normalised embedding (distances 0..2); they are
#: not measured on anything: ``facegate calibrate`` (or tools/measure_far_point.py) sets them
PROVISIONAL_THRESHOLD = 0.9
PROVISIONAL_MARGIN = 0.1
UNCALIBRATED_NOTE = (
    "PROVISIONAL, NOT CALIBRATED: threshold {t} and min_margin {m} are placeholders for an "
    "L2-normalised FaceNet embedding (distances 0..2), not measured on this model. Measure "
    "them on calibration people (`facegate calibrate ROOT --model THIS --write`) before "
    "trusting the door with it; loosest_threshold equals threshold until then, so the config cannot "
    "loosen it"
)
CALIBRATION_SPLIT = "att_faces s1-s20 + five_celebrity_faces/train (the embedder calibration split)"
DEFAULT_LICENCE = (
    "UNKNOWN: not given to tools/convert_facenet.py --licence. facenet-pytorch's code is MIT; "
    "pretrained weights follow the terms of their training data (VGGFace2, CASIA-WebFace)"
)


@dataclass
class Report:
    """What the conversion measured (printed as JSON, and kept in the manifests)."""

    checkpoint_sha256: str = ""
    dropped_head: list[str] = field(default_factory=list)
    stripped_prefix: str = ""
    wrapper: str | None = None
    chips: int = 0
    calibration_chips: int = 0
    check_chips: int = 0
    missed_photos: int = 0
    float_vs_pytorch_max_abs: float = 0.0
    int8_vs_float_cosine_median: float = 0.0
    int8_vs_float_cosine_min: float = 0.0
    files: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# real aligned chips, cut by the door's own pipeline


class ChipCutter:
    """The door's detector, face mesh and the converted model's templates, for photos."""

    def __init__(self, alignment: dict[str, Any] | None = None) -> None:
        from pi_facegate.vision.detection.factory import create_detector
        from pi_facegate.vision.landmarks import LandmarkRefiner
        from pi_facegate.vision.manifest import load_manifest

        self.base = load_manifest(BASE_EMBEDDER)
        self.detector = create_detector("litert", min_score=0.5)
        self.refiner = LandmarkRefiner.load(num_threads=2)
        self.aligner = None
        if alignment is not None:
            self.set_alignment(alignment)

    def set_alignment(self, alignment: dict[str, Any]) -> None:
        from pi_facegate.core.align import Aligner

        holder = _Holder(Path("<converted>"), {"alignment": alignment})
        self.aligner = Aligner.from_manifest(holder, self.refiner)

    def chip(self, image: np.ndarray) -> np.ndarray | None:
        """The chip of the largest face (found the way ``facegate enroll`` finds it), or None."""
        from pi_facegate.vision.recognizer import Recognizer

        faces = Recognizer(self.detector, self.aligner, None).detect_still(image)
        if not faces:
            return None
        return self.aligner.align(image, max(faces, key=lambda f: f.size))

    def close(self) -> None:
        self.detector.close()
        self.refiner.close()


@dataclass(frozen=True)
class _Holder:
    """The two things :class:`~pi_facegate.core.align.ManifestLike` needs."""

    path: Path
    data: dict[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


def calibration_chips(
    cutter: ChipCutter, facedata: Path, limit: int | None
) -> tuple[np.ndarray, int]:
    """Chips of the calibration split (evenly spread over it when ``limit`` is given)."""
    from pi_facegate.vision.images import load_image

    files = [path for path, _ in calibration_files(facedata)]
    if limit:
        files = [
            files[i] for i in np.linspace(0, len(files) - 1, min(limit, len(files))).astype(int)
        ]
    chips, missed = [], 0
    for path in files:
        chip = cutter.chip(load_image(path))
        if chip is None:
            missed += 1
        else:
            chips.append(chip)
    if len(chips) < 4:
        raise RuntimeError(f"only {len(chips)} calibration faces found under {facedata}")
    return np.stack(chips), missed


# --------------------------------------------------------------------------------------------
# checks and manifests


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def manifest(
    name: str, model: bytes, alignment: dict, args: argparse.Namespace, report: Report, int8: bool
) -> dict[str, Any]:
    """The JSON manifest of one converted model (the fields ``pi_facegate.vision`` reads)."""
    import hashlib

    import tensorflow as tf
    import torch

    inp, out = tensor_info(model)
    note = UNCALIBRATED_NOTE.format(t=PROVISIONAL_THRESHOLD, m=PROVISIONAL_MARGIN)
    return {
        "name": name,
        "kind": "embedder",
        "file": f"{name}.tflite",
        "sha256": hashlib.sha256(model).hexdigest(),
        "architecture": "facenet-pytorch InceptionResnetV1",
        "input": {
            "width": CHIP_SIZE,
            "height": CHIP_SIZE,
            "color": "RGB",
            "dtype": inp["dtype"],
            "range": [0, 255],
            "normalization": "inside the model: (pixel - 127.5) / 128 (facenet-pytorch's "
            "fixed_image_standardization)",
            "quantization": inp["quantization"],
        },
        "output": {"dtype": out["dtype"], "quantization": out["quantization"]},
        "embedding": {
            "size": EMBEDDING_SIZE,
            "metric": "euclidean",
            "normalized": True,
            "calibrated": False,
            "threshold": PROVISIONAL_THRESHOLD,
            "min_margin": PROVISIONAL_MARGIN,
            "loosest_threshold": PROVISIONAL_THRESHOLD,
            "operating_point": note,
        },
        "alignment": alignment,
        "source": {
            "checkpoint": Path(args.checkpoint).name,
            "sha256": report.checkpoint_sha256,
            "provenance": args.source or "not given (tools/convert_facenet.py --source)",
            "wrapper": report.wrapper,
            "stripped_prefix": report.stripped_prefix,
            "dropped_head": report.dropped_head,
        },
        "license": args.licence or DEFAULT_LICENCE,
        "build": {
            "tool": "tools/convert_facenet.py",
            "route": "TensorFlow rebuild (tools/facenet_graph.py), TFLiteConverter",
            "calibration": f"{report.calibration_chips} chips of {CALIBRATION_SPLIT}"
            if int8
            else None,
            "checks": {
                "chips": report.check_chips,
                "float_vs_pytorch_max_abs": report.float_vs_pytorch_max_abs,
                "int8_vs_float_cosine_median": report.int8_vs_float_cosine_median,
                "int8_vs_float_cosine_min": report.int8_vs_float_cosine_min,
            },
            "tensorflow": tf.__version__,
            "torch": torch.__version__,
            "facenet_pytorch": facenet_reference.version(),
        },
    }


def _write(out: Path, name: str, model: bytes, data: dict[str, Any], report: Report) -> None:
    (out / f"{name}.tflite").write_bytes(model)
    (out / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    report.files += [str(out / f"{name}.tflite"), str(out / f"{name}.json")]
    log.info("wrote %s (%d bytes) and %s.json", f"{name}.tflite", len(model), name)


# --------------------------------------------------------------------------------------------
# the conversion


def convert(args: argparse.Namespace) -> Report:
    """Run every step; raises CheckpointError/RuntimeError with the reason on any failure."""
    import tensorflow as tf

    from pi_facegate.paths import facedata_dir

    tf.random.set_seed(0)
    report = Report()
    ckpt: Checkpoint = read_checkpoint(args.checkpoint)
    report.checkpoint_sha256, report.dropped_head = ckpt.sha256, ckpt.head
    report.stripped_prefix, report.wrapper = ckpt.prefix, ckpt.wrapper
    if ckpt.head:
        log.info("dropped the classifier head: %s", ", ".join(ckpt.head))
    reference = facenet_reference.reference_model(ckpt.state)
    facedata = Path(args.calibration or facedata_dir())
    cutter = ChipCutter()
    try:
        measured = facenet_alignment.measure_crops(
            facedata, cutter.base, cutter.detector, cutter.refiner
        )
        crops = len(list((facedata / facenet_alignment.MTCNN_CROPS).glob("*/*.png")))
        alignment = facenet_alignment.derive(cutter.base, measured, args.margin, crops)
        cutter.set_alignment(alignment)
        chips, report.missed_photos = calibration_chips(cutter, facedata, args.calibration_chips)
    finally:
        cutter.close()
    calib, check = chips[0::2], chips[1::2]
    report.chips, report.calibration_chips, report.check_chips = len(chips), len(calib), len(check)
    log.info(
        "%d chips (%d photos without a face): %d calibrate, %d check",
        len(chips),
        report.missed_photos,
        len(calib),
        len(check),
    )

    module = make_module(ckpt.state)
    float_model = convert_float(module)
    float_out = run_tflite(float_model, chips)
    truth = facenet_reference.torch_embeddings(reference, chips)
    report.float_vs_pytorch_max_abs = float(np.abs(float_out - truth).max())
    log.info("float TFLite vs PyTorch: max |difference| %.2e", report.float_vs_pytorch_max_abs)
    if report.float_vs_pytorch_max_abs > MAX_FLOAT_ABS:
        raise RuntimeError(
            f"float model differs from PyTorch by {report.float_vs_pytorch_max_abs:.2e}"
        )

    int8_model = convert_int8(module, calib)
    cos = cosines(run_tflite(int8_model, check), float_out[1::2])
    report.int8_vs_float_cosine_median = float(np.median(cos))
    report.int8_vs_float_cosine_min = float(cos.min())
    log.info(
        "INT8 vs float cosine on %d held-out chips: median %.4f, min %.4f",
        len(check),
        report.int8_vs_float_cosine_median,
        report.int8_vs_float_cosine_min,
    )
    if report.int8_vs_float_cosine_median < MIN_INT8_COSINE_MEDIAN:
        raise RuntimeError(f"INT8 model too far from float: median cosine {np.median(cos):.4f}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for suffix, model, int8 in (("float32", float_model, False), ("int8", int8_model, True)):
        name = f"{args.name}_{suffix}"
        _write(out, name, model, manifest(name, model, alignment, args, report, int8), report)
    return report


def _name(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", text):
        raise argparse.ArgumentTypeError("a name of letters, digits, '_', '.', '-' (<= 64)")
    return text


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", type=Path, help="a facenet-pytorch InceptionResnetV1 .pth")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--name", type=_name, default="facenet", help="model name (default facenet)")
    p.add_argument("--licence", "--license", dest="licence", help="the weights' licence terms")
    p.add_argument("--source", help="where the weights come from (kept as provenance)")
    p.add_argument("--calibration", type=Path, help="shared face data root (../shared/facedata)")
    p.add_argument(
        "--margin",
        type=float,
        default=0.0,
        help="MTCNN margin (pixels of the 160 crop) the model was trained with (0)",
    )
    p.add_argument(
        "--calibration-chips",
        type=int,
        default=None,
        metavar="N",
        help="use N photos of the split (default: all)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        report = convert(args)
    except (CheckpointError, ImportError, RuntimeError, ValueError) as exc:
        print(f"convert_facenet: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(asdict(report), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
