"""Logging for the daemon and the CLI: journald under systemd, plain stderr elsewhere.

Three shapes, picked by :func:`setup_logging`:

* **journald, structured** -- under systemd with systemd-python installed:
  ``systemd.journal.JournalHandler`` sends each record as a journal entry with ``PRIORITY``,
  ``LOGGER``, ``CODE_*`` fields, plus any upper-case ``extra=`` keys, so
  ``logger.info("granted", extra={"PERSON": "ada"})`` is searchable as
  ``journalctl PERSON=ada``.
* **journald via stderr** -- under systemd without systemd-python: no timestamps (journald adds
  its own) and a ``<N>`` syslog priority prefix on every line, which journald turns into the
  entry's priority (``SyslogLevelPrefix=`` is on by default), so tracebacks keep their level.
* **terminal** -- anywhere else: timestamp, level, logger, message on stderr.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import IO, Literal

from pi_facegate.exc import ConfigError

SYSLOG_IDENTIFIER = "pi-facegate"
TERMINAL_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
JOURNAL_STREAM_FORMAT = "%(name)s: %(message)s"

_MARK = "_pi_facegate_handler"  # tags the handler we installed, for idempotence


def under_systemd() -> bool:
    """True when systemd started us: it sets ``JOURNAL_STREAM`` or ``INVOCATION_ID``."""
    return bool(os.environ.get("JOURNAL_STREAM") or os.environ.get("INVOCATION_ID"))


def syslog_priority(levelno: int) -> int:
    """The syslog priority (0 = emerg .. 7 = debug) for a :mod:`logging` level."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


class PriorityPrefixFormatter(logging.Formatter):
    """Prefix every line with ``<N>``, so each journal entry of a traceback keeps its level."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def parse_level(level: int | str) -> int:
    """A :mod:`logging` level from a number or a name such as ``"info"``.

    :raises ConfigError: for an unknown name.
    """
    if isinstance(level, int):
        return level
    names = logging.getLevelNamesMapping()
    try:
        return names[level.strip().upper()]
    except KeyError:
        valid = ", ".join(n for n in names if n not in ("NOTSET", "WARN", "FATAL"))
        raise ConfigError(f"unknown log level {level!r}; use one of {valid}") from None


def _journal_handler() -> logging.Handler | None:
    """systemd-python's JournalHandler, or None where it is not installed."""
    try:
        from systemd.journal import JournalHandler  # type: ignore[import-not-found]
    except ImportError:
        return None
    return JournalHandler(SYSLOG_IDENTIFIER=SYSLOG_IDENTIFIER)


def setup_logging(
    level: int | str = logging.INFO,
    journal: bool | Literal["auto"] = "auto",
    *,
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Configure the root logger once; calling again replaces our handler, never adds one.

    :param level: a :mod:`logging` level or its name.
    :param journal: ``"auto"``: journald when under systemd; True: journald if systemd-python
        is installed (else stderr in the journal shape, with a warning); False: stderr.
    :param stream: where the stderr shapes write (default: ``sys.stderr`` at call time).
    :returns: the installed handler.
    :raises ConfigError: for an unknown level name.
    """
    levelno = parse_level(level)
    systemd_run = under_systemd()
    want_journal = systemd_run if journal == "auto" else bool(journal)
    handler = _journal_handler() if want_journal else None
    missing_journal = want_journal and handler is None
    if handler is None:
        handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
        if systemd_run or missing_journal:
            handler.setFormatter(PriorityPrefixFormatter(JOURNAL_STREAM_FORMAT))
        else:
            handler.setFormatter(logging.Formatter(TERMINAL_FORMAT))
    setattr(handler, _MARK, True)

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(levelno)
    logging.captureWarnings(True)  # e.g. gpiozero's PinFactoryFallback goes to the log too
    if missing_journal and journal is True:
        logging.getLogger("pi_facegate.logsetup").warning(
            "systemd-python is not installed; logging to stderr instead of the journal"
        )
    return handler
