"""setup_logging: the terminal shape, the journald-over-stderr shape, idempotence."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

import pytest

from pi_facegate.daemon.logsetup import _journal_handler, setup_logging
from pi_facegate.exc import ConfigError

try:
    from systemd.journal import JournalHandler  # type: ignore[import-not-found]
except ImportError:
    JournalHandler = None


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(False)


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    monkeypatch.delenv("INVOCATION_ID", raising=False)


@pytest.fixture
def systemd_unit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    monkeypatch.setenv("INVOCATION_ID", "0123456789abcdef0123456789abcdef")


def test_terminal_shape_has_timestamps_and_levels(terminal):
    out = io.StringIO()
    setup_logging("debug", stream=out)
    logging.getLogger("pi_facegate.door").debug("relay on %s", 17)
    line = out.getvalue().strip()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} DEBUG   pi_facegate.door: relay on 17", line
    )


def test_calling_twice_keeps_one_handler_and_the_new_level(terminal):
    first, second = io.StringIO(), io.StringIO()
    setup_logging(logging.DEBUG, stream=first)
    handler = setup_logging("WARNING", stream=second)
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_pi_facegate_handler", False)]
    assert ours == [handler]
    log = logging.getLogger("pi_facegate.test")
    log.info("hidden")
    log.warning("shown")
    assert first.getvalue() == ""
    assert second.getvalue().count("shown") == 1 and "hidden" not in second.getvalue()


@pytest.mark.skipif(JournalHandler is not None, reason="systemd-python installed: journal used")
def test_under_systemd_without_systemd_python_prefixes_priorities(systemd_unit):
    out = io.StringIO()
    setup_logging("INFO", stream=out)
    log = logging.getLogger("pi_facegate.door")
    log.info("granted")
    try:
        raise OSError("relay driver gone")
    except OSError:
        log.exception("relay failed")
    lines = out.getvalue().splitlines()
    assert lines[0] == "<6>pi_facegate.door: granted"
    assert lines[1] == "<3>pi_facegate.door: relay failed"
    assert len(lines) > 3 and all(line.startswith("<3>") for line in lines[1:])  # traceback too
    assert lines[-1] == "<3>OSError: relay driver gone"


@pytest.mark.skipif(JournalHandler is not None, reason="systemd-python installed: journal used")
def test_journal_requested_without_systemd_python_falls_back_with_a_warning(terminal):
    out = io.StringIO()
    setup_logging("INFO", journal=True, stream=out)
    assert out.getvalue().startswith("<4>pi_facegate.logsetup: systemd-python is not installed")


def test_journal_false_under_systemd_uses_stderr(systemd_unit):
    out = io.StringIO()
    handler = setup_logging("INFO", journal=False, stream=out)
    assert isinstance(handler, logging.StreamHandler)
    logging.getLogger("x").warning("w")
    assert out.getvalue() == "<4>x: w\n"


def test_python_warnings_are_logged(terminal):
    out = io.StringIO()
    setup_logging("INFO", stream=out)
    import warnings

    warnings.warn("Falling back from lgpio", stacklevel=1)
    assert "Falling back from lgpio" in out.getvalue()


def test_unknown_level_names_the_choices(terminal):
    with pytest.raises(ConfigError, match="'loud'.*DEBUG"):
        setup_logging("loud")


@pytest.mark.skipif(JournalHandler is None, reason="systemd-python (systemd.journal) not installed")
def test_under_systemd_with_systemd_python_uses_the_journal(systemd_unit):
    handler = setup_logging("INFO")
    assert isinstance(handler, JournalHandler)
    assert handler._extra["SYSLOG_IDENTIFIER"] == "pi-facegate"
    assert isinstance(_journal_handler(), JournalHandler)
