"""The publisher: a background thread that keeps the broker up to date with the door.

:class:`MqttPublisher` owns everything MQTT: one thread makes a paho client per connection
attempt (:mod:`pi_facegate.mqtt.client`), runs its network loop, and between two turns of it
publishes what changed. The daemon only ever calls methods that return at once --
:meth:`~MqttPublisher.wake` after it records an event, :meth:`~MqttPublisher.update_state`
with the lock, the contact, the last grant and the health -- so a broker that is slow, gone
or refusing the door's login never holds up a frame, and the door works on without it.

On every connection the publisher announces the door: ``online`` on the availability topic
(retained; the last will says ``offline`` if the process dies), the Home Assistant discovery
configs, the current state; then it catches up on the event log from its cursor
(:mod:`pi_facegate.mqtt.cursor`), in id order, QoS 1, at most :attr:`max_in_flight` events
unacknowledged. The cursor moves only past events the broker acknowledged (PUBACK), in order:
at-least-once. An event is sent twice only when a connection breaks after the broker took it
and before its acknowledgement came back; MQTT 5 subscribers can spot that by the
``event_id`` user property.

A failure (broker down, wrong password, untrusted certificate) is logged once per distinct
failure, with what to check, and retried after a wait that doubles up to
:attr:`retry_max_seconds`. :meth:`~MqttPublisher.stop` (the daemon's SIGTERM path) catches up
briefly, publishes ``offline`` and disconnects cleanly.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho

from pi_facegate import __version__
from pi_facegate.exc import FacegateError
from pi_facegate.mqtt.client import (
    connect,
    connect_problem,
    event_properties,
    make_client,
    refusal_problem,
    subscribe_commands,
    user_properties,
)
from pi_facegate.mqtt.cursor import Cursor
from pi_facegate.mqtt.discovery import DoorDevice, discovery_messages
from pi_facegate.mqtt.remote import RemoteUnlock
from pi_facegate.mqtt.settings import MqttSettings
from pi_facegate.mqtt.topics import LOCKED, OFFLINE, ONLINE, Topics, dumps, event_payload
from pi_facegate.storage.events import EventLog

log = logging.getLogger("pi_facegate.mqtt")

#: the retained state the daemon hands over (:meth:`MqttPublisher.update_state`)
STATE_KEYS = ("lock", "contact", "last_granted", "health")


class _Connection:
    """What one connection has seen: the CONNACK, its end, the acknowledgements it awaits.

    Its callbacks run on the publisher's thread (inside ``client.loop``), so it needs no lock.
    """

    def __init__(self) -> None:
        self.connack: Any = None
        self.closed = False
        self.close_reason = ""
        self.in_flight: deque[tuple[int, int]] = deque()  # (event id, message id), in order
        self.acks: dict[int, Any] = {}
        self._expected: set[int] = set()

    def expect(self, mid: int) -> None:
        """Remember the acknowledgement of message ``mid`` (others are not kept)."""
        self._expected.add(mid)

    def acked(self, mid: int) -> bool:
        return mid in self.acks

    def on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connack = reason_code

    def on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.closed = True
        self.close_reason = str(reason_code)

    def on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        if mid in self._expected:
            self._expected.discard(mid)
            self.acks[mid] = reason_code


class MqttPublisher:
    """Publishes the door's events and state from its own thread; every public method is
    quick and thread-safe.

    :param settings: the broker, names and limits.
    :param events_path: the event log (read only, never created).
    :param cursor: where the broker's acknowledgements have got to.
    :param password: the login's password (read from ``password_file`` by the caller).
    :param tls: the TLS context, or None for plain TCP.
    :param remote: the judge of remote unlock commands; None: nothing is subscribed.
    """

    #: seconds before the first reconnection attempt; the wait doubles per failure ...
    retry_initial_seconds = 1.0
    #: ... up to this
    retry_max_seconds = 60.0
    #: events published and not yet acknowledged at most
    max_in_flight = 20
    #: seconds between two looks at the event log when not woken
    poll_seconds = 0.5
    #: seconds one turn of the network loop waits for traffic
    loop_seconds = 0.05
    #: seconds to wait for the broker's CONNACK
    connack_timeout_seconds = 15.0
    #: seconds ``stop`` gives the last events and ``offline``
    stop_grace_seconds = 3.0

    def __init__(
        self,
        settings: MqttSettings,
        events_path: Path,
        cursor: Cursor,
        password: str | None = None,
        tls: ssl.SSLContext | None = None,
        remote: RemoteUnlock | None = None,
    ) -> None:
        self.settings = settings
        self.topics = Topics(settings.topic_prefix)
        self.events_path = Path(events_path)
        self.cursor = cursor
        self.remote = remote
        self._password = password
        self._tls = tls
        self._mutex = threading.Lock()
        self._state: dict[str, Any] = {key: None for key in STATE_KEYS}
        self._state["lock"] = LOCKED  # the door starts locked: the daemon's first act
        self._dirty: set[str] = set()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_poll = 0.0
        self._next_health = 0.0
        self._last_logged: str | None = None
        #: set while connected and announced (tests and status read it)
        self.connected = threading.Event()
        #: the last failure, None while all is well
        self.problem: str | None = None
        #: events the broker acknowledged since start
        self.published = 0

    # -- the daemon's side (any thread, never blocking) ----------------------------------

    def start(self) -> None:
        """Start the thread; the first connection attempt is made at once."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="MqttPublisher", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """An event was recorded: look at the event log now rather than at the next poll."""
        self._wake.set()

    def update_state(self, changes: Mapping[str, Any]) -> None:
        """New values of retained state (:data:`STATE_KEYS`); each is published once changed."""
        with self._mutex:
            for key, value in changes.items():
                if key not in self._state:
                    raise ValueError(f"unknown MQTT state {key!r}; the keys are {STATE_KEYS}")
                if self._state[key] != value:
                    self._state[key] = value
                    self._dirty.add(key)
        self._wake.set()

    def stop(self, timeout: float | None = None) -> None:
        """Publish what is left and ``offline``, disconnect, end the thread. Idempotent."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        self._stop.set()
        self._wake.set()
        thread.join(self.stop_grace_seconds + 5.0 if timeout is None else timeout)
        if thread.is_alive():
            log.warning("MQTT publisher did not stop in time; the broker will send its last will")

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        events = EventLog(self.events_path)
        delay = self.retry_initial_seconds
        try:
            self._remember_last_grant(events)
            while not self._stop.is_set():
                if self._serve_connection(events):
                    delay = self.retry_initial_seconds
                if self._stop.wait(delay):
                    break
                delay = min(delay * 2, self.retry_max_seconds)
        except Exception:  # noqa: BLE001 - the door works on without MQTT
            log.exception("MQTT publisher stopped by an unexpected error; the door works on")
        finally:
            events.close()
            self.connected.clear()

    def _remember_last_grant(self, events: EventLog) -> None:
        """Home Assistant shows who was let in last even right after a restart."""
        try:
            last = events.query(kinds=["granted"], limit=1)
        except FacegateError as exc:
            log.warning("MQTT: cannot read the last grant from the event log: %s", exc)
            return
        if last and last[0].person:
            with self._mutex:
                if self._state["last_granted"] is None:
                    self._state["last_granted"] = {
                        "name": last[0].person,
                        "time": last[0].time,
                        "time_utc": last[0].to_dict()["time_utc"],
                    }

    def _serve_connection(self, events: EventLog) -> bool:
        """Connect, announce, publish until the connection ends or ``stop``; True if the
        connection was good (the next attempt need not wait longer)."""
        link = _Connection()
        client = make_client(self.settings, self._password, self._tls)
        client.on_connect = link.on_connect
        client.on_disconnect = link.on_disconnect
        client.on_publish = link.on_publish
        client.on_message = self._on_message
        try:
            connect(client, self.settings)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            self._trouble(connect_problem(exc, self.settings))
            return False
        try:
            if not self._await_connack(client, link):
                return False
            self._announce(client)
            return self._serve(client, link, events)
        finally:
            self.connected.clear()
            if not link.closed:
                client.disconnect()

    def _await_connack(self, client: paho.Client, link: _Connection) -> bool:
        deadline = time.monotonic() + self.connack_timeout_seconds
        while link.connack is None and not link.closed and not self._stop.is_set():
            if time.monotonic() > deadline:
                self._trouble(f"MQTT broker {self.settings.broker}: no answer to the login")
                return False
            client.loop(self.loop_seconds)
        if link.connack is None:
            if not self._stop.is_set():
                self._trouble(
                    f"MQTT broker {self.settings.broker} closed the connection before accepting "
                    "the login (a TLS port without mqtt.tls?)"
                )
            return False
        if link.connack.is_failure:
            self._trouble(refusal_problem(link.connack, self.settings))
            return False
        return True

    def _announce(self, client: paho.Client) -> None:
        """``online``, the discovery configs, every known state; then the command topic."""
        client.publish(self.topics.availability, ONLINE, qos=1, retain=True)
        prefix = self.settings.discovery_prefix
        if prefix is not None:
            for topic, payload in discovery_messages(prefix, self._device(), self.topics):
                client.publish(topic, payload, qos=1, retain=True)
        with self._mutex:
            self._dirty = {key for key, value in self._state.items() if value is not None}
        self._next_health = 0.0
        self._next_poll = 0.0
        if self.remote is not None:
            subscribe_commands(client, self.settings, self.topics.lock_set)
        self._connected()

    def _device(self) -> DoorDevice:
        s = self.settings
        return DoorDevice(
            node_id=s.node_id,
            name=s.door_name,
            sw_version=__version__,
            remote_unlock=self.remote is not None and self.remote.enabled,
            has_contact=s.has_contact,
        )

    def _serve(self, client: paho.Client, link: _Connection, events: EventLog) -> bool:
        """The connection's life: network loop and publishing, then its end; False if it
        ended because the event log could not be read."""
        sent = self.cursor.value
        try:
            while not link.closed and not self._stop.is_set():
                client.loop(self.loop_seconds)
                sent = self._pump(client, link, events, sent)
            if link.closed:
                reason = link.close_reason
                said = "" if reason in ("", "Success", "Unspecified error") else f" ({reason})"
                self._trouble(
                    f"MQTT broker {self.settings.broker}: connection lost{said}", logging.WARNING
                )
            else:
                self._goodbye(client, link, events, sent)
        except FacegateError as exc:  # the event log cannot be read: say so, try later
            self._trouble(f"MQTT publisher: {exc}")
            if not link.closed:
                self._say_offline(client, link, time.monotonic() + 1.0)
            return False
        return True

    def _pump(self, client: paho.Client, link: _Connection, events: EventLog, sent: int) -> int:
        """Publish changed state and new events; move the cursor past acknowledged ones."""
        self._publish_state(client)
        now = time.monotonic()
        if self._wake.is_set() or now >= self._next_poll:
            self._wake.clear()
            self._next_poll = now + self.poll_seconds
            sent = self._publish_events(client, link, events, sent)
        self._advance(link)
        return sent

    def _publish_state(self, client: paho.Client) -> None:
        now = time.monotonic()
        with self._mutex:
            due = {k for k in self._dirty if k != "health" or now >= self._next_health}
            values = {key: self._state[key] for key in due}
            self._dirty -= due
        for key, value in values.items():
            if value is None:
                continue
            if key == "health":
                self._next_health = now + self.settings.health_interval_seconds
            payload = value if isinstance(value, str) else dumps(value)
            client.publish(getattr(self.topics, key), payload, qos=1, retain=True)

    def _publish_events(
        self, client: paho.Client, link: _Connection, events: EventLog, sent: int
    ) -> int:
        """The next events after ``sent``, as far as the in-flight window allows."""
        room = self.max_in_flight - len(link.in_flight)
        if room <= 0:
            self._next_poll = 0.0  # look again as soon as acknowledgements make room
            return sent
        batch = events.after(sent, room)
        if len(batch) == room:
            self._next_poll = 0.0  # there may be more
        if batch and sent and batch[0][0] > sent + 1:
            log.warning(
                "MQTT: events %d..%d were deleted from the event log (storage.max_events) "
                "before the broker had them",
                sent + 1,
                batch[0][0] - 1,
            )
        for event_id, event in batch:
            info = client.publish(
                self.topics.event(event.kind),
                event_payload(event),
                qos=1,
                properties=event_properties(self.settings, event_id),
            )
            if info.rc != paho.MQTT_ERR_SUCCESS:
                break  # the connection is going: the next one starts from the cursor
            link.expect(info.mid)
            link.in_flight.append((event_id, info.mid))
            sent = event_id
        return sent

    def _advance(self, link: _Connection) -> None:
        """Move the cursor past the acknowledged events at the head of the window."""
        last = None
        while link.in_flight and link.acked(link.in_flight[0][1]):
            event_id, mid = link.in_flight.popleft()
            reason = link.acks.pop(mid)
            if reason.is_failure:  # refused by the broker (an ACL): retrying cannot help
                self._trouble(
                    f"MQTT broker {self.settings.broker} refused event {event_id} ({reason}): "
                    f"check its ACL for {self.topics.prefix}/#"
                )
            self.published += 1
            last = event_id
        if last is not None:
            self.cursor.advance(last)

    def _goodbye(self, client: paho.Client, link: _Connection, events: EventLog, sent: int) -> None:
        """On stop: the last events (briefly), ``offline``, a clean disconnect (no will)."""
        deadline = time.monotonic() + self.stop_grace_seconds
        while not link.closed and time.monotonic() < deadline:
            self._wake.set()
            sent = self._pump(client, link, events, sent)
            if not link.in_flight and not events.after(sent, 1):
                break
            client.loop(self.loop_seconds)
        self._say_offline(client, link, deadline + 1.0)

    def _say_offline(self, client: paho.Client, link: _Connection, deadline: float) -> None:
        info = client.publish(self.topics.availability, OFFLINE, qos=1, retain=True)
        link.expect(info.mid)
        while not link.closed and not link.acked(info.mid) and time.monotonic() < deadline:
            client.loop(self.loop_seconds)
        client.disconnect()
        end = time.monotonic() + 1.0
        while not link.closed and time.monotonic() < end:
            client.loop(self.loop_seconds)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        """A command, judged by :attr:`remote` (which refuses every one when remote unlock
        is off); a message on any other topic is ignored."""
        if self.remote is None or message.topic != self.topics.lock_set:
            return
        try:
            self.remote.handle(
                message.topic, message.payload, bool(message.retain), user_properties(message)
            )
        except Exception:  # noqa: BLE001 - a bad message never stops the publisher
            log.exception("MQTT: a command on %s could not be judged", message.topic)

    # -- reporting ---------------------------------------------------------------------------

    def _trouble(self, message: str, level: int = logging.ERROR) -> None:
        """Log a failure once (until something else happens), keep it for the status."""
        self.problem = message
        if message != self._last_logged:
            self._last_logged = message
            log.log(level, "%s; retrying in the background, the door works on", message)
        else:
            log.debug("%s (again)", message)

    def _connected(self) -> None:
        s = self.settings
        user = "anonymously" if s.username is None else f"as {s.username!r}"
        log.info(
            "MQTT: connected to %s %s%s; topics under %s/",
            s.broker,
            user,
            " over TLS" if self._tls is not None else "",
            self.topics.prefix,
        )
        self._last_logged = None
        self.problem = None
        self.connected.set()
