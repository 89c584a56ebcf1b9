"""Weekly time windows: when a person on a named schedule may be let in.

A schedule is a list of windows such as ``"Mon-Fri 07:00-19:00"``, ``"Sat,Sun 10:00-14:00"``
or ``"Tue 22:00-02:00"``; it is open when any of its windows is (windows may overlap). The
days name the day a window *starts*: a window whose end is not after its start crosses
midnight, so ``"Tue 22:00-02:00"`` runs from Tuesday 22:00 to Wednesday 02:00. ``24:00`` ends
a window at midnight (``"Mon-Sun 00:00-24:00"`` is always open); a start equal to the end is
refused, because it could mean nothing or the whole day.

Windows are wall-clock times in the door's local time zone, which is what a household or an
office means by "Tuesday 08:00". The caller turns an instant into wall-clock time (see
:func:`local_time`, which uses the tz database's rules through a ``tzinfo`` such as
``zoneinfo.ZoneInfo``) and :func:`is_open` reads only the weekday, hour and minute of it. So
across a change of daylight saving time a window keeps its wall-clock meaning: on the
spring-forward day a window inside the skipped hour simply does not occur, and on the
fall-back day a window inside the repeated hour is open through both of them.

Pure: no clock is read here, and a problem is a :class:`~pi_facegate.exc.ConfigError` that
quotes the window.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from pi_facegate.exc import ConfigError

#: The day names a window may use, Monday first (``datetime.weekday()`` order).
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MINUTES_PER_DAY = 24 * 60

#: What a schedule's name may be: a short word (letters, digits, ``_ . -``), case-sensitive.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")

_DAY_INDEX = {name.lower(): i for i, name in enumerate(DAYS)}
_TIME = re.compile(r"^(\d{2}):(\d{2})$")
_EXAMPLE = "e.g. 'Mon-Fri 07:00-19:00' or 'Tue 22:00-02:00'"


@dataclass(frozen=True)
class Window:
    """One weekly window: on each of ``days`` (0 = Monday) from ``start`` to ``end``.

    ``start`` and ``end`` are minutes after midnight (``end`` may be 1440, midnight at the
    end of the day). ``end < start`` means the window crosses midnight into the next day.
    ``spec`` is the text it was parsed from, for messages.
    """

    days: frozenset[int]
    start: int
    end: int
    spec: str = ""

    @property
    def crosses_midnight(self) -> bool:
        return self.end < self.start

    def contains(self, weekday: int, minute: int) -> bool:
        """True when wall-clock ``minute`` (0..1439) of ``weekday`` falls in this window."""
        if not self.crosses_midnight:
            return weekday in self.days and self.start <= minute < self.end
        started_today = weekday in self.days and minute >= self.start
        started_yesterday = (weekday - 1) % 7 in self.days and minute < self.end
        return started_today or started_yesterday


@dataclass(frozen=True)
class Schedule:
    """A named list of windows; open when any of them is (an empty list is never open)."""

    name: str
    windows: tuple[Window, ...]

    def is_open(self, local: datetime) -> bool:
        """True when the wall-clock time ``local`` falls in one of the windows."""
        return is_open(self.windows, local)


def is_open(windows: Iterable[Window], local: datetime) -> bool:
    """True when the wall-clock time of ``local`` falls in any of ``windows``.

    ``local`` is the time as the door's clock on the wall shows it (an aware datetime in the
    local zone, from :func:`local_time`); only its weekday, hour and minute are read. Window
    ends are exclusive: ``07:00-19:00`` is open at 18:59:59 and closed at 19:00:00.
    """
    weekday, minute = local.weekday(), local.hour * 60 + local.minute
    return any(window.contains(weekday, minute) for window in windows)


def local_time(timestamp: float, zone: tzinfo | None = None) -> datetime:
    """The wall-clock time of the instant ``timestamp`` (seconds since the epoch) in ``zone``.

    ``zone`` ``None`` means the system's local zone (``TZ``, else ``/etc/localtime``), with its
    daylight-saving rules for that instant. The result is aware, so an hour repeated by a
    fall-back is told apart by its UTC offset.
    """
    return datetime.fromtimestamp(timestamp, UTC).astimezone(zone)


def check_name(name: str) -> str:
    """``name`` if it may name a schedule, else a ConfigError saying what a name may be."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ConfigError(
            f"{name!r} cannot name a schedule: use 1 to 40 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return name


def parse_schedule(name: str, specs: Sequence[str]) -> Schedule:
    """The schedule ``name`` from its window texts; a bad one is a ConfigError naming both."""
    check_name(name)
    windows = []
    for spec in specs:
        try:
            windows.append(parse_window(spec))
        except ConfigError as exc:
            raise ConfigError(f"schedule {name!r}: {exc}") from None
    return Schedule(str(name), tuple(windows))


def parse_window(spec: str) -> Window:
    """``"DAYS HH:MM-HH:MM"`` as a :class:`Window`; anything else is a ConfigError.

    ``DAYS`` is a comma-separated list of days (``Mon``..``Sun``, any case) and ranges
    (``Mon-Fri``; ``Fri-Mon`` wraps over the weekend).
    """
    if not isinstance(spec, str):
        raise ConfigError(f"window {spec!r} is not text ({_EXAMPLE})")
    words = spec.split()
    if len(words) != 2:
        raise ConfigError(f"window {spec!r} must be days and a time range ({_EXAMPLE})")
    days_text, times_text = words
    start_text, dash, end_text = times_text.partition("-")
    if not dash:
        raise ConfigError(f"window {spec!r}: {times_text!r} is not a time range like 07:00-19:00")
    start = _minutes(spec, start_text, may_be_midnight=False)
    end = _minutes(spec, end_text, may_be_midnight=True)
    if start == end:
        raise ConfigError(f"window {spec!r} starts when it ends: write 00:00-24:00 for a whole day")
    return Window(_days(spec, days_text), start, end, spec)


def _days(spec: str, text: str) -> frozenset[int]:
    days: set[int] = set()
    for part in text.split(","):
        first, dash, last = part.partition("-")
        if not dash:
            days.add(_day(spec, first))
            continue
        a, b = _day(spec, first), _day(spec, last)
        days.update((a + i) % 7 for i in range((b - a) % 7 + 1))
    return frozenset(days)


def _day(spec: str, text: str) -> int:
    index = _DAY_INDEX.get(text.lower())
    if index is None:
        raise ConfigError(
            f"window {spec!r}: unknown day {text!r} (days are {', '.join(DAYS)}; "
            "ranges like Mon-Fri, lists like Sat,Sun)"
        )
    return index


def _minutes(spec: str, text: str, may_be_midnight: bool) -> int:
    match = _TIME.match(text)
    if match is None:
        raise ConfigError(f"window {spec!r}: {text!r} is not a time HH:MM (24-hour clock)")
    hours, minutes = int(match[1]), int(match[2])
    if may_be_midnight and (hours, minutes) == (24, 0):
        return MINUTES_PER_DAY
    if hours > 23 or minutes > 59:
        bound = "00:00..24:00" if may_be_midnight else "00:00..23:59"
        raise ConfigError(f"window {spec!r}: {text!r} is not a time of day ({bound})")
    return hours * 60 + minutes
