"""Fixtures of the MQTT tests: a real mosquitto per test (see ``mqtt_broker.py``), subscribers
on it, the door's password file, and the daemon tests' own fixtures."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mqtt_broker import PASSWORD, Broker, Certificates, Subscriber, make_certificates


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def broker(tmp_path: Path, certificates: Certificates) -> Iterator[Broker]:
    folder = tmp_path / "broker"
    folder.mkdir(mode=0o700)
    broker = Broker(folder, certificates)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def subscribe(broker: Broker) -> Iterator[Callable[..., Subscriber]]:
    """``subscribe(*topics)``: a new subscriber (``#`` by default), closed after the test."""
    made: list[Subscriber] = []

    def make(*topics: str) -> Subscriber:
        made.append(Subscriber(broker, *topics))
        return made[-1]

    yield make
    for subscriber in made:
        subscriber.close()


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    """The door's password, as the config wants it: a file only this user can read."""
    path = tmp_path / "mqtt-password"
    path.write_text(PASSWORD + "\n")
    path.chmod(0o600)
    return path


def _daemon_fixtures():
    """tests/daemon/conftest.py, loaded under a name of its own: its fixtures are shared, not
    copied (``in_process``: a daemon run in this process leaves signal handlers and logging
    as they were; ``lin_frames``: the Hamilton frames of Lin-Manuel Miranda walking up)."""
    path = Path(__file__).resolve().parents[1] / "daemon" / "conftest.py"
    spec = importlib.util.spec_from_file_location("tests_daemon_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_daemon = _daemon_fixtures()
in_process = _daemon.in_process
lin_frames = _daemon.lin_frames
