"""AccessPolicy: every branch, table-driven, then fed by the real matcher.

Notation of the tables: one letter per observation of a face.

=====  ===========================================================================
``A``  alice recognised (enabled)            ``B``  bob recognised (enabled)
``D``  dave recognised, but disabled         ``P``  pat recognised, but pending
``d``  alice recognised, but just disabled   ``-``  no match at all (``None``)
``x``  a stranger: best candidate alice, not accepted (too far)
``?``  doubtful: alice within the threshold but bob too close (not accepted)
=====  ===========================================================================

Expected verdicts: ``G`` grant, ``.`` pending, ``C`` cooldown, ``U`` deny unknown,
``X`` deny disabled, ``W`` deny pending (waiting for approval), ``S`` deny doubtful (split).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from pi_facegate.core.policy import AccessPolicy, Decision, Verdict
from pi_facegate.exc import ConfigError


@dataclass(frozen=True)
class FakeMatch:
    """A matcher result as the policy's Protocol describes it (identity in ``accepted``)."""

    person_id: int
    name: str
    distance: float = 0.35
    margin: float | None = 0.25
    accepted: bool = True
    enabled: bool = True
    pending: bool = False
    reason: str | None = None


MATCHES = {
    "A": FakeMatch(1, "alice", distance=0.31),
    "B": FakeMatch(2, "bob", distance=0.33),
    "D": FakeMatch(4, "dave", enabled=False),
    "P": FakeMatch(5, "pat", pending=True),
    "d": FakeMatch(1, "alice", enabled=False),
    "-": None,
    "x": FakeMatch(1, "alice", distance=0.9, accepted=False, reason="unknown"),
    "?": FakeMatch(1, "alice", distance=0.5, margin=0.02, accepted=False, reason="doubtful"),
}
VERDICTS = {
    "G": Verdict.GRANT,
    ".": Verdict.PENDING,
    "C": Verdict.COOLDOWN,
    "U": Verdict.DENY_UNKNOWN,
    "X": Verdict.DENY_DISABLED,
    "W": Verdict.DENY_PENDING,
    "S": Verdict.DENY_DOUBTFUL,
}


def run(policy, letters, times=None, track=1):
    """Feed one face's observations; return the verdict letters."""
    times = times if times is not None else [i * 0.125 for i in range(len(letters))]
    back = {v: k for k, v in VERDICTS.items()}
    return "".join(
        back[policy.observe(track, MATCHES[c], t).verdict]
        for c, t in zip(letters, times, strict=True)
    )


# N=3 of M=5 within T=2 s, cooldown 5 s; frames 0.125 s apart unless times are given.
ONE_FACE_CASES = [
    # name, observations, expected, times
    ("three agreeing votes grant", "AAA", "..G", None),
    ("N of M with misses in between", "A-AxA", "....G", None),
    ("N of M, but the oldest vote slid out of M", "A---AAA", "......G", None),
    ("votes split between people never grant", "AAB", "..S", None),
    ("split stays until the other vote leaves the window", "AABAAAAA", "..SSSSSG", None),
    ("unknown: no match at all", "----", "..UU", None),
    ("unknown: a stranger's best candidate is not accepted", "xxxx", "..UU", None),
    ("unknown decided after N frames, like a grant", "x", ".", None),
    ("a blurred first frame of a known person is not a denial", "xAAA", "...G", None),
    ("one vote keeps it pending, not unknown", "A---", "....", None),
    ("doubtful matches are denied as doubtful", "???", "..S", None),
    ("a disabled person never grants", "DDDDD", "..XXX", None),
    ("a pending person never grants", "PPPP", "..WW", None),
    ("disabled while at the door: any disabled vote denies", "AAd", "..X", None),
    ("the disabled vote has to leave the window first", "AdAAAAAA", "..XXXXGC", None),
    ("votes older than T no longer count", "AAAA", "...G", [0.0, 1.0, 2.5, 2.6]),
    ("a vote exactly T old still counts", "AAA", "..G", [0.0, 1.0, 2.0]),
    ("cooldown after a grant", "AAAAA", "..GCC", None),
    (
        "granted again once the cooldown has passed",
        "AAAAAAA",
        "..G..CG",
        [0.0, 0.5, 1.0, 5.0, 5.5, 5.75, 6.0],  # 6.0 = grant time 1.0 + cooldown 5.0
    ),
]


