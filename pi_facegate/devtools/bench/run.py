"""One ``facegate bench`` run: our pipeline (and the peer's) over the frames, as a report.

The report is plain JSON-ready data (``--json`` writes it as it is); the command line
prints it as a table (:func:`pi_facegate.cli.bench.format_report`).
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pi_facegate.config.schema import Config
from pi_facegate.daemon import wiring as components
from pi_facegate.devtools.bench.compare import comparison, paired_pass
from pi_facegate.devtools.bench.costs import model_cost
from pi_facegate.devtools.bench.frames import FrameResult, Reference, read_frames
from pi_facegate.devtools.bench.gallery_search import SEARCH_EMBEDDINGS, search_benchmark
from pi_facegate.devtools.bench.measure import package_version, peak_rss_mb, summarize
from pi_facegate.devtools.bench.peer import PEERS, FaceRecognitionPeer
from pi_facegate.devtools.bench.pipeline import STAGES, OurPipeline, add_strangers, enrol_ours
from pi_facegate.exc import UsageError
from pi_facegate.paths import facedata_dir

#: what ``--frames`` defaults to, inside the shared face data
DEFAULT_CLIP = Path("face_recognition_examples/examples/short_hamilton_clip.mp4")
#: who is enrolled by default when the default clip is used: the person in its close-ups
DEFAULT_REFERENCE = (
    "Lin-Manuel Miranda",
    Path("face_recognition_examples/examples/lin-manuel-miranda.png"),
)
#: where progress lines go (``facegate bench`` prints them on stderr)
Progress = Callable[[str], None]


@dataclass(frozen=True)
class BenchOptions:
    """What to measure; ``None`` fields take the defaults described in ``facegate bench -h``."""

    frames: Path | None = None
    size: tuple[int, int] | None = None
    max_frames: int | None = None
    warmup: int = 3
    threads: int | None = None
    references: tuple[Reference, ...] | None = None
    peer: str | None = None
    search_embeddings: int = SEARCH_EMBEDDINGS
    strangers: int = 0
    #: a second embedder (manifest name or path) timed on the same frames, in turn
    compare_embedder: str | None = None


def resolve_inputs(options: BenchOptions) -> BenchOptions:
    """Fill in the default clip and, for it, the default reference photo."""
    if options.peer is not None and options.peer not in PEERS:
        raise UsageError(f"unknown peer {options.peer!r}: choose one of {', '.join(PEERS)}")
    frames, references = options.frames, options.references
    if frames is None:
        frames = facedata_dir() / DEFAULT_CLIP
        if not frames.exists():
            raise UsageError(
                f"no --frames given and the default clip {frames} is missing "
                "(set FACEGATE_TESTDATA to the shared face data, or give --frames PATH)"
            )
        if references is None:
            name, photo = DEFAULT_REFERENCE
            references = (Reference(name, facedata_dir() / photo),)
    return replace(options, frames=frames, references=tuple(references or ()))


def bench_config(config: Config, threads: int | None) -> Config:
    """``config`` with ``threads`` interpreter threads for the detector and the embedder."""
    if not threads:
        return config
    return config.model_copy(
        update={
            "detector": config.detector.model_copy(update={"threads": threads}),
            "embedder": config.embedder.model_copy(update={"threads": threads}),
        }
    )


def run_bench(
    config: Config, options: BenchOptions, progress: Progress | None = None
) -> dict[str, Any]:
    """Measure our pipeline (and the peer's) on the frames; the report as plain data.

    :raises UsageError: bad options, or the peer library is not installed
    :raises CameraError: the frames cannot be read
    :raises NoFaceError, MultipleFacesError: a reference photo does not show one face
    """
    options = resolve_inputs(options)
    config = bench_config(config, options.threads)
    load_before = _loadavg()
    say = progress or (lambda _: None)
    peer = FaceRecognitionPeer() if options.peer else None  # fail on a missing library first

    recognizer = components.build_recognizer(config, video=True)
    texture = other = None
    other_results: list[FrameResult] | None = None
    try:
        texture = components.build_texture_liveness(config)
        index = add_strangers(enrol_ours(recognizer, config, options.references), options.strangers)
        ours = OurPipeline(recognizer, config, index, texture)
        if options.compare_embedder:
            other = _other_pipeline(config, options, texture)
        say(f"warming up on {options.warmup} frames")
        for pipeline in (ours, other) if other else (ours,):
            _run_pass(pipeline.process, options, limit=options.warmup)
            pipeline.reset()
        if other is None:
            say(f"timing pi-facegate on {options.frames}")
            our_results, our_wall = _run_pass(ours.process, options, say=say)
        else:
            say(f"timing both embedders on {options.frames}, frame by frame in turn")
            (our_results, our_wall), (other_results, other_wall) = paired_pass(
                ours.process, other.process, options.frames, options.size, options.max_frames, say
            )
            other_cost = model_cost(other.recognizer.embedder.manifest).as_dict()
        detector = recognizer.detector
        settings = {
            "detector_backend": detector.backend,
            "detector_model": detector.manifest.name,
            "detect_width": recognizer.detect_width,
            "detector_threads": config.detector.threads,
            "embedder_model": recognizer.embedder.name,
            "embedder_threads": config.embedder.threads,
            "liveness": "on" if texture is not None else "off",
            "threshold": ours.threshold,
            "min_margin": ours.min_margin,
        }
        models = {
            "detector": model_cost(detector.manifest).as_dict(),
            "embedder": model_cost(recognizer.embedder.manifest).as_dict(),
        }
        embedding_size = recognizer.embedder.size
    finally:
        recognizer.close()
        if other is not None:
            other.recognizer.close()
        if texture is not None:
            texture.close()
    if not our_results:
        raise UsageError(f"{options.frames}: no frames to measure")
    report: dict[str, Any] = {
        "frames": len(our_results),
        "source": _source(options),
        "settings": settings,
        "enrolled": sorted({r.name for r in options.references}),
        "gallery_people": index.size,
        "ours": _pipeline_report(our_results, our_wall, STAGES),
        "peer": None,
        "ratio_peer_over_ours": None,
        "ratio_peer_over_ours_one_face": None,
        "agreement": None,
        "models": models,
    }
    report["ours"]["peak_rss_mb"] = peak_rss_mb()
    if other_results is not None:
        report["compare"] = comparison(
            options.compare_embedder,
            report["ours"],
            _pipeline_report(other_results, other_wall, STAGES),
            other_cost,
        )
    if peer is not None:
        for reference in options.references:
            peer.enrol(reference)
        say(f"warming up {peer.name}")
        _run_pass(peer.process, options, limit=min(options.warmup, 1))
        say(f"timing {peer.name} on the same frames")
        peer_results, peer_wall = _run_pass(peer.process, options, say=say)
        report["peer"] = {
            "name": peer.name,
            "version": peer.version,
            "dlib": package_version("dlib-bin") or package_version("dlib"),
            "tolerance": peer.tolerance,
            **_pipeline_report(peer_results, peer_wall, ("detect", "embed", "match")),
            "process_peak_rss_mb": peak_rss_mb(),
        }
        ours_median = report["ours"]["ms_per_frame"]["median"]
        peer_median = report["peer"]["ms_per_frame"]["median"]
        report["ratio_peer_over_ours"] = _ratio(peer_median, ours_median)
        report["ratio_peer_over_ours_one_face"] = _ratio(
            report["peer"]["one_face"]["ms_per_frame"]["median"],
            report["ours"]["one_face"]["ms_per_frame"]["median"],
        )
        report["agreement"] = agreement(our_results, peer_results)
    if options.search_embeddings:
        say(f"timing a gallery search over {options.search_embeddings} embeddings")
        report["gallery_search"] = search_benchmark(options.search_embeddings, dim=embedding_size)
    report["machine"] = {**machine_info(), "load_before": load_before, "load_after": _loadavg()}
    return report


def _other_pipeline(config: Config, options: BenchOptions, texture) -> OurPipeline:
    """The same pipeline on ``options.compare_embedder``, with the same people enrolled."""
    embedder = config.embedder.model_copy(update={"model": options.compare_embedder})
    other_config = config.model_copy(update={"embedder": embedder})
    recognizer = components.build_recognizer(other_config, video=True)
    try:
        index = add_strangers(
            enrol_ours(recognizer, other_config, options.references), options.strangers
        )
        return OurPipeline(recognizer, other_config, index, texture)
    except BaseException:
        recognizer.close()
        raise


def _ratio(peer_ms: float, ours_ms: float) -> float | None:
    return round(peer_ms / ours_ms, 2) if ours_ms > 0 and peer_ms > 0 else None


def _loadavg() -> float | None:
    """The 1-minute load average: timings from a busy machine are not the machine's speed."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _run_pass(
    process: Callable[[np.ndarray], FrameResult],
    options: BenchOptions,
    limit: int | None = None,
    say: Progress | None = None,
) -> tuple[list[FrameResult], float]:
    """Every frame (or the first ``limit``) through ``process``; results and wall seconds."""
    limit = options.max_frames if limit is None else min(limit, options.max_frames or limit)
    results = []
    wall = 0.0
    for image in read_frames(options.frames, options.size, limit):
        start = time.perf_counter()
        results.append(process(image))
        wall += time.perf_counter() - start
        if say and len(results) % 50 == 0:
            say(f"  {len(results)} frames")
    return results, wall


