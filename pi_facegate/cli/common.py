"""Helpers shared by the commands that run the recognition pipeline on photos."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pi_facegate.cli import context
from pi_facegate.config.schema import Config
from pi_facegate.daemon import wiring as components
from pi_facegate.exc import FacegateError
from pi_facegate.vision.images import load_image
from pi_facegate.vision.recognizer import FaceAnalysis, Recognizer


def add_gallery_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--gallery", type=Path, metavar="PATH", help="gallery file (default: from the config)"
    )


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


@dataclass
class PhotoResult:
    """One photo run through the pipeline, or the reason it could not be."""

    path: Path
    analyses: list[FaceAnalysis]
    error: str | None = None


def analyse_photos(recognizer: Recognizer, config: Config, paths: list[Path]) -> list[PhotoResult]:
    """Detect, gate and embed every face of each photo; unreadable photos carry their error."""
    limits = components.still_limits(config)
    results = []
    for path in paths:
        try:
            image = load_image(path)
        except FacegateError as exc:
            results.append(PhotoResult(path, [], str(exc)))
            continue
        faces = recognizer.detect_still(image)
        results.append(PhotoResult(path, recognizer.analyse(image, faces, limits)))
    return results


def setup(args: argparse.Namespace) -> tuple[Config, Path]:
    """The config and the gallery path for a command."""
    _, config = context.resolve_config(args)
    return config, context.gallery_path(args, config)


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def box_list(analysis: FaceAnalysis) -> list[int]:
    return [round(v) for v in analysis.face.box]
