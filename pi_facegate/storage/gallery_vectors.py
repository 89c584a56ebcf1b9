"""How the gallery stores embeddings: checked on the way in, little-endian float32 blobs.

Kept apart from :mod:`pi_facegate.storage.gallery` (people, transactions, change detection)
because these rules are about one embedding's bytes: a vector of the wrong length, with a
NaN, or from another embedder is never stored, and a stored blob of the wrong size means a
corrupt file, never a silently shorter vector.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pi_facegate.exc import GalleryError, GalleryMismatchError, InvalidPersonError

VECTOR_DTYPE = np.dtype("<f4")  # stored little-endian float32, whatever the CPU


def check_vectors(embeddings: np.ndarray, size: int, path: str | Path) -> np.ndarray:
    """``embeddings`` as an ``(n, size)`` float32 array, or the error that says why not."""
    vectors = np.asarray(embeddings, dtype=np.float32)
    if vectors.ndim == 1 and vectors.size:
        vectors = vectors.reshape(1, -1)
    if vectors.ndim != 2 or vectors.size == 0:
        raise InvalidPersonError(
            f"need at least one embedding (an (n, {size}) array), got shape {np.shape(embeddings)}"
        )
    if vectors.shape[1] != size:
        raise GalleryMismatchError(
            f"embeddings have {vectors.shape[1]} values but gallery {path} holds "
            f"{size}-value embeddings: they come from another embedder"
        )
    if not np.isfinite(vectors).all():
        raise InvalidPersonError("embeddings contain NaN or infinite values: not stored")
    return vectors


def insert_vectors(
    conn: sqlite3.Connection,
    person_id: int,
    vectors: np.ndarray,
    sources: list[str | None],
    created: str,
) -> None:
    """Store checked ``vectors`` of one person (inside the caller's transaction)."""
    conn.executemany(
        "INSERT INTO embeddings (person_id, vector, created, source) VALUES (?, ?, ?, ?)",
        [
            (person_id, vector.astype(VECTOR_DTYPE).tobytes(), created, source)
            for vector, source in zip(vectors, sources, strict=True)
        ],
    )


def decode(blobs: list[object], size: int, path: str | Path) -> np.ndarray:
    """``(n, size)`` float32 from stored blobs; a blob of the wrong size means corruption."""
    length = size * VECTOR_DTYPE.itemsize
    for blob in blobs:
        if not isinstance(blob, bytes) or len(blob) != length:
            raise GalleryError(
                f"gallery {path} is corrupt: an embedding is not {length} bytes of float32"
            )
    flat = np.frombuffer(b"".join(blobs), dtype=VECTOR_DTYPE)  # type: ignore[arg-type]
    return flat.reshape(-1, size).astype(np.float32)


def sources_for(source: str | Sequence[str | None] | None, count: int) -> list[str | None]:
    """One source entry per embedding: the same for all, or one each (checked)."""
    if source is None or isinstance(source, str):
        return [source] * count
    sources = [None if s is None else str(s) for s in source]
    if len(sources) != count:
        raise InvalidPersonError(f"{len(sources)} sources given for {count} embeddings")
    return sources
