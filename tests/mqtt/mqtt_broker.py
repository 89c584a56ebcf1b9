"""A real mosquitto for the MQTT tests, and a real paho client that watches it.

:class:`Broker` runs mosquitto on free localhost ports: a plain listener and a TLS one (a CA
and a server certificate for 127.0.0.1 made with the ``openssl`` command,
:func:`make_certificates`), both needing a login from a password file made with
``mosquitto_passwd -b``. :class:`Subscriber` records every message it sees. Without
``mosquitto`` the tests skip with the reason, unless ``FACEGATE_REQUIRE_TESTDATA=1`` (CI, whose
``.ci/run`` installs it): then they fail. (A module of its own, not conftest.py, so that the
tests can import it under a name no other test folder uses.)
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

USER, PASSWORD = "door", "s3cret-door"
WAIT = 30.0  # seconds a message may take on a busy 2-core machine


def require(tool: str) -> str:
    """The path of ``tool``; a skip (a failure in CI) when it is not installed."""
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")
    if path is None:
        reason = f"{tool} is not installed (apt-get install mosquitto)"
        if os.environ.get("FACEGATE_REQUIRE_TESTDATA") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Certificates:
    """A CA, a server certificate it signed for 127.0.0.1, and a CA that signed nothing."""

    ca: Path
    server_cert: Path
    server_key: Path
    other_ca: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certificates(d: Path) -> Certificates:
    """A CA, a server certificate it signed for 127.0.0.1 and localhost, another CA."""
    require("openssl")
    for name in ("ca", "other-ca"):
        _openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", "-subj", f"/CN=test {name}",
            cwd=d,
        )  # fmt: skip
    (d / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1", cwd=d,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.cnf", cwd=d,
    )  # fmt: skip
    return Certificates(d / "ca.pem", d / "server.pem", d / "server.key", d / "other-ca.pem")


class Broker:
    """A mosquitto process; ``stop()`` and ``start()`` again keep the same ports."""

    def __init__(self, folder: Path, certificates: Certificates) -> None:
        self.folder = folder
        self.port = free_port()
        self.tls_port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log = folder / "mosquitto.log"
        passwords = folder / "passwords"
        subprocess.run(
            [require("mosquitto_passwd"), "-c", "-b", str(passwords), USER, PASSWORD],
            check=True,
            capture_output=True,
            timeout=30,
        )
        passwords.chmod(0o600)
        self.config = folder / "mosquitto.conf"
        self.config.write_text(
            # as root mosquitto would switch to its own user, which cannot read this folder
            "user root\n"
            # sessions and retained messages survive stop() and start(): a subscriber with a
            # persistent session misses nothing while the broker is down
            "persistence true\n"
            f"persistence_location {folder}/\n"
            "allow_anonymous false\n"
            f"password_file {passwords}\n"
            "log_dest stderr\n"
            "log_type all\n"
            f"listener {self.port} 127.0.0.1\n"
            f"listener {self.tls_port} 127.0.0.1\n"
            f"cafile {certificates.ca}\n"
            f"certfile {certificates.server_cert}\n"
            f"keyfile {certificates.server_key}\n"
        )

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        handle = self.log.open("a")
        self.proc = subprocess.Popen(
            [require("mosquitto"), "-c", str(self.config)], stdout=handle, stderr=handle
        )
        handle.close()
        deadline = time.monotonic() + WAIT
        for port in (self.port, self.tls_port):
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        log = self.log.read_text()
                        raise AssertionError(f"mosquitto did not start:\n{log}") from None
                    time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=WAIT)


@dataclass(frozen=True)
class Seen:
    """A message a subscriber received."""

    topic: str
    payload: bytes
    retain: bool
    properties: dict[str, str]
    #: the broker sent it again (to this subscriber, after a broker restart)
    dup: bool = False

    @property
    def text(self) -> str:
        return self.payload.decode()


class Subscriber:
    """A real MQTT 5 client on the broker, subscribed to ``topics``, keeping every message."""

    _count = 0

    def __init__(self, broker: Broker, *topics: str) -> None:
        self.messages: list[Seen] = []
        self._cond = threading.Condition()
        Subscriber._count += 1
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-subscriber-{os.getpid()}-{Subscriber._count}",
            protocol=paho.MQTTv5,
        )
        self.client.username_pw_set(USER, PASSWORD)
        self.client.reconnect_delay_set(1, 1)  # back soon after a broker restart
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()
        session = Properties(PacketTypes.CONNECT)
        session.SessionExpiryInterval = 3600  # the broker keeps our messages while we are away
        # (clean_start=False from the first connection: mosquitto 2.0 does not restore a session
        # that began clean after a restart)
        self.client.connect("127.0.0.1", broker.port, clean_start=False, properties=session)
        self.client.loop_start()
        self.client.subscribe([(topic, 1) for topic in topics or ("#",)])
        assert subscribed.wait(WAIT), "the test subscriber was not subscribed"

    def _on_message(self, client, userdata, message) -> None:
        props = getattr(message.properties, "UserProperty", None) or []
        seen = Seen(
            message.topic, bytes(message.payload), bool(message.retain), dict(props), message.dup
        )
        with self._cond:
            self.messages.append(seen)
            self._cond.notify_all()

    def on(self, topic: str) -> list[Seen]:
        with self._cond:
            return [m for m in self.messages if m.topic == topic]

    def wait_for(self, check: Callable[[list[Seen]], bool], timeout: float = WAIT) -> list[Seen]:
        """Wait until ``check(messages)`` holds; the messages then."""
        with self._cond:
            if not self._cond.wait_for(lambda: check(list(self.messages)), timeout):
                topics = [(m.topic, m.payload[:80]) for m in self.messages]
                raise AssertionError(f"not seen in time; messages: {topics}")
            return list(self.messages)

    def publish(self, topic: str, payload: str, **kwargs) -> None:
        self.client.publish(topic, payload, qos=1, **kwargs).wait_for_publish(WAIT)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
