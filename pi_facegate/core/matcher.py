"""1:N matching of face embeddings against the gallery: pure numpy, no I/O.

The metric is **Euclidean distance** between embeddings: smaller is closer, and a match
needs ``distance <= threshold``. Matching is open-set: the best person must also be clearly
better than the nearest *other* person (``margin = second_distance - distance >=
min_margin``), so a stranger who looks a bit like two enrolled people, or two people who
both match, never opens the door.

:class:`GalleryIndex` is an immutable snapshot of the gallery laid out for search: all
embeddings in one ``(K, D)`` float32 matrix whose rows are grouped by person, plus each
person's first row. :func:`search` then needs no Python loop per person: squared distances
come from one matrix product (``|q|^2 + |e|^2 - 2 q.e``), each person's closest embedding
from ``np.minimum.reduceat`` over the grouped rows, and the two nearest people from
``np.argpartition``. The two reported distances are then recomputed directly in float64,
so the values that meet the threshold are exact, not float32 cancellation noise.

Disabled and pending people are still matched, so the event log can say "disabled person
X", but :attr:`Match.accepted` -- the only flag that may open the door -- is true only for
an enabled, approved person. :attr:`Match.recognised` is the pure distance decision, and
:attr:`Match.reason` says why access was refused.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

import numpy as np

from pi_facegate.core.access_rules import PersonRules
from pi_facegate.exc import ConfigError, GalleryMismatchError

#: Largest number of query x embedding distances computed at once (float32 elements), so
#: a big batch over a big gallery never allocates more than ~32 MB of scratch.
_MAX_BLOCK_ELEMENTS = 1 << 23

#: ``(person_id, name, enabled, pending)``: one person as :meth:`GalleryIndex.build` takes it.
PersonRow = tuple[int, str, bool, bool]


class Rejection(StrEnum):
    """Why a :class:`Match` does not grant access (compares equal to its string value)."""

    UNKNOWN = "unknown"  #: nobody is within the threshold: a stranger
    DOUBTFUL = "doubtful"  #: the best person is not far enough ahead of the second
    DISABLED = "disabled"  #: recognised, but an administrator disabled this person
    PENDING = "pending"  #: recognised, but the enrolment awaits an administrator's approval


@dataclass(frozen=True, eq=False)
class GalleryIndex:
    """An immutable, search-ready snapshot of the gallery.

    ``embeddings`` is ``(K, D)`` float32 with the rows of each person contiguous and the
    people in the order of ``person_ids``; ``offsets[p]`` is person ``p``'s first row and
    ``labels[k]`` the person of row ``k``. People without embeddings are left out (they
    cannot be matched). ``version`` changes whenever the gallery changes, ``fingerprint``
    names the embedder that made the embeddings. ``rules`` holds the access rules (schedule,
    validity dates) of each restricted person by id, read in the same snapshot as the
    embeddings, so a person is never matched under another moment's rules. Arrays and the
    mapping are read-only, so one index can be shared between threads.
    """

    embeddings: np.ndarray
    sq_norms: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray
    person_ids: np.ndarray
    names: tuple[str, ...]
    enabled: np.ndarray
    pending: np.ndarray
    fingerprint: str
    version: int
    rules: Mapping[int, PersonRules] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def build(
        cls,
        people: Sequence[PersonRow],
        owners: Sequence[int] | np.ndarray,
        vectors: np.ndarray,
        fingerprint: str,
        version: int,
        rules: Mapping[int, PersonRules] | None = None,
    ) -> GalleryIndex:
        """Lay out ``people`` and their embeddings for :func:`search`.

        ``owners[k]`` is the person id of ``vectors[k]`` (``vectors`` is ``(K, D)``); rows
        may come in any order. An embedding whose owner is not in ``people`` is a
        :class:`ValueError` (the caller read an inconsistent gallery). ``rules`` are the
        access rules by person id (people without an entry have none).
        """
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2:
            raise ValueError(f"embeddings must be a (K, D) matrix, got shape {vectors.shape}")
        if not np.isfinite(vectors).all():
            raise ValueError("embeddings contain NaN or infinite values")
        owners_arr = np.asarray(owners, dtype=np.int64).reshape(-1)
        if owners_arr.shape[0] != vectors.shape[0]:
            raise ValueError(f"{owners_arr.shape[0]} owners for {vectors.shape[0]} embeddings")
        all_ids = np.array([int(p[0]) for p in people], dtype=np.int64)
        if np.unique(all_ids).size != all_ids.size:
            raise ValueError("person ids must be unique")
        position = _positions_of(all_ids, owners_arr)
        counts = np.bincount(position, minlength=all_ids.size)
        keep = np.flatnonzero(counts > 0)  # people with embeddings, in the given order
        new_position = np.full(all_ids.size, -1, dtype=np.intp)
        new_position[keep] = np.arange(keep.size)
        labels = new_position[position]
        order = np.argsort(labels, kind="stable")
        embeddings = np.ascontiguousarray(vectors[order])
        labels = labels[order]
        counts = counts[keep]
        offsets = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.intp)
        rows = [people[i] for i in keep]
        return cls(
            embeddings=_frozen(embeddings),
            sq_norms=_frozen(np.einsum("kd,kd->k", embeddings, embeddings)),
            offsets=_frozen(offsets),
            labels=_frozen(labels.astype(np.intp)),
            person_ids=_frozen(all_ids[keep]),
            names=tuple(str(r[1]) for r in rows),
            enabled=_frozen(np.array([bool(r[2]) for r in rows], dtype=bool)),
            pending=_frozen(np.array([bool(r[3]) for r in rows], dtype=bool)),
            fingerprint=str(fingerprint),
            version=int(version),
            rules=MappingProxyType(dict(rules or {})),
        )

    @classmethod
    def empty(cls, dim: int, fingerprint: str, version: int = 0) -> GalleryIndex:
        """An index with nobody in it (every search gives ``None``)."""
        return cls.build([], [], np.zeros((0, dim), np.float32), fingerprint, version)

    @property
    def dim(self) -> int:
        """Length of one embedding (D)."""
        return int(self.embeddings.shape[1])

    @property
    def size(self) -> int:
        """Number of people that can be matched (P)."""
        return len(self.names)

    def __len__(self) -> int:
        return self.size

    def rows_of(self, position: int) -> np.ndarray:
        """The ``(n, D)`` embeddings of the person at ``position`` (0..P-1)."""
        start = int(self.offsets[position])
        end = int(self.offsets[position + 1]) if position + 1 < self.size else len(self.labels)
        return self.embeddings[start:end]


@dataclass(frozen=True)
class Match:
    """The nearest person to one query embedding, and the decision about them.

    Distances are Euclidean (smaller = closer). ``second_*`` describe the nearest *other*
    person; with a one-person gallery they are ``None`` (``second_distance`` is ``inf``)
    and ``margin`` is ``None``. ``recognised`` is the identity decision (threshold and
    margin); ``accepted`` additionally needs the person enabled and not pending, and is the
    only flag that may open the door.
    """

    person_id: int
    name: str
    distance: float
    second_person_id: int | None
    second_name: str | None
    second_distance: float
    margin: float | None
    threshold: float
    min_margin: float
    enabled: bool
    pending: bool

    @property
    def within_threshold(self) -> bool:
        """True when the best person is close enough: ``distance <= threshold``."""
        return self.distance <= self.threshold

    @property
    def clear(self) -> bool:
        """True when nobody else is close: one-person gallery or ``margin >= min_margin``."""
        return self.margin is None or self.margin >= self.min_margin

    @property
    def recognised(self) -> bool:
        """True when the face is identified as :attr:`name` (threshold and margin both met)."""
        return self.within_threshold and self.clear

    @property
    def accepted(self) -> bool:
        """True only for a recognised, enabled, approved person: the door may open."""
        return self.recognised and self.enabled and not self.pending

    @property
    def reason(self) -> Rejection | None:
        """Why access is refused (first failing check), or ``None`` when accepted."""
        if not self.within_threshold:
            return Rejection.UNKNOWN
        if not self.clear:
            return Rejection.DOUBTFUL
        if not self.enabled:
            return Rejection.DISABLED
        if self.pending:
            return Rejection.PENDING
        return None


def search(
    index: GalleryIndex,
    queries: np.ndarray,
    threshold: float,
    min_margin: float,
) -> list[Match | None]:
    """Match each query embedding against the gallery (Euclidean distance, smaller = closer).

    ``queries`` is ``(N, D)`` (or one ``(D,)`` vector), rounded to float32, the gallery's
    precision. For each query the result names the best person (distance to their closest
    embedding), the nearest other person and the margin between them; it is ``None`` -- no
    decision -- when the gallery is empty or the query has a NaN or infinite value. A query
    whose length differs from the gallery's is a :class:`GalleryMismatchError` (another
    embedder made it). ``min_margin`` should be above 0: at 0 two people who both match
    equally well would not be refused.
    """
    threshold = _check_limit("threshold", threshold)
    min_margin = _check_limit("min_margin", min_margin)
    block = _as_queries(queries, index.dim)
    if index.size == 0:
        return [None] * block.shape[0]
    finite = np.isfinite(block).all(axis=1)
    if not finite.all():  # searched as zeros (no NaN warnings), reported as None
        block = np.where(finite[:, None], block, np.float32(0.0))
    results: list[Match | None] = []
    step = max(1, _MAX_BLOCK_ELEMENTS // max(1, len(index.labels)))
    for start in range(0, block.shape[0], step):
        part = block[start : start + step]
        nearest = _two_nearest(_person_sq_distances(index, part))
        for query, candidates, ok in zip(part, nearest, finite[start : start + step], strict=True):
            match = _decide(index, query, candidates, threshold, min_margin) if ok else None
            results.append(match)
    return results


def search_one(
    index: GalleryIndex, query: np.ndarray, threshold: float, min_margin: float
) -> Match | None:
    """:func:`search` for a single ``(D,)`` embedding."""
    return search(index, np.asarray(query).reshape(1, -1), threshold, min_margin)[0]


def _person_sq_distances(index: GalleryIndex, queries: np.ndarray) -> np.ndarray:
    """``(n, P)`` squared distance from each query to each person's closest embedding."""
    # |q - e|^2 = |e|^2 - 2 q.e + |q|^2; |q|^2 is the same for every row of a query, so it
    # is added after the per-person minimum, on (n, P) instead of (n, K) values.
    sq = (queries * np.float32(-2.0)) @ index.embeddings.T
    sq += index.sq_norms[None, :]
    per_person = np.minimum.reduceat(sq, index.offsets, axis=1)
    per_person += np.einsum("nd,nd->n", queries, queries)[:, None]
    return per_person  # only ranks people: the reported distances are recomputed exactly


