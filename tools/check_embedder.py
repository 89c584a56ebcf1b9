"""Measure the bundled embedders: fidelity to dlib, INT8 drift, verification accuracy, latency.

Rerun with ``.venv/bin/python tools/check_embedder.py [--tflite-runtime /tmp/venv-tflrt214/bin/python]``
(needs dlib and face-recognition-models to make the chips, so the ``[tools]`` extra). Prints
one JSON report. What it measures:

- ``float_vs_dlib``: float TFLite model vs ``dlib.face_recognition_model_v1`` on every chip;
- ``int8_vs_float``: Euclidean distance between the INT8 and float embeddings of each chip;
- ``verification``: the labelled pairs of ``deepface_testset/master.csv`` (evaluation people,
  never used for calibration) on dlib-aligned chips, for dlib, float and INT8: accuracy at the
  manifest threshold, at the threshold that is best on the calibration split, and at the
  threshold that is best on these pairs themselves (an optimistic "oracle" number). A pair
  with a photo dlib finds no face in counts as "different" (the door stays shut) and is listed;
- ``calibration_split``: same/different-person distances on the calibration people and the
  threshold that separates them best (the only place a threshold may be tuned);
- ``latency_ms``: median of 50 single-chip ``embed`` calls per model at 1 and 2 threads
  (ai_edge_litert, through :class:`pi_facegate.vision.embedder.Embedder`);
- ``tflite_runtime``: with ``--tflite-runtime PYTHON`` (a venv with ``tflite-runtime==2.14.0``),
  both models are loaded and run there too and compared with ai_edge_litert.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from pi_facegate.paths import facedata_dir  # noqa: E402
from pi_facegate.vision.embedder import load_embedder  # noqa: E402
from pi_facegate.vision.images import load_image  # noqa: E402
from tools.build_embedder import (  # noqa: E402
    FLOAT_NAME,
    INT8_NAME,
    DlibAligner,
    calibration_chips,
    distances,
    dlib_descriptors,
)


def deepface_pairs(facedata: Path) -> list[tuple[str, str, bool]]:
    """``(file_x, file_y, same)`` from ``deepface_testset/master.csv``."""
    with open(facedata / "deepface_testset" / "master.csv", newline="") as fh:
        return [
            (row["file_x"], row["file_y"], row["Decision"].strip() == "Yes")
            for row in csv.DictReader(fh)
        ]


def deepface_chips(
    facedata: Path, files: Sequence[str], aligner: DlibAligner
) -> dict[str, np.ndarray | None]:
    """A dlib chip per file (None where dlib's HOG detector finds no face)."""
    root = facedata / "deepface_testset"
    return {name: aligner.chip(load_image(root / name)) for name in sorted(set(files))}


def accuracy(dist: np.ndarray, same: np.ndarray, threshold: float) -> float:
    """Share of pairs decided right when "same person" means ``distance < threshold``.

    ``dist`` is ``inf`` for a pair without a chip, which is then always "different".
    """
    return float(np.mean((dist < threshold) == same))


def best_threshold(dist: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """``(threshold, accuracy)`` maximising accuracy; midpoints between sorted distances."""
    finite = np.sort(np.unique(dist[np.isfinite(dist)]))
    candidates = np.concatenate([[0.0], (finite[:-1] + finite[1:]) / 2, [finite[-1] + 1e-6]])
    scores = [accuracy(dist, same, t) for t in candidates]
    i = int(np.argmax(scores))
    return float(candidates[i]), float(scores[i])


def pair_distances(
    emb: dict[str, np.ndarray | None], pairs: Sequence[tuple[str, str, bool]]
) -> np.ndarray:
    out = []
    for x, y, _ in pairs:
        a, b = emb.get(x), emb.get(y)
        out.append(np.inf if a is None or b is None else float(np.linalg.norm(a - b)))
    return np.asarray(out)


def calibration_distances(emb: np.ndarray, labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """All pairwise distances of the calibration chips and whether each pair is one person."""
    lab = np.asarray(labels)
    i, j = np.triu_indices(len(lab), k=1)
    d = np.linalg.norm(emb[i].astype(np.float64) - emb[j], axis=1)
    return d, lab[i] == lab[j]


def latency_ms(name: str, chip: np.ndarray, threads: int, runs: int = 50) -> float:
    """Median wall time of one ``embed`` of one chip (after two warm-up runs)."""
    with load_embedder(name, num_threads=threads) as emb:
        for _ in range(2):
            emb.embed(chip)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            emb.embed(chip)
            times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


_TFLRT_SCRIPT = """
import sys, json, numpy as np
from tflite_runtime.interpreter import Interpreter
import tflite_runtime
chips = np.load(sys.argv[1])
res = {"version": tflite_runtime.__version__, "numpy": np.__version__}
for name, path in json.loads(sys.argv[2]).items():
    try:
        it = Interpreter(model_path=path, num_threads=2)
        it.allocate_tensors()
    except Exception as exc:
        res[name] = {"error": repr(exc)}
        continue
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    out = []
    for c in chips:
        it.set_tensor(i["index"], c[None].astype(i["dtype"]))
        it.invoke()
        y = it.get_tensor(o["index"])[0].astype(np.float32)
        if o["quantization"][0]:
            y = (y - o["quantization"][1]) * o["quantization"][0]
        out.append(y)
    np.save(sys.argv[3] + name + ".npy", np.stack(out))
    res[name] = {"ok": True}
print(json.dumps(res))
"""


def tflite_runtime_check(python: str, chips: np.ndarray, reference: dict[str, np.ndarray]) -> dict:
    """Run both models under another interpreter's ``tflite_runtime``; compare embeddings."""
    from pi_facegate.vision.manifest import load_manifest

    paths = {n: str(load_manifest(n).model_path) for n in reference}
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "chips.npy", chips)
        proc = subprocess.run(
            [
                python,
                "-c",
                _TFLRT_SCRIPT,
                str(Path(tmp) / "chips.npy"),
                json.dumps(paths),
                tmp + "/",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            return {"error": proc.stderr.strip()[-2000:]}
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        for name, ref in reference.items():
            if res.get(name, {}).get("ok"):
                d = distances(np.load(Path(tmp) / f"{name}.npy"), ref)
                res[name] = {
                    "max_distance_vs_ai_edge_litert": float(d.max()),
                    "mean_distance_vs_ai_edge_litert": float(d.mean()),
                }
    return res


def _stats(d: np.ndarray) -> dict[str, float]:
    return {"mean": float(d.mean()), "max": float(d.max()), "n": int(d.size)}


def evaluate(facedata: Path, tflite_python: str | None = None) -> dict[str, Any]:
    aligner = DlibAligner()
    report: dict[str, Any] = {}
    models = {"float32": FLOAT_NAME, "int8": INT8_NAME}
    embedders = {k: load_embedder(v) for k, v in models.items()}
    threshold = float(embedders["int8"].manifest["embedding"]["threshold"])

    # calibration split: the only data a threshold may be chosen on
    cal_chips, cal_labels, cal_missed = calibration_chips(facedata, aligner)
    cal_thresholds = {}
    cal_report: dict[str, Any] = {"chips": len(cal_chips), "no_detection": cal_missed}
    for key, emb in embedders.items():
        d, same = calibration_distances(emb.embed(cal_chips), cal_labels)
        t, acc = best_threshold(d, same)
        cal_thresholds[key] = t
        cal_report[key] = {
            "same_mean": float(d[same].mean()),
            "different_mean": float(d[~same].mean()),
            f"accuracy_at_{threshold}": accuracy(d, same, threshold),
            "best_threshold": t,
            "best_accuracy": acc,
        }
    report["calibration_split"] = cal_report

    # evaluation: deepface pairs
    pairs = deepface_pairs(facedata)
    chips = deepface_chips(facedata, [f for x, y, _ in pairs for f in (x, y)], aligner)
    found = {k: v for k, v in chips.items() if v is not None}
    names = sorted(found)
    stack = np.stack([found[n] for n in names])
    outputs = {"dlib": dlib_descriptors(stack)}
    outputs.update({k: e.embed(stack) for k, e in embedders.items()})
    report["float_vs_dlib"] = _stats(distances(outputs["float32"], outputs["dlib"]))
    report["int8_vs_float"] = _stats(distances(outputs["int8"], outputs["float32"]))
    report["int8_vs_dlib"] = _stats(distances(outputs["int8"], outputs["dlib"]))
    same = np.asarray([s for _, _, s in pairs])
    missing = sorted(k for k, v in chips.items() if v is None)
    ver: dict[str, Any] = {
        "pairs": len(pairs),
        "same_pairs": int(same.sum()),
        "images": len(chips),
        "images_without_dlib_detection": missing,
        "pairs_with_missing_chip": int(sum(x in missing or y in missing for x, y, _ in pairs)),
    }
    for key, out in outputs.items():
        emb = {n: out[i] for i, n in enumerate(names)}
        d = pair_distances(emb, pairs)
        cal_t = cal_thresholds.get(key, cal_thresholds["float32"])
        oracle_t, oracle_acc = best_threshold(d, same)
        ver[key] = {
            f"accuracy_at_{threshold}": accuracy(d, same, threshold),
            "calibration_threshold": cal_t,
            "accuracy_at_calibration_threshold": accuracy(d, same, cal_t),
            "oracle_threshold": oracle_t,
            "oracle_accuracy": oracle_acc,
        }
    report["verification"] = ver

    # latency
    chip = stack[0]
    report["latency_ms"] = {
        key: {f"{t}_threads": latency_ms(name, chip, t) for t in (1, 2)}
        for key, name in models.items()
    }
    report["model_bytes"] = {k: e.manifest.model_path.stat().st_size for k, e in embedders.items()}
    if tflite_python:
        report["tflite_runtime"] = tflite_runtime_check(
            tflite_python, stack, {v: outputs[k] for k, v in models.items()}
        )
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--facedata", type=Path, default=None, help="shared face photos root")
    parser.add_argument(
        "--tflite-runtime",
        metavar="PYTHON",
        default=None,
        help="a Python with tflite-runtime installed, to check the models load and agree there",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    report = evaluate(args.facedata or facedata_dir(), args.tflite_runtime)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
