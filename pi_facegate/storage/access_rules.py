"""The access rules stored with each person in the gallery: schedule, valid dates, note.

Columns of the ``people`` table (schema 2, see :mod:`pi_facegate.storage.gallery_schema`):
``schedule`` (a schedule name of the config, NULL = any time), ``valid_from`` and
``valid_until`` (ISO dates ``YYYY-MM-DD``, inclusive, NULL = no limit). They are written by
``facegate people set`` through :meth:`pi_facegate.storage.gallery.Gallery.set_access`
and read into the matcher's snapshot with the embeddings (:func:`rules_from_rows`), so the
running daemon applies a change at its next gallery poll, like an enrolment.

A stored value that does not parse (the file edited with ``sqlite3``) fails secure: a bad
``valid_until`` counts as long past, a bad ``valid_from`` as never reached, so that person is
refused, and the journal says why.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date
from typing import Any

from pi_facegate.core.access_rules import PersonRules
from pi_facegate.core.schedule import check_name
from pi_facegate.exc import ConfigError, InvalidPersonError

log = logging.getLogger("pi_facegate.gallery")  # journal name: stable across moves

#: The columns, in the order :func:`rules_from_rows` reads them after the person's id.
COLUMNS = ("schedule", "valid_from", "valid_until")
#: Longest note kept with a person.
MAX_NOTE_LENGTH = 500


class _Keep:
    """The "leave this value as it is" marker of :meth:`Gallery.set_access`."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Any = _Keep()


def changes(
    current: dict[str, str | None],
    schedule: str | None | _Keep = KEEP,
    valid_from: date | None | _Keep = KEEP,
    valid_until: date | None | _Keep = KEEP,
    note: str | _Keep = KEEP,
) -> dict[str, str | None]:
    """The column values to write for these changes to a person whose values are ``current``.

    Refused (:class:`InvalidPersonError`): a schedule name no config could define, a
    ``valid_from`` after the ``valid_until`` it would be paired with, an overlong note or one
    with control characters.
    """
    found: dict[str, str | None] = {}
    if not isinstance(schedule, _Keep):
        if schedule is not None:
            try:
                check_name(schedule)
            except ConfigError as exc:
                raise InvalidPersonError(str(exc)) from None
        found["schedule"] = schedule
    for column, value in (("valid_from", valid_from), ("valid_until", valid_until)):
        if not isinstance(value, _Keep):
            if value is not None and not isinstance(value, date):
                raise InvalidPersonError(f"{column} must be a date, not {value!r}")
            found[column] = None if value is None else value.isoformat()
    first = found.get("valid_from", current.get("valid_from"))
    last = found.get("valid_until", current.get("valid_until"))
    if first and last and first > last:
        raise InvalidPersonError(
            f"valid_from {first} is after valid_until {last}: nobody could ever be let in"
        )
    if not isinstance(note, _Keep):
        found["note"] = _check_note(note)
    return found


def rules_from_rows(rows: Iterable[tuple[Any, ...]], path: object) -> dict[int, PersonRules]:
    """``{person_id: PersonRules}`` from ``(id, name, schedule, valid_from, valid_until)`` rows.

    Unrestricted people are left out; an unreadable date is logged and refuses the person.
    """
    rules: dict[int, PersonRules] = {}
    for pid, name, schedule, first, last in rows:
        if schedule is None and first is None and last is None:
            continue
        rules[int(pid)] = PersonRules(
            schedule=None if schedule is None else str(schedule),
            valid_from=_stored_date(first, date.max, name, "valid_from", path),
            valid_until=_stored_date(last, date.min, name, "valid_until", path),
        )
    return rules


def _stored_date(value: Any, unreadable: date, name: str, column: str, path: object) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        log.warning(
            "gallery %s: %s of %s is %r, not a date: %s is refused until it is set again "
            "(facegate people set NAME --from/--until/--clear-dates)",
            path,
            column,
            name,
            value,
            name,
        )
        return unreadable


def _check_note(note: str) -> str:
    text = str(note).strip()
    if len(text) > MAX_NOTE_LENGTH:
        raise InvalidPersonError(f"a note may have at most {MAX_NOTE_LENGTH} characters")
    if any(not (ch.isprintable() or ch == " ") for ch in text):
        raise InvalidPersonError("a note may not contain control characters (newlines, escapes)")
    return text