def _two_nearest(per_person: np.ndarray) -> np.ndarray:
    """Positions of the two nearest people per row, ``(n, 1 or 2)``, nearest first."""
    if per_person.shape[1] == 1:
        return np.zeros((per_person.shape[0], 1), dtype=np.intp)
    return np.argpartition(per_person, 1, axis=1)[:, :2]


def _exact_distance(index: GalleryIndex, query: np.ndarray, position: int) -> float:
    """Euclidean distance in float64 from ``query`` to the closest embedding of a person."""
    diff = index.rows_of(position).astype(np.float64) - query.astype(np.float64)
    return float(np.sqrt(np.min(np.einsum("kd,kd->k", diff, diff))))


def _decide(
    index: GalleryIndex,
    query: np.ndarray,
    candidates: np.ndarray,
    threshold: float,
    min_margin: float,
) -> Match:
    """Build the :class:`Match` for one query from its (screened) two nearest people."""
    scored = sorted((_exact_distance(index, query, int(p)), int(p)) for p in candidates)
    distance, best = scored[0]
    second_id = second_name = margin = None
    second_distance = math.inf
    if len(scored) > 1:
        second_distance, second = scored[1]
        second_id, second_name = int(index.person_ids[second]), index.names[second]
        margin = second_distance - distance
    return Match(
        person_id=int(index.person_ids[best]),
        name=index.names[best],
        distance=distance,
        second_person_id=second_id,
        second_name=second_name,
        second_distance=second_distance,
        margin=margin,
        threshold=threshold,
        min_margin=min_margin,
        enabled=bool(index.enabled[best]),
        pending=bool(index.pending[best]),
    )


