"""The ``mqtt`` section: events and state for Home Assistant (or any MQTT broker).

Off by default: the appliance is offline unless ``mqtt.enabled`` says otherwise. The keys
feed :class:`pi_facegate.mqtt.settings.MqttSettings` (built by
:mod:`pi_facegate.daemon.mqtt_link`), where the defaults that depend on the machine (the
door's name from the hostname, the client id and topic prefix from the door's name) are
filled in.

A password is never written here: ``password_file`` names a file only the service user can
read (checked when the daemon starts, with the state directory's trust rules). Remote unlock
is refused by the schema unless the broker is reached over TLS *and* the door logs in with a
user name and password: an unlock command must not travel in clear text, nor come from a
broker anyone on the network could impersonate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from pi_facegate.config.base import FacegateBaseModel, Violation, raise_violations

#: what a topic level may not hold: MQTT's wildcards, the separator and control characters
_FORBIDDEN_IN_NAME = frozenset("/+#")

Name = Annotated[str, Field(min_length=1, max_length=64)]


class MqttTlsConfig(FacegateBaseModel):
    """TLS to the broker: the CA that signed its certificate, and an optional client certificate."""

    ca_file: Path | None = Field(
        None,
        strict=False,
        description="PEM file of the CA that signed the broker's certificate; null = the "
        "system's CA store (a broker with a public certificate)",
    )
    cert_file: Path | None = Field(
        None,
        strict=False,
        description="PEM client certificate, for a broker that wants one; null = none",
    )
    key_file: Path | None = Field(
        None,
        strict=False,
        description="PEM private key of cert_file (only the service user may read it); null = "
        "the key is in cert_file",
    )

    @model_validator(mode="after")
    def _check(self) -> MqttTlsConfig:
        if self.key_file is not None and self.cert_file is None:
            raise_violations(
                [
                    Violation(
                        "mqtt.tls.key_file is set but mqtt.tls.cert_file is not: a client key "
                        "needs its certificate",
                        (("key_file",), ("cert_file",)),
                        str(self.key_file),
                    )
                ]
            )
        return self


class MqttConfig(FacegateBaseModel):
    """Publish events and the door's state to an MQTT broker (Home Assistant discovery)."""

    enabled: bool = Field(
        False, description="true: publish events and state to the broker; false: stay offline"
    )
    host: Annotated[str, Field(min_length=1, max_length=253)] | None = Field(
        None, description="the broker's host name or IP address; required when enabled"
    )
    port: int = Field(
        1883, ge=1, le=65535, description="the broker's TCP port (1883; 8883 is usual with TLS)"
    )
    client_id: Name | None = Field(
        None, description="MQTT client id; null = pi-facegate-<door name>"
    )
    door_name: Name | None = Field(
        None,
        description="the door's name in Home Assistant and in the topics; null = this "
        "machine's host name",
    )
    topic_prefix: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        None, description="topics start with this; null = pi-facegate/<door name>"
    )
    username: Annotated[str, Field(min_length=1, max_length=256)] | None = Field(
        None, description="user name the door logs in with; null = anonymous"
    )
    password_file: Path | None = Field(
        None,
        strict=False,
        description="file holding the password (first line), owned by the service user and "
        "readable by nobody else (chmod 600); never the password itself; needs username",
    )
    tls: MqttTlsConfig | None = Field(
        None, description="TLS to the broker; null = plain TCP; {} = TLS with the system's CAs"
    )
    keepalive_seconds: int = Field(
        60,
        ge=5,
        le=3600,
        description="seconds between keepalive pings; the broker sends the last will "
        "(offline) after 1.5 times this without a word",
    )
    protocol: Literal["3.1.1", "5"] = Field(
        "5", description="MQTT protocol version: 5 (default) or 3.1.1"
    )
    discovery_prefix: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        "homeassistant",
        description="Home Assistant's discovery prefix; null = publish no discovery configs",
    )
    health_interval_seconds: float = Field(
        60.0,
        ge=5.0,
        le=3600.0,
        description="seconds between two health messages (fps, camera, last decision, ...)",
    )
    allow_remote_unlock: bool = Field(
        False,
        description="true: an UNLOCK on <prefix>/lock/set pulses the relay once; needs tls and "
        "username + password_file",
    )
    remote_unlock_per_minute: int = Field(
        3,
        ge=1,
        le=60,
        description="remote unlocks accepted per minute at most; more are refused and logged",
    )

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol(cls, value: Any) -> Any:
        """``protocol: 5`` is what people write; YAML reads it as a number."""
        return "5" if value == 5 and not isinstance(value, bool) else value

    @field_validator("door_name", "client_id")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and (_FORBIDDEN_IN_NAME & set(value) or not value.isprintable()):
            raise PydanticCustomError(
                "mqtt_name", "must not contain '/', '+', '#' or control characters"
            )
        return value

    @field_validator("topic_prefix", "discovery_prefix")
    @classmethod
    def _topic(cls, value: str | None) -> str | None:
        if value is not None:
            problem = topic_problem(value)
            if problem:
                raise PydanticCustomError("mqtt_topic", problem)
        return value

    @model_validator(mode="after")
    def _check(self) -> MqttConfig:
        found = []
        if self.enabled and self.host is None:
            found.append(
                Violation(
                    "mqtt.enabled is true but mqtt.host names no broker",
                    (("host",), ("enabled",)),
                    None,
                )
            )
        if self.password_file is not None and self.username is None:
            found.append(
                Violation(
                    "mqtt.password_file is set but mqtt.username is not: a password needs "
                    "its user name",
                    (("password_file",), ("username",)),
                    str(self.password_file),
                )
            )
        if self.allow_remote_unlock:
            found += self._remote_unlock_problems()
        raise_violations(found)
        return self

    def _remote_unlock_problems(self) -> list[Violation]:
        """Remote unlock needs TLS and a login: a command in clear text, or from a broker
        anyone could stand in for, must never open the door."""
        missing = [
            key
            for key, value in (
                ("tls", self.tls),
                ("username", self.username),
                ("password_file", self.password_file),
            )
            if value is None
        ]
        if not missing:
            return []
        names = [f"mqtt.{key}" for key in missing]
        listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        message = (
            f"mqtt.allow_remote_unlock is true but {listed}"
            + (" is" if len(names) == 1 else " are")
            + " not set: remote unlock needs TLS to the broker (mqtt.tls) and a login "
            "(mqtt.username and mqtt.password_file), so that an unlock command never travels "
            "in clear text nor comes from a broker that could be impersonated"
        )
        return [Violation(message, (("allow_remote_unlock",), *((k,) for k in missing)), True)]


def topic_problem(topic: str) -> str | None:
    """Why ``topic`` cannot be a topic prefix (wildcards, empty levels, ``$``), or None."""
    if "+" in topic or "#" in topic:
        return "must not contain the MQTT wildcards '+' or '#'"
    if topic.startswith("/") or topic.endswith("/") or "//" in topic:
        return "must not start or end with '/' nor have an empty level ('//')"
    if topic.startswith("$"):
        return "must not start with '$' (the broker's own topics)"
    if not topic.isprintable():
        return "must not contain control characters"
    return None