def _pipeline_report(
    results: list[FrameResult], wall: float, stages: Sequence[str]
) -> dict[str, Any]:
    """Per-frame and per-stage statistics, over all frames and over one-face frames."""
    one_face = [r for r in results if r.faces == 1 and r.embedded == 1]
    cpu = sum(r.cpu_ms for r in results) / 1e3
    return {
        "ms_per_frame": summarize([r.total_ms for r in results]),
        "fps": round(len(results) / wall, 2) if wall > 0 else None,
        "cpu_seconds": round(cpu, 3),
        "cpu_ms_per_frame": round(cpu * 1e3 / len(results), 3) if results else None,
        "cpu_utilisation": round(cpu / wall, 2) if wall > 0 else None,
        "stages": {s: summarize([r.stages_ms[s] for r in results]) for s in stages},
        "frames_with_faces": sum(r.faces > 0 for r in results),
        "faces_detected": sum(r.faces for r in results),
        "faces_embedded": sum(r.embedded for r in results),
        "frames_identified": sum(bool(r.names) for r in results),
        "one_face": {
            "frames": len(one_face),
            "ms_per_frame": summarize([r.total_ms for r in one_face]),
            "cpu_ms_per_frame": summarize([r.cpu_ms for r in one_face]),
            "stages": {s: summarize([r.stages_ms[s] for r in one_face]) for s in stages},
        },
    }


