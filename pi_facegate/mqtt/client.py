"""One paho client per connection attempt, and what to tell the operator when it fails.

A new :class:`paho.mqtt.client.Client` is made for every attempt, with a clean session: when a
connection dies, whatever paho still held (messages in flight, queued commands) dies with it,
and the publisher starts again from its cursor. So no message is sent twice by paho *and*
by the publisher, and no stale UNLOCK queued on the broker during an outage is ever
delivered.

:func:`connect_problem` and :func:`refusal_problem` turn a failure into one line that says
what is wrong and which key to look at: the publisher logs each distinct one once.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from pi_facegate.mqtt.settings import MqttSettings
from pi_facegate.mqtt.topics import OFFLINE, Topics

#: seconds a TCP connect and TLS handshake may take
CONNECT_TIMEOUT_SECONDS = 10.0
#: the broker's login refusals that are about the user name or password
_LOGIN_REFUSALS = ("Bad user name or password", "Not authorized")


def is_v5(settings: MqttSettings) -> bool:
    return settings.protocol == "5"


def make_client(
    settings: MqttSettings, password: str | None, context: ssl.SSLContext | None
) -> paho.Client:
    """A paho client with the door's id, login, TLS and last will (``offline``, retained)."""
    if is_v5(settings):
        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=settings.client_id, protocol=paho.MQTTv5
        )
    else:
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=paho.MQTTv311,
            clean_session=True,
        )
    client.connect_timeout = CONNECT_TIMEOUT_SECONDS
    if settings.username is not None:
        client.username_pw_set(settings.username, password)
    if context is not None:
        client.tls_set_context(context)
    client.will_set(Topics(settings.topic_prefix).availability, OFFLINE, qos=1, retain=True)
    return client


def connect(client: paho.Client, settings: MqttSettings) -> None:
    """Open the connection and send CONNECT (blocking: the publisher's thread only).

    :raises OSError: no connection (``ssl.SSLError`` for TLS; see :func:`connect_problem`).
    """
    if is_v5(settings):
        client.connect(settings.host, settings.port, settings.keepalive_seconds, clean_start=True)
    else:
        client.connect(settings.host, settings.port, settings.keepalive_seconds)


def subscribe_commands(client: paho.Client, settings: MqttSettings, topic: str) -> None:
    """Subscribe to the command topic; on MQTT 5 without retained messages at all."""
    if is_v5(settings):
        options = SubscribeOptions(
            qos=1, noLocal=True, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND
        )
        client.subscribe(topic, options=options)
    else:
        client.subscribe(topic, qos=1)


def event_properties(settings: MqttSettings, event_id: int) -> Properties | None:
    """MQTT 5 user property ``event_id``: lets a subscriber spot a repeat (at-least-once)
    without changing the JSON, which stays that of ``facegate events --json``."""
    if not is_v5(settings):
        return None
    properties = Properties(PacketTypes.PUBLISH)
    properties.UserProperty = ("event_id", str(event_id))
    return properties


def user_properties(message: Any) -> list[tuple[str, str]]:
    """The MQTT 5 user properties of a received message (none on 3.1.1)."""
    properties = getattr(message, "properties", None)
    found = getattr(properties, "UserProperty", None) if properties is not None else None
    return [(str(k), str(v)) for k, v in (found or [])]


def connect_problem(exc: BaseException, settings: MqttSettings) -> str:
    """What went wrong opening the connection, and where to look."""
    where = f"MQTT broker {settings.broker}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"{where}: its TLS certificate is not trusted ({exc.verify_message}): check "
            "mqtt.tls.ca_file (the CA that signed the broker's certificate) and that mqtt.host "
            "is a name the certificate is for"
        )
    if isinstance(exc, ssl.SSLError):
        return (
            f"{where}: TLS handshake failed ({exc.reason or exc}): check mqtt.tls and that "
            "mqtt.port is the broker's TLS port"
        )
    if isinstance(exc, ConnectionRefusedError):
        return f"{where}: connection refused: is the broker running and listening on that port?"
    if isinstance(exc, socket.gaierror):
        return f"{where}: unknown host ({exc.strerror}): check mqtt.host"
    if isinstance(exc, TimeoutError):
        return f"{where}: no answer within {CONNECT_TIMEOUT_SECONDS:g} s"
    if isinstance(exc, OSError):
        return f"{where}: cannot connect: {exc.strerror or exc}"
    return f"{where}: cannot connect: {exc}"


def refusal_problem(reason: Any, settings: MqttSettings) -> str:
    """What the broker's refusal of the login (CONNACK) means, and where to look."""
    where = f"MQTT broker {settings.broker}"
    text = str(reason)
    if text in _LOGIN_REFUSALS:
        user = "anonymous" if settings.username is None else repr(settings.username)
        return (
            f"{where} refused the login as {user}: {text}: check mqtt.username and the "
            "password in mqtt.password_file"
        )
    return f"{where} refused the connection: {text}"
