"""Presentation-attack detection measures in ISO/IEC 30107-3 terms: pure functions.

The standard's vocabulary, as used by ``facegate eval liveness``:

* a *presentation* is one showing of a face to the camera (a capture session, a clip);
  *bona fide* presentations are live people, *attack* presentations show a presentation
  attack instrument (PAI): a print, a phone, a tablet, a monitor;
* **APCER** (attack presentation classification error rate), per PAI species: the share of
  that species' attack presentations classified as bona fide. The standard reports it per
  species; the figure to quote for a system is the worst species (``APCER_max``);
* **BPCER** (bona fide presentation classification error rate): the share of live
  presentations classified as attacks;
* **BPCER20 / BPCER10**: the BPCER at the threshold where the APCER is at most 5 % / 10 %;
* **IAPMR** (impostor attack presentation match rate), a whole-system figure: the share of
  attack presentations *of an enrolled person* that the door accepted (unlocked for).

Scores follow one convention here: higher means "more live", and a presentation is
classified bona fide when its score is at or above the threshold. A presentation on which a
cue gave no score (no face, not enough motion) has score ``None`` and counts as an attack:
that cue did not say live.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np


@dataclass(frozen=True)
class Rate:
    """``errors`` of ``total`` presentations, with the rate (``None`` when there are none)."""

    errors: int
    total: int

    @property
    def value(self) -> float | None:
        return self.errors / self.total if self.total else None

    def as_dict(self) -> dict[str, float | int | None]:
        return {"rate": self.value, "errors": self.errors, "presentations": self.total}

    def __str__(self) -> str:
        if not self.total:
            return "n/a (0 presentations)"
        return f"{100 * self.errors / self.total:.1f} % ({self.errors}/{self.total})"


def _scores(values: Iterable[float | None]) -> np.ndarray:
    """Scores as floats; ``None`` (no score) becomes -inf: below every threshold."""
    return np.array([-np.inf if v is None else float(v) for v in values], dtype=np.float64)


def apcer(scores: Iterable[float | None], threshold: float) -> Rate:
    """Attack presentations (these scores) classified bona fide at ``threshold``."""
    s = _scores(scores)
    return Rate(int(np.sum(s >= threshold)), len(s))


def bpcer(scores: Iterable[float | None], threshold: float) -> Rate:
    """Bona fide presentations (these scores) classified as attacks at ``threshold``."""
    s = _scores(scores)
    return Rate(int(np.sum(s < threshold)), len(s))


def apcer_by_species(
    attacks: Mapping[str, Sequence[float | None]], threshold: float
) -> dict[str, Rate]:
    """APCER per PAI species (``species -> scores``), in the mapping's order."""
    return {species: apcer(scores, threshold) for species, scores in attacks.items()}


def worst(rates: Mapping[str, Rate]) -> Rate:
    """The species with the highest APCER (ties: the one with more presentations)."""
    filled = [r for r in rates.values() if r.total]
    if not filled:
        return Rate(0, 0)
    return max(filled, key=lambda r: (r.value, r.total))


def det_curve(
    attacks: Sequence[float | None], bona_fide: Sequence[float | None]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(apcer, bpcer, thresholds) over every threshold that changes a decision.

    Thresholds are the distinct finite scores, ascending, plus +inf (everything an attack).
    APCER falls and BPCER rises as the threshold goes up.
    """
    a, b = _scores(attacks), _scores(bona_fide)
    finite = np.concatenate([a[np.isfinite(a)], b[np.isfinite(b)]])
    thresholds = np.append(np.unique(finite), np.inf)
    apcers = np.array([np.mean(a >= t) if len(a) else 0.0 for t in thresholds])
    bpcers = np.array([np.mean(b < t) if len(b) else 0.0 for t in thresholds])
    return apcers, bpcers, thresholds


def bpcer_at_apcer(
    attacks: Sequence[float | None], bona_fide: Sequence[float | None], max_apcer: float
) -> tuple[float | None, float | None]:
    """(BPCER, threshold) at the lowest threshold whose APCER is at most ``max_apcer``.

    BPCER20 is ``max_apcer=0.05``, BPCER10 is ``0.10``. ``(None, None)`` without both kinds.
    """
    if not len(attacks) or not len(bona_fide):
        return None, None
    apcers, bpcers, thresholds = det_curve(attacks, bona_fide)
    ok = np.flatnonzero(apcers <= max_apcer)
    i = int(ok[0])  # the +inf threshold always qualifies (APCER 0)
    return float(bpcers[i]), float(thresholds[i])


def probit(p: np.ndarray, floor: float = 1e-3) -> np.ndarray:
    """Normal deviates of error rates (the DET plot's axes), clipped to ``floor..1-floor``."""
    dist = NormalDist()
    clipped = np.clip(np.asarray(p, dtype=np.float64), floor, 1 - floor)
    return np.array([dist.inv_cdf(float(v)) for v in clipped.ravel()]).reshape(clipped.shape)
