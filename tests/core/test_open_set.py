"""The threshold for a gallery's size (:mod:`pi_facegate.core.open_set`): pure arithmetic.

A synthetic table (one decade of rate per 0.05 of distance) makes the expected thresholds
easy to state; the bundled embedder's own table is checked in
``tests/vision/test_impostor_table.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from pi_facegate.core.matcher import GalleryIndex
from pi_facegate.core.open_set import (
    ImpostorTable,
    OpenSetRule,
    active_people,
    per_attempt_far,
    per_person_far,
)

#: rate 1e-5 at 0.45 .. 1e-1 at 0.65: one decade per 0.05
ROWS = [[0.45, 1e-5], [0.50, 1e-4], [0.55, 1e-3], [0.60, 1e-2], [0.65, 1e-1]]
TABLE = ImpostorTable.from_rows(ROWS)


def rule(**changes) -> OpenSetRule:
    settings = {"ceiling": 0.6, "per_attempt": 1e-3, "table": TABLE} | changes
    return OpenSetRule(**settings)


def test_per_person_rate_is_the_target_shared_among_the_people():
    assert per_person_far(1e-3, 1) == pytest.approx(1e-3)
    assert per_person_far(1e-3, 10) == pytest.approx(1e-4, rel=1e-3)  # about F / N
    assert per_person_far(1e-3, 0) == per_person_far(1e-3, 1)  # an empty gallery: one person
    for n in (1, 7, 50, 10_000):
        assert per_attempt_far(per_person_far(0.01, n), n) == pytest.approx(0.01)
    with pytest.raises(ValueError):
        per_person_far(0.0, 5)


def test_the_table_is_read_log_linearly_and_clamped():
    assert TABLE.distance_at(1e-3) == pytest.approx(0.55)
    assert TABLE.distance_at(math.sqrt(1e-3 * 1e-2)) == pytest.approx(0.575)  # mid-decade
    assert TABLE.distance_at(1e-9) == 0.45 and TABLE.distance_at(0.5) == 0.65
    assert TABLE.far_at(0.575) == pytest.approx(math.sqrt(1e-5))
    assert TABLE.far_at(0.1) == 1e-5 and TABLE.far_at(1.0) == 1e-1
    assert TABLE.lowest_far == 1e-5


@pytest.mark.parametrize(
    "rows",
    [
        [[0.5, 1e-3]],  # one row
        [[0.5, 1e-3], [0.5, 1e-2]],  # distances not increasing
        [[0.5, 1e-2], [0.6, 1e-3]],  # rates falling
        [[0.5, 0.0], [0.6, 1e-3]],  # a rate of 0
        [[0.5, 1e-3], [0.6, 1.0]],  # a rate of 1
        [[0.5, 1e-3], [float("nan"), 1e-2]],
        [[0.5, 1e-3, 7], [0.6, 1e-2]],  # not pairs
        "not a table",
    ],
)
def test_a_malformed_table_is_refused(rows):
    with pytest.raises(ValueError):
        ImpostorTable.from_rows(rows)


def test_the_threshold_tightens_as_people_are_added():
    sizes = [1, 2, 3, 5, 10, 20, 50, 100, 200]
    thresholds = [rule().choose(n).threshold for n in sizes]
    assert all(a >= b for a, b in zip(thresholds, thresholds[1:], strict=False))
    assert thresholds[0] > thresholds[-1]
    assert rule().choose(10).threshold == pytest.approx(0.50, abs=1e-4)  # f = 1e-4
    assert rule().choose(100).threshold == pytest.approx(0.45, abs=1e-4)  # f = 1e-5


def test_one_person_gets_the_fixed_threshold_when_the_table_allows_more():
    # F = 1e-2 for one person: the table says 0.60, the fixed bound is 0.58
    choice = rule(per_attempt=1e-2, ceiling=0.58).choose(1)
    assert choice.threshold == 0.58
    assert choice.per_attempt < 1e-2  # stricter than asked
    assert "fixed bound" in choice.describe()
    # F = 1e-3: the table's 0.55 is below the bound, so it is used
    assert rule().choose(1).threshold == pytest.approx(0.55)


def test_a_target_beyond_the_table_is_clamped_and_says_so():
    choice = rule().choose(1000)  # f = 1e-6, the table ends at 1e-5
    assert choice.threshold == 0.45
    assert choice.per_attempt == pytest.approx(per_attempt_far(1e-5, 1000))
    assert "above the target 0.001" in choice.describe()


def test_an_explicit_threshold_wins_for_every_size():
    for n in (0, 1, 50, 10_000):
        choice = rule(fixed=0.62).choose(n)
        assert choice.threshold == 0.62 and choice.per_attempt is None
        assert choice.describe() == (
            f"threshold 0.620 for {n} {'person' if n == 1 else 'people'} "
            "(matching.threshold, fixed)"
        )


def test_without_a_table_the_fixed_bound_is_used():
    assert rule(table=None).choose(500).threshold == 0.6


def test_the_log_line_names_threshold_people_and_promise():
    assert rule().choose(10).describe() == (
        "threshold 0.500 for 10 people (false accepts per attempt ≤ 0.001)"
    )


def test_only_people_who_can_be_let_in_count():
    people = [
        (1, "a", True, False),
        (2, "b", False, False),
        (3, "c", True, True),
        (4, "d", True, False),
    ]
    index = GalleryIndex.build(people, [1, 2, 3, 4], np.eye(4, dtype=np.float32), "t", 1)
    assert active_people(index) == 2  # the disabled and the pending one add no chance
    assert rule().for_index(index).people == 2
