"""Topic payloads and Home Assistant discovery configs (pure functions, no broker)."""

from __future__ import annotations

import json

import pytest

from pi_facegate import __version__
from pi_facegate.mqtt.discovery import EVENT_TYPES, DoorDevice, discovery_messages
from pi_facegate.mqtt.topics import Topics, health_payload, state_changes

TOPICS = Topics("pi-facegate/front")


def configs(**door) -> dict[str, dict | str]:
    device = DoorDevice(node_id="front", name="Front", sw_version=__version__, **door)
    messages = discovery_messages("homeassistant", device, TOPICS)
    return {topic: json.loads(payload) if payload else "" for topic, payload in messages}


def test_every_entity_is_tied_to_the_door_device_and_its_availability():
    found = configs(has_contact=True)
    entities = {topic: c for topic, c in found.items() if c}
    assert len(entities) == 5
    assert len({c["unique_id"] for c in entities.values()}) == 5
    for topic, config in entities.items():
        parts = topic.split("/")
        assert parts[0] == "homeassistant" and parts[2] == "front" and parts[4] == "config"
        assert config["availability_topic"] == "pi-facegate/front/availability"
        assert (config["payload_available"], config["payload_not_available"]) == (
            "online",
            "offline",
        )
        device = config["device"]
        assert device["identifiers"] == ["pi-facegate_front"] and device["name"] == "Front"
        assert device["model"] == "pi-facegate" and device["sw_version"] == __version__
        assert device["manufacturer"]


def test_without_remote_unlock_the_lock_is_a_read_only_sensor():
    found = configs()
    assert found["homeassistant/lock/front/lock/config"] == ""  # removed if it was there
    sensor = found["homeassistant/binary_sensor/front/lock/config"]
    assert sensor["device_class"] == "lock" and sensor["state_topic"] == TOPICS.lock
    assert (sensor["payload_on"], sensor["payload_off"]) == ("unlocked", "locked")
    assert not any("command_topic" in c for c in found.values() if c)


def test_with_remote_unlock_the_lock_takes_unlock_on_its_set_topic():
    found = configs(remote_unlock=True)
    lock = found["homeassistant/lock/front/lock/config"]
    assert lock["command_topic"] == "pi-facegate/front/lock/set"
    assert lock["payload_unlock"] == "UNLOCK" and lock["optimistic"] is False
    assert (lock["state_locked"], lock["state_unlocked"]) == ("locked", "unlocked")
    assert lock["retain"] is False
    assert found["homeassistant/binary_sensor/front/lock/config"] == ""


def test_the_contact_sensor_exists_only_with_a_contact():
    assert configs()["homeassistant/binary_sensor/front/contact/config"] == ""
    contact = configs(has_contact=True)["homeassistant/binary_sensor/front/contact/config"]
    assert contact["device_class"] == "door" and contact["state_topic"] == TOPICS.contact
    assert (contact["payload_on"], contact["payload_off"]) == ("open", "closed")


def test_sensors_and_the_access_event_entity():
    found = configs()
    last = found["homeassistant/sensor/front/last_granted/config"]
    assert last["state_topic"] == last["json_attributes_topic"] == TOPICS.last_granted
    health = found["homeassistant/sensor/front/health/config"]
    assert health["json_attributes_topic"] == TOPICS.health
    assert health["entity_category"] == "diagnostic"
    access = found["homeassistant/event/front/access/config"]
    assert access["state_topic"] == "pi-facegate/front/event/+"
    assert {"granted", "denied", "presentation_attack"} <= set(access["event_types"])
    assert access["event_types"] == list(EVENT_TYPES)
    assert "event_type" in access["value_template"] and "{% else %}{}" in access["value_template"]


@pytest.mark.parametrize(
    ("kind", "fields", "change"),
    [
        ("unlocked", {"detail": {"reason": "face"}}, {"lock": "unlocked"}),
        ("relocked", {}, {"lock": "locked"}),
        ("door_opened", {"detail": {"forced": False}}, {"contact": "open"}),
        ("door_closed", {}, {"contact": "closed"}),
        ("denied", {"detail": {"reason": "unknown"}}, {}),
        ("door_held_open", {}, {}),  # an event, not a state
    ],
)
def test_state_changes_follow_the_door(kind, fields, change):
    assert state_changes(kind, fields, 100.0) == change


def test_a_grant_is_the_last_person_let_in():
    change = state_changes("granted", {"person": "Ada"}, 0.0)
    assert change == {
        "last_granted": {"name": "Ada", "time": 0.0, "time_utc": "1970-01-01T00:00:00+00:00"}
    }


def test_health_takes_the_status_files_figures():
    state = {
        "fps": 14.96,
        "frames": 120,
        "grants": 2,
        "camera": {"source": "replay 'x'", "state": "ok"},
        "people": 3,
        "storage": {"trouble": None, "pending": 0, "dropped": 0},
    }
    decision = {"kind": "granted", "person": "Ada", "reason": None, "text": "granted Ada"}
    health = health_payload(state, decision, 10.0)
    assert health["status"] == "ok" and health["fps"] == 15.0 and health["people"] == 3
    assert health["camera"] == "ok" and health["last_decision"] == decision
    assert health["storage_trouble"] is None
    state["camera"] = {"source": "picamera2", "state": "failed: no frame for 5 s"}
    state["storage"] = {"trouble": "cannot write the event log: disk full (3 held)"}
    health = health_payload(state, None, 10.0)
    assert health["status"] == "camera failed: no frame for 5 s"
    assert health["problems"][1].startswith("cannot write the event log")
