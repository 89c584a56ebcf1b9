"""Gallery export files: several doors share their enrolled people (``facegate gallery
export`` / ``import``).

The file is JSON, so an administrator can read what is in it before a door takes it in::

    {
      "format": "pi-facegate-gallery-export",
      "format_version": 1,
      "pi_facegate_version": "0.1.0",
      "exported": "2027-01-05T09:30:00+00:00",
      "embedder": {"fingerprint": "dlib_resnet_v1_int8:cd4c992c4eeadf6d",
                   "embedding_size": 128, "encoding": "base64 float32 little-endian"},
      "people": [
        {"name": "Alice", "enabled": true, "pending": false,
         "created": "2027-01-02T08:00:00+00:00", "note": "", "schedule": "office",
         "valid_from": null, "valid_until": "2027-12-31",
         "embeddings": ["<base64 of 128 little-endian float32>", "..."]}
      ]
    }

Every key is required and no other is accepted. It holds what the gallery holds -- names,
embeddings, flags, access rules, creation times -- and no photo (the gallery keeps none);
the embeddings' own times and sources are not kept (imported ones say ``import``). The
embedder's fingerprint and embedding size travel with it: embeddings of another model mean
nothing to this door's matcher, so such a file is refused before anything is opened.

The file holds biometric data: it is written with mode 0600, atomically (a temporary file
in the same directory, then a rename that never replaces another file without ``force``).
On import it must pass the state files' trust rules (:mod:`pi_facegate.storage.trust`: not
a link, this user's or root's, not writable by others, in a private directory) and it is
checked whole before the gallery is touched; the import itself (one transaction) is
:mod:`pi_facegate.storage.gallery_transfer`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import os
import string
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np

from pi_facegate import __version__
from pi_facegate.exc import FacegateError, GalleryError, GalleryMismatchError
from pi_facegate.storage import access_rules
from pi_facegate.storage.gallery import Gallery
from pi_facegate.storage.gallery_vectors import VECTOR_DTYPE, decode
from pi_facegate.storage.names import normalise_name
from pi_facegate.storage.trust import FileKind, open_private, sync_dir

FORMAT = "pi-facegate-gallery-export"
#: Version of the layout above; a file with another one is refused.
FORMAT_VERSION = 1
ENCODING = "base64 float32 little-endian"
#: The largest file read (a 10,000-person gallery with 10 views each is about 70 MB).
MAX_FILE_BYTES = 256 * 1024 * 1024
#: Shorter embeddings are refused as empty: real ones are about 1.4 long (dlib) or 1.
MIN_NORM = 1e-3
#: How far from length 1 an embedding of a normalising embedder may be.
UNIT_TOLERANCE = 1e-3
#: What imported embeddings record as their source.
SOURCE = "import"

EXPORT_FILE = FileKind("gallery export", GalleryError)

_TOP_KEYS = ("format", "format_version", "pi_facegate_version", "exported", "embedder", "people")
_EMBEDDER_KEYS = ("fingerprint", "embedding_size", "encoding")
_PERSON_KEYS = (
    "name", "enabled", "pending", "created", "note",
    "schedule", "valid_from", "valid_until", "embeddings",
)  # fmt: skip
#: SQLite's NOCASE folds ASCII letters only: names are compared as the gallery compares them.
_NOCASE = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


@dataclasses.dataclass(frozen=True, eq=False)
class ExportedPerson:
    """One person of an export file, checked: ``embeddings`` is ``(n, D)`` float32."""

    name: str
    enabled: bool
    pending: bool
    created: str
    note: str
    schedule: str | None
    valid_from: str | None
    valid_until: str | None
    embeddings: np.ndarray

    def fields(self) -> tuple[object, ...]:
        """What an ``--update`` writes besides the embeddings, in :data:`_UPDATE_SQL` order."""
        return (
            int(self.enabled), int(self.pending), self.note,
            self.schedule, self.valid_from, self.valid_until,
        )  # fmt: skip


@dataclasses.dataclass(frozen=True, eq=False)
class Export:
    """A whole export file: the embedder that made it, and its people."""

    fingerprint: str
    embedding_size: int
    people: tuple[ExportedPerson, ...]
    exported: str = ""
    version: str = __version__


# ---------------------------------------------------------------------- export


def export_gallery(gallery: Gallery) -> Export:
    """Everyone in ``gallery`` with their embeddings, read in ONE snapshot."""
    with gallery.transaction() as conn:
        rows = conn.execute(
            "SELECT id, name, enabled, pending, created, note, schedule, valid_from, "
            "valid_until FROM people ORDER BY name COLLATE NOCASE, id"
        ).fetchall()
        blobs: dict[int, list[bytes]] = {}
        for pid, blob in conn.execute("SELECT person_id, vector FROM embeddings ORDER BY id"):
            blobs.setdefault(int(pid), []).append(blob)
    people = []
    for pid, name, enabled, pending, created, note, schedule, first, last in rows:
        vectors = decode(blobs.get(int(pid), []), gallery.embedding_size, gallery.path)
        flags = (bool(enabled), bool(pending))
        people.append(ExportedPerson(name, *flags, created, note, schedule, first, last, vectors))
    return Export(str(gallery.fingerprint), gallery.embedding_size, tuple(people), now_text())


def to_json(export: Export) -> str:
    """The file's text (see the module docstring), one key per line for reading."""
    data = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "pi_facegate_version": export.version,
        "exported": export.exported or now_text(),
        "embedder": {
            "fingerprint": export.fingerprint,
            "embedding_size": export.embedding_size,
            "encoding": ENCODING,
        },
        "people": [_person_json(p) for p in export.people],
    }
    return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _person_json(person: ExportedPerson) -> dict[str, Any]:
    vectors = [
        base64.b64encode(v.astype(VECTOR_DTYPE).tobytes()).decode("ascii")
        for v in person.embeddings
    ]
    return {
        "name": person.name,
        "enabled": person.enabled,
        "pending": person.pending,
        "created": person.created,
        "note": person.note,
        "schedule": person.schedule,
        "valid_from": person.valid_from,
        "valid_until": person.valid_until,
        "embeddings": vectors,
    }


