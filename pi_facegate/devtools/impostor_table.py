"""The impostor table of an embedder (``embedding.impostor_far``): how often a stranger's
distance to one enrolled person is at most d, measured on a labelled photo set.

The door thresholds the distance from a face to a *person*, the minimum over that person's
enrolled embeddings (:mod:`pi_facegate.core.matcher`), so this is the rate measured: every
photo is a probe against every *other* person enrolled with K embeddings; rather than drawing
random enrolments, the expectation over all K-subsets of that person's photos is exact (if m
of the person's n photos lie within d, a K-subset's minimum does with probability
1 - C(n-m, K)/C(n, K)). Below the set's resolution (fewer than :data:`MIN_EVENTS` probe-person
pairs) the measured tail is continued as a Gaussian. Used by ``tools/calibrate_open_set.py``
(the bundled models) and ``facegate calibrate`` (any embedder).
"""

from __future__ import annotations

from math import comb
from statistics import NormalDist

import numpy as np

from pi_facegate.core.open_set import ImpostorTable

#: the table's rates: 1e-5 .. 1e-1, 8 rows a decade
TABLE_FARS = np.geomspace(1e-5, 1e-1, 33)
#: the fewest probe-person pairs a counted rate may rest on; below, the tail is extrapolated
MIN_EVENTS = 3
#: the measured tail the Gaussian extrapolation is fitted on ends at this rate
FIT_UP_TO = 1e-1


def person_impostor_cdf(
    vectors: np.ndarray, people: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """``(distances, FAR at each, probe-person pairs)``: the per-person impostor CDF.

    Each (probe, other person) pair contributes, at its j-th nearest photo of that person,
    the probability that a random K-subset's minimum is exactly that photo,
    C(n-j, K-1)/C(n, K); a person with fewer than K photos counts with all of them.
    """
    distances, weights, pairs = [], [], 0
    names = np.unique(people)
    for probe in range(len(vectors)):
        for name in names:
            if name == people[probe]:
                continue
            own = np.sort(np.linalg.norm(vectors[people == name] - vectors[probe], axis=1))
            n, kk = len(own), min(k, len(own))
            pairs += 1
            for j in range(1, n - kk + 2):
                distances.append(own[j - 1])
                weights.append(comb(n - j, kk - 1) / comb(n, kk))
    order = np.argsort(distances, kind="stable")
    cdf = np.cumsum(np.asarray(weights)[order]) / pairs
    return np.asarray(distances, dtype=np.float64)[order], cdf, pairs


def tail_table(
    distances: np.ndarray, cdf: np.ndarray, pairs: int
) -> tuple[list[list[float]], float, float]:
    """``(rows, measured floor, fitted slope)``: the table at :data:`TABLE_FARS`.

    Rates at or above the floor (``MIN_EVENTS / pairs``) are read off the measured CDF;
    below it the distance follows d = d_floor + slope * (z(far) - z(floor)), z the normal
    quantile, the slope fitted by least squares on the measured tail (floor .. 1e-1).
    """
    floor = MIN_EVENTS / pairs
    z = NormalDist().inv_cdf
    fit_fars = np.geomspace(floor, FIT_UP_TO, 12)
    fit_d = np.interp(fit_fars, cdf, distances)
    slope = float(np.polyfit([z(f) for f in fit_fars], fit_d, 1)[0])
    if not slope > 0:
        raise RuntimeError(f"the measured impostor tail does not rise (slope {slope})")
    d_floor = float(np.interp(floor, cdf, distances))
    rows = []
    for far in TABLE_FARS:
        if far >= floor:
            d = float(np.interp(far, cdf, distances))
        else:
            d = d_floor + slope * (z(far) - z(floor))
        rows.append([round(d, 5), float(f"{far:.3g}")])
    ImpostorTable.from_rows(rows)  # strictly increasing, in range: what the runtime demands
    return rows, floor, slope
