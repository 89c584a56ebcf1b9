"""Numbers of a benchmark: millisecond statistics, peak memory, package versions."""

from __future__ import annotations

import importlib.metadata
import math
import resource
import statistics
import sys
from collections.abc import Sequence


def summarize(values_ms: Sequence[float]) -> dict[str, float]:
    """``median``, ``p95``, ``mean``, ``min`` and ``max`` of some milliseconds.

    The 95th percentile is the nearest-rank one (a value that occurred), so it is never
    below the median; for fewer than 20 values it is the maximum.
    """
    if not values_ms:
        return {"median": 0.0, "p95": 0.0, "mean": 0.0, "min": 0.0, "max": 0.0}
    ordered = sorted(float(v) for v in values_ms)
    rank = max(1, math.ceil(0.95 * len(ordered)))
    return {
        "median": round(statistics.median(ordered), 3),
        "p95": round(ordered[rank - 1], 3),
        "mean": round(statistics.fmean(ordered), 3),
        "min": round(ordered[0], 3),
        "max": round(ordered[-1], 3),
    }


def peak_rss_mb() -> float:
    """The process's peak resident memory so far, in MiB (a high-water mark: it never falls)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / 1024 if sys.platform != "darwin" else peak / 2**20, 1)


def package_version(distribution: str) -> str | None:
    """The installed version of a distribution (``"ai-edge-litert"``), or ``None``."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
