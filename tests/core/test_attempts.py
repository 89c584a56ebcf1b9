"""Attempt limits: the K-th refused track within T seconds raises exactly one alarm."""

from __future__ import annotations

import pytest

from pi_facegate.core.attempts import Alarm, AttemptLimiter
from pi_facegate.exc import ConfigError


def feed(limiter: AttemptLimiter, refusals: list[tuple[int, float]]) -> list[float]:
    """Refuse ``(track, time)`` in order; the times at which an alarm was raised."""
    return [now for track, now in refusals if limiter.refused(track, now) is not None]


CASES = [
    # name, (track, time) refusals, alarm times; K=3, T=60 s, slowdown 30 s
    ("three tracks within T", [(1, 0), (2, 10), (3, 20)], [20]),
    ("one track refused again and again counts once", [(1, t) for t in range(0, 60, 5)], []),
    ("two tracks, many refusals each", [(1, 0), (2, 1), (1, 2), (2, 3), (1, 4)], []),
    ("the first slid out of T", [(1, 0), (2, 30), (3, 61), (4, 62)], [62]),
    ("one alarm, not one per further track", [(i, i) for i in range(1, 7)], [3]),
    (
        "none during the slowdown, then a new one",
        [(i, i) for i in range(1, 7)] + [(7, 34)],
        [3, 34],
    ),
    ("a loiterer never raises one alone", [(1, t) for t in range(0, 600, 10)], []),
]


@pytest.mark.parametrize(("name", "refusals", "alarms"), CASES, ids=[c[0] for c in CASES])
def test_attempt_limits(name, refusals, alarms):
    limiter = AttemptLimiter(attempts=3, window_seconds=60, slowdown_seconds=30)
    assert feed(limiter, refusals) == alarms


def test_the_alarm_and_the_slowdown():
    limiter = AttemptLimiter(attempts=2, window_seconds=10, slowdown_seconds=30)
    assert limiter.refused(1, 100.0) is None and limiter.count == 1
    alarm = limiter.refused(2, 101.0)
    assert alarm == Alarm(count=2, window_seconds=10.0, slowdown_seconds=30.0)
    assert alarm.detail() == {
        "reason": "attempts",
        "count": 2,
        "window_seconds": 10.0,
        "slowdown_seconds": 30.0,
    }
    assert limiter.count == 0  # a new alarm needs K new refused tracks
    assert limiter.slowed(101.0) and limiter.slowed(130.9) and not limiter.slowed(131.0)


def test_no_slowdown_when_it_is_zero():
    limiter = AttemptLimiter(attempts=1, window_seconds=10, slowdown_seconds=0)
    assert limiter.refused(1, 0.0) is not None and not limiter.slowed(0.0)
    assert limiter.refused(2, 0.5) is not None  # every refused track is an alarm at K=1


def test_a_reload_keeps_the_count_and_the_slowdown():
    old = AttemptLimiter(attempts=3, window_seconds=60, slowdown_seconds=30)
    feed(old, [(1, 0), (2, 1)])
    new = AttemptLimiter(attempts=3, window_seconds=60, slowdown_seconds=30)
    new.carry_over(old)
    assert new.refused(3, 2) is not None and new.slowed(3)


@pytest.mark.parametrize(
    ("settings", "word"),
    [
        ({"attempts": 0}, "attempts"),
        ({"attempts": 2.5}, "attempts"),
        ({"window_seconds": 0}, "window_seconds"),
        ({"slowdown_seconds": -1}, "slowdown_seconds"),
        ({"slowdown_seconds": float("inf")}, "slowdown_seconds"),
    ],
)
def test_impossible_settings_are_config_errors(settings, word):
    with pytest.raises(ConfigError, match=word):
        AttemptLimiter(**settings)
