"""Weekly windows: parsing, open or closed at a wall-clock time, midnight and DST days.

Table-driven. Instants on the two daylight-saving days of Europe/London in 2027 are given in
UTC and turned into wall-clock time by :func:`local_time` with the real tz database, as the
daemon does: on 2027-03-28 the clocks go from 01:00 GMT to 02:00 BST (01:00-02:00 never
happens), on 2027-10-31 from 02:00 BST back to 01:00 GMT (01:00-02:00 happens twice).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from pi_facegate.core.schedule import (
    Window,
    check_name,
    is_open,
    local_time,
    parse_schedule,
    parse_window,
)
from pi_facegate.exc import ConfigError

LONDON = ZoneInfo("Europe/London")
MON, TUE, WED, THU, FRI, SAT, SUN = range(7)


def at(text: str, zone=LONDON) -> datetime:
    """A wall-clock time in ``zone`` (``"2027-01-05 07:00"``; 2027-01-04 is a Monday)."""
    return datetime.fromisoformat(text).replace(tzinfo=zone)


def utc(text: str, zone=LONDON) -> datetime:
    """The wall-clock time in ``zone`` of a UTC instant, as the daemon computes it."""
    instant = datetime.fromisoformat(text).replace(tzinfo=UTC)
    return local_time(instant.timestamp(), zone)


# ---------------------------------------------------------------- parsing

PARSED = [
    ("Mon-Fri 07:00-19:00", {MON, TUE, WED, THU, FRI}, 420, 1140),
    ("Sat,Sun 10:00-14:00", {SAT, SUN}, 600, 840),
    ("Tue 22:00-02:00", {TUE}, 1320, 120),
    ("Mon-Sun 00:00-24:00", set(range(7)), 0, 1440),
    ("Fri-Mon 18:00-06:00", {FRI, SAT, SUN, MON}, 1080, 360),  # a range wraps the weekend
    ("mon,WED,Fri-Sat 08:30-09:15", {MON, WED, FRI, SAT}, 510, 555),  # any case, mixed
    ("  Sun   23:59-24:00 ", {SUN}, 1439, 1440),
]


@pytest.mark.parametrize(("spec", "days", "start", "end"), PARSED, ids=[p[0] for p in PARSED])
def test_windows_are_parsed(spec, days, start, end):
    window = parse_window(spec)
    assert (window.days, window.start, window.end) == (frozenset(days), start, end)
    assert window.crosses_midnight == (end < start)


BAD = [
    ("Mon-Fry 07:00-19:00", "unknown day 'Fry'"),
    ("Monday 07:00-19:00", "unknown day 'Monday'"),
    ("Mon 7:00-19:00", "'7:00' is not a time HH:MM"),
    ("Mon 07:00-25:00", "'25:00' is not a time of day (00:00..24:00)"),
    ("Mon 24:00-02:00", "'24:00' is not a time of day (00:00..23:59)"),
    ("Mon 07:60-08:00", "'07:60' is not a time of day"),
    ("Mon 07:00-07:00", "starts when it ends: write 00:00-24:00 for a whole day"),
    ("Mon 07:00", "'07:00' is not a time range"),
    ("07:00-19:00", "must be days and a time range"),
    ("Mon-Fri 07:00 - 19:00", "must be days and a time range"),
    ("", "must be days and a time range"),
    ("Mon,,Tue 07:00-08:00", "unknown day ''"),
]


@pytest.mark.parametrize(("spec", "message"), BAD, ids=[b[0] or "empty" for b in BAD])
def test_bad_windows_are_config_errors_that_quote_them(spec, message):
    with pytest.raises(ConfigError) as exc:
        parse_window(spec)
    assert message in str(exc.value) and repr(spec) in str(exc.value)


def test_a_schedule_error_names_the_schedule_and_the_window():
    with pytest.raises(ConfigError, match=r"^schedule 'office': window 'Sat 9:00-12:00': "):
        parse_schedule("office", ["Mon-Fri 07:00-19:00", "Sat 9:00-12:00"])
    with pytest.raises(ConfigError, match="cannot name a schedule"):
        parse_schedule("the office", [])
    assert check_name("cleaner.tue-2") == "cleaner.tue-2"


# ---------------------------------------------------------------- open or closed

OFFICE = ["Mon-Fri 07:00-19:00"]
NIGHT = ["Tue 22:00-02:00"]
SUNDAY_NIGHT = ["Sun 22:00-02:00"]  # crosses midnight into Monday, the week's first day
WHOLE_WEEK = ["Mon-Sun 00:00-24:00"]
OVERLAPPING = ["Mon 08:00-12:00", "Mon 10:00-14:00"]

OPEN_CASES = [
    # windows, wall-clock time, open?
    (OFFICE, "2027-01-04 06:59:59", False),  # Monday, before the start
    (OFFICE, "2027-01-04 07:00:00", True),  # the start is inclusive
    (OFFICE, "2027-01-04 18:59:59", True),
    (OFFICE, "2027-01-04 19:00:00", False),  # the end is exclusive
    (OFFICE, "2027-01-08 12:00", True),  # Friday
    (OFFICE, "2027-01-09 12:00", False),  # Saturday
    (NIGHT, "2027-01-05 21:59", False),  # Tuesday
    (NIGHT, "2027-01-05 22:00", True),
    (NIGHT, "2027-01-05 23:59:59", True),
    (NIGHT, "2027-01-06 00:00", True),  # Wednesday, still Tuesday's window
    (NIGHT, "2027-01-06 01:59:59", True),
    (NIGHT, "2027-01-06 02:00", False),
    (NIGHT, "2027-01-06 22:30", False),  # Wednesday night is not Tuesday night
    (NIGHT, "2027-01-05 01:00", False),  # Tuesday early: Monday had no window
    (SUNDAY_NIGHT, "2027-01-04 01:00", True),  # Monday 01:00: Sunday's window, over the week
    (SUNDAY_NIGHT, "2027-01-10 23:00", True),
    (SUNDAY_NIGHT, "2027-01-04 02:00", False),
    (WHOLE_WEEK, "2027-01-04 00:00", True),
    (WHOLE_WEEK, "2027-01-10 23:59:59", True),
    (OVERLAPPING, "2027-01-04 11:00", True),
    (OVERLAPPING, "2027-01-04 13:59", True),
    (OVERLAPPING, "2027-01-04 14:00", False),
    ([], "2027-01-04 12:00", False),  # a schedule without windows is never open
]


@pytest.mark.parametrize(("specs", "when", "expected"), OPEN_CASES)
def test_windows_at_wall_clock_times(specs, when, expected):
    windows = [parse_window(s) for s in specs]
    assert is_open(windows, at(when)) is expected
    assert parse_schedule("s", specs).is_open(at(when)) is expected


def test_is_open_reads_wall_clock_time_whatever_the_zone():
    # 07:30 on a Monday in New York is office time there, though it is 12:30 in London
    windows = [parse_window("Mon-Fri 07:00-19:00")]
    new_york = ZoneInfo("America/New_York")
    assert is_open(windows, at("2027-01-04 07:30", new_york))
    assert not is_open(windows, at("2027-01-04 07:30", new_york).astimezone(ZoneInfo("Asia/Tokyo")))


# ---------------------------------------------------------------- daylight-saving days

DST_CASES = [
    # windows, UTC instant, expected local wall clock, open?
    # spring forward, Sunday 2027-03-28: 01:00 GMT becomes 02:00 BST
    (["Sun 01:00-02:00"], "2027-03-28 00:59:59", "00:59:59+00:00", False),
    (["Sun 01:00-02:00"], "2027-03-28 01:00:00", "02:00:00+01:00", False),  # never happens
    (["Sun 01:30-02:30"], "2027-03-28 00:59:59", "00:59:59+00:00", False),
    (["Sun 01:30-02:30"], "2027-03-28 01:00:00", "02:00:00+01:00", True),  # only 30 minutes
    (["Sun 01:30-02:30"], "2027-03-28 01:29:59", "02:29:59+01:00", True),
    (["Sun 01:30-02:30"], "2027-03-28 01:30:00", "02:30:00+01:00", False),
    (["Sun 07:00-19:00"], "2027-03-28 06:00:00", "07:00:00+01:00", True),  # BST from now on
    (["Sun 07:00-19:00"], "2027-03-28 05:59:59", "06:59:59+01:00", False),
    (["Sat 22:00-03:00"], "2027-03-28 01:59:59", "02:59:59+01:00", True),  # crossing into it
    (["Sat 22:00-03:00"], "2027-03-28 02:00:00", "03:00:00+01:00", False),
    # fall back, Sunday 2027-10-31: 02:00 BST becomes 01:00 GMT
    (["Sun 01:00-02:00"], "2027-10-30 23:59:59", "00:59:59+01:00", False),
    (["Sun 01:00-02:00"], "2027-10-31 00:00:00", "01:00:00+01:00", True),  # first 01:00
    (["Sun 01:00-02:00"], "2027-10-31 00:59:59", "01:59:59+01:00", True),
    (["Sun 01:00-02:00"], "2027-10-31 01:00:00", "01:00:00+00:00", True),  # second 01:00
    (["Sun 01:00-02:00"], "2027-10-31 01:59:59", "01:59:59+00:00", True),
    (["Sun 01:00-02:00"], "2027-10-31 02:00:00", "02:00:00+00:00", False),
    (["Sun 07:00-19:00"], "2027-10-31 07:00:00", "07:00:00+00:00", True),  # GMT again
    (["Sun 07:00-19:00"], "2027-10-31 06:59:59", "06:59:59+00:00", False),
]


@pytest.mark.parametrize(("specs", "instant", "wall", "expected"), DST_CASES)
def test_dst_days_keep_the_wall_clock_meaning(specs, instant, wall, expected):
    local = utc(instant)
    assert local.isoformat(timespec="seconds")[11:] == wall
    assert local.weekday() == SUN or instant.startswith("2027-10-30")
    assert parse_schedule("s", specs).is_open(local) is expected


def test_a_day_window_on_the_dst_days_lasts_23_and_25_hours():
    schedule = parse_schedule("sunday", ["Sun 00:00-24:00"])
    for day, hours in (("2027-03-28", 23), ("2027-10-31", 25)):
        start = datetime.fromisoformat(f"{day} 00:00").replace(tzinfo=LONDON).timestamp()
        minutes = [start + 60 * m for m in range(-120, 27 * 60)]
        open_minutes = sum(schedule.is_open(local_time(t, LONDON)) for t in minutes)
        assert open_minutes == hours * 60, day


def test_local_time_without_a_zone_is_the_system_zone(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        local = local_time(datetime(2027, 7, 1, 12, tzinfo=UTC).timestamp())
        assert (local.hour, local.utcoffset()) == (8, timedelta(hours=-4))
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_window_is_plain_data():
    window = Window(frozenset({MON}), 60, 120, "Mon 01:00-02:00")
    assert window.contains(MON, 60) and not window.contains(MON, 120)
    assert window == parse_window("Mon 01:00-02:00")
