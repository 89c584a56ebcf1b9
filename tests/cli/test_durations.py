"""The one duration rule of the command line (``events --since``, ``enroll arm --timeout``)."""

from __future__ import annotations

from datetime import datetime

import pytest

from pi_facegate.cli.durations import parse_duration, parse_since
from pi_facegate.exc import UsageError

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("5m", 300),
        ("1h", 3600),
        ("2d", 172_800),
        ("1w", 604_800),
        ("1h30m", 5400),
        ("1h 30m", 5400),
        ("2m30s", 150),
        ("1d12h", 129_600),
        ("0.5h", 1800),
        ("1.5m", 90),
        (" 2H ", 7200),
        ("5 m", 300),
        ("0m30s", 30),  # a zero part is fine while the whole is longer than zero
        ("30m1h", 5400),  # parts in any order add up
    ],
)
def test_durations_with_units(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["2", "300", "1.5", " 10 ", "-5", "+5"])
def test_a_bare_number_is_refused_asking_for_the_unit(text):
    # 300 meant as seconds but read as minutes would arm enrolment for five hours
    with pytest.raises(UsageError, match="has no unit") as err:
        parse_duration(text)
    assert "90s, 30m, 1h" in str(err.value)


@pytest.mark.parametrize("text", ["0s", "0m", "0h0m", "0.0h", "-5m", "- 1h30m"])
def test_zero_and_negative_durations_are_refused(text):
    with pytest.raises(UsageError, match="not longer than zero"):
        parse_duration(text)


@pytest.mark.parametrize(
    "text", ["", "   ", "soon", "5x", "m", "1h-", "h1", "1,5h", ".5h", "5min", "1e3s", "inf"]
)
def test_garbage_is_refused_saying_what_works(text):
    with pytest.raises(UsageError, match="as a duration: use e.g. 90s, 30m, 1h"):
        parse_duration(text)


def test_an_absurdly_long_duration_is_refused_not_infinite():
    with pytest.raises(UsageError, match="too long"):
        parse_duration("9" * 400 + "w")


def test_errors_are_value_errors_for_argparse():
    with pytest.raises(ValueError):
        parse_duration("5")


@pytest.mark.parametrize(
    ("text", "seconds_ago"), [("90s", 90), ("1h30m", 5400), ("2d", 172_800), ("1w", 604_800)]
)
def test_since_a_duration_ago_uses_the_same_rule(text, seconds_ago):
    assert parse_since(text, now=NOW) == NOW - seconds_ago


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("10", "has no unit"),
        ("0s", "not longer than zero"),
        ("-5m", "not longer than zero"),
        ("soonish", "as a time"),
    ],
)
def test_since_refuses_what_parse_duration_refuses(text, match):
    with pytest.raises(UsageError, match=match) as err:
        parse_since(text, now=NOW)
    assert "90s, 30m, 1h" in str(err.value)


def test_since_still_reads_a_compact_iso_date_of_digits():
    assert parse_since("20240501", now=NOW) == datetime(2024, 5, 1).timestamp()
