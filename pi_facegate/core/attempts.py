"""Attempt limits: many refused faces in a short time raise one alarm, then a slowdown.

Someone trying faces, photos or screens at the door one after another is refused each time;
:class:`AttemptLimiter` notices the run. It counts refused *tracks* (each face that stood at
the door, once, however many frames it was refused for) over the last ``window_seconds``
(T). The ``attempts``-th (K) refused track within T raises one :class:`Alarm` and starts a
slowdown of ``slowdown_seconds`` (S), during which the daemon stops deciding about faces it
does not recognise as an enrolled, valid person: no denial, no LED, nothing counted -- the
person trying learns nothing, while enrolled people are let in as always. The count starts
again after an alarm, so a new one needs K new refused tracks; none is raised while a
slowdown runs.

Pure: the caller passes ``now`` (seconds on a monotonic clock).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from pi_facegate.exc import ConfigError


@dataclass(frozen=True)
class Alarm:
    """An alarm the limiter raised: K refused tracks within T seconds."""

    count: int
    window_seconds: float
    slowdown_seconds: float

    def detail(self) -> dict[str, Any]:
        """The ``alarm`` event's detail."""
        return {
            "reason": "attempts",
            "count": self.count,
            "window_seconds": self.window_seconds,
            "slowdown_seconds": self.slowdown_seconds,
        }


class AttemptLimiter:
    """Counts refused tracks; the K-th within T seconds raises an alarm and a slowdown.

    :param attempts: K, refused tracks within the window that raise an alarm (>= 1).
    :param window_seconds: T, how far back refused tracks count (> 0).
    :param slowdown_seconds: S, how long after an alarm unrecognised faces are not decided
        (>= 0; 0 = no slowdown).
    """

    def __init__(
        self, attempts: int = 5, window_seconds: float = 60.0, slowdown_seconds: float = 30.0
    ) -> None:
        if isinstance(attempts, bool) or int(attempts) != attempts or attempts < 1:
            raise ConfigError(
                f"attempt limit: attempts must be a whole number >= 1, got {attempts!r}"
            )
        for name, value, allow_zero in (
            ("window_seconds", window_seconds, False),
            ("slowdown_seconds", slowdown_seconds, True),
        ):
            number = float(value)
            if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
                raise ConfigError(f"attempt limit: {name} must be seconds >= 0, got {value!r}")
        self.attempts = int(attempts)
        self.window_seconds = float(window_seconds)
        self.slowdown_seconds = float(slowdown_seconds)
        self._refused: OrderedDict[int, float] = OrderedDict()  # track -> when first counted
        self._slowdown_until = -math.inf

    def refused(self, track_id: int, now: float) -> Alarm | None:
        """Count the refused track ``track_id`` (once per window); an Alarm on the K-th."""
        self._prune(now)
        if track_id in self._refused:
            return None
        self._refused[track_id] = now
        if len(self._refused) < self.attempts or self.slowed(now):
            return None
        count = len(self._refused)
        self._refused.clear()
        self._slowdown_until = now + self.slowdown_seconds
        return Alarm(count, self.window_seconds, self.slowdown_seconds)

    def slowed(self, now: float) -> bool:
        """True while the slowdown after an alarm runs."""
        return now < self._slowdown_until

    @property
    def count(self) -> int:
        """Refused tracks counted towards the next alarm (as of the last call)."""
        return len(self._refused)

    def carry_over(self, old: AttemptLimiter) -> None:
        """Take over ``old``'s count and slowdown (a config reload must not reset them)."""
        self._refused = OrderedDict(old._refused)
        self._slowdown_until = old._slowdown_until

    def _prune(self, now: float) -> None:
        while self._refused:
            track, when = next(iter(self._refused.items()))
            if now - when <= self.window_seconds:
                break
            del self._refused[track]
