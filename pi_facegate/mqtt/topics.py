"""Topic names and payloads: what a subscriber sees under ``<prefix>/`` (pure, no I/O).

=================================  =========================================  ========
topic                              payload                                    retained
=================================  =========================================  ========
``<prefix>/availability``          ``online`` / ``offline`` (also the will)   yes
``<prefix>/lock``                  ``locked`` / ``unlocked``                  yes
``<prefix>/contact``               ``open`` / ``closed`` (door contact only)  yes
``<prefix>/last_granted``          JSON ``{name, time, time_utc}``            yes
``<prefix>/health``                JSON (:func:`health_payload`)              yes
``<prefix>/event/<kind>``          JSON, the fields of ``facegate events      no
                                   --json`` (:meth:`Event.to_dict`)
``<prefix>/lock/set``              ``UNLOCK`` (to the door; remote unlock)    no
=================================  =========================================  ========

The state topics follow what the daemon does as it happens (:func:`state_changes`), the event
topics replay the event log in order, so a catch-up after an outage never makes the lock
look open again for an old event.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pi_facegate.storage.event_record import Event

ONLINE, OFFLINE = "online", "offline"
LOCKED, UNLOCKED = "locked", "unlocked"
OPEN, CLOSED = "open", "closed"
#: the one command the door takes, and only with ``mqtt.allow_remote_unlock``
UNLOCK_COMMAND = "UNLOCK"

#: which retained state an event of the log changes, and to what
_LOCK_KINDS = {"unlocked": UNLOCKED, "relocked": LOCKED}
_CONTACT_KINDS = {"door_opened": OPEN, "door_closed": CLOSED}


@dataclass(frozen=True)
class Topics:
    """Every topic of one door, under its prefix (``pi-facegate/<door>`` by default)."""

    prefix: str

    @property
    def availability(self) -> str:
        return f"{self.prefix}/availability"

    @property
    def lock(self) -> str:
        return f"{self.prefix}/lock"

    @property
    def lock_set(self) -> str:
        """Where an ``UNLOCK`` command is published (subscribed only with remote unlock on)."""
        return f"{self.prefix}/lock/set"

    @property
    def contact(self) -> str:
        return f"{self.prefix}/contact"

    @property
    def last_granted(self) -> str:
        return f"{self.prefix}/last_granted"

    @property
    def health(self) -> str:
        return f"{self.prefix}/health"

    @property
    def events(self) -> str:
        """Every event topic, as a subscription (``<prefix>/event/+``)."""
        return f"{self.prefix}/event/+"

    def event(self, kind: str) -> str:
        return f"{self.prefix}/event/{kind}"


def dumps(value: Any) -> str:
    """Compact JSON, as every JSON payload is sent (never NaN: the event log has none)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def event_payload(event: Event) -> str:
    """An event as ``facegate events --json`` prints it: the same fields, the same values."""
    return dumps(event.to_dict())


def last_granted_payload(person: str, when: float) -> dict[str, Any]:
    """Who was let in last, and when (epoch seconds and ISO 8601 UTC)."""
    return {"name": person, "time": when, "time_utc": _utc(when)}


def state_changes(kind: str, fields: Mapping[str, Any], when: float) -> dict[str, Any]:
    """The retained state a just-recorded event changes: ``{"lock": "unlocked"}``, ...

    ``fields`` are the keyword arguments the event was recorded with (``person``, ``detail``).
    """
    if kind in _LOCK_KINDS:
        return {"lock": _LOCK_KINDS[kind]}
    if kind in _CONTACT_KINDS:
        return {"contact": _CONTACT_KINDS[kind]}
    if kind == "granted" and fields.get("person"):
        return {"last_granted": last_granted_payload(str(fields["person"]), when)}
    return {}


def health_payload(
    state: Mapping[str, Any], last_decision: Mapping[str, Any] | None, when: float
) -> dict[str, Any]:
    """The door's health from the daemon's status (:func:`pi_facegate.daemon.status_file.service_state`).

    ``status`` is ``ok`` or the first problem (the camera's state, the event log's trouble):
    it is what Home Assistant shows; the rest become the sensor's attributes.
    """
    camera = state.get("camera") or {}
    storage = state.get("storage") or {}
    problems = []
    if camera.get("state", "ok") != "ok":
        problems.append(f"camera {camera.get('state')}")
    if storage.get("trouble"):
        problems.append(str(storage["trouble"]))
    fps = state.get("fps")
    return {
        "status": problems[0] if problems else "ok",
        "problems": problems,
        "fps": None if fps is None else round(float(fps), 1),
        "frames": state.get("frames"),
        "grants": state.get("grants"),
        "camera": camera.get("state"),
        "camera_source": camera.get("source"),
        "people": state.get("people"),
        "last_decision": None if last_decision is None else dict(last_decision),
        "storage_trouble": storage.get("trouble"),
        "events_pending": storage.get("pending"),
        "events_dropped": storage.get("dropped"),
        "time": when,
        "time_utc": _utc(when),
    }


def _utc(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).isoformat()
