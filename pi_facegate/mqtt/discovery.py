"""Home Assistant MQTT discovery: the retained configs that make the door appear (pure).

Each entity's config goes to ``<discovery_prefix>/<component>/<node_id>/<object_id>/config``
(retained), all of them tied to one device (the door) and to the availability topic, so Home
Assistant greys them out when the door is offline (its last will). The entities:

* the lock: a ``lock`` with a command topic when remote unlock is allowed, else a read-only
  ``binary_sensor`` of class ``lock`` (an MQTT ``lock`` always has an unlock button, and a
  button that does nothing would mislead);
* the door contact: a ``binary_sensor`` of class ``door`` (only when a contact is wired);
* the last person let in: a ``sensor`` with the time as an attribute;
* the access events: an ``event`` entity fed from ``<prefix>/event/+`` whose template keeps
  only :data:`EVENT_TYPES` (other kinds render ``{}``, which Home Assistant ignores);
* the health: a diagnostic ``sensor``, the figures as its attributes.

An entity this door no longer has (the other form of the lock, a contact taken out) gets an
empty retained config, which is how Home Assistant is told to remove it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pi_facegate.mqtt.topics import (
    CLOSED,
    LOCKED,
    OFFLINE,
    ONLINE,
    OPEN,
    UNLOCK_COMMAND,
    UNLOCKED,
    Topics,
    dumps,
)

MODEL = "pi-facegate"
MANUFACTURER = "pi-facegate"
#: the event kinds the Home Assistant ``event`` entity fires for
EVENT_TYPES = (
    "granted",
    "denied",
    "presentation_attack",
    "alarm",
    "door_forced",
    "door_held_open",
    "remote_unlock",
    "remote_unlock_refused",
)


@dataclass(frozen=True)
class DoorDevice:
    """What discovery says about the door: its ids and names, and what it can do."""

    node_id: str
    name: str
    sw_version: str
    remote_unlock: bool = False
    has_contact: bool = False


def config_topic(prefix: str, component: str, node_id: str, object_id: str) -> str:
    return f"{prefix}/{component}/{node_id}/{object_id}/config"


def discovery_messages(prefix: str, door: DoorDevice, topics: Topics) -> list[tuple[str, str]]:
    """``(topic, payload)`` of every discovery config to publish retained; ``""`` removes one."""
    lock_entity = ("lock", _lock(door, topics)) if door.remote_unlock else None
    lock_sensor = None if door.remote_unlock else ("binary_sensor", _lock_sensor(door, topics))
    contact = ("binary_sensor", _contact(door, topics)) if door.has_contact else None
    wanted = {
        ("lock", "lock"): lock_entity,
        ("binary_sensor", "lock"): lock_sensor,
        ("binary_sensor", "contact"): contact,
        ("sensor", "last_granted"): ("sensor", _last_granted(door, topics)),
        ("event", "access"): ("event", _access(door, topics)),
        ("sensor", "health"): ("sensor", _health(door, topics)),
    }
    messages = []
    for (component, object_id), entity in wanted.items():
        payload = "" if entity is None else dumps(entity[1])
        messages.append((config_topic(prefix, component, door.node_id, object_id), payload))
    return messages


def _common(door: DoorDevice, topics: Topics, object_id: str, name: str) -> dict:
    """What every entity's config carries: ids, availability, the device."""
    return {
        "name": name,
        "unique_id": f"pi-facegate_{door.node_id}_{object_id}",
        "availability_topic": topics.availability,
        "payload_available": ONLINE,
        "payload_not_available": OFFLINE,
        "qos": 1,
        "device": {
            "identifiers": [f"pi-facegate_{door.node_id}"],
            "name": door.name,
            "model": MODEL,
            "manufacturer": MANUFACTURER,
            "sw_version": door.sw_version,
        },
        "origin": {"name": MODEL, "sw_version": door.sw_version},
    }


def _lock(door: DoorDevice, topics: Topics) -> dict:
    """The lock with an unlock button: only UNLOCK is acted on (a LOCK is refused and logged:
    the door relocks by itself)."""
    return {
        **_common(door, topics, "lock", "Lock"),
        "state_topic": topics.lock,
        "state_locked": LOCKED,
        "state_unlocked": UNLOCKED,
        "command_topic": topics.lock_set,
        "payload_unlock": UNLOCK_COMMAND,
        "optimistic": False,
        "retain": False,
    }


def _lock_sensor(door: DoorDevice, topics: Topics) -> dict:
    """The lock, read-only: class ``lock`` is on while unlocked."""
    return {
        **_common(door, topics, "lock", "Lock"),
        "device_class": "lock",
        "state_topic": topics.lock,
        "payload_on": UNLOCKED,
        "payload_off": LOCKED,
    }


def _contact(door: DoorDevice, topics: Topics) -> dict:
    return {
        **_common(door, topics, "contact", "Door"),
        "device_class": "door",
        "state_topic": topics.contact,
        "payload_on": OPEN,
        "payload_off": CLOSED,
    }


def _last_granted(door: DoorDevice, topics: Topics) -> dict:
    return {
        **_common(door, topics, "last_granted", "Last person let in"),
        "state_topic": topics.last_granted,
        "value_template": "{{ value_json.name }}",
        "json_attributes_topic": topics.last_granted,
        "icon": "mdi:account-key",
    }


def _access(door: DoorDevice, topics: Topics) -> dict:
    kinds = json.dumps(list(EVENT_TYPES))
    template = (
        f"{{% if value_json.kind in {kinds} %}}"
        "{{ {'event_type': value_json.kind, 'person': value_json.person, "
        "'reason': value_json.detail.get('reason'), 'time': value_json.time_utc} | to_json }}"
        "{% else %}{}{% endif %}"
    )
    return {
        **_common(door, topics, "access", "Access"),
        "state_topic": topics.events,
        "event_types": list(EVENT_TYPES),
        "value_template": template,
        "icon": "mdi:door-closed-lock",
    }


def _health(door: DoorDevice, topics: Topics) -> dict:
    return {
        **_common(door, topics, "health", "Health"),
        "state_topic": topics.health,
        "value_template": "{{ value_json.status }}",
        "json_attributes_topic": topics.health,
        "entity_category": "diagnostic",
        "icon": "mdi:heart-pulse",
    }
