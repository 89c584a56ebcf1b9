"""The publisher against a real mosquitto: events, state, discovery, outages, refusals.

Driven directly with a real :class:`EventWriter` on a private event file (no camera): the
daemon's own use of it is in ``test_mqtt_daemon.py``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mqtt_broker import USER, WAIT, Broker, Certificates, Subscriber

from pi_facegate.cli import main
from pi_facegate.daemon.mqtt_link import make_publisher
from pi_facegate.mqtt.publisher import MqttPublisher
from pi_facegate.mqtt.settings import MqttSettings, TlsFiles
from pi_facegate.storage.events import EventLog, EventWriter

PREFIX = "pi-facegate/front"


@pytest.fixture
def state(tmp_path: Path) -> Path:
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    return folder


@pytest.fixture
def writer(state: Path) -> Iterator[EventWriter]:
    with EventWriter(state / "events.db") as writer:
        writer.record("started")
        writer.flush()
        yield writer


def settings(broker: Broker, password_file: Path | None, **changes) -> MqttSettings:
    values = {
        "host": "127.0.0.1",
        "port": broker.port,
        "door_name": "Front",
        "client_id": "pi-facegate-front",
        "topic_prefix": PREFIX,
        "username": USER,
        "password_file": password_file,
    }
    values.update(changes)
    return MqttSettings(**values)


@pytest.fixture
def publishers() -> Iterator[list[MqttPublisher]]:
    made: list[MqttPublisher] = []
    yield made
    for publisher in made:
        publisher.stop()


def start(publishers: list, settings: MqttSettings, state: Path, **timing) -> MqttPublisher:
    publisher = make_publisher(settings, state / "events.db")
    for name, value in timing.items():
        setattr(publisher, name, value)
    publisher.start()
    publishers.append(publisher)
    return publisher


def event_messages(sub: Subscriber) -> list:
    return [m for m in sub.messages if m.topic.startswith(f"{PREFIX}/event/")]


def events_json(path: Path, capsys) -> list[dict]:
    capsys.readouterr()
    assert main(["events", "--json", "--events", str(path)]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_events_state_and_discovery_reach_the_broker(
    broker, subscribe, password_file, state, writer, publishers, capsys
):
    sub = subscribe("#")
    publisher = start(publishers, settings(broker, password_file), state)
    assert publisher.connected.wait(WAIT)
    writer.record("granted", person="Ada", distance=0.41, margin=0.2, detail={"track": 3})
    writer.record("denied", distance=0.7, detail={"reason": "unknown"})
    publisher.update_state({"lock": "unlocked", "health": {"status": "ok", "fps": 15.0}})
    publisher.wake()
    sub.wait_for(lambda ms: len([m for m in ms if m.topic.startswith(f"{PREFIX}/event/")]) == 2)
    sub.wait_for(lambda ms: any(m.topic == f"{PREFIX}/lock" and m.text == "unlocked" for m in ms))

    # a fresh cursor began at the end of the log: "started", logged before, is not published
    published = event_messages(sub)
    assert [m.topic for m in published] == [f"{PREFIX}/event/granted", f"{PREFIX}/event/denied"]
    # exactly the fields and values of `facegate events --json`
    cli = events_json(state / "events.db", capsys)
    assert [json.loads(m.payload) for m in published] == cli[1:]
    assert [m.properties["event_id"] for m in published] == ["2", "3"]

    late = subscribe("#")  # joins later: sees only what is retained
    wanted = {
        f"{PREFIX}/availability",
        f"{PREFIX}/lock",
        f"{PREFIX}/health",
        "homeassistant/binary_sensor/front/lock/config",
        "homeassistant/sensor/front/last_granted/config",
        "homeassistant/event/front/access/config",
        "homeassistant/sensor/front/health/config",
    }
    late.wait_for(lambda ms: wanted <= {m.topic for m in ms})
    retained = {m.topic: m for m in late.messages}
    assert all(m.retain for m in late.messages)
    assert retained[f"{PREFIX}/availability"].text == "online"
    assert retained[f"{PREFIX}/lock"].text == "unlocked"
    assert json.loads(retained[f"{PREFIX}/health"].payload)["fps"] == 15.0
    lock = json.loads(retained["homeassistant/binary_sensor/front/lock/config"].payload)
    assert lock["state_topic"] == f"{PREFIX}/lock" and "command_topic" not in lock
    assert not any(t.startswith(f"{PREFIX}/event/") for t in retained)  # never retained

    publisher.stop()
    sub.wait_for(lambda ms: ms[-1].topic == f"{PREFIX}/availability" and ms[-1].text == "offline")
    assert EventLog(state / "events.db").count() == 3  # the publisher only ever reads


@pytest.mark.slow
def test_an_outage_loses_no_event_and_never_holds_up_the_door(
    broker, subscribe, password_file, state, writer, publishers
):
    sub = subscribe(f"{PREFIX}/event/#")
    publisher = start(
        publishers, settings(broker, password_file), state, retry_initial_seconds=0.2,
        retry_max_seconds=0.5,
    )  # fmt: skip
    assert publisher.connected.wait(WAIT)
    for i in range(3):
        writer.record("denied", detail={"n": i})
    publisher.wake()
    sub.wait_for(lambda ms: len(ms) == 3)
    deadline = time.monotonic() + WAIT
    while publisher.cursor.value < 4 and time.monotonic() < deadline:
        time.sleep(0.02)  # every event before the outage acknowledged
    assert publisher.cursor.value == 4

    broker.stop()
    slowest = 0.0
    for i in range(3, 23):
        began = time.perf_counter()
        writer.record("denied", detail={"n": i})
        publisher.wake()
        publisher.update_state({"lock": "unlocked" if i % 2 else "locked"})
        slowest = max(slowest, time.perf_counter() - began)
        time.sleep(0.02)
    assert writer.flush(WAIT) and writer.written == 24
    assert slowest < 0.05, f"the door waited {slowest * 1e3:.1f} ms for the broker"
    assert not publisher.connected.is_set() and "127.0.0.1" in (publisher.problem or "")
    assert publisher.cursor.value == 4  # nothing acknowledged while the broker was away

    broker.start()
    # what the broker sends the test subscriber again after its own restart (DUP set: it had
    # not seen the subscriber's acknowledgement) is not the publisher's doing
    fresh = lambda ms: [m for m in ms if not m.dup]  # noqa: E731
    messages = fresh(sub.wait_for(lambda ms: len(fresh(ms)) >= 23))
    ids = [int(m.properties["event_id"]) for m in messages]
    assert ids == list(range(2, 25)), ids  # in order, no gap, none twice
    assert [json.loads(m.payload)["detail"]["n"] for m in messages] == list(range(23))
    deadline = time.monotonic() + WAIT
    while publisher.cursor.value < 24 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert publisher.cursor.value == 24
    assert (state / "mqtt-cursor").read_text() == "24\n"


@pytest.mark.slow
def test_a_wrong_password_is_one_clear_error_and_retried(
    broker, state, writer, publishers, tmp_path, caplog
):
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password\n")
    wrong.chmod(0o600)
    caplog.set_level(logging.DEBUG, "pi_facegate.mqtt")
    publisher = start(
        publishers, settings(broker, wrong), state, retry_initial_seconds=0.1,
        retry_max_seconds=0.2,
    )  # fmt: skip
    deadline = time.monotonic() + WAIT
    while caplog.text.count("(again)") < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, errors  # retried at least 4 times, said once
    assert f"MQTT broker 127.0.0.1:{broker.port} refused the login as 'door'" in errors[0]
    assert "check mqtt.username and the password in mqtt.password_file" in errors[0]
    assert not publisher.connected.is_set()
    assert writer.record("granted", person="Ada")  # the door's side goes on


@pytest.mark.slow
def test_an_untrusted_certificate_is_one_clear_error(
    broker, certificates: Certificates, password_file, state, writer, publishers, caplog
):
    caplog.set_level(logging.DEBUG, "pi_facegate.mqtt")
    tls = TlsFiles(ca_file=certificates.other_ca)
    publisher = start(
        publishers, settings(broker, password_file, port=broker.tls_port, tls=tls), state,
        retry_initial_seconds=0.1, retry_max_seconds=0.2,
    )  # fmt: skip
    deadline = time.monotonic() + WAIT
    while caplog.text.count("(again)") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, errors
    assert "its TLS certificate is not trusted" in errors[0] and "mqtt.tls.ca_file" in errors[0]
    assert not publisher.connected.is_set()


@pytest.mark.slow
def test_tls_with_the_right_ca_and_mqtt_3_1_1(
    broker, certificates: Certificates, subscribe, password_file, state, writer, publishers
):
    sub = subscribe(f"{PREFIX}/#")
    tls = TlsFiles(ca_file=certificates.ca)
    configured = settings(broker, password_file, port=broker.tls_port, tls=tls, protocol="3.1.1")
    publisher = start(publishers, configured, state)
    assert publisher.connected.wait(WAIT)
    writer.record("alarm", detail={"reason": "attempts"})
    publisher.wake()
    (message,) = sub.wait_for(lambda ms: any("/event/" in m.topic for m in ms))[-1:]
    assert message.topic == f"{PREFIX}/event/alarm" and message.properties == {}  # 3.1.1
    assert json.loads(message.payload)["detail"] == {"reason": "attempts"}
