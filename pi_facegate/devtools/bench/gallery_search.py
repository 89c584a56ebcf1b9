"""How long a 1:N search over a large gallery takes, on random embeddings.

Also used by ``tools/bench_matcher.py``, which times the same search at other sizes.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from pi_facegate.core.matcher import GalleryIndex, search
from pi_facegate.devtools.bench.measure import summarize

#: gallery size of the search benchmark, and how many embeddings each random person has
SEARCH_EMBEDDINGS = 100_000
SEARCH_PER_PERSON = 5


def random_gallery(
    people: int, per_person: int = SEARCH_PER_PERSON, dim: int = 128, seed: int = 0
) -> tuple[list[tuple[int, str, bool, bool]], np.ndarray, np.ndarray]:
    """``(rows, owners, vectors)`` of ``people`` random people, as :meth:`GalleryIndex.build` takes them.

    Real embeddings have norms close to 1, and the search time does not depend on the
    values, so random unit vectors time the search as a real gallery would.
    """
    rng = np.random.default_rng(seed)
    vectors = unit_vectors(rng.standard_normal((people * per_person, dim), dtype=np.float32))
    rows = [(i + 1, f"person-{i + 1}", True, False) for i in range(people)]
    owners = np.repeat(np.arange(1, people + 1), per_person)
    return rows, owners, vectors


def random_index(
    embeddings: int, per_person: int = SEARCH_PER_PERSON, dim: int = 128, seed: int = 0
) -> GalleryIndex:
    """A searchable gallery of about ``embeddings`` random vectors, ``per_person`` each."""
    people = max(1, embeddings // max(1, per_person))
    rows, owners, vectors = random_gallery(people, per_person, dim, seed)
    return GalleryIndex.build(rows, owners, vectors, fingerprint="bench", version=1)


def time_search(
    index: GalleryIndex, batch: int = 1, repeat: int = 200, seed: int = 0
) -> list[float]:
    """Milliseconds per :func:`~pi_facegate.core.matcher.search` call of ``batch`` random queries."""
    rng = np.random.default_rng(seed + 1)
    queries = [
        unit_vectors(rng.standard_normal((batch, index.dim), dtype=np.float32))
        for _ in range(repeat + 1)
    ]
    search(index, queries[0], 0.6, 0.1)  # first call pays for page faults, not the search
    times = []
    for block in queries[1:]:
        start = time.perf_counter()
        search(index, block, 0.6, 0.1)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def search_benchmark(
    embeddings: int = SEARCH_EMBEDDINGS,
    per_person: int = SEARCH_PER_PERSON,
    repeat: int = 200,
    dim: int = 128,
) -> dict[str, Any]:
    """One query against a random gallery of ``embeddings`` vectors of the embedder's
    length ``dim`` (the search costs in proportion to it), ``repeat`` times."""
    index = random_index(embeddings, per_person, dim)
    times = time_search(index, repeat=repeat)
    return {
        "embeddings": int(index.embeddings.shape[0]),
        "people": index.size,
        "dim": index.dim,
        "ms": summarize(times),
    }


def unit_vectors(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
