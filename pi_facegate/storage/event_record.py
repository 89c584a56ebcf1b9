"""What one event of the log is: :class:`Event`, the documented :data:`KINDS`, :func:`make_event`.

Kept apart from the SQLite file (:mod:`pi_facegate.storage.event_file`) and from the writer
and reader (:mod:`pi_facegate.storage.events`): an event is plain, JSON-compatible data, and
the same event is stored, logged to the journal and shown by ``facegate events``.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

#: The kinds of event the appliance records (others are accepted, these are documented).
KINDS = (
    "started",
    "stopped",
    "fatal_error",
    "granted",
    "denied",
    "presentation_attack",
    "liveness_prompt",
    "unlocked",
    "relocked",
    "exit_request",
    "door_opened",
    "door_closed",
    "door_forced",
    "door_held_open",
    "alarm",
    "config_reloaded",
    "config_rejected",
    "camera_error",
    "camera_recovered",
    "events_lost",
    "gallery_changed",
    "enrolment_armed",
    "enrolment_started",
    "enrolled",
    "enrolment_failed",
    "enrolment_cancelled",
    "enrolment_ignored",
    "enrolment_expired",
    "enrolment_disarmed",
    "remote_unlock",
    "remote_unlock_refused",
)

_KIND_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class Event:
    """One thing that happened.

    ``time`` is seconds since the epoch (UTC, ``time.time()``); ``kind`` one of
    :data:`KINDS` (or another lower-case word); ``person`` the name involved, if any;
    ``distance``/``margin`` the match figures of a recognition event (Euclidean, smaller
    distance = closer); ``detail`` anything else, JSON-compatible (reason, track,
    latency_ms, ...).
    """

    time: float
    kind: str
    person: str | None = None
    distance: float | None = None
    margin: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, with the time also as an ISO 8601 UTC string."""
        return {
            "time": self.time,
            "time_utc": datetime.fromtimestamp(self.time, UTC).isoformat(),
            "kind": self.kind,
            "person": self.person,
            "distance": self.distance,
            "margin": self.margin,
            "detail": self.detail,
        }

    def message(self) -> str:
        """One human line for the log, e.g. ``granted alice (distance 0.412, margin 0.180)``.

        The detail follows as ``key=value`` pairs (strings bare, everything else as JSON,
        numbers :func:`rounded` for a reader: ``unlocked_for=3.0``, not
        ``3.0004558310000107``; the journal's ``DETAIL`` field and the file keep full
        precision). This is the journal's wording, owned here so that it stays stable for
        whoever greps the journal; the terminal's rendering is :func:`pi_facegate.cli.table.format_detail`.
        """
        text = self.kind if self.person is None else f"{self.kind} {self.person}"
        figures = [
            f"{label} {value:.3f}"
            for label, value in (("distance", self.distance), ("margin", self.margin))
            if value is not None
        ]
        if figures:
            text += f" ({', '.join(figures)})"
        if self.detail:
            text += " " + " ".join(
                f"{key}={value if isinstance(value, str) else _dumps(rounded(value))}"
                for key, value in self.detail.items()
            )
        return text

    def detail_json(self) -> str:
        """``detail`` as compact JSON: what the file's ``detail`` column and the journal hold."""
        return _dumps(self.detail)

    def journal_fields(self) -> dict[str, str]:
        """Upper-case ``extra`` fields for :mod:`logging` that journald stores as fields.

        Values are strings (what the journal holds anyway); fields without a value are
        left out rather than sent as ``None``.
        """
        fields = {"EVENT_KIND": self.kind}
        if self.person is not None:
            fields["PERSON"] = self.person
        if self.distance is not None:
            fields["DISTANCE"] = f"{self.distance:.4f}"
        if self.margin is not None:
            fields["MARGIN"] = f"{self.margin:.4f}"
        if self.detail:
            fields["DETAIL"] = self.detail_json()
        return fields


def make_event(
    kind: str,
    *,
    time: float | None = None,
    person: str | None = None,
    distance: float | None = None,
    margin: float | None = None,
    detail: Mapping[str, Any] | None = None,
    **more: Any,
) -> Event:
    """Build a clean :class:`Event`; keyword arguments beyond the columns go into ``detail``.

    Numbers become plain floats (numpy scalars too) and infinite or NaN ones ``None``
    (an infinite margin means "no second person"); ``detail`` is copied and made
    JSON-compatible, so the event stored is the event logged. A ``kind`` that is not a
    lower-case word is a :class:`ValueError`: that is a programming error.
    """
    if not isinstance(kind, str) or not _KIND_PATTERN.match(kind):
        raise ValueError(f"event kind must be a lower-case word like 'granted', got {kind!r}")
    merged = dict(detail or {})
    merged.update(more)
    return Event(
        time=float(_time_now() if time is None else time),
        kind=kind,
        person=None if person is None else str(person),
        distance=_finite(distance),
        margin=_finite(margin),
        detail=_json_safe(merged),
    )


def rounded(value: Any, digits: int = 3) -> Any:
    """``value`` with every float rounded to ``digits`` significant digits for a reader,
    never rounding away whole units: 3.0004558 -> 3.0, 0.98861 -> 0.989, 0.064812 -> 0.0648,
    1234.567 -> 1235.0. Lists and mappings are rounded throughout; anything else is kept.

    Only for showing: what is stored (and ``--json``) keeps full precision.
    """
    if isinstance(value, float):
        if value == 0 or not math.isfinite(value):
            return value
        decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
        return round(value, decimals)
    if isinstance(value, Mapping):
        return {key: rounded(item, digits) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(item, digits) for item in value]
    return value


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _json_safe(value: Any) -> Any:
    """``value`` as plain JSON data: numpy scalars/arrays unwrapped, NaN/inf as ``None``."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _finite(value)
    if hasattr(value, "tolist"):  # numpy scalar or array, without importing numpy
        return _json_safe(value.tolist())
    return str(value)


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _time_now() -> float:
    return time.time()
