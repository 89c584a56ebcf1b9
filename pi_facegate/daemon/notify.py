"""systemd service notifications (``sd_notify``): ready, reloading, stopping, watchdog, status.

After piwheels' ``Systemd`` class. The service runs as ``Type=notify`` with ``WatchdogSec=``:
systemd passes the address of its notification socket in ``NOTIFY_SOCKET`` and the watchdog
period in ``WATCHDOG_USEC``. Outside systemd there is no socket and every method quietly does
nothing, so the same daemon code runs from a terminal.

``NOTIFY_SOCKET`` is read once and removed from ``os.environ`` so that child processes cannot
speak for the service. Because libsystemd's ``sd_notify`` (what ``systemd.daemon.notify``
wraps) reads that variable on every call, the datagrams are written here directly to the
socket for the address forms systemd uses for services: a path (``/run/systemd/notify``) or an
abstract name (``@...``). systemd-python is used only for other address forms (e.g.
``vsock:``, systemd >= 254), which this module cannot speak; the variable then stays set.

A notification failure is logged and never raised: a busy or restarted systemd must not take
the door loop down. The socket is non-blocking, so a full receive queue drops a message
(watchdog pings repeat) instead of stalling the caller.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from types import ModuleType

log = logging.getLogger("pi_facegate.notify")  # journal name: stable across moves


def _import_systemd_daemon() -> ModuleType | None:
    """systemd-python's ``systemd.daemon``, or None where it is not installed."""
    try:
        from systemd import daemon  # type: ignore[import-not-found]
    except ImportError:
        return None
    return daemon if hasattr(daemon, "notify") else None


def _socket_address(address: str) -> str | None:
    """The ``AF_UNIX`` address for a ``NOTIFY_SOCKET`` value, or None if it is not one."""
    if len(address) > 1 and address[0] == "@":
        return "\0" + address[1:]  # abstract namespace
    if len(address) > 1 and address[0] == "/":
        return address
    return None


def _one_line(text: str) -> str:
    """Newlines would start new assignments (a status could forge ``STOPPING=1``)."""
    return " ".join(text.splitlines())


class Notifier:
    """Talks to systemd's notification socket; silent no-op outside systemd.

    Construct one per process, early (before any child process is started), and keep it.

    >>> notifier = Notifier()
    >>> notifier.status("loading models")
    >>> notifier.ready()              # once camera, models and relay are up
    >>> period = notifier.watchdog_period()   # ping at least every period / 2 seconds

    :param address: the notification socket; None to take (and remove) ``NOTIFY_SOCKET``.
    :param use_libsystemd: None to decide by address (see the module docstring); True to send
        through systemd-python's ``systemd.daemon.notify``, which then reads ``NOTIFY_SOCKET``
        itself, so it is left in the environment.
    """

    def __init__(self, address: str | None = None, *, use_libsystemd: bool | None = None) -> None:
        self._socket: socket.socket | None = None
        self._address: str | None = None
        self._daemon: ModuleType | None = None
        self._failing = False
        if use_libsystemd:
            self._daemon = _import_systemd_daemon()
            if self._daemon is None:
                log.warning("systemd-python is not installed; systemd notifications are off")
            return
        if address is None:
            address = os.environ.pop("NOTIFY_SOCKET", None)
        if not address:
            return  # not under systemd (or not Type=notify): nothing to do
        self._address = _socket_address(address)
        if self._address is not None:
            self._socket = self._open_socket()
            return
        if use_libsystemd is None:
            self._daemon = _import_systemd_daemon()
        if self._daemon is not None:
            os.environ["NOTIFY_SOCKET"] = address  # libsystemd reads it on every call
        else:
            log.warning("NOTIFY_SOCKET=%r is not a socket path; systemd notifications off", address)

    @staticmethod
    def _open_socket() -> socket.socket | None:
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        except OSError:
            log.warning("cannot create the systemd notification socket", exc_info=True)
            return None
        sock.setblocking(False)
        return sock

    @property
    def enabled(self) -> bool:
        """True when there is a systemd to notify."""
        return self._socket is not None or self._daemon is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=value`` assignments in one datagram; True if it was handed to systemd.

        Never raises: a failure is logged (a WARNING the first time, DEBUG while it persists).
        """
        if not self.enabled or not assignments:
            return False
        message = "\n".join(assignments)
        try:
            if self._socket is not None:
                assert self._address is not None
                self._socket.sendto(message.encode("utf-8"), self._address)
            else:
                assert self._daemon is not None
                if not self._daemon.notify(message):
                    raise OSError("sd_notify found no NOTIFY_SOCKET")
        except Exception as exc:  # never let a notification take the service down
            level = logging.DEBUG if self._failing else logging.WARNING
            log.log(level, "systemd notification %r failed: %s", message.split("\n")[0], exc)
            self._failing = True
            return False
        if self._failing:
            log.info("systemd notifications work again")
            self._failing = False
        return True

    def ready(self) -> bool:
        """Startup is complete (``READY=1``); also after a reload has finished."""
        return self.notify("READY=1")

    def reloading(self) -> bool:
        """A configuration reload starts (``RELOADING=1`` with the ``CLOCK_MONOTONIC`` time,
        as ``Type=notify-reload`` requires); send :meth:`ready` when it is done."""
        now_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={now_usec}")

    def stopping(self) -> bool:
        """Shutdown has begun (``STOPPING=1``)."""
        return self.notify("STOPPING=1")

    def watchdog_ping(self) -> bool:
        """Tell the watchdog the service is alive (``WATCHDOG=1``)."""
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        """One line for ``systemctl status`` (``STATUS=...``); newlines become spaces."""
        return self.notify(f"STATUS={_one_line(text)}")

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for ``seconds`` more before the start/stop timeout (``EXTEND_TIMEOUT_USEC``)."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={int(max(0.0, seconds) * 1_000_000)}")

    def watchdog_period(self) -> float | None:
        """The watchdog timeout in seconds, or None if this process has no watchdog.

        From ``WATCHDOG_USEC``; None as well when ``WATCHDOG_PID`` names another process (the
        variables were inherited) or either value is malformed.
        """
        usec = os.environ.get("WATCHDOG_USEC")
        if not usec:
            return None
        pid = os.environ.get("WATCHDOG_PID")
        try:
            if pid and int(pid) != os.getpid():
                return None
            value = int(usec)
        except ValueError:
            log.warning("ignoring malformed WATCHDOG_USEC=%r / WATCHDOG_PID=%r", usec, pid)
            return None
        return value / 1_000_000 if value > 0 else None

    def close(self) -> None:
        """Close the socket; further notifications are no-ops. Idempotent."""
        sock, self._socket = self._socket, None
        self._daemon = None
        if sock is not None:
            sock.close()

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
