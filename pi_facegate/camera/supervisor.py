"""Keeping a camera going: :class:`SupervisedSource`.

It closes a camera that failed or stalled and reopens it with exponential back-off,
reporting ``camera_error`` / ``camera_recovered`` events.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from pi_facegate.camera.source import Frame, FrameSource
from pi_facegate.exc import CameraError, CameraTimeoutError, ConfigError

log = logging.getLogger("pi_facegate.camera")  # journal name: stable across moves

#: seconds without a frame after which :class:`SupervisedSource` treats a camera as stalled
DEFAULT_STALL_SECONDS = 5.0

#: seconds of clock jitter tolerated when deciding that a wait reached a limit
_CLOCK_SLACK = 1e-3

#: ``on_event(name, details)``: ``camera_error`` / ``camera_recovered`` and their details
EventCallback = Callable[[str, dict[str, Any]], None]


class SupervisedSource(FrameSource):
    """Keeps a camera going: a source that fails or stalls is closed and made anew.

    ``factory`` makes a fresh, unstarted source (say ``lambda: FrameGrabber(OpenCVSource(0))``).
    When opening it fails, a read raises a ``CameraError`` other than a timeout, or no frame
    arrived for ``stall_seconds``, the source is logged, closed, and reopened after
    ``retry_initial`` seconds, doubling after each failed attempt up to ``retry_max``; the
    first frame afterwards resets the delay. Waiting is never a busy loop and a stop
    request ends it at once.

    ``read(timeout)`` keeps the usual contract: during an outage it raises ``CameraError``
    when ``timeout`` passes (so the consumer can keep the door locked and go on pinging
    its watchdog), or with ``timeout=None`` blocks until the camera is back. The end of a
    finite source (``None``) is passed on, not retried.

    :param on_event: called ``on_event("camera_error", {"reason", "failures", "retry_in"})``
        once per outage and ``on_event("camera_recovered", {"down_seconds", "failures"})``
        when frames flow again. Exceptions it raises are logged and ignored.
    :param stop_event: an Event (e.g. the daemon's shutdown event) that, once set, ends any
        wait and makes ``read`` raise; never set or cleared here. Without one a private
        event is used, which ``stop()`` sets and ``start()`` clears.
    :param clock: seconds, monotonic (injectable for tests).
    :param wait: ``wait(seconds) -> bool`` sleeps unless stopped, returning ``True`` if it
        was (default: the stop event's ``wait``). Tests inject a fake to run instantly.
    """

    kind = "supervised"

    def __init__(
        self,
        factory: Callable[[], FrameSource],
        *,
        retry_initial: float = 1.0,
        retry_max: float = 30.0,
        stall_seconds: float = DEFAULT_STALL_SECONDS,
        on_event: EventCallback | None = None,
        stop_event: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[float], bool] | None = None,
        name: str = "camera",
    ) -> None:
        super().__init__()
        self._source: FrameSource | None = None
        if not retry_initial > 0 or not retry_max > 0:
            raise ConfigError(
                f"retry delays must be > 0 seconds (got {retry_initial!r}, {retry_max!r})"
            )
        if not stall_seconds > 0:
            raise ConfigError(f"stall_seconds must be > 0 (got {stall_seconds!r})")
        self.factory = factory
        self.retry_initial = float(retry_initial)
        self.retry_max = float(retry_max)
        self.stall_seconds = float(stall_seconds)
        self.name = name
        self._on_event = on_event
        self._owns_event = stop_event is None
        self._stop_event = stop_event if stop_event is not None else threading.Event()
        self._clock = clock
        self._wait = wait if wait is not None else self._stop_event.wait
        self._failures = 0
        self._reason = ""
        self._down_since: float | None = None
        self._next_attempt = 0.0
        # when the consumer began waiting for a frame that has not come yet (None: not waiting)
        self._silent_since: float | None = None
        self._state_text = "stopped"

    def describe(self) -> str:
        return self.name

    @property
    def state(self) -> str:
        """``"ok"``, ``"failed: <reason>"`` or ``"stopped"``."""
        return self._state_text

    @property
    def failures(self) -> int:
        """Failed attempts in the current outage (0 while frames flow)."""
        return self._failures

    @property
    def retry_delay(self) -> float:
        """Seconds the next reopen waits after the current number of failures."""
        if self._failures == 0:
            return 0.0
        return min(self.retry_initial * 2.0 ** (self._failures - 1), self.retry_max)

    @property
    def source(self) -> FrameSource | None:
        """The source currently open, if any."""
        return self._source

    # -- lifecycle ----------------------------------------------------------------------

    def _open(self) -> None:
        """First attempt; a failure here is an outage like any other, not an exception."""
        if self._owns_event:
            self._stop_event.clear()
        self._failures = 0
        self._down_since = None
        self._try_open()

    def _release(self) -> None:
        if self._owns_event:
            self._stop_event.set()
        self._drop_source()
        self._state_text = "stopped"

    def _read(self, timeout: float | None) -> Frame | None:
        deadline = None if timeout is None else self._clock() + timeout
        while True:
            if self._stop_event.is_set():
                raise CameraError(f"{self.name}: stopped")
            if self._source is None:
                self._wait_and_reopen(deadline)
                continue
            now = self._clock()
            if self._silent_since is None:
                self._silent_since = now
            # Never wait past the stall limit, so a silent camera is noticed even when the
            # consumer waits forever (timeout=None). Time the consumer spends elsewhere
            # between reads does not count: only waiting in vain does.
            limit = self._silent_since + self.stall_seconds - now
            if deadline is not None:
                limit = min(limit, deadline - now)
            try:
                frame = self._source.read(max(0.0, limit))
            except CameraError as exc:
                if self._stop_event.is_set():  # closed under us by stop(): not an outage
                    raise CameraError(f"{self.name}: stopped") from exc
                if not isinstance(exc, CameraTimeoutError):
                    self._fail(str(exc), exc)
                    continue
                stalled = self._clock() - self._silent_since
                if stalled < self.stall_seconds - _CLOCK_SLACK:
                    raise
                self._fail(f"no frame for {stalled:.1f} s", exc)
                continue
            self._silent_since = None
            if frame is not None and self._failures:
                self._recovered()
            return frame

    def _wait_and_reopen(self, deadline: float | None) -> None:
        """Wait for the next attempt (or raise at ``deadline``), then try to reopen."""
        now = self._clock()
        if deadline is not None and deadline < self._next_attempt:
            if self._wait(max(0.0, deadline - now)):
                raise CameraError(f"{self.name}: stopped")
            raise CameraError(
                f"{self.name} unavailable ({self._reason}); "
                f"retrying in {max(0.0, self._next_attempt - self._clock()):.1f} s"
            )
        if self._next_attempt > now and self._wait(self._next_attempt - now):
            raise CameraError(f"{self.name}: stopped")
        self._try_open()

    def _try_open(self) -> None:
        source: FrameSource | None = None
        try:
            source = self.factory()
            source.start()
        except Exception as exc:  # noqa: BLE001 - any failure to open is an outage
            if source is not None:
                _close_quietly(source)
            self._fail(f"cannot open: {exc}" if not isinstance(exc, CameraError) else str(exc), exc)
            return
        self._source = source
        self._silent_since = None
        if not self._failures:
            self._state_text = "ok"
        log.info("%s: opened %s", self.name, source.describe())

    def _fail(self, reason: str, exc: BaseException) -> None:
        self._drop_source()
        now = self._clock()
        self._failures += 1
        self._reason = reason
        self._state_text = f"failed: {reason}"
        delay = self.retry_delay
        self._next_attempt = now + delay
        first = self._down_since is None
        if first:
            self._down_since = now
        log.warning(
            "%s failed (%s); attempt %d, retrying in %.1f s",
            self.name,
            reason,
            self._failures,
            delay,
            exc_info=not isinstance(exc, CameraError),
        )
        if first:
            self._emit(
                "camera_error", {"reason": reason, "failures": self._failures, "retry_in": delay}
            )

    def _recovered(self) -> None:
        down = self._clock() - (self._down_since if self._down_since is not None else self._clock())
        failures = self._failures
        self._failures = 0
        self._down_since = None
        self._reason = ""
        self._state_text = "ok"
        log.info("%s recovered after %.1f s (%d failed attempts)", self.name, down, failures)
        self._emit("camera_recovered", {"down_seconds": down, "failures": failures})

    def _drop_source(self) -> None:
        source, self._source = self._source, None
        if source is not None:
            _close_quietly(source)

    def _emit(self, name: str, details: dict[str, Any]) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(name, details)
        except Exception:  # noqa: BLE001 - a broken listener must not stop the camera
            log.exception("%s: %s listener failed", self.name, name)


def _close_quietly(source: FrameSource) -> None:
    try:
        source.close()
    except CameraError as exc:  # e.g. a read hung in the driver: the message says it all
        log.warning("closing %s failed: %s", source.describe(), exc)
    except Exception:  # noqa: BLE001 - closing a failed camera: nothing more to do
        log.warning("closing %s failed", source.describe(), exc_info=True)