@pytest.mark.parametrize(
    ("observations", "expected", "times"),
    [case[1:] for case in ONE_FACE_CASES],
    ids=[case[0] for case in ONE_FACE_CASES],
)
def test_one_face(observations, expected, times):
    assert run(AccessPolicy(), observations, times) == expected


SETTINGS_CASES = [
    # settings, observations, expected
    ({"votes_required": 1, "window_frames": 1}, "A", "G"),
    ({"votes_required": 1, "window_frames": 1}, "x", "U"),
    ({"votes_required": 2, "window_frames": 2}, "A-AA", "...G"),  # A-A: not 2 of the last 2
    ({"votes_required": 5, "window_frames": 5}, "AAAAB", "....S"),
    ({"cooldown_seconds": 0}, "AAAA", "..GG"),
]


@pytest.mark.parametrize(("settings", "observations", "expected"), SETTINGS_CASES)
def test_other_settings(settings, observations, expected):
    assert run(AccessPolicy(**settings), observations) == expected


def test_faces_are_decided_independently():
    policy = AccessPolicy()
    frames = [  # (track, letter) in arrival order, as a loop with three faces sees them
        (1, "A"),
        (2, "B"),
        (3, "x"),
        (1, "A"),
        (2, "B"),
        (3, "x"),
        (1, "A"),
        (2, "B"),
        (3, "x"),
    ]
    verdicts = {1: "", 2: "", 3: ""}
    for i, (track, letter) in enumerate(frames):
        verdicts[track] += run(policy, letter, [i * 0.05], track=track)
    assert verdicts == {1: "..G", 2: "..G", 3: "..U"}


def test_cooldown_is_per_person_across_faces():
    policy = AccessPolicy()
    assert run(policy, "AAA", [0.0, 0.1, 0.2], track=1) == "..G"
    # Alice again as another face (she turned away and back): no second pulse ...
    assert run(policy, "AAA", [0.3, 0.4, 0.5], track=2) == "..C"
    # ... but bob, arriving with her, is granted.
    assert run(policy, "BBB", [0.3, 0.4, 0.5], track=3) == "..G"
    assert policy.in_cooldown(1, 5.19) and not policy.in_cooldown(1, 5.2)


def test_forget_drops_a_faces_votes():
    policy = AccessPolicy()
    assert run(policy, "AA", [0.0, 0.1]) == ".."
    policy.forget(1)
    assert run(policy, "AA", [0.2, 0.3]) == ".."
    assert run(policy, "A", [0.4]) == "G"


def test_reset_forgets_votes_and_keeps_cooldowns_unless_told():
    policy = AccessPolicy()
    assert run(policy, "AA", [0.0, 0.1]) == ".."
    policy.reset()
    assert run(policy, "AAA", [0.2, 0.3, 0.4]) == "..G"  # old votes did not count
    policy.reset()
    assert run(policy, "AAA", [0.5, 0.6, 0.7]) == "..C"  # still in cooldown
    policy.reset(keep_cooldowns=False)
    assert run(policy, "AAA", [0.8, 0.9, 1.0]) == "..G"


def test_stale_faces_are_pruned_so_a_long_run_stays_small():
    policy = AccessPolicy()
    for track in range(100):
        policy.observe(track, None, now=track * 0.01)
    policy.observe("later", None, now=1000.0)
    assert set(policy._tracks) == {"later"}


# ---------------------------------------------------------------- the decision's data


def test_a_grant_names_the_person_and_the_latest_vote():
    policy = AccessPolicy()
    policy.observe(7, FakeMatch(1, "alice", distance=0.40, margin=0.10), 0.0)
    policy.observe(7, FakeMatch(1, "alice", distance=0.30, margin=0.20), 0.1)
    decision = policy.observe(7, FakeMatch(1, "alice", distance=0.35, margin=None), 0.2)
    assert decision == Decision(
        Verdict.GRANT,
        7,
        person_id=1,
        name="alice",
        distance=0.35,
        margin=None,
        votes=3,
        window=3,
        candidates=("alice",),
    )
    assert decision.granted
    assert decision.event_fields() == {
        "kind": "granted",
        "person": "alice",
        "distance": 0.35,
        "margin": None,
        "detail": {"track": 7, "votes": 3},
    }


