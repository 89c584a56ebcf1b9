#!/usr/bin/env python3
"""Time the 1:N matcher (and optionally the gallery's index rebuild) on random embeddings.

Not a test: timings depend on the machine. Typical use::

    .venv/bin/python tools/bench_matcher.py --people 10000 --per-person 5
    .venv/bin/python tools/bench_matcher.py --people 20000 --per-person 5 --batch 8
    .venv/bin/python tools/bench_matcher.py --people 2000 --per-person 5 --sqlite

Embeddings are random unit vectors (like dlib's, whose norms are close to 1); the timing of
:func:`pi_facegate.core.matcher.search` does not depend on the values. ``--sqlite`` also stores
the gallery in a temporary SQLite file and times :meth:`Gallery.index` after a change
(what the daemon pays when someone is enrolled or removed). The random galleries and the
search timing are :mod:`pi_facegate.devtools.bench.gallery_search`'s, which ``facegate
bench`` reports as well.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pi_facegate.core.matcher import GalleryIndex  # noqa: E402
from pi_facegate.devtools.bench import gallery_search  # noqa: E402
from pi_facegate.storage.gallery import Gallery  # noqa: E402


def random_gallery(people: int, per_person: int, dim: int, seed: int) -> tuple[GalleryIndex, float]:
    """An index of ``people`` x ``per_person`` random unit vectors, and its build time (ms)."""
    rows, owners, vectors = gallery_search.random_gallery(people, per_person, dim, seed)
    start = time.perf_counter()
    index = GalleryIndex.build(rows, owners, vectors, fingerprint="bench", version=1)
    return index, (time.perf_counter() - start) * 1e3


def time_search(index: GalleryIndex, batch: int, repeat: int, seed: int) -> list[float]:
    """Milliseconds per call of ``search`` with ``batch`` queries, ``repeat`` times."""
    return gallery_search.time_search(index, batch=batch, repeat=repeat, seed=seed)


def time_gallery_rebuild(people: int, per_person: int, dim: int, seed: int) -> tuple[float, float]:
    """(seconds to fill a SQLite gallery, ms for ``index()`` to see one more person)."""
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp, Gallery.open(Path(tmp) / "g.db", "bench", dim) as g:
        start = time.perf_counter()
        for i in range(people):
            g.add_person(
                f"person-{i}", gallery_search.unit_vectors(rng.standard_normal((per_person, dim)))
            )
        fill = time.perf_counter() - start
        g.index()
        g.add_person("one-more", gallery_search.unit_vectors(rng.standard_normal((1, dim))))
        start = time.perf_counter()
        g.index()
        return fill, (time.perf_counter() - start) * 1e3


def _summary(times: list[float]) -> str:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"median {statistics.median(times):.3f} ms, p95 {p95:.3f} ms, min {ordered[0]:.3f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=10000)
    parser.add_argument("--per-person", type=int, default=5)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--batch", type=int, default=1, help="queries per search call")
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sqlite", action="store_true", help="also time the gallery rebuild")
    args = parser.parse_args(argv)

    index, build_ms = random_gallery(args.people, args.per_person, args.dim, args.seed)
    total = args.people * args.per_person
    print(f"gallery: {args.people} people x {args.per_person} = {total} embeddings of {args.dim}")
    print(f"GalleryIndex.build: {build_ms:.1f} ms")
    times = time_search(index, args.batch, args.repeat, args.seed)
    per_query = [t / args.batch for t in times]
    print(f"search, {args.batch} queries per call: {_summary(times)}")
    if args.batch > 1:
        print(f"  per query: {_summary(per_query)}")
    if args.sqlite:
        fill, rebuild_ms = time_gallery_rebuild(args.people, args.per_person, args.dim, args.seed)
        print(f"sqlite: {args.people} add_person calls in {fill:.1f} s; ", end="")
        print(f"index() after one more person: {rebuild_ms:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
