"""Rebuild every bundled model in ``models/``: the one command ``models/README.md`` names.

    .venv/bin/python tools/build_models.py [--out models] [--facedata DIR] [--no-template]

Runs, in order: ``tools/build_detector.py`` (BlazeFace detectors), ``tools/build_embedder.py``
(dlib ResNet -> float32 and INT8 TFLite, checked against dlib), ``tools/build_antispoof.py``
(the two MiniFASNet liveness models from ``../shared/models/minifasnet``) and, where present,
``tools/fit_alignment_template.py`` (the detector-keypoint template in the embedder
manifests, which needs both models), then ``tools/calibrate_open_set.py`` (the impostor
table the threshold for a gallery's size is read from: it depends on the model and its
alignment, so a rebuild measures it again). Needs the ``[tools]`` extra and the shared face
photos; downloads nothing. Each step is deterministic, so a rebuild reproduces the committed files.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _p in (str(HERE), str(REPO)):  # build_detector imports its sibling tflite_metadata
    if _p not in sys.path:
        sys.path.insert(0, _p)


def build_all(out_dir: Path, facedata: Path | None = None, template: bool = True) -> None:
    """Build detectors, embedders and (optionally) the alignment template into ``out_dir``."""
    import build_detector

    from tools import build_embedder

    log = logging.getLogger("build_models")
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in build_detector.build(out_dir):
        log.info("wrote %s", path)
    report = build_embedder.build(out_dir, facedata)
    log.info("embedder build: %s", report)
    from tools import build_antispoof

    log.info("anti-spoofing build: %s", build_antispoof.build(out_dir, facedata))
    if template and (HERE / "fit_alignment_template.py").is_file():
        import fit_alignment_template

        manifests = [
            out_dir / f"{name}.json"
            for name in (build_embedder.INT8_NAME, build_embedder.FLOAT_NAME)
        ]
        argv = [arg for m in manifests for arg in ("--manifest", str(m))]
        if facedata:
            argv += ["--facedata", str(facedata)]
        if fit_alignment_template.main(argv) != 0:
            raise RuntimeError("fitting the alignment template failed")
    elif template:
        log.warning("tools/fit_alignment_template.py not found: alignment.template left as is")
    _calibrate_open_set(out_dir, facedata)


def _calibrate_open_set(out_dir: Path, facedata: Path | None) -> None:
    """Measure each embedder's impostor table again (a rebuilt manifest has none)."""
    import calibrate_open_set

    from tools import build_embedder

    argv = ["--write"]
    for name in (build_embedder.INT8_NAME, build_embedder.FLOAT_NAME):
        argv += ["--manifest", str(out_dir / f"{name}.json")]
    if facedata:
        argv += ["--facedata", str(facedata)]
    if calibrate_open_set.main(argv) != 0:
        raise RuntimeError("calibrating the open-set table failed")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "models", help="output folder")
    parser.add_argument("--facedata", type=Path, default=None, help="shared face photos root")
    parser.add_argument(
        "--no-template", action="store_true", help="do not refit the alignment template"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    build_all(args.out, args.facedata, template=not args.no_template)
    print(json.dumps(sorted(p.name for p in args.out.iterdir()), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
