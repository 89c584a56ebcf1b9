"""The publisher's cursor and the event log's ``after``; secrets; judging remote commands."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from pi_facegate.exc import MqttError
from pi_facegate.mqtt.cursor import Cursor, cursor_path
from pi_facegate.mqtt.remote import REFUSALS_RECORDED_PER_MINUTE, RateLimit, RemoteUnlock
from pi_facegate.mqtt.settings import read_password
from pi_facegate.storage.events import EventLog, EventWriter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def state(tmp_path: Path) -> Path:
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    return folder


def test_after_returns_ids_in_order_and_never_creates_the_file(state: Path):
    path = state / "events.db"
    with EventLog(path) as log:
        assert log.after(0) == [] and log.last_id() == 0
    assert not path.exists()
    with EventWriter(path) as writer:
        for kind in ("started", "granted", "unlocked", "relocked"):
            writer.record(kind)
        writer.flush()
    with EventLog(path) as log:
        pairs = log.after(1, limit=2)
        assert [(i, e.kind) for i, e in pairs] == [(2, "granted"), (3, "unlocked")]
        assert [i for i, _ in log.after(0)] == [1, 2, 3, 4] and log.last_id() == 4
        assert log.after(4) == []


def test_a_fresh_cursor_starts_at_the_end_of_the_log_and_is_saved_private(state: Path):
    path = cursor_path(state)
    cursor = Cursor.open(path, log_end=41)
    assert cursor.value == 41
    assert path.read_text() == "41\n" and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert cursor.advance(45) and not cursor.advance(44)
    assert Cursor.open(path, log_end=50).value == 45  # resumes where the broker got to


def test_a_cursor_beyond_the_log_or_unreadable_restarts_at_the_end(state: Path, caplog):
    path = cursor_path(state)
    Cursor(path, 900).save()
    with caplog.at_level(logging.WARNING, "pi_facegate.mqtt"):
        assert Cursor.open(path, log_end=12).value == 12
        path.write_text("garbage\n")
        assert Cursor.open(path, log_end=13).value == 13
    assert "was replaced" in caplog.text and "not an event id" in caplog.text


def test_a_cursor_others_may_write_is_refused(state: Path):
    path = cursor_path(state)
    Cursor(path, 3).save()
    path.chmod(0o666)
    with pytest.raises(MqttError, match="writable by group or others.*chmod 600"):
        Cursor.open(path, log_end=3)


def test_the_password_file_must_be_private(state: Path):
    path = state / "mqtt-password"
    path.write_text("hunter2\nignored\n")
    path.chmod(0o600)
    assert read_password(path) == "hunter2"
    path.chmod(0o640)
    with pytest.raises(MqttError, match=r"readable by group or others .*chmod 600"):
        read_password(path)
    with pytest.raises(MqttError, match="does not exist"):
        read_password(state / "missing")
    path.write_text("\n")
    path.chmod(0o600)
    with pytest.raises(MqttError, match="empty"):
        read_password(path)


def test_rate_limit_is_a_sliding_minute():
    clock = Clock()
    limit = RateLimit(2, clock=clock)
    assert limit.allow() and limit.allow() and not limit.allow()
    clock.now += 59.9
    assert not limit.allow()
    clock.now += 0.2
    assert limit.allow()


def remote(per_minute: int = 2) -> tuple[RemoteUnlock, Clock]:
    clock = Clock()
    return RemoteUnlock(per_minute, "broker:8883", "pi-facegate-front", clock=clock), clock


def test_unlock_is_accepted_with_its_origin_then_rate_limited():
    judge, _ = remote(per_minute=1)
    first = judge.handle("p/lock/set", b"UNLOCK", False, [("requested_by", "ha")])
    assert first is not None and first.accepted
    assert first.event() == (
        "remote_unlock",
        {
            "via": "mqtt",
            "broker": "broker:8883",
            "client_id": "pi-facegate-front",
            "topic": "p/lock/set",
            "user_properties": {"requested_by": "ha"},
        },
    )
    second = judge.handle("p/lock/set", b"UNLOCK", False)
    assert not second.accepted and second.event()[0] == "remote_unlock_refused"
    assert second.event()[1]["reason"] == "rate_limited"
    assert judge.take() == first and judge.take() == second and judge.take() is None


def test_with_remote_unlock_off_every_command_is_refused_as_disabled():
    judge = RemoteUnlock(3, "broker:1883", "pi-facegate-front", enabled=False)
    request = judge.handle("p/lock/set", b"UNLOCK", False)
    assert not request.accepted and request.event()[1]["reason"] == "disabled"
    assert judge.take() == request and judge.take() is None


@pytest.mark.parametrize(
    ("payload", "retained", "reason"),
    [
        (b"UNLOCK", True, "retained"),
        (b"LOCK", False, "unknown_command"),
        (b"", False, "unknown_command"),
    ],
)
def test_anything_but_a_fresh_unlock_is_refused(payload, retained, reason):
    judge, _ = remote()
    request = judge.handle("p/lock/set", payload, retained)
    assert not request.accepted and request.reason == reason


def test_refusals_recorded_are_limited_and_the_rest_counted():
    judge, clock = remote(per_minute=1)
    recorded = [judge.handle("t", b"LOCK", False) for _ in range(REFUSALS_RECORDED_PER_MINUTE + 5)]
    assert sum(r is not None for r in recorded) == REFUSALS_RECORDED_PER_MINUTE
    clock.now += 61
    later = judge.handle("t", b"LOCK", False)
    assert later.origin["suppressed"] == 5


def test_tls_files_are_loaded_at_start_and_the_client_key_must_be_private(
    state: Path, tmp_path: Path
):
    from mqtt_broker import make_certificates

    from pi_facegate.mqtt.settings import TlsFiles, tls_context

    pki = tmp_path / "pki"
    pki.mkdir()
    certs = make_certificates(pki)
    assert tls_context(TlsFiles(ca_file=certs.ca)) is not None
    with pytest.raises(MqttError, match=r"mqtt.tls.ca_file /nope.pem does not exist"):
        tls_context(TlsFiles(ca_file=Path("/nope.pem")))
    with pytest.raises(MqttError, match="cannot load the certificates"):
        tls_context(TlsFiles(ca_file=certs.server_key))  # not a certificate
    key = state / "client.key"
    key.write_bytes(certs.server_key.read_bytes())
    key.chmod(0o644)
    with pytest.raises(MqttError, match=r"MQTT client key .* readable by group or others"):
        tls_context(TlsFiles(cert_file=certs.server_cert, key_file=key))
    key.chmod(0o600)
    assert tls_context(TlsFiles(cert_file=certs.server_cert, key_file=key)) is not None


def test_without_paho_or_with_an_unusable_password_file_the_door_runs_without_mqtt(
    state: Path, monkeypatch, caplog
):
    import sys

    from pi_facegate.config.loader import parse_config
    from pi_facegate.daemon.mqtt_link import start_link

    password = state / "mqtt-password"
    password.write_text("hunter2\n")
    password.chmod(0o644)
    keys = {"enabled": True, "host": "127.0.0.1", "username": "door"}
    config = parse_config({"mqtt": {**keys, "password_file": str(password)}})
    with caplog.at_level(logging.ERROR, "pi_facegate.service"):
        link = start_link(config, state / "events.db", door=None)
    assert link.publisher is None
    assert "MQTT is on but cannot be set up; the door works on without it" in caplog.text
    assert f"chmod 600 {password}" in caplog.text
    link.recorded("granted", {"person": "Ada"})  # the service's calls do nothing
    link.serve(None, lambda *a, **k: pytest.fail("nothing to record"))
    link.close()

    caplog.clear()
    for name in [
        m
        for m in sys.modules
        if m.startswith(("paho", "pi_facegate.mqtt.publisher", "pi_facegate.mqtt.client"))
    ]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "paho", None)  # the [mqtt] extra is not installed
    with caplog.at_level(logging.ERROR, "pi_facegate.service"):
        link = start_link(parse_config({"mqtt": keys}), state / "events.db", door=None)
    assert link.publisher is None and "paho-mqtt is not installed" in caplog.text
    assert "install_pi.sh --mqtt" in caplog.text
