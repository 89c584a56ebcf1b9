"""The 1:N matcher: threshold and margin decisions, flags, and agreement with brute force.

Synthetic vectors are placed so that every distance is exactly representable, which makes
the edge cases (distance == threshold, margin == min_margin) exact rather than approximate.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from pi_facegate.core import matcher
from pi_facegate.core.matcher import GalleryIndex, Match, Rejection, search, search_one
from pi_facegate.exc import ConfigError, GalleryMismatchError

D = 4
THRESHOLD = 0.5
MIN_MARGIN = 0.25
STEP = 2.0**-12  # a small step that float32 represents exactly near 0.5


def axis(*values: float) -> np.ndarray:
    """A D-vector with the given leading values."""
    v = np.zeros(D, dtype=np.float32)
    v[: len(values)] = values
    return v


def make_index(people: list[tuple[str, list[np.ndarray], bool, bool]], version: int = 1):
    """Index of ``(name, vectors, enabled, pending)``, ids 10, 20, 30, ..."""
    rows, owners, vectors = [], [], []
    for i, (name, vecs, enabled, pending) in enumerate(people):
        pid = 10 * (i + 1)
        rows.append((pid, name, enabled, pending))
        owners += [pid] * len(vecs)
        vectors += list(vecs)
    return GalleryIndex.build(
        rows, owners, np.array(vectors, np.float32).reshape(-1, D), "fp", version
    )


# alice at the origin, bob one unit along axis 0 (each with a second, farther embedding),
# carol (disabled) and dave (pending) far away on other axes.
GALLERY = [
    ("alice", [axis(0), axis(0, 0, 0, 0.75)], True, False),
    ("bob", [axis(1), axis(1, 0, -0.75)], True, False),
    ("carol", [axis(0, 0, 5)], False, False),
    ("dave", [axis(0, 0, 0, -5)], True, True),
    ("erin", [axis(0, 0, -5)], False, True),
]

CASES = [
    # (query, name or None for a tie, distance, margin, accepted, reason)
    pytest.param(axis(0), "alice", 0.0, 1.0, True, None, id="exact-hit"),
    pytest.param(axis(1), "bob", 0.0, 1.0, True, None, id="exact-hit-other-person"),
    pytest.param(axis(0, 0.5), "alice", 0.5, math.sqrt(1.25) - 0.5, True, None, id="at-threshold"),
    pytest.param(
        axis(0, 0.5 + STEP),
        "alice",
        0.5 + STEP,
        math.sqrt(1 + (0.5 + STEP) ** 2) - (0.5 + STEP),
        False,
        Rejection.UNKNOWN,
        id="just-over-threshold",
    ),
    pytest.param(axis(0.375), "alice", 0.375, 0.25, True, None, id="margin-exactly-min"),
    pytest.param(
        axis(0.375 + STEP),
        "alice",
        0.375 + STEP,
        0.25 - 2 * STEP,
        False,
        Rejection.DOUBTFUL,
        id="margin-just-below-min",
    ),
    pytest.param(axis(0.5), None, 0.5, 0.0, False, Rejection.DOUBTFUL, id="tie-between-two"),
    pytest.param(
        axis(0, 3), "alice", 3.0, math.sqrt(10) - 3, False, Rejection.UNKNOWN, id="stranger"
    ),
    pytest.param(axis(0, 0, 5), "carol", 0.0, 5.0, False, Rejection.DISABLED, id="disabled"),
    pytest.param(axis(0, 0, 0, -5), "dave", 0.0, 5.0, False, Rejection.PENDING, id="pending"),
    pytest.param(
        axis(0, 0, -5),
        "erin",
        0.0,
        math.sqrt(1 + 4.25**2),
        False,
        Rejection.DISABLED,
        id="both-flags",
    ),
    pytest.param(
        axis(0, 0, 0, 0.75), "alice", 0.0, 1.25, True, None, id="second-embedding-of-a-person"
    ),
]


@pytest.mark.parametrize(("query", "name", "distance", "margin", "accepted", "reason"), CASES)
def test_decision_table(query, name, distance, margin, accepted, reason):
    match = search_one(make_index(GALLERY), query, THRESHOLD, MIN_MARGIN)
    assert match is not None
    if name is not None:
        assert match.name == name
    assert match.distance == pytest.approx(distance, abs=1e-12)
    assert match.margin == pytest.approx(margin, abs=1e-12)
    assert match.second_distance == pytest.approx(distance + margin, abs=1e-12)
    assert match.accepted is accepted
    assert match.reason == reason
    assert (match.reason is None) is match.accepted


def test_flags_do_not_change_recognition_only_access():
    index = make_index(GALLERY)
    carol = search_one(index, axis(0, 0, 5), THRESHOLD, MIN_MARGIN)
    dave = search_one(index, axis(0, 0, 0, -5), THRESHOLD, MIN_MARGIN)
    assert carol.recognised and not carol.enabled and not carol.accepted
    assert dave.recognised and dave.pending and not dave.accepted
    assert carol.reason == "disabled" and dave.reason == "pending"  # StrEnum compares as str


def test_unknown_takes_precedence_over_flags():
    """A stranger near a disabled person is reported as unknown, not as that person."""
    match = search_one(make_index(GALLERY), axis(0, 0, 4), THRESHOLD, MIN_MARGIN)
    assert match.name == "carol" and match.distance == 1.0
    assert match.reason is Rejection.UNKNOWN


def test_second_person_is_named():
    match = search_one(make_index(GALLERY), axis(0.25), THRESHOLD, MIN_MARGIN)
    assert (match.person_id, match.name) == (10, "alice")
    assert (match.second_person_id, match.second_name) == (20, "bob")
    assert match.second_distance == 0.75 and match.margin == 0.5


def test_distances_are_exact_despite_float32_cancellation():
    """|q|^2 + |e|^2 - 2 q.e loses 0.25 at a norm of 3000 in float32; the result must not."""
    index = make_index([("far", [axis(3000)], True, False), ("other", [axis(-3000)], True, False)])
    match = search_one(index, axis(3000, 0.5), THRESHOLD, MIN_MARGIN)
    assert match.name == "far"
    assert match.distance == 0.5
    assert match.accepted


@pytest.mark.parametrize(
    ("query", "accepted", "reason"),
    [
        pytest.param(axis(0, 0.5), True, None, id="within"),
        pytest.param(axis(0, 0.5 + STEP), False, Rejection.UNKNOWN, id="beyond"),
    ],
)
def test_one_person_gallery_has_no_second_and_no_margin(query, accepted, reason):
    index = make_index([("solo", [axis(0)], True, False)])
    match = search_one(index, query, THRESHOLD, min_margin=10.0)  # margin cannot apply
    assert match.name == "solo"
    assert match.second_person_id is None and match.second_name is None
    assert match.second_distance == math.inf
    assert match.margin is None
    assert match.accepted is accepted and match.reason == reason


def test_empty_gallery_gives_no_decision():
    index = GalleryIndex.empty(D, "fp")
    assert len(index) == 0
    assert search(index, np.ones((3, D), np.float32), THRESHOLD, MIN_MARGIN) == [None] * 3


def test_gallery_of_people_without_embeddings_is_empty():
    index = GalleryIndex.build([(1, "nobody", True, False)], [], np.zeros((0, D)), "fp", 1)
    assert index.size == 0
    assert search_one(index, axis(0), THRESHOLD, MIN_MARGIN) is None


def test_non_finite_query_gives_no_decision_and_spares_the_others():
    queries = np.stack([axis(0), axis(np.nan), axis(np.inf), axis(1)])
    results = search(make_index(GALLERY), queries, THRESHOLD, MIN_MARGIN)
    assert results[1] is None and results[2] is None
    assert results[0].name == "alice" and results[3].name == "bob"


def test_query_of_another_embedder_is_refused():
    with pytest.raises(GalleryMismatchError, match="5 values"):
        search(make_index(GALLERY), np.zeros((1, D + 1)), THRESHOLD, MIN_MARGIN)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -0.1])
@pytest.mark.parametrize("which", ["threshold", "min_margin"])
def test_bad_limits_are_config_errors(bad, which):
    limits = {"threshold": THRESHOLD, "min_margin": MIN_MARGIN, which: bad}
    with pytest.raises(ConfigError, match=which):
        search(make_index(GALLERY), axis(0), **limits)


def test_one_dimensional_query_is_one_query():
    assert len(search(make_index(GALLERY), axis(1), THRESHOLD, MIN_MARGIN)) == 1


def test_match_is_immutable():
    match = search_one(make_index(GALLERY), axis(0), THRESHOLD, MIN_MARGIN)
    with pytest.raises(AttributeError):
        match.distance = 0.0  # type: ignore[misc]


# ---------------------------------------------------------------------- layout


def test_build_groups_rows_by_person_whatever_the_input_order():
    rng = np.random.default_rng(1)
    owners = np.array([7, 3, 7, 9, 3, 7])
    vectors = rng.standard_normal((6, D)).astype(np.float32)
    people = [(3, "c", True, False), (5, "no-embeddings", True, False), (7, "a", True, False)]
    people.append((9, "b", False, True))
    index = GalleryIndex.build(people, owners, vectors, "fp", 4)
    assert index.names == ("c", "a", "b")  # given order, the person without embeddings dropped
    assert index.person_ids.tolist() == [3, 7, 9]
    assert index.offsets.tolist() == [0, 2, 5]
    assert index.labels.tolist() == [0, 0, 1, 1, 1, 2]
    assert index.enabled.tolist() == [True, True, False]
    assert index.pending.tolist() == [False, False, True]
    np.testing.assert_array_equal(index.rows_of(1), vectors[[0, 2, 5]])  # stable within person
    np.testing.assert_array_equal(index.rows_of(2), vectors[[3]])
    assert (index.dim, index.version, index.fingerprint) == (D, 4, "fp")
    np.testing.assert_allclose(index.sq_norms, (index.embeddings**2).sum(axis=1), rtol=1e-6)


def test_index_arrays_are_read_only():
    index = make_index(GALLERY)
    for array in (index.embeddings, index.sq_norms, index.offsets, index.labels, index.enabled):
        with pytest.raises(ValueError):
            array[0] = 0


@pytest.mark.parametrize(
    ("people", "owners", "vectors", "message"),
    [
        ([(1, "a", True, False)], [2], np.zeros((1, D)), "unknown person id 2"),
        ([(1, "a", True, False)], [1], np.full((1, D), np.nan), "NaN"),
        ([(1, "a", True, False)], [1, 1], np.zeros((1, D)), "2 owners for 1"),
        ([(1, "a", True, False), (1, "b", True, False)], [1], np.zeros((1, D)), "unique"),
        ([], [1], np.zeros((1, D)), "without people"),
    ],
)
def test_build_refuses_inconsistent_input(people, owners, vectors, message):
    with pytest.raises(ValueError, match=message):
        GalleryIndex.build(people, owners, vectors, "fp", 1)


# ---------------------------------------------------------------------- against brute force


def random_index(rng: np.random.Generator, people: int, dim: int = 16):
    """A random gallery with 1..6 embeddings per person, given in shuffled row order."""
    counts = rng.integers(1, 7, size=people)
    ids = rng.permutation(np.arange(100, 100 + 3 * people, 3))
    owners = np.repeat(ids, counts)
    shuffle = rng.permutation(len(owners))
    owners = owners[shuffle]
    vectors = rng.standard_normal((len(owners), dim)).astype(np.float32) * 0.3
    rows = [
        (int(pid), f"p{pid}", bool(rng.random() > 0.2), bool(rng.random() < 0.1)) for pid in ids
    ]
    return GalleryIndex.build(rows, owners, vectors, "fp", 1), rows, owners, vectors


def brute_force(rows, owners, vectors, query, threshold, min_margin):
    """The obvious Python loops: per-person minimum distance, nearest and second nearest."""
    best: dict[int, float] = {}
    for pid, vec in zip(owners.tolist(), vectors, strict=True):
        d = math.dist([float(x) for x in vec], [float(x) for x in query])
        best[pid] = min(best.get(pid, math.inf), d)
    ranked = sorted((d, pid) for pid, d in best.items())
    flags = {pid: (enabled, pending) for pid, _, enabled, pending in rows}
    distance, pid = ranked[0]
    second_distance, second = ranked[1] if len(ranked) > 1 else (math.inf, None)
    margin = None if second is None else second_distance - distance
    recognised = distance <= threshold and (margin is None or margin >= min_margin)
    enabled, pending = flags[pid]
    return pid, distance, second, margin, recognised and enabled and not pending


@pytest.mark.parametrize("people", [1, 2, 3, 40])
def test_vectorised_search_equals_brute_force(people):
    rng = np.random.default_rng(people)
    index, rows, owners, vectors = random_index(rng, people)
    near = vectors[rng.integers(0, len(vectors), 60)] + rng.normal(0, 0.15, (60, 16))
    queries = np.vstack([near, rng.standard_normal((40, 16)) * 0.3]).astype(np.float32)
    threshold, min_margin = 0.9, 0.1
    results = search(index, queries, threshold, min_margin)
    decisions = set()
    for query, match in zip(queries, results, strict=True):
        pid, distance, second, margin, accepted = brute_force(
            rows, owners, vectors, query, threshold, min_margin
        )
        assert match.person_id == pid and match.name == f"p{pid}"
        assert match.distance == pytest.approx(distance, rel=1e-9, abs=1e-12)
        assert match.second_person_id == second
        if margin is None:
            assert match.margin is None
        else:
            assert match.margin == pytest.approx(margin, rel=1e-9, abs=1e-9)
        assert match.accepted is accepted
        decisions.add(match.reason)
    if people == 40:  # the random data exercises every outcome, not just one
        assert {None, Rejection.UNKNOWN, Rejection.DOUBTFUL} <= decisions


def test_batched_queries_equal_single_queries():
    rng = np.random.default_rng(7)
    index, _, _, vectors = random_index(rng, 50)
    queries = (vectors[:30] + rng.normal(0, 0.1, (30, 16))).astype(np.float32)
    batched = search(index, queries, 0.9, 0.1)
    singles = [search_one(index, q, 0.9, 0.1) for q in queries]
    assert batched == singles


def test_search_in_blocks_equals_search_in_one_go(monkeypatch):
    """Large batches are cut into blocks to bound memory; the cut must not change results."""
    rng = np.random.default_rng(11)
    index, _, _, vectors = random_index(rng, 30)
    queries = (vectors[rng.integers(0, len(vectors), 25)] + 0.05).astype(np.float32)
    whole = search(index, queries, 0.9, 0.1)
    monkeypatch.setattr(matcher, "_MAX_BLOCK_ELEMENTS", len(index.labels) * 4)  # 4 per block
    assert search(index, queries, 0.9, 0.1) == whole


def test_match_type_is_exported():
    assert search_one(make_index(GALLERY), axis(0), THRESHOLD, MIN_MARGIN).__class__ is Match
