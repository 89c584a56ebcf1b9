"""Durations on the command line: one rule for ``events --since 2h`` and ``enroll arm --timeout 5m``.

A duration is one or more numbers, each with its unit: ``s``, ``m``, ``h``, ``d`` or
``w`` (``90s``, ``5m``, ``1h30m``, ``0.5h``, ``2d``, ``1w``; case and spaces do not
matter). A bare number is refused, with a message asking for the unit: ``300`` is seconds
to one reader and minutes to another, and for an arming window the difference is
dangerous (300 meant as seconds, read as minutes, would leave the door's enrolment armed
for five hours). A duration must also be longer than zero.
"""

from __future__ import annotations

import math
import re
import time
from datetime import datetime, timedelta

from pi_facegate.exc import UsageError

#: seconds per unit letter
UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}

_NUMBER = r"\d+(?:\.\d+)?"
_DURATION = re.compile(rf"(?:{_NUMBER}\s*[smhdw]\s*)+")
_PART = re.compile(rf"({_NUMBER})\s*([smhdw])")
_BARE_NUMBER = re.compile(rf"[+-]?\s*{_NUMBER}")
_EXAMPLES = "90s, 30m, 1h, 1h30m, 2d or 1w"


def parse_duration(text: str) -> float:
    """Seconds from a duration with units (``90s``, ``5m``, ``1h30m``, ``2d``, ``1w``).

    :raises UsageError: (a :class:`ValueError`) for a bare number, a duration that is not
        longer than zero, or anything else; the message says what is understood.
    """
    value = str(text).strip().lower()
    if _BARE_NUMBER.fullmatch(value):
        raise UsageError(
            f"duration {text!r} has no unit: is it seconds, minutes or hours? "
            f"Write it with one, e.g. {_EXAMPLES}"
        )
    negative = value.startswith("-")
    body = value[1:].lstrip() if negative else value
    if not _DURATION.fullmatch(body):
        raise UsageError(f"cannot read {text!r} as a duration: use e.g. {_EXAMPLES}")
    seconds = sum(float(number) * UNIT_SECONDS[unit] for number, unit in _PART.findall(body))
    if negative or seconds <= 0:
        raise UsageError(f"duration {text!r} is not longer than zero: use e.g. {_EXAMPLES}")
    if not math.isfinite(seconds):
        raise UsageError(f"duration {text!r} is too long: use e.g. {_EXAMPLES}")
    return seconds


def parse_since(text: str, now: float | None = None) -> float:
    """Epoch seconds from ``--since``: a duration ago or a date/time.

    Durations follow :func:`parse_duration` (``90s``, ``30m``, ``1h30m``, ``2d``, ``1w``).
    ``today``/``yesterday`` mean local midnight. Otherwise an ISO 8601 date or date/time
    (``2024-05-01``, ``2024-05-01T08:30``, ``2024-05-01 08:30:00+02:00``); without a zone
    it is local time. Anything else is a :class:`UsageError` (a :class:`ValueError`)
    saying what is understood.
    """
    value = str(text).strip().lower()
    current = time.time() if now is None else float(now)
    if _DURATION.fullmatch(value.removeprefix("-").lstrip()):
        return current - parse_duration(value)
    if value in ("today", "yesterday"):
        midnight = datetime.fromtimestamp(current).astimezone()
        midnight = midnight.replace(hour=0, minute=0, second=0, microsecond=0)
        if value == "yesterday":
            midnight -= timedelta(days=1)
        return midnight.timestamp()
    try:
        return datetime.fromisoformat(str(text).strip()).timestamp()
    except ValueError:
        pass
    if _BARE_NUMBER.fullmatch(value):  # not a compact ISO date like 20240501 either
        parse_duration(value)  # raises, asking for the unit
    raise UsageError(
        f"cannot understand {text!r} as a time: use a duration like 90s, 30m, 1h, 2d "
        "or 1w, 'today', or a date/time like 2024-05-01 or 2024-05-01T08:30"
    )
