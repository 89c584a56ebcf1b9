"""Measure the bundled anti-spoofing models: fidelity to PyTorch, INT8 drift, NUAA, latency.

``.venv/bin/python tools/check_antispoof.py [--torch-python .venv-torch/bin/python] [--json FILE]``

Prints one JSON report. What it measures:

- ``float_vs_torch``: the float TFLite models vs a PyTorch rebuild of upstream's network
  (:func:`torch_model`, the module names of upstream's ``MiniFASNet.py`` so that the
  checkpoint loads with ``load_state_dict(strict=True)``; weights read by ``torch.load``, not
  by our pure-Python reader) on about 50 real crops: max absolute difference of the softmax.
  PyTorch must not enter the dev venv: it runs in a side venv (``--torch-python``; make it
  with ``python3 -m venv .venv-torch && .venv-torch/bin/pip install torch numpy``), which this
  script calls on itself with ``--torch-reference``;
- ``int8_vs_float``: the live probability of INT8 vs float, per model and for their mean, on
  every NUAA crop of the evaluation split;
- ``nuaa``: how each model (float and INT8) and the mean of the two separate NUAA live
  (``ClientRaw``) from attack (``ImposterRaw``) on subjects 0002-0003 (subject 0001 is in the
  INT8 calibration set, so it is left out): ROC AUC, median live probability of each side, and
  the error rates at live probability 0.5;
- ``live_clips``: the INT8 pair on genuine talking-head clips (``live_clips/*.mp4``, another
  camera and a video codec): how often a live face scores under 0.5;
- ``latency_ms``: :meth:`pi_facegate.vision.antispoof.TextureLiveness.score` per face (crop,
  both models, softmax), median of 50 calls, at 1 and 2 threads, INT8 and float.
"""

from __future__ import annotations

import argparse
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
DEFAULT_TORCH_PYTHON = REPO / ".venv-torch" / "bin" / "python"
EVAL_SUBJECTS = ("0002", "0003")
#: (our model stem, checkpoint, SE variant, crop scale); the same as tools/build_antispoof.py
MODELS = (
    ("minifasnet_v2", "2.7_80x80_MiniFASNetV2.pth", False, 2.7),
    ("minifasnet_v1se", "4_0_0_80x80_MiniFASNetV1SE.pth", True, 4.0),
)

# --------------------------------------------------------------------------------------------
# the PyTorch reference (runs in the torch venv: numpy and torch only, nothing of ours)

#: upstream's channel lists ("keep"): MiniFASNetV1/V1SE use 1.8M, MiniFASNetV2 1.8M_
KEEP = {
    "1.8M": [32, 32, 103, 103, 64, 13, 13, 64, 26, 26, 64, 13, 13, 64, 52, 52, 64, 231, 231,
             128, 154, 154, 128, 52, 52, 128, 26, 26, 128, 52, 52, 128, 26, 26, 128, 26, 26,
             128, 308, 308, 128, 26, 26, 128, 26, 26, 128, 512, 512],
    "1.8M_": [32, 32, 103, 103, 64, 13, 13, 64, 13, 13, 64, 13, 13, 64, 13, 13, 64, 231, 231,
              128, 231, 231, 128, 52, 52, 128, 26, 26, 128, 77, 77, 128, 26, 26, 128, 26, 26,
              128, 308, 308, 128, 26, 26, 128, 26, 26, 128, 512, 512],
}  # fmt: skip


