"""AccessPolicy with access rules: identity, then liveness, then the person's rules.

A recognised, live person outside their schedule is denied ``schedule``, after their last
day ``expired``, before their first ``not_yet_valid``; never granted, never final (a window
that opens lets them in), and a presentation attack stays an attack.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from pi_facegate.core.access_rules import AccessRules, PersonRules
from pi_facegate.core.policy import AccessPolicy, Verdict
from pi_facegate.core.schedule import parse_schedule

LONDON = ZoneInfo("Europe/London")
TUESDAY_9 = datetime(2027, 1, 5, 9, 0, tzinfo=LONDON)  # inside the cleaner's window
TUESDAY_12 = datetime(2027, 1, 5, 12, 0, tzinfo=LONDON)  # outside it


@dataclass(frozen=True)
class FakeMatch:
    person_id: int
    name: str
    distance: float = 0.35
    margin: float | None = 0.25
    accepted: bool = True
    enabled: bool = True
    pending: bool = False


@dataclass(frozen=True)
class FakeLiveness:
    live: bool = True
    attack: bool = False
    timed_out: bool = False

    def cues(self) -> dict[str, Any]:
        return {"liveness": "live" if self.live else ("attack" if self.attack else "waiting")}


ALICE, CARA, GUS = FakeMatch(1, "alice"), FakeMatch(2, "cara"), FakeMatch(3, "gus")
LIVE, ATTACK, WAITING = FakeLiveness(), FakeLiveness(False, True), FakeLiveness(False)


def policy(**settings) -> AccessPolicy:
    p = AccessPolicy(**settings)
    p.rules = AccessRules(
        {"cleaner": parse_schedule("cleaner", ["Tue 08:00-11:00"])},
        {
            2: PersonRules(schedule="cleaner", valid_until=date(2027, 1, 31)),
            3: PersonRules(valid_from=date(2027, 2, 1)),
        },
    )
    return p


def verdicts(p, match, local, liveness=None, times=(0.0, 0.1, 0.2), track=1):
    return [p.observe(track, match, t, liveness, local).verdict for t in times]


CASES = [
    # who, local time, the third frame's verdict
    (ALICE, TUESDAY_12, Verdict.GRANT),  # no rules: any time
    (CARA, TUESDAY_9, Verdict.GRANT),
    (CARA, TUESDAY_12, Verdict.DENY_SCHEDULE),
    (CARA, datetime(2027, 2, 2, 9, 0, tzinfo=LONDON), Verdict.DENY_EXPIRED),  # a Tuesday
    (GUS, datetime(2027, 1, 31, 23, 59, 59, tzinfo=LONDON), Verdict.DENY_NOT_YET_VALID),
    (GUS, datetime(2027, 2, 1, 0, 0, tzinfo=LONDON), Verdict.GRANT),
    (CARA, None, Verdict.DENY_SCHEDULE),  # no clock: refused
    (ALICE, None, Verdict.GRANT),
]


@pytest.mark.parametrize(("match", "local", "expected"), CASES)
def test_rules_decide_after_the_votes(match, local, expected):
    assert verdicts(policy(), match, local) == [Verdict.PENDING, Verdict.PENDING, expected]


def test_the_rule_goes_into_the_event_and_is_not_a_grant():
    p = policy()
    decision = [p.observe(1, CARA, t, None, TUESDAY_12) for t in (0.0, 0.1, 0.2)][-1]
    assert not decision.granted and decision.verdict.reason == "schedule"
    assert decision.name == "cara"
    assert decision.event_fields() == {
        "kind": "denied",
        "person": "cara",
        "distance": 0.35,
        "margin": 0.25,
        "detail": {"track": 1, "votes": 3, "reason": "schedule", "schedule": "cleaner"},
    }


def test_a_window_that_opens_lets_the_same_face_in():
    p = policy()
    before = datetime(2027, 1, 5, 7, 59, 59, tzinfo=LONDON)
    assert verdicts(p, CARA, before)[-1] is Verdict.DENY_SCHEDULE
    assert p.observe(1, CARA, 0.3, None, before).verdict is Verdict.DENY_SCHEDULE
    # no cooldown was started by the denial: the first frame at 08:00 grants
    assert p.observe(1, CARA, 0.4, None, TUESDAY_9).verdict is Verdict.GRANT
    assert p.in_cooldown(2, 0.5)


def test_identity_then_liveness_then_rules():
    p = policy(require_liveness=True)
    # an attack is an attack, whatever the schedule says
    assert verdicts(p, CARA, TUESDAY_12, ATTACK, track=1)[0] is Verdict.DENY_ATTACK
    # still waiting for a live verdict: no rule is judged (nor logged) yet
    assert verdicts(p, CARA, TUESDAY_12, WAITING, track=2) == [Verdict.PENDING] * 3
    # live: now the schedule refuses, with the liveness evidence in the event
    decision = [p.observe(3, CARA, t, LIVE, TUESDAY_12) for t in (1.0, 1.1, 1.2)][-1]
    assert decision.verdict is Verdict.DENY_SCHEDULE
    assert decision.event_fields()["detail"]["liveness"] == "live"


def test_a_reload_keeps_the_rules():
    old = policy()
    new = AccessPolicy()
    new.carry_over(old)
    assert verdicts(new, CARA, TUESDAY_12)[-1] is Verdict.DENY_SCHEDULE


def test_rule_denials_are_logged_once_per_interval_like_unknown_faces():
    p = policy(unknown_log_interval_seconds=10.0)
    logged = []
    for frame in range(60):
        now = frame * 0.25
        decision = p.observe(1, CARA, now, None, TUESDAY_12)
        if p.should_log(decision, now):
            logged.append(now)
    assert logged == [0.5, 10.5]
