"""``facegate bench --compare-embedder MODEL``: two embedders on the same frames, in one run.

The machine the bench runs on is often shared, and its load changes from one minute to the
next; two benches run one after the other then compare two loads, not two models. Here both
pipelines (the config's embedder and ``MODEL``, each with its own detector, aligner and
in-memory gallery of the same reference photos) take every frame in turn, the order swapped
each frame, so both see the same load. The ratios are the point; the absolute milliseconds
are this machine's at that moment.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from pi_facegate.devtools.bench.frames import FrameResult, read_frames

Process = Callable[[np.ndarray], FrameResult]


def paired_pass(
    first: Process,
    second: Process,
    frames,
    size: tuple[int, int] | None,
    limit: int | None,
    say: Callable[[str], None] | None = None,
) -> tuple[tuple[list[FrameResult], float], tuple[list[FrameResult], float]]:
    """Every frame through both pipelines, alternating which goes first; results and walls."""
    results: tuple[list[FrameResult], list[FrameResult]] = ([], [])
    walls = [0.0, 0.0]
    steps = ((0, first), (1, second))
    for count, image in enumerate(read_frames(frames, size, limit), start=1):
        for which, process in steps if count % 2 else steps[::-1]:
            start = time.perf_counter()
            results[which].append(process(image))
            walls[which] += time.perf_counter() - start
        if say and count % 50 == 0:
            say(f"  {count} frames")
    return (results[0], walls[0]), (results[1], walls[1])


def _ratio(other: float, ours: float) -> float | None:
    return round(other / ours, 2) if ours > 0 and other > 0 else None


def comparison(
    model: str, ours: dict[str, Any], other: dict[str, Any], cost: dict[str, Any]
) -> dict[str, Any]:
    """The report's ``compare`` section: the other pipeline's figures and other / ours."""

    def median(part: dict[str, Any], stage: str | None = None) -> float:
        return (part["ms_per_frame"] if stage is None else part["stages"][stage])["median"]

    def mean(part: dict[str, Any], stage: str | None = None) -> float:
        return (part["ms_per_frame"] if stage is None else part["stages"][stage])["mean"]

    one, other_one = ours["one_face"], other["one_face"]
    return {
        "embedder_model": model,
        "pipeline": other,
        "model": cost,
        "ratio_other_over_ours": {
            # over all frames the median frame may have no face (embed 0 ms): means instead
            "frame_mean": _ratio(mean(other), mean(ours)),
            "embed_mean": _ratio(mean(other, "embed"), mean(ours, "embed")),
            "one_face_frame": _ratio(median(other_one), median(one)),
            "one_face_embed": _ratio(median(other_one, "embed"), median(one, "embed")),
            "one_face_align": _ratio(median(other_one, "align"), median(one, "align")),
        },
    }
