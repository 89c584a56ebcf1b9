"""The open-set threshold for a gallery's size: pure arithmetic, no I/O.

A stranger in front of the door is compared with every enrolled person, and each of them is
one more chance of a lookalike: with N people, one frame's false-accept chance is about N
times one person's. A fixed distance therefore lets in more strangers as the gallery grows.
Instead the administrator states a target F -- the chance that one attempt (one frame,
judged alone) by a stranger is accepted as *somebody* -- and the threshold is chosen for the
gallery's size: each person may then contribute f = 1 - (1 - F)^(1/N) (about F/N).

The distance at which one person's false-accept rate is f comes from the embedder's
calibrated impostor table (:class:`ImpostorTable`, the manifest's ``embedding.impostor_far``:
the rate at which a stranger's distance to a *person* -- the minimum over that person's
embeddings, the quantity :func:`pi_facegate.core.matcher.search` thresholds -- is at most a
distance). :class:`OpenSetRule` turns (F, N) into a threshold, never looser than the fixed
threshold of the manifest (still the bound for small galleries); an explicit
``matching.threshold`` bypasses it. The margin over the second-best person and the vote over
several frames come on top, so the real rate per attempt is lower than the table says.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pi_facegate.core.matcher import GalleryIndex


@dataclass(frozen=True)
class ImpostorTable:
    """Per-person false-accept rate at increasing distances, from the embedder manifest.

    ``distances`` and ``fars`` are strictly increasing; ``fars`` lie in (0, 1). Between two
    rows the rate is interpolated linearly in log(rate) (the tail is close to exponential in
    the distance); outside the rows it is clamped to the first or last one.
    """

    distances: tuple[float, ...]
    fars: tuple[float, ...]

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[float]]) -> ImpostorTable:
        """Parse ``[[distance, far], ...]``; a malformed table is a :class:`ValueError`.

        The table decides who gets in, so anything odd is refused rather than repaired: at
        least two rows, finite numbers, both columns strictly increasing, rates in (0, 1).
        """
        try:
            pairs = [(float(d), float(f)) for d, f in rows]
        except (TypeError, ValueError) as exc:
            raise ValueError(f"impostor table rows must be [distance, far] pairs: {exc}") from None
        if len(pairs) < 2:
            raise ValueError(f"impostor table needs at least 2 rows, has {len(pairs)}")
        distances = np.array([d for d, _ in pairs])
        fars = np.array([f for _, f in pairs])
        if not (np.isfinite(distances).all() and np.isfinite(fars).all()):
            raise ValueError("impostor table holds a NaN or infinite value")
        if (distances <= 0).any() or (np.diff(distances) <= 0).any():
            raise ValueError("impostor table distances must be > 0 and strictly increasing")
        if (fars <= 0).any() or (fars >= 1).any() or (np.diff(fars) <= 0).any():
            raise ValueError("impostor table rates must lie in (0, 1) and strictly increase")
        return cls(tuple(distances.tolist()), tuple(fars.tolist()))

    @property
    def lowest_far(self) -> float:
        """The smallest rate the table knows: a target below it is clamped to its distance."""
        return self.fars[0]

    def distance_at(self, far: float) -> float:
        """The distance at which one person's false-accept rate is ``far`` (clamped)."""
        if not far > 0:
            return self.distances[0]
        logs = np.log(np.asarray(self.fars))
        return float(np.interp(math.log(far), logs, np.asarray(self.distances)))

    def far_at(self, distance: float) -> float:
        """One person's false-accept rate at ``distance`` (clamped to the table's rows)."""
        if distance <= self.distances[0]:
            return self.fars[0]
        if distance >= self.distances[-1]:
            return self.fars[-1]
        logs = np.interp(distance, np.asarray(self.distances), np.log(np.asarray(self.fars)))
        return float(math.exp(logs))


def per_person_far(per_attempt: float, people: int) -> float:
    """f = 1 - (1 - F)^(1/N): each of ``people`` may add this much to the chance ``per_attempt``.

    Computed with ``log1p``/``expm1`` so that tiny rates keep their digits; fewer than one
    person counts as one (the first enrolment gets the one-person threshold).
    """
    if not 0 < per_attempt < 1:
        raise ValueError(f"a false-accept rate must lie in (0, 1), got {per_attempt!r}")
    return -math.expm1(math.log1p(-per_attempt) / max(1, people))


def per_attempt_far(per_person: float, people: int) -> float:
    """F = 1 - (1 - f)^N: the chance one stranger's attempt matches one of ``people``."""
    return -math.expm1(max(1, people) * math.log1p(-min(per_person, 1.0 - 1e-12)))


def active_people(index: GalleryIndex) -> int:
    """The people a stranger could be let in as: enabled, approved, with embeddings.

    Disabled and pending people are matched (so the log can name them) but never accepted,
    so they add no chance of a false accept.
    """
    return int(np.count_nonzero(index.enabled & ~index.pending))


@dataclass(frozen=True)
class ThresholdChoice:
    """The threshold in force for a gallery, and what it promises (for logs and the CLI).

    ``per_attempt`` is the false-accept chance per attempt the impostor table gives at
    ``threshold`` for ``people`` (None when the threshold is fixed); ``target`` the
    configured F; ``source`` says where the threshold came from.
    """

    threshold: float
    people: int
    source: str
    target: float | None = None
    per_attempt: float | None = None

    def describe(self) -> str:
        """``threshold 0.572 for 50 people (false accepts per attempt ≤ 0.001)``."""
        who = f"{self.people} {'person' if self.people == 1 else 'people'}"
        head = f"threshold {self.threshold:.3f} for {who}"
        if self.per_attempt is None:
            return f"{head} ({self.source})"
        promise = f"false accepts per attempt ≤ {_rate(self.per_attempt)}"
        if self.target is not None and self.per_attempt > self.target * 1.0001:
            promise += f", above the target {_rate(self.target)}: the calibration table ends there"
        elif self.source != "gallery size":
            promise += f", {self.source}"
        return f"{head} ({promise})"


@dataclass(frozen=True)
class OpenSetRule:
    """How the threshold follows the gallery's size (see the module docstring).

    ``ceiling`` is the loosest threshold ever used (the manifest's ``threshold``, itself
    at most ``loosest_threshold``); ``per_attempt`` the target F; ``table`` the calibrated
    impostor table (None: the embedder has none, and ``ceiling`` is used as is); ``fixed``
    an explicit ``matching.threshold``, which wins over everything.
    """

    ceiling: float
    per_attempt: float
    table: ImpostorTable | None = None
    fixed: float | None = None

    def choose(self, people: int) -> ThresholdChoice:
        """The threshold for a gallery of ``people`` active people."""
        if self.fixed is not None:
            return ThresholdChoice(self.fixed, people, "matching.threshold, fixed")
        if self.table is None:
            return ThresholdChoice(
                self.ceiling, people, "fixed: the embedder has no impostor table"
            )
        wanted = self.table.distance_at(per_person_far(self.per_attempt, people))
        threshold = min(wanted, self.ceiling)
        source = "gallery size" if wanted <= self.ceiling else "the embedder's fixed bound"
        reached = per_attempt_far(self.table.far_at(threshold), people)
        return ThresholdChoice(threshold, people, source, self.per_attempt, reached)

    def for_index(self, index: GalleryIndex) -> ThresholdChoice:
        """:meth:`choose` for the active people of a gallery snapshot."""
        return self.choose(active_people(index))


def _rate(value: float) -> str:
    """A rate for a log line: ``0.001``, ``2.5e-05``."""
    return f"{value:.2g}"