def write_export(path: Path, text: str, force: bool = False) -> None:
    """Write ``text`` to ``path`` with mode 0600, atomically: a reader sees no file or the
    whole one. An existing file is replaced only with ``force``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o600)
    except FileNotFoundError:
        raise GalleryError(f"cannot write {path}: its directory does not exist") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)  # whatever the umask
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        _put_in_place(tmp, path, force)
    finally:
        tmp.unlink(missing_ok=True)
    sync_dir(path.parent)


def _put_in_place(tmp: Path, path: Path, force: bool) -> None:
    """Rename ``tmp`` to ``path``; without ``force`` never over an existing file (a hard
    link fails if the name is taken; where links are not supported, e.g. FAT, check first)."""
    if force:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
        return
    except FileExistsError:
        pass
    except OSError:
        if not os.path.lexists(path):
            os.replace(tmp, path)
            return
    raise GalleryError(f"{path} exists already: nothing written (--force replaces it)")


# ---------------------------------------------------------------------- reading a file


def read_export(path: Path) -> Export:
    """The checked content of the export file at ``path``; nothing else is read or changed.

    :raises GalleryError: the file breaks the trust rules, is too big, or is not a valid
        export (the message names the key and the problem).
    """
    path = Path(path)
    try:
        fd = open_private(path, EXPORT_FILE)
    except FileNotFoundError:
        raise GalleryError(f"no gallery export at {path}") from None
    with os.fdopen(fd, "rb") as handle:
        raw = handle.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise GalleryError(f"gallery export {path} refused: larger than {MAX_FILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GalleryError(f"gallery export {path} refused: not UTF-8 text ({exc})") from None
    return parse_export(text, path)


def parse_export(text: str, source: object = "<export>") -> Export:
    """:func:`read_export`'s checks on the file's text: strict JSON, every key and value."""
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (ValueError, _Malformed) as exc:
        raise GalleryError(
            f"gallery export {source} refused: not valid JSON ({exc}); nothing imported"
        ) from None
    try:
        return _parse(data)
    except _Malformed as exc:
        raise GalleryError(f"gallery export {source} refused: {exc}; nothing imported") from None


class _Malformed(Exception):
    """One problem of a file, with the path of the key (``people[2].embeddings[0]: ...``)."""


def _parse(data: object) -> Export:
    top = _object(data, _TOP_KEYS, "the file")
    if top["format"] != FORMAT:
        raise _Malformed(f"format is {top['format']!r}, not {FORMAT!r}")
    version = _integer(top["format_version"], "format_version")
    if version != FORMAT_VERSION:
        newer = " (made by a newer pi-facegate: upgrade this one)" if version > 1 else ""
        raise _Malformed(f"format_version {version}: this version reads {FORMAT_VERSION}{newer}")
    embedder = _object(top["embedder"], _EMBEDDER_KEYS, "embedder")
    fingerprint = _text(embedder["fingerprint"], "embedder.fingerprint")
    size = _integer(embedder["embedding_size"], "embedder.embedding_size")
    if not fingerprint or size < 1:
        raise _Malformed("embedder: an empty fingerprint or an embedding_size below 1")
    if embedder["encoding"] != ENCODING:
        raise _Malformed(f"embedder.encoding is {embedder['encoding']!r}, not {ENCODING!r}")
    _timestamp(top["exported"], "exported")
    people = top["people"]
    if not isinstance(people, list):
        raise _Malformed("people is not a list")
    parsed = tuple(_person(item, size, f"people[{i}]") for i, item in enumerate(people))
    _refuse_twins(parsed)
    made_by = _text(top["pi_facegate_version"], "pi_facegate_version")
    return Export(fingerprint, size, parsed, top["exported"], made_by)


def _person(item: object, size: int, where: str) -> ExportedPerson:
    person = _object(item, _PERSON_KEYS, where)
    try:
        name = normalise_name(person["name"])
    except FacegateError as exc:
        raise _Malformed(f"{where}.name: {exc}") from None
    where = f"{where} ({name!r})"
    first = _date(person["valid_from"], f"{where}.valid_from")
    last = _date(person["valid_until"], f"{where}.valid_until")
    schedule = person["schedule"]
    if schedule is not None:
        schedule = _text(schedule, f"{where}.schedule")
    note = _text(person["note"], f"{where}.note")
    try:  # the rules `facegate people set` applies: schedule name, date order, note
        rules = access_rules.changes({}, schedule, first, last, note)
    except FacegateError as exc:
        raise _Malformed(f"{where}: {exc}") from None
    return ExportedPerson(
        name=name,
        enabled=_flag(person["enabled"], f"{where}.enabled"),
        pending=_flag(person["pending"], f"{where}.pending"),
        created=_timestamp(person["created"], f"{where}.created"),
        note=str(rules["note"]),
        schedule=rules["schedule"],
        valid_from=rules["valid_from"],
        valid_until=rules["valid_until"],
        embeddings=_vectors(person["embeddings"], size, f"{where}.embeddings"),
    )


def _vectors(items: object, size: int, where: str) -> np.ndarray:
    """The ``(n, size)`` embeddings: n >= 1, each exact bytes, finite and not near zero."""
    if not isinstance(items, list) or not items:
        raise _Malformed(f"{where}: need a list of at least one embedding")
    length = size * VECTOR_DTYPE.itemsize
    vectors = np.empty((len(items), size), dtype=np.float32)
    for i, item in enumerate(items):
        try:
            blob = base64.b64decode(_text(item, f"{where}[{i}]"), validate=True)
        except binascii.Error as exc:
            raise _Malformed(f"{where}[{i}]: not base64 ({exc})") from None
        if len(blob) != length:
            values = f"{len(blob) / VECTOR_DTYPE.itemsize:g}"
            raise _Malformed(f"{where}[{i}]: {values} values, not {size} (embedding_size)")
        vectors[i] = np.frombuffer(blob, dtype=VECTOR_DTYPE)
        if not np.isfinite(vectors[i]).all():
            raise _Malformed(f"{where}[{i}]: NaN or infinite values")
        if float(np.linalg.norm(vectors[i])) < MIN_NORM:
            raise _Malformed(f"{where}[{i}]: a zero vector (length below {MIN_NORM:g})")
    return vectors


def _refuse_twins(people: tuple[ExportedPerson, ...]) -> None:
    seen: dict[str, str] = {}
    for person in people:
        key = name_key(person.name)
        if key in seen:
            raise _Malformed(f"two people are named {seen[key]!r} and {person.name!r}")
        seen[key] = person.name


def _object(value: object, keys: tuple[str, ...], where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Malformed(f"{where} is not a JSON object")
    missing = [k for k in keys if k not in value]
    unknown = sorted(set(value) - set(keys))
    if missing or unknown:
        parts = [f"lacks {', '.join(missing)}"] if missing else []
        parts += [f"has unknown keys {', '.join(unknown)}"] if unknown else []
        raise _Malformed(f"{where} {' and '.join(parts)} (expected: {', '.join(keys)})")
    return value


def _text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise _Malformed(f"{where} is not text: {value!r}")
    return value


def _integer(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Malformed(f"{where} is not an integer: {value!r}")
    return value


def _flag(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise _Malformed(f"{where} is not true or false: {value!r}")
    return value


def _date(value: object, where: str) -> date | None:
    if value is None:
        return None
    try:
        day = date.fromisoformat(_text(value, where))
    except ValueError:
        day = None
    if day is None or day.isoformat() != value:
        raise _Malformed(f"{where} is not a date YYYY-MM-DD: {value!r}")
    return day


def _timestamp(value: object, where: str) -> str:
    try:
        datetime.fromisoformat(_text(value, where))
    except ValueError:
        raise _Malformed(f"{where} is not an ISO 8601 time: {value!r}") from None
    return str(value)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise _Malformed(f"the key {key!r} appears twice in one object")
        data[key] = value
    return data


def _no_constant(name: str) -> None:
    raise _Malformed(f"{name} is not a number")


def check_embedder(
    export: Export, source: object, fingerprint: str, size: int, normalised: bool = False
) -> None:
    """Refuse a file made by another embedder than this door's (``fingerprint``, ``size``).

    ``normalised``: this embedder's vectors have length 1 (its manifest says so), so others
    are refused too.
    """
    if export.fingerprint != fingerprint or export.embedding_size != size:
        raise GalleryMismatchError(
            f"gallery export {source} was made by embedder {export.fingerprint!r} "
            f"({export.embedding_size}-value embeddings), but this door's embedder is "
            f"{fingerprint!r} ({size}-value): their embeddings cannot be compared; nothing "
            "imported. Re-enrol these people here, or use the same model on both doors"
        )
    if not normalised:
        return
    for person in export.people:
        norms = np.linalg.norm(person.embeddings.astype(np.float64), axis=1)
        if np.any(np.abs(norms - 1.0) > UNIT_TOLERANCE):
            raise GalleryError(
                f"gallery export {source} refused: {person.name!r} has embeddings that are "
                f"not of length 1, which embedder {fingerprint!r} always makes; nothing imported"
            )


def name_key(name: str) -> str:
    """A name as SQLite's NOCASE compares it (ASCII letters only fold)."""
    return name.translate(_NOCASE)


def now_text() -> str:
    """Now in UTC, as the gallery writes its times."""
    return datetime.now(UTC).isoformat(timespec="seconds")
