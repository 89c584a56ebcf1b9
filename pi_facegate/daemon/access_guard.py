"""The daemon's access rules and alarms: the wall clock, schedules, attempt limits.

:class:`AccessGuard` is what :class:`~pi_facegate.daemon.service.DoorService` asks about
time and alarms, so the frame loop stays about frames:

* **the wall clock**: the local time (``access.timezone``, else the system's zone) that
  schedules and validity dates are read in, taken once per frame from an injectable clock
  (tests move it past midnight);
* **the rules**: the config's schedules joined with each person's rules from the gallery
  snapshot, rebuilt when either changes; a person on a schedule the config lacks is logged
  (and refused by the policy, never let in);
* **the one alarm path**: K refused faces within T seconds (:mod:`pi_facegate.core.attempts`),
  a door forced open and a door held open each become an ``alarm`` event (reason
  ``attempts``, ``forced_open``, ``held_open``; the door's own events are kept) and the
  buzzer's alarm pattern; an MQTT publisher reading the event log sees them all alike;
* **the slowdown** after an attempts alarm: faces that are not an enrolled, valid person are
  held back from the policy (no decision, no denial, no LED), enrolled people are not.

Door events arrive on gpiozero's and the relock timer's threads; recording an event and
signalling are thread-safe, and the attempt count is touched only by the frame loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pi_facegate.config.schema import Config
from pi_facegate.core.access_rules import AccessRules
from pi_facegate.core.matcher import GalleryIndex
from pi_facegate.core.policy import Decision, FaceMatch, Verdict
from pi_facegate.core.schedule import local_time
from pi_facegate.daemon import wiring as components

log = logging.getLogger("pi_facegate.service")  # journal name: stable across moves

#: refusals that count as an attempt (each face once): strangers, attacks and people whose
#: time is not now -- not an enrolled person an administrator disabled or has yet to approve
ATTEMPT_VERDICTS = frozenset(
    {
        Verdict.DENY_UNKNOWN,
        Verdict.DENY_DOUBTFUL,
        Verdict.DENY_ATTACK,
        Verdict.DENY_NO_LIVENESS,
        Verdict.DENY_SCHEDULE,
        Verdict.DENY_EXPIRED,
        Verdict.DENY_NOT_YET_VALID,
    }
)
#: door events that are alarms as well, and the alarm's reason
DOOR_ALARMS = {"door_forced": "forced_open", "door_held_open": "held_open"}

Recorder = Callable[..., None]  # record(kind, detail=...)
Signaller = Callable[[str], None]  # signal(pattern name)


class AccessGuard:
    """Local time, access rules, attempt limits and alarms for the door daemon.

    :param config: the running config (``access.timezone``, ``access.alarm``, ``schedules``).
    :param record: ``record(kind, detail=...)`` writes an event (the service's recorder).
    :param signal: ``signal(name)`` shows an LED/buzzer pattern.
    :param wall_clock: seconds since the epoch (``time.time``); schedules are read in it.
    """

    def __init__(
        self,
        config: Config,
        record: Recorder,
        signal: Signaller,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.record = record
        self.signal = signal
        self.wall_clock = wall_clock
        self.alarms = 0
        self.limiter = components.make_attempt_limiter(config)
        self.zone = components.time_zone(config)
        self.schedules = components.make_schedules(config)

    def reload(self, config: Config) -> None:
        """Apply a new config; the attempt count and a running slowdown are kept."""
        limiter = components.make_attempt_limiter(config)
        limiter.carry_over(self.limiter)
        self.limiter = limiter
        self.zone = components.time_zone(config)
        self.schedules = components.make_schedules(config)

    # ------------------------------------------------------------------ time and rules
    def local_now(self) -> datetime | None:
        """The door's local wall-clock time now; ``None`` (rules then refuse) if unusable."""
        try:
            return local_time(self.wall_clock(), self.zone)
        except (OverflowError, OSError, ValueError) as exc:
            log.error("the wall clock is unusable (%s): people with access rules are refused", exc)
            return None

    def rules_for(self, index: GalleryIndex) -> AccessRules:
        """The config's schedules with the rules of the people in ``index``; logs a person on
        a schedule the config does not define (the policy refuses them, reason schedule)."""
        rules = AccessRules(self.schedules, index.rules)
        names = dict(zip(index.person_ids.tolist(), index.names, strict=True))
        for person, schedule in rules.missing_schedules().items():
            log.warning(
                "%s is on schedule %r, which the config does not define: they are denied "
                "(reason schedule) until it is added under schedules: or changed with "
                "facegate people set NAME --schedule/--no-schedule",
                names.get(person, f"person {person}"),
                schedule,
            )
        return rules

    # ------------------------------------------------------------------ attempts and alarms
    def holds_back(
        self, match: FaceMatch | None, now: float, rules: AccessRules, local: datetime | None
    ) -> bool:
        """True when a face is not decided: a slowdown runs and it is not an enrolled,
        enabled, approved person whose rules allow them in now."""
        if not self.limiter.slowed(now):
            return False
        if match is None or not match.accepted:
            return True
        return rules.check(int(match.person_id), local) is not None

    def judged(self, decision: Decision, now: float) -> None:
        """Count a refused face towards the attempt limit; raise the alarm on the K-th."""
        if decision.verdict not in ATTEMPT_VERDICTS:
            return
        alarm = self.limiter.refused(decision.track_id, now)
        if alarm is not None:
            self.raise_alarm(alarm.detail())

    def door_event(self, kind: str, details: dict[str, Any]) -> None:
        """A door forced or held open is an alarm too (after the door's own event)."""
        reason = DOOR_ALARMS.get(kind)
        if reason is not None:
            self.raise_alarm({"reason": reason, **details})

    def raise_alarm(self, detail: dict[str, Any]) -> None:
        """The one way an alarm is raised: an ``alarm`` event, then the buzzer pattern."""
        self.alarms += 1
        self.record("alarm", detail=detail)
        try:
            self.signal("alarm")
        except Exception:  # noqa: BLE001 - a buzzer never stops the door
            log.exception("the alarm signal failed")