def _as_queries(queries: np.ndarray, dim: int) -> np.ndarray:
    """Queries as a C-contiguous ``(N, D)`` float32 array, checked against the gallery."""
    array = np.asarray(queries, dtype=np.float32)
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2:
        raise ValueError(f"queries must be (N, D) or (D,), got shape {array.shape}")
    if array.shape[1] != dim:
        raise GalleryMismatchError(
            f"query embeddings have {array.shape[1]} values but the gallery holds "
            f"{dim}-value embeddings: they come from a different embedder"
        )
    return np.ascontiguousarray(array)


def _check_limit(name: str, value: float) -> float:
    """A threshold or margin as a float; a NaN, infinite or negative one is a ConfigError."""
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ConfigError(f"matcher {name} must be a finite number >= 0, got {value!r}")
    return number


def _positions_of(ids: np.ndarray, owners: np.ndarray) -> np.ndarray:
    """Index into ``ids`` of each owner id; an owner not in ``ids`` is a ValueError."""
    if owners.size == 0:
        return np.zeros(0, dtype=np.intp)
    if ids.size == 0:
        raise ValueError("embeddings given for a gallery without people")
    sorter = np.argsort(ids)
    found = np.searchsorted(ids, owners, sorter=sorter)
    found = sorter[np.minimum(found, ids.size - 1)]
    missing = ids[found] != owners
    if missing.any():
        raise ValueError(f"embeddings belong to unknown person id {int(owners[missing][0])}")
    return found.astype(np.intp)


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array
