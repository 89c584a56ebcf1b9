"""The real daemon with MQTT on, against a real mosquitto.

``facegate run`` as a real subprocess (as systemd runs it) replaying Lin-Manuel Miranda's
walk-up from the Hamilton clip: the grant reaches the broker with the fields of ``facegate
events --json``, the discovery configs are retained, the door is ``online`` and then
``offline`` on SIGTERM, and ``offline`` again through the last will after ``kill -9``. In this
process (like tests/daemon): a broker refusing the login changes nothing at the door, and
remote unlock pulses gpiozero's MockFactory relay once when allowed, never when not.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from mqtt_broker import USER, Broker, Certificates, Subscriber
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from pi_facegate.cli import main
from pi_facegate.config.loader import load_config
from pi_facegate.daemon.service import DoorService, RunOptions
from pi_facegate.storage.events import EventLog

pytestmark = pytest.mark.slow

PREFIX = "pi-facegate/front"
WAIT = 120.0  # seconds a daemon may take to start or stop on a slow, busy 2-core machine
RELAY_PIN = 17


def write_config(path: Path, camera: dict, mqtt: dict) -> Path:
    document = {
        "camera": {"detect_width": 320, **camera},
        "mqtt": {"enabled": True, "host": "127.0.0.1", "door_name": "Front", **mqtt},
    }
    path.write_text(yaml.safe_dump(document))
    return path


def enrol_lin(facedata: Path, config: Path, state: Path) -> None:
    examples = facedata / "face_recognition_examples" / "examples"
    args = ["enroll", "--config", str(config), "--state-dir", str(state)]
    assert main([*args, "Lin-Manuel Miranda", str(examples / "lin-manuel-miranda.png")]) == 0


def availability(sub: Subscriber) -> list[str]:
    return [m.text for m in sub.on(f"{PREFIX}/availability")]


def daemon(config: Path, state: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    return subprocess.Popen(
        [sys.executable, "-m", "pi_facegate", "run", "--config", str(config), "--state-dir",
         str(state), "--simulate-gpio"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )  # fmt: skip


def test_a_grant_reaches_the_broker_and_the_door_goes_offline(
    facedata, lin_frames, tmp_path, broker: Broker, subscribe, password_file, in_process, capsys
):
    camera = {"type": "replay", "replay": {"path": str(lin_frames), "fps": 30, "loop": True}}
    login = {"port": broker.port, "username": USER, "password_file": str(password_file)}
    config = write_config(tmp_path / "config.yaml", camera, login)
    enrol_lin(facedata, config, tmp_path)
    sub = subscribe("#")

    proc = daemon(config, tmp_path)
    try:
        sub.wait_for(lambda ms: any(m.topic == f"{PREFIX}/event/granted" for m in ms), WAIT)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=WAIT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        stderr = proc.communicate()[1]
    sub.wait_for(lambda ms: availability(sub)[-1:] == ["offline"])
    assert availability(sub) == ["online", "offline"], stderr[-2000:]
    assert "Traceback" not in stderr and "MQTT: connected to" in stderr

    # the grant, as `facegate events --json` shows it
    capsys.readouterr()
    assert main(["events", "--json", "--events", str(tmp_path / "events.db")]) == 0
    logged = json.loads(capsys.readouterr().out)
    granted = json.loads(sub.on(f"{PREFIX}/event/granted")[0].payload)
    assert granted["person"] == "Lin-Manuel Miranda" and granted in logged
    # every event of the run, in order, "stopped" before "offline"; the past (enrolment
    # happened before MQTT was on) is not replayed
    events = [m for m in sub.messages if m.topic.startswith(f"{PREFIX}/event/")]
    assert [json.loads(m.payload) for m in events] == [e for e in logged if e["kind"] != "enrolled"]
    assert events[-1].topic == f"{PREFIX}/event/stopped"
    assert sub.messages.index(events[-1]) < sub.messages.index(sub.on(f"{PREFIX}/availability")[-1])
    assert sub.on(f"{PREFIX}/last_granted")[-1].retain is False  # seen live
    assert json.loads(sub.on(f"{PREFIX}/last_granted")[-1].payload)["name"] == "Lin-Manuel Miranda"

    late = subscribe("#")  # discovery configs and state are retained
    lock_config = "homeassistant/binary_sensor/front/lock/config"
    late.wait_for(lambda ms: {lock_config, f"{PREFIX}/availability"} <= {m.topic for m in ms})
    assert json.loads(late.on(lock_config)[0].payload)["device"]["model"] == "pi-facegate"
    assert late.on(f"{PREFIX}/availability")[0].text == "offline"

    # a second run, killed: the broker says offline through the last will
    proc = daemon(config, tmp_path)
    try:
        sub.wait_for(lambda ms: availability(sub)[-1:] == ["online"], WAIT)
        proc.kill()
        assert proc.wait(timeout=WAIT) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    sub.wait_for(lambda ms: availability(sub)[-1:] == ["offline"], 30)
    assert availability(sub) == ["online", "offline", "online", "offline"]
    ids = [int(m.properties["event_id"]) for m in sub.messages if "event_id" in m.properties]
    assert ids == sorted(set(ids)), "an event was published twice or out of order"


def test_a_broker_refusing_the_login_never_stops_the_door(
    facedata, lin_frames, tmp_path, broker: Broker, in_process, capfd
):
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password\n")
    wrong.chmod(0o600)
    login = {"port": broker.port, "username": USER, "password_file": str(wrong)}
    config = write_config(tmp_path / "config.yaml", {}, login)
    enrol_lin(facedata, config, tmp_path)
    args = ["run", "--config", str(config), "--state-dir", str(tmp_path), "--simulate-gpio"]
    assert main([*args, "--replay", str(lin_frames)]) == 0
    stderr = capfd.readouterr().err
    refusals = [line for line in stderr.splitlines() if "refused the login as 'door'" in line]
    assert len(refusals) == 1, stderr[-3000:]
    assert "ERROR" in refusals[0] and "mqtt.password_file" in refusals[0]
    kinds = [e.kind for e in EventLog(tmp_path / "events.db").query()]
    assert "granted" in kinds and "unlocked" in kinds


def blank_frames(folder: Path) -> Path:
    """An empty corridor: grey frames, nobody to let in; the loop just keeps turning."""
    folder.mkdir()
    for i in range(4):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((480, 640, 3), 90 + i, np.uint8))
    return folder


@contextmanager
def running(config: Path, state: Path) -> Iterator[DoorService]:
    """A DoorService in a thread, as ``facegate run --simulate-gpio``; stopped as by SIGTERM."""
    service = DoorService(RunOptions(config_path=config, state_dir=state, simulate_gpio=True),
                          load_config(config))  # fmt: skip
    thread = threading.Thread(target=service.run, name="DoorService", daemon=True)
    thread.start()
    try:
        assert service.ready_event.wait(WAIT)
        yield service
    finally:
        service.request_stop()
        thread.join(WAIT)
    assert not thread.is_alive()


def rises(pin) -> int:
    """How often the relay pin went active (high: active_high, fail_secure)."""
    states = [s.state for s in pin.states]
    return sum(1 for a, b in zip(states, states[1:], strict=False) if b and not a)


def command(sub: Subscriber, payload: str = "UNLOCK") -> None:
    properties = Properties(PacketTypes.PUBLISH)
    properties.UserProperty = ("requested_by", "test")
    sub.publish(f"{PREFIX}/lock/set", payload, properties=properties)


def wait_for_kinds(db: Path, kind: str, count: int, timeout: float = 30.0) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in EventLog(db).query() if e.kind == kind]
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} {kind!r} events in {db}")


def test_without_remote_unlock_an_unlock_command_is_refused_and_recorded(
    tmp_path, broker: Broker, subscribe, password_file
):
    camera = {"type": "replay", "replay": {"path": str(blank_frames(tmp_path / "f")), "fps": 20,
              "loop": True}}  # fmt: skip
    login = {"port": broker.port, "username": USER, "password_file": str(password_file)}
    config = write_config(tmp_path / "config.yaml", camera, login)
    sub = subscribe(f"{PREFIX}/#")
    with running(config, tmp_path) as service:
        assert service.mqtt.publisher.connected.wait(WAIT)
        relay = service.door.pin_factory.pin(RELAY_PIN)
        deadline = time.monotonic() + WAIT  # the subscription is made right after connecting
        while "pi-facegate-front 1 pi-facegate/front/lock/set" not in broker.log.read_text():
            assert time.monotonic() < deadline, "the door never subscribed to lock/set"
            time.sleep(0.05)
        command(sub)
        (refused,) = wait_for_kinds(tmp_path / "events.db", "remote_unlock_refused", 1)
        time.sleep(1.5)  # dozens of turns of the frame loop
    kinds = [e.kind for e in EventLog(tmp_path / "events.db").query()]
    assert not {"unlocked", "remote_unlock"} & set(kinds), kinds
    assert refused.detail["reason"] == "disabled" and refused.detail["via"] == "mqtt"
    assert rises(relay) == 0


def test_remote_unlock_over_tls_pulses_the_relay_once_and_is_rate_limited(
    tmp_path, broker: Broker, certificates: Certificates, subscribe, password_file
):
    camera = {"type": "replay", "replay": {"path": str(blank_frames(tmp_path / "f")), "fps": 20,
              "loop": True}}  # fmt: skip
    mqtt = {
        "port": broker.tls_port,
        "username": USER,
        "password_file": str(password_file),
        "tls": {"ca_file": str(certificates.ca)},
        "allow_remote_unlock": True,
        "remote_unlock_per_minute": 1,
    }
    config = write_config(tmp_path / "config.yaml", camera, mqtt)
    sub = subscribe(f"{PREFIX}/#")
    db = tmp_path / "events.db"
    with running(config, tmp_path) as service:
        assert service.mqtt.publisher.connected.wait(WAIT)
        relay = service.door.pin_factory.pin(RELAY_PIN)
        deadline = time.monotonic() + WAIT  # the subscription is made right after connecting
        while "pi-facegate-front 1 pi-facegate/front/lock/set" not in broker.log.read_text():
            assert time.monotonic() < deadline, "the door never subscribed to lock/set"
            time.sleep(0.05)
        command(sub)
        (accepted,) = wait_for_kinds(db, "remote_unlock", 1)
        command(sub)
        command(sub)
        refused = wait_for_kinds(db, "remote_unlock_refused", 2)
        sub.wait_for(lambda ms: any(m.topic == f"{PREFIX}/event/remote_unlock" for m in ms))
    assert rises(relay) == 1
    assert accepted.detail == {
        "via": "mqtt",
        "broker": f"127.0.0.1:{broker.tls_port}",
        "client_id": "pi-facegate-front",
        "topic": f"{PREFIX}/lock/set",
        "user_properties": {"requested_by": "test"},
    }
    assert [e.detail["reason"] for e in refused] == ["rate_limited", "rate_limited"]
    unlocked = [e for e in EventLog(db).query() if e.kind == "unlocked"]
    assert len(unlocked) == 1 and unlocked[0].detail["reason"] == "remote"
    lock_states = [m.text for m in sub.on(f"{PREFIX}/lock")]
    assert "unlocked" in lock_states and lock_states[-1] == "locked"
