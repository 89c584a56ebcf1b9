"""Remote unlock: an ``UNLOCK`` on ``<prefix>/lock/set`` becomes one relay pulse.

Only with ``mqtt.allow_remote_unlock`` (which the config refuses without TLS and a login).
Off, the door still listens on the topic so that a command is *refused and recorded*
(reason ``disabled``): an administrator sees that someone tried, and nothing can open the
door that way. The publisher's network thread hands each message to
:meth:`RemoteUnlock.handle`, which judges it and puts a :class:`RemoteRequest` on a bounded
queue; the daemon's frame loop takes one per frame
(:meth:`RemoteUnlock.take`, never blocking) and pulses the relay the way the exit button
does, recording ``remote_unlock`` with where the command came from. The door is only ever
moved from the frame loop, as for a face.

Refused, and recorded as ``remote_unlock_refused`` with the reason:

* ``disabled``: remote unlock is off (``mqtt.allow_remote_unlock: false``, the default);
* ``rate_limited``: more than ``remote_unlock_per_minute`` unlocks in the last minute;
* ``retained``: a retained message (one left on the broker would open the door again on
  every reconnect);
* ``unknown_command``: any payload but ``UNLOCK`` (there is no other remote command; Home
  Assistant's LOCK too: the door relocks by itself).

Refusals are themselves limited (:data:`REFUSALS_RECORDED_PER_MINUTE`): a flood of commands
cannot push the real history out of the bounded event log; the ones not recorded are counted
in the next one that is (``suppressed``).
"""

from __future__ import annotations

import logging
import queue
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pi_facegate.mqtt.topics import UNLOCK_COMMAND

log = logging.getLogger("pi_facegate.mqtt")

#: refusals recorded in the event log per minute at most
REFUSALS_RECORDED_PER_MINUTE = 10
#: requests waiting for the frame loop at most (it takes one per frame)
QUEUE_SIZE = 16
#: user properties kept in an event's detail at most, and the longest name or value
MAX_PROPERTIES, MAX_TEXT = 10, 64


class RateLimit:
    """At most ``per_window`` events in any ``window`` seconds (a sliding window).

    :param clock: monotonic seconds (tests pass their own).
    """

    def __init__(
        self, per_window: int, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if per_window < 1:
            raise ValueError(f"per_window must be >= 1, got {per_window}")
        self.per_window = per_window
        self.window = window
        self._clock = clock
        self._times: deque[float] = deque()

    def allow(self) -> bool:
        """True (and counted) if one more fits in the window now."""
        now = self._clock()
        while self._times and now - self._times[0] >= self.window:
            self._times.popleft()
        if len(self._times) >= self.per_window:
            return False
        self._times.append(now)
        return True


@dataclass(frozen=True)
class RemoteRequest:
    """A judged command: accepted (pulse the relay) or refused, and where it came from."""

    accepted: bool
    origin: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None

    def event(self) -> tuple[str, dict[str, Any]]:
        """The event to record for it: ``(kind, detail)``."""
        if self.accepted:
            return "remote_unlock", dict(self.origin)
        return "remote_unlock_refused", {"reason": self.reason, **self.origin}


class RemoteUnlock:
    """Judges commands on the publisher's thread; the frame loop takes the results.

    :param per_minute: unlocks accepted per minute at most.
    :param broker: ``host:port`` of the broker, for the events' origin.
    :param client_id: the door's own MQTT client id, likewise.
    :param enabled: False (remote unlock off): every command is refused as ``disabled``.
    """

    def __init__(
        self,
        per_minute: int,
        broker: str,
        client_id: str,
        clock: Callable[[], float] = time.monotonic,
        enabled: bool = True,
    ) -> None:
        self.enabled = enabled
        self.broker = broker
        self.client_id = client_id
        self._unlocks = RateLimit(per_minute, clock=clock)
        self._refusals = RateLimit(REFUSALS_RECORDED_PER_MINUTE, clock=clock)
        self._suppressed = 0
        self._queue: queue.Queue[RemoteRequest] = queue.Queue(maxsize=QUEUE_SIZE)

    def handle(
        self,
        topic: str,
        payload: bytes,
        retained: bool,
        user_properties: Iterable[tuple[str, str]] = (),
    ) -> RemoteRequest | None:
        """Judge one message; the request queued for the frame loop (None: not queued)."""
        origin = self._origin(topic, user_properties)
        if not self.enabled:
            request = RemoteRequest(False, origin, "disabled")
        elif retained:
            request = RemoteRequest(False, origin, "retained")
        elif payload.strip() != UNLOCK_COMMAND.encode():
            origin["payload"] = payload[:MAX_TEXT].decode("utf-8", "replace")
            request = RemoteRequest(False, origin, "unknown_command")
        elif not self._unlocks.allow():
            request = RemoteRequest(False, origin, "rate_limited")
        else:
            request = RemoteRequest(True, origin)
        if not request.accepted:
            log.warning(
                "remote unlock refused (%s) from %s on %s", request.reason, self.broker, topic
            )
            request = self._count_refusal(request)
            if request is None:
                return None
        return self._put(request)

    def take(self) -> RemoteRequest | None:
        """The oldest waiting request, or None; never blocks (the frame loop calls it)."""
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            return None

    def _origin(self, topic: str, user_properties: Iterable[tuple[str, str]]) -> dict[str, Any]:
        origin: dict[str, Any] = {
            "via": "mqtt",
            "broker": self.broker,
            "client_id": self.client_id,
            "topic": topic,
        }
        properties = {
            str(name)[:MAX_TEXT]: str(value)[:MAX_TEXT]
            for name, value in list(user_properties)[:MAX_PROPERTIES]
        }
        if properties:
            origin["user_properties"] = properties
        return origin

    def _count_refusal(self, request: RemoteRequest) -> RemoteRequest | None:
        """The refusal to record, carrying how many were not; None beyond the limit."""
        if not self._refusals.allow():
            self._suppressed += 1
            return None
        if self._suppressed:
            request = RemoteRequest(
                False, {**request.origin, "suppressed": self._suppressed}, request.reason
            )
            self._suppressed = 0
        return request

    def _put(self, request: RemoteRequest) -> RemoteRequest | None:
        try:
            self._queue.put_nowait(request)
        except queue.Full:
            log.warning("remote unlock: the frame loop is not taking requests; one dropped")
            return None
        return request
