"""The publisher's place in the event log: the id of the last event the broker acknowledged.

The event log is the source of truth; the cursor only says how far the broker has it. It is
one number in ``<state dir>/mqtt-cursor`` (beside the event log), written atomically (a 0600
temporary file renamed over it, fsync-ed) each time the broker acknowledges more events, so
after a restart, a power cut or a long outage the publisher resumes right after the last
event the broker took: at-least-once, in order.

**A fresh cursor starts at the end of the log.** Switching MQTT on for a door that has logged
for a year must not flood the broker (and Home Assistant's automations) with a year of
history: the first publisher starts from the newest event and writes the cursor at once, so
everything recorded from then on is published. ``facegate events`` still shows the past. A
cursor beyond the end of the log (the log was replaced) and one that cannot be read are
treated the same way, with a warning.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pi_facegate.exc import MqttError
from pi_facegate.storage.trust import FileKind, open_private, write_private_text

log = logging.getLogger("pi_facegate.mqtt")

CURSOR_NAME = "mqtt-cursor"
CURSOR_FILE = FileKind("MQTT cursor", MqttError)


def cursor_path(directory: Path) -> Path:
    """The cursor file in ``directory`` (the event log's folder, the service's state dir)."""
    return Path(directory) / CURSOR_NAME


class Cursor:
    """The id of the last event the broker acknowledged, kept in a file.

    :param path: the cursor file.
    :param value: the id it holds.
    """

    def __init__(self, path: Path, value: int) -> None:
        self.path = Path(path)
        self.value = int(value)

    @classmethod
    def open(cls, path: Path, log_end: int) -> Cursor:
        """The saved cursor, or a fresh one at ``log_end`` (the newest event id), saved now.

        :raises MqttError: the file could have been planted (a link, another user's, writable
            by others): the trust rules of the state directory.
        """
        saved = _read(Path(path))
        if saved is not None and saved <= log_end:
            return cls(path, saved)
        if saved is not None:
            log.warning(
                "MQTT cursor %s is at event %d but the event log ends at %d (it was replaced): "
                "publishing from its end",
                path,
                saved,
                log_end,
            )
        cursor = cls(path, log_end)
        cursor.save()
        return cursor

    def advance(self, event_id: int) -> bool:
        """Move to ``event_id`` if it is further on, and save; True if it moved."""
        if event_id <= self.value:
            return False
        self.value = int(event_id)
        self.save()
        return True

    def save(self) -> None:
        """Write the value (atomically, 0600); a failure is logged, the publisher goes on
        (a cursor left behind means events published twice, never lost)."""
        try:
            write_private_text(self.path, f"{self.value}\n")
        except OSError as exc:
            log.warning("cannot write the MQTT cursor %s: %s", self.path, exc)


def _read(path: Path) -> int | None:
    """The id in the cursor file; None when there is none or it is unreadable (warned)."""
    try:
        fd = open_private(path, CURSOR_FILE)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "r", encoding="ascii", errors="replace") as handle:
        text = handle.read(64).strip()
    try:
        value = int(text)
    except ValueError:
        log.warning("MQTT cursor %s holds %r, not an event id: publishing from the end", path, text)
        return None
    return value if value >= 0 else None