def test_split_votes_name_nobody_and_list_the_candidates():
    policy = AccessPolicy()
    run(policy, "AA")
    decision = policy.observe(1, MATCHES["B"], 1.0)
    assert decision.verdict is Verdict.DENY_DOUBTFUL
    assert (decision.person_id, decision.name) == (None, None)
    assert decision.candidates == ("alice", "bob")
    fields = decision.event_fields()
    assert fields["kind"] == "denied"
    assert fields["detail"] == {
        "track": 1,
        "votes": 0,
        "reason": "doubtful",
        "candidates": ["alice", "bob"],
    }


def test_an_unknown_face_keeps_the_nearest_distance_but_no_name():
    policy = AccessPolicy()
    decision = [policy.observe(1, MATCHES["x"], t) for t in (0, 0.1, 0.2)][-1]
    assert decision.verdict is Verdict.DENY_UNKNOWN
    assert (decision.name, decision.distance, decision.votes) == (None, 0.9, 0)
    assert decision.event_fields()["detail"]["reason"] == "unknown"


@pytest.mark.parametrize("letter", ["D", "P"])
def test_disabled_and_pending_denials_name_the_person(letter):
    policy = AccessPolicy()
    decision = [policy.observe(1, MATCHES[letter], t) for t in (0, 0.1, 0.2)][-1]
    assert decision.verdict.is_deny and not decision.granted
    assert decision.name == MATCHES[letter].name
    assert decision.event_fields()["person"] == MATCHES[letter].name


def test_infinite_margin_is_reported_as_none():
    policy = AccessPolicy(votes_required=1, window_frames=1)
    decision = policy.observe(1, FakeMatch(1, "alice", margin=float("inf")), 0.0)
    assert decision.granted and decision.margin is None


@pytest.mark.parametrize("verdict", [v for v in Verdict if v is not Verdict.GRANT])
def test_only_a_grant_is_granted(verdict):
    assert not Decision(verdict, 1).granted
    assert Decision(Verdict.GRANT, 1).granted


# ---------------------------------------------------------------- the log rate limit


def test_a_stranger_is_logged_once_per_interval_not_per_frame():
    policy = AccessPolicy(unknown_log_interval_seconds=10.0)
    logged_at = []
    for frame in range(100):  # 25 s at 4 frames per second
        now = frame * 0.25
        decision = policy.observe(1, None, now)
        if policy.should_log(decision, now):
            logged_at.append(now)
    # First denial at the third frame (0.5 s), then again each time 10 s have passed.
    assert logged_at == [0.5, 10.5, 20.5]


def test_log_limit_is_per_face_and_per_kind_of_denial():
    policy = AccessPolicy()
    stranger = [policy.observe(1, None, t) for t in (0, 0.1, 0.2)][-1]
    other = [policy.observe(2, None, t) for t in (0, 0.1, 0.2)][-1]
    assert policy.should_log(stranger, 0.2) and policy.should_log(other, 0.2)
    assert not policy.should_log(stranger, 0.3)
    disabled = [policy.observe(1, MATCHES["D"], t) for t in (0.4, 0.5, 0.6)][-1]
    assert disabled.verdict is Verdict.DENY_DISABLED
    assert policy.should_log(disabled, 0.6)  # another kind of denial: logged
    policy.forget(1)
    assert policy.should_log(stranger, 0.7)  # a forgotten face starts afresh


def test_grants_are_always_logged_and_pending_or_cooldown_never():
    policy = AccessPolicy()
    assert policy.should_log(Decision(Verdict.GRANT, 1), 0.0)
    assert policy.should_log(Decision(Verdict.GRANT, 1), 0.1)
    assert not policy.should_log(Decision(Verdict.PENDING, 1), 0.0)
    assert not policy.should_log(Decision(Verdict.COOLDOWN, 1), 0.0)
    assert Decision(Verdict.PENDING, 1).event_fields() is None
    assert Decision(Verdict.COOLDOWN, 1).event_fields() is None