def agreement(ours: Sequence[FrameResult], peer: Sequence[FrameResult]) -> dict[str, Any]:
    """How often the two pipelines name the same people in a frame (also "nobody").

    ``both``/``ours_only``/``peer_only``/``neither`` count frames in which each pipeline
    recognised at least one enrolled person; ``disagree_frames`` lists (up to 50) frame
    numbers where the answers differ, to look at.
    """
    pairs = list(zip(ours, peer, strict=True))
    same = [a.names == b.names for a, b in pairs]
    differ = [i for i, ok in enumerate(same) if not ok]
    return {
        "frames": len(pairs),
        "agree": sum(same),
        "rate": round(sum(same) / len(pairs), 4) if pairs else None,
        "both": sum(bool(a.names) and bool(b.names) for a, b in pairs),
        "ours_only": sum(bool(a.names) and not b.names for a, b in pairs),
        "peer_only": sum(not a.names and bool(b.names) for a, b in pairs),
        "neither": sum(not a.names and not b.names for a, b in pairs),
        "disagree_frames": differ[:50],
    }


def _source(options: BenchOptions) -> dict[str, Any]:
    first = next(read_frames(options.frames, options.size, 1))
    return {
        "path": str(options.frames),
        "size": [int(first.shape[1]), int(first.shape[0])],
        "letterboxed": options.size is not None,
        "max_frames": options.max_frames,
        "warmup": options.warmup,
    }


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "litert": package_version("ai-edge-litert") or package_version("tflite-runtime"),
        "mediapipe": package_version("mediapipe"),
        "tensorflow_loaded": "tensorflow" in sys.modules,
    }
