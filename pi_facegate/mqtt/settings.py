"""What the publisher needs to know, resolved: names, topics, files, limits.

:class:`MqttSettings` is plain data, built from the ``mqtt:`` config section by
:mod:`pi_facegate.daemon.mqtt_link` (the one place that reads the section), so the publisher
and its tests know nothing of the config file. The defaults that depend on the machine are
filled in here: the door's name is the host name, the client id and the topic prefix are made
from it. Secrets are read here too, with the state directory's trust rules
(:mod:`pi_facegate.storage.trust`): a password or client key another user could read or have
written is refused, never merely warned about.
"""

from __future__ import annotations

import os
import re
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from pi_facegate.exc import MqttError
from pi_facegate.storage.trust import FileKind, check_private_file, open_private

# The trust rules refuse links, other users' files, files in a directory others may write,
# and (private_read) a secret that group or others may even read.
PASSWORD_FILE = FileKind("MQTT password file", MqttError, private_read=True, holds="a secret")
KEY_FILE = FileKind("MQTT client key", MqttError, private_read=True, holds="a secret")

_NOT_SLUG = re.compile(r"[^a-z0-9_-]+")


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for TLS: the broker's CA (None = the system's), a client certificate and key."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


@dataclass(frozen=True)
class MqttSettings:
    """The broker, the names and topics, and the limits of one door's MQTT link."""

    host: str
    port: int
    door_name: str
    client_id: str
    topic_prefix: str
    username: str | None = None
    password_file: Path | None = None
    tls: TlsFiles | None = None
    keepalive_seconds: int = 60
    protocol: str = "5"
    discovery_prefix: str | None = "homeassistant"
    health_interval_seconds: float = 60.0
    allow_remote_unlock: bool = False
    remote_unlock_per_minute: int = 3
    #: the door has a contact: Home Assistant gets a door sensor (else none that never changes)
    has_contact: bool = False

    @property
    def broker(self) -> str:
        """``host:port``, as messages and event details name the broker."""
        return f"{self.host}:{self.port}"

    @property
    def node_id(self) -> str:
        """The door's id in Home Assistant's discovery topics (``[a-z0-9_-]``)."""
        return slug(self.door_name)


def slug(name: str) -> str:
    """``name`` in lower case with every run of other characters than ``a-z0-9_-`` as ``-``.

    Home Assistant allows only those in a discovery node id, and topics made from a name stay
    easy to type in ``mosquitto_sub``. A name with none of them is ``door``.
    """
    return _NOT_SLUG.sub("-", name.lower()).strip("-") or "door"


def default_door_name() -> str:
    """This machine's host name (without a domain): what a door is called when not named."""
    return socket.gethostname().split(".")[0] or "door"


def default_client_id(door_name: str) -> str:
    """``pi-facegate-<door>``: unique per door on a shared broker, stable across restarts."""
    return f"pi-facegate-{slug(door_name)}"[:64]


def default_topic_prefix(door_name: str) -> str:
    """``pi-facegate/<door>``: one subtree per door."""
    return f"pi-facegate/{slug(door_name)}"


def read_password(path: Path) -> str:
    """The password on the first line of ``path``, refused unless only this user can read it.

    :raises MqttError: the file is missing, empty, a link, another user's, or readable or
        writable by group or others; the message names the file and the fix.
    """
    try:
        fd = open_private(Path(path), PASSWORD_FILE)
    except FileNotFoundError:
        raise MqttError(f"MQTT password file {path} does not exist (mqtt.password_file)") from None
    with os.fdopen(fd, "r", encoding="utf-8", errors="strict") as handle:
        try:
            password = handle.readline().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise MqttError(f"MQTT password file {path}: cannot read it: {exc}") from exc
    if not password:
        raise MqttError(f"MQTT password file {path} is empty: put the password on its first line")
    return password


def tls_context(files: TlsFiles) -> ssl.SSLContext:
    """A client TLS context that checks the broker's certificate and host name.

    The client key must be as private as the password. Loading every file now means a
    missing or broken one is reported once at start, not on every connection attempt.

    :raises MqttError: a file is missing, not PEM, or the key is not private.
    """
    for key, file in (("ca_file", files.ca_file), ("cert_file", files.cert_file)):
        if file is not None and not Path(file).is_file():
            raise MqttError(f"mqtt.tls.{key} {file} does not exist (or is not a file)")
    if files.key_file is not None:
        try:
            check_private_file(files.key_file, KEY_FILE)
        except FileNotFoundError:
            raise MqttError(f"MQTT client key {files.key_file} does not exist") from None
    try:
        context = ssl.create_default_context(
            cafile=None if files.ca_file is None else str(files.ca_file)
        )
        if files.cert_file is not None:
            key = None if files.key_file is None else str(files.key_file)
            context.load_cert_chain(str(files.cert_file), key)
    except (ssl.SSLError, OSError) as exc:
        raise MqttError(f"mqtt.tls: cannot load the certificates or key: {exc}") from exc
    return context