def torch_model(se: bool) -> Any:
    """MiniFASNetV1SE (``se``) or MiniFASNetV2 for 80x80 input, in eval mode, untrained."""
    import torch
    from torch import nn

    class ConvBN(nn.Module):  # upstream Conv_block (prelu) / Linear_block (no prelu)
        def __init__(self, cin: int, cout: int, k: int, stride: int, pad: int, groups: int,
                     prelu: bool = True) -> None:  # fmt: skip
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, k, stride, pad, groups=groups, bias=False)
            self.bn = nn.BatchNorm2d(cout)
            self.prelu = nn.PReLU(cout) if prelu else None

        def forward(self, x: Any) -> Any:
            x = self.bn(self.conv(x))
            return self.prelu(x) if self.prelu is not None else x

    class SE(nn.Module):
        def __init__(self, c: int, reduction: int = 4) -> None:
            super().__init__()
            self.fc1 = nn.Conv2d(c, c // reduction, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(c // reduction)
            self.fc2 = nn.Conv2d(c // reduction, c, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(c)

        def forward(self, x: Any) -> Any:
            s = x.mean(dim=(2, 3), keepdim=True)
            s = torch.relu(self.bn1(self.fc1(s)))
            return x * torch.sigmoid(self.bn2(self.fc2(s)))

    class Unit(nn.Module):  # upstream Depth_Wise / Depth_Wise_SE
        def __init__(self, keep: list[int], i: int, stride: int, residual: bool,
                     with_se: bool) -> None:  # fmt: skip
            super().__init__()
            a, b, c, d = keep[i : i + 4]
            self.conv = ConvBN(a, b, 1, 1, 0, 1)
            self.conv_dw = ConvBN(b, c, 3, stride, 1, b)
            self.project = ConvBN(c, d, 1, 1, 0, 1, prelu=False)
            self.residual = residual
            self.se_module = SE(d) if with_se else None

        def forward(self, x: Any) -> Any:
            y = self.project(self.conv_dw(self.conv(x)))
            if self.se_module is not None:
                y = self.se_module(y)
            return x + y if self.residual else y

    class Stage(nn.Module):
        def __init__(self, keep: list[int], i: int, n: int) -> None:
            super().__init__()
            self.model = nn.Sequential(
                *[Unit(keep, i + 3 * j, 1, True, se and j == n - 1) for j in range(n)]
            )

        def forward(self, x: Any) -> Any:
            return self.model(x)

    class MiniFASNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            k = KEEP["1.8M" if se else "1.8M_"]
            self.conv1 = ConvBN(3, k[0], 3, 2, 1, 1)
            self.conv2_dw = ConvBN(k[0], k[1], 3, 1, 1, k[1])
            self.conv_23 = Unit(k, 1, 2, False, False)
            self.conv_3 = Stage(k, 4, 4)
            self.conv_34 = Unit(k, 16, 2, False, False)
            self.conv_4 = Stage(k, 19, 6)
            self.conv_45 = Unit(k, 37, 2, False, False)
            self.conv_5 = Stage(k, 40, 2)
            self.conv_6_sep = ConvBN(k[46], k[47], 1, 1, 0, 1)
            self.conv_6_dw = ConvBN(k[47], k[48], 5, 1, 0, k[48], prelu=False)
            self.linear = nn.Linear(512, 128, bias=False)
            self.bn = nn.BatchNorm1d(128)
            self.prob = nn.Linear(128, 3, bias=False)

        def forward(self, x: Any) -> Any:
            for name in ("conv1", "conv2_dw", "conv_23", "conv_3", "conv_34", "conv_4",
                         "conv_45", "conv_5", "conv_6_sep", "conv_6_dw"):  # fmt: skip
                x = getattr(self, name)(x)
            return self.prob(self.bn(self.linear(x.flatten(1))))

    return MiniFASNet().eval()


def torch_reference(crops_npz: Path, out_npz: Path, weights_dir: Path) -> None:
    """Logits of each model on its crops (``<stem>``: N x 80 x 80 x 3 BGR uint8) -> ``out``."""
    import torch

    crops = np.load(crops_npz)
    result = {}
    for stem, checkpoint, se, _ in MODELS:
        state = torch.load(weights_dir / checkpoint, map_location="cpu", weights_only=True)
        state = {k.removeprefix("module."): v for k, v in state.items()}
        model = torch_model(se)
        model.load_state_dict(state, strict=True)
        x = torch.from_numpy(crops[stem].transpose(0, 3, 1, 2).astype(np.float32))  # no /255
        with torch.no_grad():
            result[stem] = model(x).numpy()
    np.savez(out_npz, **result)


# --------------------------------------------------------------------------------------------
# measurements (dev venv)


def roc_auc(live: np.ndarray, attack: np.ndarray) -> float:
    """P(a live score > an attack score), ties counted half (the Mann-Whitney form)."""
    live, attack = np.asarray(live, np.float64), np.asarray(attack, np.float64)
    greater = (live[:, None] > attack[None, :]).sum()
    ties = (live[:, None] == attack[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(live) * len(attack)))


def separation(live: np.ndarray, attack: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
    return {
        "auc": round(roc_auc(live, attack), 4),
        "live_median": round(float(np.median(live)), 4),
        "attack_median": round(float(np.median(attack)), 4),
        "live_min": round(float(live.min()), 4),
        "attack_max": round(float(attack.max()), 4),
        f"attack_accepted_at_{threshold}": round(float((attack >= threshold).mean()), 4),
        f"live_rejected_at_{threshold}": round(float((live < threshold).mean()), 4),
    }


def nuaa_files(facedata: Path) -> list[tuple[Path, str]]:
    """The evaluation split: NUAA subjects 0002-0003, every live and attack frame."""
    files = []
    for kind, folder in (("live", "ClientRaw"), ("attack", "ImposterRaw")):
        for subject in EVAL_SUBJECTS:
            files += [
                (p, kind) for p in sorted((facedata / "pad_nuaa" / folder / subject).glob("*.jpg"))
            ]
    return files


def latency(names: Sequence[str], image: np.ndarray, face: Any, threads: int, n: int = 50) -> float:
    from pi_facegate.vision.antispoof import TextureLiveness

    with TextureLiveness(names, num_threads=threads) as liveness:
        for _ in range(5):
            liveness.score(image, face)
        times = []
        for _ in range(n):
            t = time.perf_counter()
            liveness.score(image, face)
            times.append(time.perf_counter() - t)
    return round(float(np.median(times)) * 1000, 3)


def video_frames(path: Path, every: int) -> list[np.ndarray]:
    """Every ``every``-th frame of a video file, RGB."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames, i = [], 0
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            if i % every == 0:
                frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            i += 1
    finally:
        cap.release()
    return frames


def live_clips(facedata: Path, every: int = 5) -> dict[str, Any]:
    """INT8 mean live probability on genuine talking-head clips (every 5th frame): how often a
    live person would be taken for an attack by this evidence alone."""
    from pi_facegate.vision.antispoof import TextureLiveness
    from pi_facegate.vision.detection.factory import create_detector
    from tools.build_antispoof import find_face

    out: dict[str, Any] = {}
    detector = create_detector("litert")
    try:
        with TextureLiveness() as liveness:
            for clip in sorted((facedata / "live_clips").glob("*.mp4")):
                scores = []
                for frame in video_frames(clip, every):
                    face = find_face(detector, frame)
                    if face is not None:
                        scores.append(liveness.score(frame, face))
                p = np.array(scores)
                out[clip.name] = {
                    "frames": len(p),
                    "live_median": round(float(np.median(p)), 4),
                    "live_rejected_at_0.5": round(float((p < 0.5).mean()), 4),
                }
    finally:
        detector.close()
    return out


def check(facedata: Path, weights_dir: Path, torch_python: Path | None) -> dict[str, Any]:
    from pi_facegate.vision.detection.factory import create_detector
    from pi_facegate.vision.images import load_image
    from pi_facegate.vision.manifest import load_manifest
    from tools.build_antispoof import find_face, live_probability, make_crops, run_tflite

    report: dict[str, Any] = {"split": "pad_nuaa ClientRaw+ImposterRaw subjects 0002-0003"}
    files = nuaa_files(facedata)
    scales = [m[3] for m in MODELS]
    crops, kept = make_crops([p for p, _ in files], scales)
    labels = np.array([files[i][1] for i in kept])
    report["crops"] = {"live": int((labels == "live").sum()), "attack": int((labels == "attack").sum()),
                       "no_face": len(files) - len(kept)}  # fmt: skip

    probs: dict[str, dict[str, np.ndarray]] = {"float32": {}, "int8": {}}
    logits_float: dict[str, np.ndarray] = {}
    for stem, _, _, scale in MODELS:
        for kind in probs:
            m = load_manifest(f"{stem}_{kind}")
            logits = run_tflite(m.model_path, crops[scale], num_threads=2)
            probs[kind][stem] = live_probability(logits)
            if kind == "float32":
                logits_float[stem] = logits

    # float vs torch on ~50 crops spread over the split (live and attack)
    pick = np.linspace(0, len(kept) - 1, 50).round().astype(int)
    if torch_python and Path(torch_python).is_file():
        with tempfile.TemporaryDirectory() as tmp:
            cin, cout = Path(tmp) / "crops.npz", Path(tmp) / "logits.npz"
            np.savez(cin, **{stem: crops[scale][pick] for stem, _, _, scale in MODELS})
            subprocess.run(
                [str(torch_python), __file__, "--torch-reference", str(cin), str(cout),
                 "--weights", str(weights_dir)],
                check=True,
            )  # fmt: skip
            ref = np.load(cout)
            from pi_facegate.vision.antispoof import softmax

            report["float_vs_torch"] = {
                stem: {
                    "crops": len(pick),
                    "softmax_max_abs_diff": float(
                        np.abs(softmax(logits_float[stem][pick]) - softmax(ref[stem])).max()
                    ),
                    "logit_max_abs_diff": float(np.abs(logits_float[stem][pick] - ref[stem]).max()),
                }
                for stem, _, _, _ in MODELS
            }
    else:
        report["float_vs_torch"] = f"skipped: no torch venv at {torch_python}"

    mean = {kind: np.mean([probs[kind][s] for s, *_ in MODELS], axis=0) for kind in probs}
    drift = {}
    for stem in [*(m[0] for m in MODELS), "mean"]:
        a = mean["int8"] if stem == "mean" else probs["int8"][stem]
        b = mean["float32"] if stem == "mean" else probs["float32"][stem]
        d = np.abs(a - b)
        drift[stem] = {"mean": round(float(d.mean()), 4), "max": round(float(d.max()), 4)}
    report["int8_vs_float"] = drift

    live, attack = labels == "live", labels == "attack"
    nuaa: dict[str, Any] = {}
    for kind in probs:
        for stem, *_ in MODELS:
            p = probs[kind][stem]
            nuaa[f"{stem}_{kind}"] = separation(p[live], p[attack])
        nuaa[f"mean_{kind}"] = separation(mean[kind][live], mean[kind][attack])
    per_subject = {}
    subjects = np.array([files[i][0].parent.name for i in kept])
    for s in EVAL_SUBJECTS:
        sel = subjects == s
        per_subject[s] = separation(mean["int8"][live & sel], mean["int8"][attack & sel])
    nuaa["mean_int8_per_subject"] = per_subject
    report["nuaa"] = nuaa

    report["live_clips"] = live_clips(facedata)

    # latency: one 640x480 NUAA frame, its detected face
    image = load_image(files[0][0])
    detector = create_detector("litert")
    face = find_face(detector, image)
    detector.close()
    report["latency_ms"] = {
        kind: {f"{t}_threads": latency([f"{s}_{kind}" for s, *_ in MODELS], image, face, t)
               for t in (1, 2)}
        for kind in ("int8", "float32")
    }  # fmt: skip
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--facedata", type=Path, default=None, help="shared face photos root")
    parser.add_argument(
        "--weights", type=Path, default=REPO.parent / "shared" / "models" / "minifasnet"
    )
    parser.add_argument("--torch-python", type=Path, default=DEFAULT_TORCH_PYTHON)
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    parser.add_argument("--torch-reference", nargs=2, type=Path, metavar=("CROPS", "OUT"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args(argv)
    if args.torch_reference:
        torch_reference(*args.torch_reference, args.weights)
        return 0
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from pi_facegate.paths import facedata_dir

    report = check(args.facedata or facedata_dir(), args.weights, args.torch_python)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