# ---------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("settings", "word"),
    [
        ({"votes_required": 6, "window_frames": 5}, "votes_required"),
        ({"votes_required": 0}, "votes_required"),
        ({"window_frames": 2.5}, "window_frames"),
        ({"window_seconds": 0}, "window_seconds"),
        ({"cooldown_seconds": -1}, "cooldown_seconds"),
        ({"unknown_log_interval_seconds": float("nan")}, "unknown_log_interval_seconds"),
    ],
)
def test_impossible_settings_are_config_errors_naming_the_setting(settings, word):
    with pytest.raises(ConfigError, match=word):
        AccessPolicy(**settings)


# ---------------------------------------------------------------- with the real matcher


@pytest.fixture(scope="module")
def gallery():
    """A real GalleryIndex: alice and bob close together, carol disabled, dave pending."""
    from pi_facegate.core.matcher import GalleryIndex

    rng = np.random.default_rng(3)

    def unit(v):
        return v / np.linalg.norm(v)

    alice = unit(rng.normal(size=128))
    bob = unit(alice + 0.35 * unit(rng.normal(size=128)))  # ~0.35 from alice
    carol = unit(rng.normal(size=128))
    dave = unit(rng.normal(size=128))
    people = [(1, "alice", True, False), (2, "bob", True, False), (3, "carol", False, False)]
    people.append((4, "dave", True, True))
    vectors = np.stack([alice, bob, carol, dave]).astype(np.float32)
    index = GalleryIndex.build(people, [1, 2, 3, 4], vectors, "test-embedder", version=1)
    stranger = unit(rng.normal(size=128))
    return index, {"alice": alice, "bob": bob, "carol": carol, "dave": dave, "x": stranger}


@pytest.mark.parametrize(
    ("who", "expected", "name"),
    [
        ("alice", Verdict.GRANT, "alice"),
        ("carol", Verdict.DENY_DISABLED, "carol"),
        ("dave", Verdict.DENY_PENDING, "dave"),
        ("x", Verdict.DENY_UNKNOWN, None),
        ("between alice and bob", Verdict.DENY_DOUBTFUL, None),
    ],
)
def test_real_matcher_results_drive_the_policy(gallery, who, expected, name):
    from pi_facegate.core.matcher import search

    index, faces = gallery
    rng = np.random.default_rng(11)
    if who == "between alice and bob":
        base = (faces["alice"] + faces["bob"]) / 2
    else:
        base = faces[who]
    queries = base + rng.normal(scale=0.01, size=(3, 128))
    matches = search(index, queries, threshold=0.6, min_margin=0.1)
    policy = AccessPolicy()
    decisions = [policy.observe(1, m, t) for t, m in zip((0.0, 0.1, 0.2), matches, strict=True)]
    assert [d.verdict for d in decisions[:2]] == [Verdict.PENDING, Verdict.PENDING]
    assert decisions[-1].verdict is expected
    assert decisions[-1].name == name
    assert decisions[-1].granted == (expected is Verdict.GRANT)


def test_a_new_policy_carries_over_cooldowns_and_votes_of_the_old():
    """What a config reload does: the person just let in is not let in again, and the votes
    a face had gathered still count (trimmed to the new, shorter window)."""
    old = AccessPolicy(votes_required=2, window_frames=3, cooldown_seconds=60.0)
    alice, bob = MATCHES["A"], MATCHES["B"]
    assert [old.observe(1, alice, t).verdict for t in (0.0, 0.1)] == [
        Verdict.PENDING,
        Verdict.GRANT,
    ]
    assert old.observe(2, bob, 0.2).verdict is Verdict.PENDING
    new = AccessPolicy(votes_required=2, window_frames=2, cooldown_seconds=60.0)
    new.carry_over(old)
    assert new.observe(1, alice, 0.3).verdict is Verdict.COOLDOWN
    assert new.observe(2, bob, 0.4).verdict is Verdict.GRANT  # bob's earlier vote still counts
    fresh = AccessPolicy(votes_required=2, window_frames=2, cooldown_seconds=60.0)
    assert fresh.observe(1, alice, 0.3).verdict is Verdict.PENDING  # without: state is lost
