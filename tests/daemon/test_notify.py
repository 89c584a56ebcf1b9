"""Notifier against a real AF_UNIX datagram socket standing in for systemd."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pi_facegate.daemon.notify import Notifier, _import_systemd_daemon


def _receiver(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    sock.bind(address)
    sock.settimeout(5)  # a missing datagram fails the test instead of hanging it
    return sock


@pytest.fixture
def systemd_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A bound datagram socket whose path is in NOTIFY_SOCKET, as systemd would set it."""
    path = tmp_path / "notify"
    sock = _receiver(str(path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


@pytest.fixture
def no_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(name, raising=False)


def test_messages_arrive_as_exact_datagrams(systemd_socket):
    with Notifier() as notifier:
        assert notifier.enabled
        assert notifier.ready()
        assert systemd_socket.recv(4096) == b"READY=1"
        notifier.status("watching the door: 3 people enrolled")
        assert systemd_socket.recv(4096) == b"STATUS=watching the door: 3 people enrolled"
        notifier.watchdog_ping()
        assert systemd_socket.recv(4096) == b"WATCHDOG=1"
        notifier.extend_timeout(2.5)
        assert systemd_socket.recv(4096) == b"EXTEND_TIMEOUT_USEC=2500000"
        notifier.stopping()
        assert systemd_socket.recv(4096) == b"STOPPING=1"


def test_reloading_carries_the_monotonic_time(systemd_socket):
    notifier = Notifier()
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, second = systemd_socket.recv(4096).split(b"\n")
    assert first == b"RELOADING=1"
    key, value = second.split(b"=")
    assert key == b"MONOTONIC_USEC"
    assert before <= int(value) <= after


def test_status_cannot_smuggle_other_assignments(systemd_socket):
    Notifier().status("name: eve\nSTOPPING=1\r\nREADY=1")
    assert systemd_socket.recv(4096) == b"STATUS=name: eve STOPPING=1 READY=1"


def test_status_is_utf8(systemd_socket):
    Notifier().status("Zoë enrolled")
    assert systemd_socket.recv(4096) == "STATUS=Zoë enrolled".encode()


def test_abstract_namespace_socket(monkeypatch):
    name = f"pi-facegate-test-{os.getpid()}-{time.monotonic_ns()}"
    sock = _receiver("\0" + name)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        Notifier().ready()
        assert sock.recv(4096) == b"READY=1"
    finally:
        sock.close()


def test_notify_socket_is_read_once_and_not_inherited(systemd_socket):
    notifier = Notifier()
    assert "NOTIFY_SOCKET" not in os.environ
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.environ.get('NOTIFY_SOCKET'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert child.stdout.strip() == "None"
    notifier.ready()  # still works from the address read at construction
    assert systemd_socket.recv(4096) == b"READY=1"


def test_explicit_address_leaves_the_environment_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", "/somewhere/else")
    sock = _receiver(str(tmp_path / "known"))
    try:
        Notifier(str(tmp_path / "known")).watchdog_ping()
        assert sock.recv(4096) == b"WATCHDOG=1"
        assert os.environ["NOTIFY_SOCKET"] == "/somewhere/else"
    finally:
        sock.close()


def test_outside_systemd_everything_is_a_silent_no_op(no_systemd, caplog):
    caplog.set_level(logging.DEBUG, logger="pi_facegate.notify")
    notifier = Notifier()
    assert not notifier.enabled
    results = [
        notifier.ready(),
        notifier.reloading(),
        notifier.status("x"),
        notifier.watchdog_ping(),
        notifier.extend_timeout(5),
        notifier.stopping(),
    ]
    assert results == [False] * 6
    assert notifier.watchdog_period() is None
    assert not caplog.records
    notifier.close()
    notifier.close()


def test_vanished_socket_is_logged_not_raised(tmp_path, monkeypatch, caplog):
    path = tmp_path / "notify"
    sock = _receiver(str(path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    notifier = Notifier()
    sock.close()
    path.unlink()  # systemd went away
    caplog.set_level(logging.DEBUG, logger="pi_facegate.notify")
    assert notifier.watchdog_ping() is False
    assert notifier.watchdog_ping() is False
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "WATCHDOG=1" in warnings[0].getMessage()  # not a flood

    sock = _receiver(str(path))  # systemd is back (e.g. after daemon-reexec)
    try:
        assert notifier.watchdog_ping() is True
        assert sock.recv(4096) == b"WATCHDOG=1"
    finally:
        sock.close()


def test_full_receive_queue_drops_instead_of_blocking(systemd_socket):
    notifier = Notifier()
    started = time.monotonic()
    sent = [notifier.status(f"frame {i}") for i in range(5000)]  # nobody reads
    assert time.monotonic() - started < 10
    assert sent[0] is True and sent[-1] is False  # the queue filled up; later ones dropped


def test_unsupported_address_is_not_an_error(monkeypatch, caplog):
    monkeypatch.setenv("NOTIFY_SOCKET", "not-a-socket")
    notifier = Notifier(use_libsystemd=False)
    assert not notifier.enabled
    assert notifier.ready() is False
    assert "not a socket path" in caplog.text


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        (None, None, None),
        ("5000000", None, 5.0),
        ("2500000", "self", 2.5),
        ("5000000", "1", None),  # inherited from another process
        ("0", None, None),
        ("soon", None, None),
        ("5000000", "init", None),
    ],
)
def test_watchdog_period(monkeypatch, no_systemd, usec, pid, expected):
    if usec is not None:
        monkeypatch.setenv("WATCHDOG_USEC", usec)
    if pid is not None:
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()) if pid == "self" else pid)
    assert Notifier().watchdog_period() == expected


@pytest.mark.skipif(
    _import_systemd_daemon() is None, reason="systemd-python (systemd.daemon) is not installed"
)
def test_libsystemd_path_sends_the_same_bytes(systemd_socket):
    notifier = Notifier(use_libsystemd=True)
    assert notifier.enabled
    assert os.environ.get("NOTIFY_SOCKET")  # libsystemd needs it on every call
    notifier.ready()
    assert systemd_socket.recv(4096) == b"READY=1"
    notifier.status("from libsystemd")
    assert systemd_socket.recv(4096) == b"STATUS=from libsystemd"
