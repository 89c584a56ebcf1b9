"""Per-person access rules: validity dates (inclusive, local days) and schedules, table-driven."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from pi_facegate.core.access_rules import AccessRules, PersonRules
from pi_facegate.core.schedule import local_time, parse_schedule

LONDON = ZoneInfo("Europe/London")
AUCKLAND = ZoneInfo("Pacific/Auckland")

SCHEDULES = {
    "office": parse_schedule("office", ["Mon-Fri 07:00-19:00"]),
    "cleaner": parse_schedule("cleaner", ["Tue 08:00-11:00"]),
}
GUEST = PersonRules(valid_from=date(2027, 1, 1), valid_until=date(2027, 1, 31))
CLEANER = PersonRules(schedule="cleaner", valid_until=date(2027, 3, 31))
LOST = PersonRules(schedule="gardener")  # a schedule the config no longer has
PEOPLE = {1: PersonRules(), 2: GUEST, 3: CLEANER, 4: LOST}


def at(text: str, zone=LONDON) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone)


CASES = [
    # person, local wall-clock time, refusal reason (None: may enter)
    (1, "2030-06-01 03:00", None),  # nobody limits person 1
    (99, "2030-06-01 03:00", None),  # not in the rules at all
    (2, "2026-12-31 23:59:59", "not_yet_valid"),
    (2, "2027-01-01 00:00:00", None),  # valid_from: from the start of that day
    (2, "2027-01-31 23:59:59", None),  # valid_until: through the end of that day
    (2, "2027-02-01 00:00:00", "expired"),
    (3, "2027-01-05 08:00", None),  # Tuesday in the window
    (3, "2027-01-05 11:00", "schedule"),  # the window's end
    (3, "2027-01-06 09:00", "schedule"),  # Wednesday
    (3, "2027-04-06 09:00", "expired"),  # a Tuesday in the window, after valid_until
    (4, "2027-01-05 09:00", "schedule"),  # schedule not in the config: refused, never let in
]


@pytest.mark.parametrize(("person", "when", "reason"), CASES)
def test_rules_at_local_times(person, when, reason):
    refusal = AccessRules(SCHEDULES, PEOPLE).check(person, at(when))
    assert (refusal.reason if refusal else None) == reason


def test_a_refusal_says_which_rule():
    rules = AccessRules(SCHEDULES, PEOPLE)
    assert rules.check(2, at("2027-02-01 00:00")).detail == {"valid_until": "2027-01-31"}
    assert rules.check(2, at("2026-12-31 12:00")).detail == {"valid_from": "2027-01-01"}
    assert rules.check(3, at("2027-01-06 09:00")).detail == {"schedule": "cleaner"}
    assert rules.check(4, at("2027-01-05 09:00")).detail == {
        "schedule": "gardener",
        "why": "schedule 'gardener' is not in the config",
    }
    assert rules.missing_schedules() == {4: "gardener"}


def test_expiry_is_at_the_end_of_the_local_day_not_the_utc_day():
    # 2027-01-31 23:30 in London is already 2027-02-01 in Auckland: the door's zone decides
    rules = AccessRules(SCHEDULES, {2: GUEST})
    instant = datetime(2027, 1, 31, 23, 30, tzinfo=UTC).timestamp()
    assert rules.check(2, local_time(instant, LONDON)) is None
    assert rules.check(2, local_time(instant, AUCKLAND)).reason == "expired"


def test_without_a_local_time_anybody_with_a_rule_is_refused():
    rules = AccessRules(SCHEDULES, PEOPLE)
    assert rules.check(1, None) is None
    assert rules.check(2, None).reason == "expired"
    assert rules.check(3, None).reason == "schedule"


def test_unrestricted_people_are_not_kept():
    rules = AccessRules(SCHEDULES, PEOPLE)
    assert set(rules.people) == {2, 3, 4}
    assert PersonRules().unrestricted and not GUEST.unrestricted
