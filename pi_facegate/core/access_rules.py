"""Per-person access rules: a schedule to keep, and the dates access is valid between.

A person may carry a schedule name (``None``: any time), a ``valid_from`` and a
``valid_until`` date (``None``: no limit). Dates are inclusive and read in the door's local
time: ``valid_until = 2027-01-31`` lets the person in until 23:59:59 local time that day,
``valid_from = 2027-01-01`` from 00:00 that day. The rules are stored with the person in the
gallery; the schedules themselves are the config's (see :mod:`pi_facegate.core.schedule`).

:meth:`AccessRules.check` says why a recognised person may not enter *now*, or ``None``. It
fails secure: a person on a schedule the config does not define, or with rules but no known
time, is refused -- never let in.

Pure: the caller passes the local wall-clock time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from types import MappingProxyType
from typing import Any

from pi_facegate.core.schedule import Schedule

#: Reasons :meth:`AccessRules.check` gives (the policy's verdicts carry the same words).
SCHEDULE = "schedule"  #: outside the person's schedule, or the schedule is not defined
EXPIRED = "expired"  #: the person's ``valid_until`` date has passed
NOT_YET_VALID = "not_yet_valid"  #: the person's ``valid_from`` date has not come yet


@dataclass(frozen=True)
class PersonRules:
    """One person's rules: schedule name and validity dates (``None``: no limit)."""

    schedule: str | None = None
    valid_from: date | None = None
    valid_until: date | None = None

    @property
    def unrestricted(self) -> bool:
        """True when nothing limits when this person may enter."""
        return self.schedule is None and self.valid_from is None and self.valid_until is None


@dataclass(frozen=True)
class Refusal:
    """Why a recognised person may not enter now: a reason word and details for the log."""

    reason: str
    detail: dict[str, Any] = field(default_factory=dict)


class AccessRules:
    """The config's schedules and every person's rules, checked together.

    :param schedules: the config's schedules by name.
    :param people: each restricted person's rules by person id; a person not in it has no
        restriction (the gallery's default).
    """

    def __init__(
        self,
        schedules: Mapping[str, Schedule] | None = None,
        people: Mapping[int, PersonRules] | None = None,
    ) -> None:
        self.schedules: Mapping[str, Schedule] = MappingProxyType(dict(schedules or {}))
        self.people: Mapping[int, PersonRules] = MappingProxyType(
            {int(pid): rules for pid, rules in (people or {}).items() if not rules.unrestricted}
        )

    def check(self, person_id: int, local: datetime | None) -> Refusal | None:
        """Why ``person_id`` may not enter at wall-clock time ``local``, or ``None``.

        Validity dates are checked before the schedule: an expired guest is "expired", not
        "outside their schedule". ``local`` ``None`` (no usable clock) refuses anybody who
        has a rule.
        """
        rules = self.people.get(int(person_id))
        if rules is None:
            return None
        if local is None:
            reason = SCHEDULE if rules.schedule is not None else EXPIRED
            return Refusal(reason, {"why": "the local time is not known"})
        today = local.date()
        if rules.valid_until is not None and today > rules.valid_until:
            return Refusal(EXPIRED, {"valid_until": rules.valid_until.isoformat()})
        if rules.valid_from is not None and today < rules.valid_from:
            return Refusal(NOT_YET_VALID, {"valid_from": rules.valid_from.isoformat()})
        if rules.schedule is None:
            return None
        schedule = self.schedules.get(rules.schedule)
        if schedule is None:
            why = f"schedule {rules.schedule!r} is not in the config"
            return Refusal(SCHEDULE, {"schedule": rules.schedule, "why": why})
        if not schedule.is_open(local):
            return Refusal(SCHEDULE, {"schedule": rules.schedule})
        return None

    def missing_schedules(self) -> dict[int, str]:
        """People on a schedule the config does not define: ``{person_id: schedule}``."""
        return {
            pid: rules.schedule
            for pid, rules in self.people.items()
            if rules.schedule is not None and rules.schedule not in self.schedules
        }
