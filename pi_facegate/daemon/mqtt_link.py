"""The daemon's side of MQTT: build the publisher from the config, and the calls the
service makes, each returning at once.

:func:`start_link` reads the ``mqtt:`` section (every key of it is read here and nowhere
else), reads the password and loads the TLS files, and starts the publisher. With MQTT off,
or when it cannot be set up (an unusable password file, a missing certificate: logged as an
ERROR naming the file and the fix), it returns a :class:`MqttLink` that does nothing, so the
service calls the same methods either way and the door works on without MQTT.

The service calls :meth:`MqttLink.recorded` after every event it records (the publisher looks
at the event log at once, and the lock, contact and last grant follow), :meth:`MqttLink.status`
where it writes its status file (the health), :meth:`MqttLink.serve` once per turn of the
frame loop (a remote unlock waiting: the relay pulses once, recorded with its origin) and
:meth:`MqttLink.close` after the door is locked and the event log closed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pi_facegate.config.mqtt import MqttConfig
from pi_facegate.config.schema import Config
from pi_facegate.door.controller import DoorController
from pi_facegate.exc import DoorError, FacegateError, MqttError
from pi_facegate.mqtt.cursor import Cursor, cursor_path
from pi_facegate.mqtt.remote import RemoteUnlock
from pi_facegate.mqtt.settings import (
    MqttSettings,
    TlsFiles,
    default_client_id,
    default_door_name,
    default_topic_prefix,
    read_password,
    tls_context,
)
from pi_facegate.mqtt.topics import CLOSED, OPEN, health_payload, state_changes
from pi_facegate.storage.events import EventLog

if TYPE_CHECKING:  # paho-mqtt (the [mqtt] extra) is imported only when MQTT is on
    from pi_facegate.mqtt.publisher import MqttPublisher

log = logging.getLogger("pi_facegate.service")  # journal name: the service's

#: ``record(kind, **fields)``: the service's way of recording an event
Recorder = Callable[..., None]


class MqttLink:
    """The service's handle on the publisher; with ``publisher=None`` every call does nothing."""

    def __init__(self, publisher: MqttPublisher | None = None) -> None:
        self.publisher = publisher

    def recorded(self, kind: str, fields: Mapping[str, Any]) -> None:
        """An event was recorded: wake the publisher, hand over the state it changes."""
        if self.publisher is None:
            return
        changes = state_changes(kind, fields, time.time())
        if changes:
            self.publisher.update_state(changes)
        self.publisher.wake()

    def status(self, state: Mapping[str, Any], last_decision: Mapping[str, Any] | None) -> None:
        """The status the daemon just wrote (``service_state``): the health message."""
        if self.publisher is not None:
            self.publisher.update_state(
                {"health": health_payload(state, last_decision, time.time())}
            )

    def serve(self, door: DoorController | None, record: Recorder) -> None:
        """One waiting remote command, if any: pulse the relay for an accepted UNLOCK (as
        the exit button does) and record it, or record its refusal. Never blocks."""
        remote = None if self.publisher is None else self.publisher.remote
        request = None if remote is None else remote.take()
        if request is None or door is None:
            return
        kind, detail = request.event()
        if request.accepted:
            try:
                door.unlock("remote", person=None)
            except DoorError as exc:
                log.error("remote unlock: the relay could not be driven: %s", exc)
                kind, detail = "remote_unlock_refused", {"reason": "door_error", **detail}
        record(kind, detail=detail)

    def close(self) -> None:
        """Stop the publisher: the last events, ``offline``, a clean disconnect."""
        if self.publisher is not None:
            self.publisher.stop()
            self.publisher = None


def mqtt_settings(section: MqttConfig, has_contact: bool) -> MqttSettings:
    """The section with the machine's defaults filled in (door name, client id, prefix)."""
    door_name = section.door_name or default_door_name()
    tls = section.tls
    return MqttSettings(
        host=section.host or "",
        port=section.port,
        door_name=door_name,
        client_id=section.client_id or default_client_id(door_name),
        topic_prefix=section.topic_prefix or default_topic_prefix(door_name),
        username=section.username,
        password_file=section.password_file,
        tls=None if tls is None else TlsFiles(tls.ca_file, tls.cert_file, tls.key_file),
        keepalive_seconds=section.keepalive_seconds,
        protocol=section.protocol,
        discovery_prefix=section.discovery_prefix,
        health_interval_seconds=section.health_interval_seconds,
        allow_remote_unlock=section.allow_remote_unlock,
        remote_unlock_per_minute=section.remote_unlock_per_minute,
        has_contact=has_contact,
    )


def make_publisher(settings: MqttSettings, events_path: Path) -> MqttPublisher:
    """The publisher, its secrets read and its cursor opened (a fresh one at the log's end).

    :raises MqttError: a password or key file that is missing or not private, TLS files
        that do not load, a cursor file that could have been planted.
    :raises EventLogError: the event log cannot be read.
    """
    try:
        from pi_facegate.mqtt.publisher import MqttPublisher
    except ImportError as exc:
        raise MqttError(
            f"paho-mqtt is not installed ({exc}): sudo tools/install_pi.sh --mqtt, or "
            "pip install 'pi-facegate[mqtt]'"
        ) from None
    password = None if settings.password_file is None else read_password(settings.password_file)
    context = None if settings.tls is None else tls_context(settings.tls)
    with EventLog(events_path) as events:
        end = events.last_id()
    cursor = Cursor.open(cursor_path(Path(events_path).parent), end)
    # off, commands are still heard, to be refused and recorded (reason "disabled")
    remote = RemoteUnlock(
        settings.remote_unlock_per_minute,
        settings.broker,
        settings.client_id,
        enabled=settings.allow_remote_unlock,
    )
    return MqttPublisher(settings, events_path, cursor, password, context, remote)


def start_link(config: Config, events_path: Path, door: DoorController | None) -> MqttLink:
    """The running link for the config, or one that does nothing (off, or not usable)."""
    if not config.mqtt.enabled:
        return MqttLink()
    settings = mqtt_settings(config.mqtt, has_contact=config.door.contact.pin is not None)
    try:
        publisher = make_publisher(settings, events_path)
    except FacegateError as exc:  # MqttError, EventLogError
        log.error("MQTT is on but cannot be set up; the door works on without it: %s", exc)
        return MqttLink()
    contact = None if door is None else door.is_door_open
    if contact is not None:
        publisher.update_state({"contact": OPEN if contact else CLOSED})
    publisher.start()
    return MqttLink(publisher)
