"""The ``schedules`` mapping and the ``access`` keys added for access rules: every problem
reported at once, at the line of the window or key that has it."""

from __future__ import annotations

import pytest

from pi_facegate.config.loader import parse_config, parse_config_text
from pi_facegate.daemon import wiring as components
from pi_facegate.exc import ConfigError


def test_defaults_no_schedules_the_system_zone_and_alarm_limits():
    config = parse_config({})
    assert config.schedules == {} and config.access.timezone is None
    alarm = config.access.alarm
    assert (alarm.attempts, alarm.window_seconds, alarm.slowdown_seconds) == (5, 60.0, 30.0)
    assert components.time_zone(config) is None
    assert parse_config_text("schedules:\n").schedules == {}


def test_schedules_and_a_zone_are_read():
    config = parse_config_text(
        "access:\n  timezone: Europe/London\n"
        "schedules:\n"
        "  office: ['Mon-Fri 07:00-19:00']\n"
        "  cleaner:\n    - Tue 08:00-11:00\n    - Tue 22:00-02:00\n"
        "  closed: []\n"
    )
    schedules = components.make_schedules(config)
    assert list(schedules) == ["office", "cleaner", "closed"]
    assert [w.spec for w in schedules["cleaner"].windows] == ["Tue 08:00-11:00", "Tue 22:00-02:00"]
    assert str(components.time_zone(config)) == "Europe/London"


def test_every_bad_window_and_name_is_reported_at_its_line():
    text = (
        "schedules:\n"  # 1
        "  office:\n"  # 2
        "    - Mon-Fri 07:00-19:00\n"  # 3
        "    - Mon-Fry 07:00-19:00\n"  # 4
        "  cleaner: ['Tue 08:00-25:00']\n"  # 5
        "  the cleaner: []\n"  # 6
        "  night: 'Tue 22:00-02:00'\n"  # 7
        "access:\n"  # 8
        "  timezone: Europe/Lodnon\n"  # 9
    )
    with pytest.raises(ConfigError) as exc:
        parse_config_text(text, "c.yaml")
    assert str(exc.value).splitlines() == [
        "c.yaml:4: schedules.office.1: schedule 'office': window 'Mon-Fry 07:00-19:00': "
        "unknown day 'Fry' (days are Mon, Tue, Wed, Thu, Fri, Sat, Sun; ranges like Mon-Fri, "
        "lists like Sat,Sun) (got 'Mon-Fry 07:00-19:00')",
        "c.yaml:5: schedules.cleaner.0: schedule 'cleaner': window 'Tue 08:00-25:00': "
        "'25:00' is not a time of day (00:00..24:00) (got 'Tue 08:00-25:00')",
        "c.yaml:6: schedules.the cleaner: 'the cleaner' cannot name a schedule: use 1 to 40 "
        "letters, digits, '_', '.' or '-', starting with a letter or digit (got 'the cleaner')",
        "c.yaml:7: schedules.night: schedule 'night' must be a list of windows, e.g. "
        "['Mon-Fri 07:00-19:00'] (got 'Tue 22:00-02:00')",
        "c.yaml:9: access.timezone: unknown time zone 'Europe/Lodnon': use a tz database name "
        "such as Europe/London or America/New_York (timedatectl list-timezones), or null for "
        "the system's zone (got 'Europe/Lodnon')",
    ]


@pytest.mark.parametrize("zone", ["../../etc/passwd", "/etc/localtime", "", "UTC+1"])
def test_a_zone_must_be_a_tz_database_name(zone):
    with pytest.raises(ConfigError, match="unknown time zone"):
        parse_config({"access": {"timezone": zone}})


def test_windows_that_are_not_text_are_refused():
    with pytest.raises(ConfigError, match=r"schedules\.office\.0: schedule 'office': window 7"):
        parse_config({"schedules": {"office": [7]}})
    with pytest.raises(ConfigError, match=r"^schedules: Input should be a valid dictionary"):
        parse_config({"schedules": ["Mon-Fri 07:00-19:00"]})
