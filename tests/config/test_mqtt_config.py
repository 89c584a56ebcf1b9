"""The ``mqtt`` section: off by default, its rules, and every key read by the code."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pi_facegate.cli import main
from pi_facegate.config.loader import load_config, parse_config
from pi_facegate.config.mqtt import MqttConfig
from pi_facegate.daemon.mqtt_link import mqtt_settings
from pi_facegate.exc import ConfigError
from pi_facegate.mqtt.settings import TlsFiles, default_door_name

SAFE_REMOTE = {
    "enabled": True,
    "host": "broker.lan",
    "port": 8883,
    "username": "door",
    "password_file": "/etc/pi-facegate/mqtt-password",
    "tls": {"ca_file": "/etc/pi-facegate/ca.pem"},
    "allow_remote_unlock": True,
}


def mqtt(**keys) -> MqttConfig:
    return parse_config({"mqtt": keys}).mqtt


def test_off_by_default_with_the_documented_defaults():
    m = parse_config({}).mqtt
    assert m.enabled is False and m.allow_remote_unlock is False
    assert (m.port, m.keepalive_seconds, m.protocol) == (1883, 60, "5")
    assert m.discovery_prefix == "homeassistant" and m.health_interval_seconds == 60
    assert m.remote_unlock_per_minute == 3
    assert m.tls is None and m.username is None and m.password_file is None


def test_protocol_5_may_be_written_as_a_number_and_3_1_1_as_is():
    assert mqtt(protocol=5).protocol == "5"
    assert mqtt(protocol="3.1.1").protocol == "3.1.1"
    with pytest.raises(ConfigError, match="mqtt.protocol"):
        mqtt(protocol=4)


def test_tls_is_optional_and_an_empty_mapping_means_the_system_cas():
    assert mqtt(tls={}).tls is not None and mqtt(tls={}).tls.ca_file is None
    with pytest.raises(ConfigError, match="mqtt.tls.key_file .*cert_file"):
        mqtt(tls={"key_file": "client.key"})


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"enabled": True}, "mqtt.host: mqtt.enabled is true but mqtt.host names no broker"),
        ({"password_file": "/x"}, "mqtt.password_file: .*needs its user name"),
        ({"topic_prefix": "doors/+/x"}, "mqtt.topic_prefix: must not contain the MQTT wildcards"),
        ({"topic_prefix": "doors/"}, "mqtt.topic_prefix: must not start or end with '/'"),
        ({"discovery_prefix": "$SYS"}, "mqtt.discovery_prefix: must not start with"),
        ({"door_name": "front/back"}, "mqtt.door_name: must not contain '/'"),
        ({"port": 70000}, "mqtt.port: Input should be less than or equal to 65535"),
    ],
)
def test_bad_settings_name_their_key(keys, message):
    with pytest.raises(ConfigError, match=message):
        mqtt(**keys)


@pytest.mark.parametrize("missing", ["tls", "username", "password_file"])
def test_remote_unlock_needs_tls_and_a_login(missing):
    keys = {k: v for k, v in SAFE_REMOTE.items() if k != missing}
    if missing == "username":  # a password without its user is an error of its own
        keys.pop("password_file")
    with pytest.raises(ConfigError) as exc:
        mqtt(**keys)
    text = str(exc.value)
    assert text.startswith("mqtt.allow_remote_unlock: mqtt.allow_remote_unlock is true but")
    assert f"mqtt.{missing}" in text and "TLS to the broker (mqtt.tls) and a login" in text
    assert mqtt(**SAFE_REMOTE).allow_remote_unlock is True


def test_config_check_refuses_remote_unlock_without_tls(tmp_path: Path, capsys):
    path = tmp_path / "config.yaml"
    path.write_text(
        "mqtt:\n  enabled: true\n  host: 127.0.0.1\n  username: door\n"
        "  password_file: /etc/pi-facegate/mqtt-password\n  allow_remote_unlock: true\n"
    )
    assert main(["config", "check", str(path)]) == 1  # a config error's exit status
    err = capsys.readouterr().err
    assert f"{path}:6: mqtt.allow_remote_unlock:" in err and "mqtt.tls is not set" in err
    with pytest.raises(ConfigError):
        load_config(path)


def test_every_key_is_read_into_the_publishers_settings():
    """Each key but ``enabled`` (read by start_link) becomes the settings field of its name:
    a key nothing reads would be a defect."""
    values = {
        "host": "192.0.2.7",
        "port": 8883,
        "client_id": "door-7",
        "door_name": "Back Door",
        "topic_prefix": "site/doors/back",
        "username": "door",
        "password_file": "/etc/pi-facegate/pw",
        "tls": {"ca_file": "/ca.pem", "cert_file": "/c.pem", "key_file": "/c.key"},
        "keepalive_seconds": 30,
        "protocol": "3.1.1",
        "discovery_prefix": None,
        "health_interval_seconds": 15.0,
        "allow_remote_unlock": True,
        "remote_unlock_per_minute": 9,
    }
    assert sorted(values) == sorted(set(MqttConfig.model_fields) - {"enabled"})
    section = mqtt(enabled=True, **values)
    default = MqttConfig()
    settings = mqtt_settings(section, has_contact=True)
    fields = {f.name for f in dataclasses.fields(settings)}
    for key in values:
        assert key in fields, key
        assert getattr(section, key) != getattr(default, key), f"{key}: pick a non-default value"
        got = getattr(settings, key)
        want = getattr(section, key)
        if key == "tls":
            want = TlsFiles(Path("/ca.pem"), Path("/c.pem"), Path("/c.key"))
        assert got == want, key
    assert settings.node_id == "back-door" and settings.has_contact is True


def test_names_default_from_the_host_name():
    settings = mqtt_settings(mqtt(enabled=True, host="broker"), has_contact=False)
    door = default_door_name()
    assert settings.door_name == door
    assert settings.topic_prefix == f"pi-facegate/{settings.node_id}"
    assert settings.client_id == f"pi-facegate-{settings.node_id}"
