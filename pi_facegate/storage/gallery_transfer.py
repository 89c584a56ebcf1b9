"""Importing a gallery export (``facegate gallery import``): the plan, then one transaction.

The file itself -- its format, strict parsing, and writing it with mode 0600 -- is
:mod:`pi_facegate.storage.gallery_export_file`. Here each person of a checked file gets a
:class:`Decision` against this door's gallery (add, update with ``--update``, or skip: already
here, unchanged, or a face that matches someone else here -- the one lookalike rule of
:func:`pi_facegate.core.capture.lookalike`), and :func:`apply_import` writes them all in one
write transaction made against the snapshot the plan was checked on: if anyone changed the
gallery in between, or any write fails, nothing is imported.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Collection

import numpy as np

from pi_facegate.core.capture import lookalike
from pi_facegate.core.matcher import GalleryIndex
from pi_facegate.exc import FacegateError, GalleryError
from pi_facegate.storage.gallery import Gallery, Person
from pi_facegate.storage.gallery_export_file import (
    SOURCE,
    Export,
    ExportedPerson,
    check_embedder,
    name_key,
    now_text,
)
from pi_facegate.storage.gallery_file import meta_int, read_meta
from pi_facegate.storage.gallery_vectors import insert_vectors

# ---------------------------------------------------------------------- importing


ADD, UPDATE, SKIP = "add", "update", "skip"


@dataclasses.dataclass(frozen=True, eq=False)
class Decision:
    """What an import does with one person of the file, and why."""

    person: ExportedPerson
    action: str  #: :data:`ADD`, :data:`UPDATE` or :data:`SKIP`
    reason: str = ""  #: why it is skipped
    local_id: int | None = None  #: the gallery's person an update replaces
    warnings: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, eq=False)
class ImportPlan:
    """Every person's :class:`Decision`, made against the gallery at ``generation``."""

    decisions: tuple[Decision, ...]
    generation: int

    def names(self, action: str) -> list[str]:
        return [d.person.name for d in self.decisions if d.action == action]

    @property
    def changes(self) -> tuple[Decision, ...]:
        return tuple(d for d in self.decisions if d.action != SKIP)


def plan_import(
    gallery: Gallery,
    export: Export,
    *,
    update: bool,
    threshold: float,
    min_margin: float,
    schedules: Collection[str] | None = None,
) -> ImportPlan:
    """Decide for each person of ``export``: add, update (only with ``update``) or skip.

    People are judged in the file's order as if enrolled here one after the other, by the
    one lookalike rule (:func:`~pi_facegate.core.capture.lookalike`): a person whose face
    this door would take for somebody else -- enrolled here, or earlier in the file -- is
    skipped, so Obama's embeddings never come in under Miranda's name. An update replaces
    the embeddings, flags, note and access rules, and keeps this door's spelling of the name
    and its creation time; one that would change nothing is skipped. A schedule not in
    ``schedules`` (the door's config) is imported and warned about: that person is denied
    here until it is defined (never let in at any time instead). Embeddings of another
    embedder than the gallery's are refused (:func:`check_embedder`).
    """
    check_embedder(export, "being imported", str(gallery.fingerprint), gallery.embedding_size)
    index = gallery.index()
    local = {name_key(p.name): p for p in gallery.people()}
    roster = {
        name_key(index.names[k]): (index.names[k], index.rows_of(k)) for k in range(len(index))
    }
    wanted = [
        _decide(p, local.get(name_key(p.name)), roster, update, index.dim) for p in export.people
    ]
    near = _near_others([d.person for d in wanted if d.action != SKIP], roster, threshold)
    decisions = []
    for decision in wanted:
        person = decision.person
        if decision.action != SKIP:
            found = None
            if name_key(person.name) in near:
                found = _lookalike(roster, person, threshold, min_margin)
            if found is not None:
                decision = Decision(person, SKIP, found)
            else:
                roster[name_key(person.name)] = (person.name, person.embeddings)
        if decision.action != SKIP and schedules is not None:
            decision = _warn_schedule(decision, schedules)
        decisions.append(decision)
    return ImportPlan(tuple(decisions), index.version)


def _decide(
    person: ExportedPerson,
    present: Person | None,
    roster: dict[str, tuple[str, np.ndarray]],
    update: bool,
    dim: int,
) -> Decision:
    """Add a newcomer; skip one already enrolled, unless ``update`` and something differs."""
    if present is None:
        return Decision(person, ADD)
    if not update:
        return Decision(person, SKIP, f"already enrolled as {present.name!r} (--update replaces)")
    _, vectors = roster.get(name_key(present.name), ("", np.zeros((0, dim), np.float32)))
    here = (present.enabled, present.pending, present.note, present.schedule)
    here += (present.valid_from, present.valid_until)
    if person.fields() == here and np.array_equal(vectors, person.embeddings):
        return Decision(person, SKIP, "unchanged")
    return Decision(person, UPDATE, local_id=present.id)


def _near_others(
    people: list[ExportedPerson], roster: dict[str, tuple[str, np.ndarray]], threshold: float
) -> set[str]:
    """The name keys of ``people`` with an embedding within ``threshold`` of another
    person's -- enrolled here, or in the file.

    Only they can be lookalikes (a face is recognised as someone only within the
    threshold), so only they pay for :func:`_lookalike`'s index of everyone else: an
    import of a thousand people takes one pass over the vectors, not a thousand indexes.
    In float64, so no float32 rounding hides a pair the matcher would see.
    """
    everyone = [(key, rows) for key, (_, rows) in roster.items()]
    everyone += [(name_key(p.name), p.embeddings) for p in people]
    if not people or len(everyone) < 2:
        return set()
    codes = {key: i for i, key in enumerate(dict.fromkeys(key for key, _ in everyone))}
    owner = np.concatenate([np.full(len(rows), codes[key]) for key, rows in everyone])
    matrix = np.concatenate([rows for _, rows in everyone]).astype(np.float64)
    sq_norms = np.einsum("kd,kd->k", matrix, matrix)
    limit = (threshold + 1e-9) ** 2
    near = set()
    for person in people:
        queries = person.embeddings.astype(np.float64)
        sq = np.einsum("nd,nd->n", queries, queries)[:, None] + sq_norms - 2 * queries @ matrix.T
        others = owner != codes[name_key(person.name)]
        if np.any(sq[:, others] <= limit):
            near.add(name_key(person.name))
    return near


def _lookalike(
    roster: dict[str, tuple[str, np.ndarray]],
    person: ExportedPerson,
    threshold: float,
    min_margin: float,
) -> str | None:
    """Why ``person`` may not come in (their face is someone else's), or None."""
    others = [(name, rows) for key, (name, rows) in roster.items() if key != name_key(person.name)]
    if not others:
        return None
    owners = np.concatenate([np.full(len(rows), i) for i, (_, rows) in enumerate(others)])
    index = GalleryIndex.build(
        [(i, name, True, False) for i, (name, _) in enumerate(others)],
        owners,
        np.concatenate([rows for _, rows in others]),
        fingerprint="import",
        version=0,
    )
    found = lookalike(index, person.embeddings, threshold, min_margin, person.name)
    if found is None:
        return None
    other, distance = found
    return f"the face matches {other!r} (distance {distance:.3f}): not imported"


def _warn_schedule(decision: Decision, schedules: Collection[str]) -> Decision:
    schedule = decision.person.schedule
    if schedule is None or schedule in schedules:
        return decision
    warning = (
        f"{decision.person.name}: schedule {schedule!r} is not defined in this door's config: "
        "denied here until it is (or facegate people set NAME --schedule/--no-schedule)"
    )
    return dataclasses.replace(decision, warnings=(warning,))


_INSERT_SQL = (
    "INSERT INTO people (name, enabled, pending, created, note, schedule, valid_from, "
    "valid_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPDATE_SQL = (
    "UPDATE people SET enabled = ?, pending = ?, note = ?, schedule = ?, valid_from = ?, "
    "valid_until = ? WHERE id = ?"
)


def apply_import(gallery: Gallery, plan: ImportPlan) -> None:
    """Carry out ``plan`` in ONE write transaction: every change, or -- on any failure, or
    when the gallery changed since the plan was made -- none."""
    if not plan.changes:
        return
    try:
        with gallery.transaction(write=True) as conn:
            generation = meta_int(read_meta(conn, gallery.path), "generation", gallery.path)
            if generation != plan.generation:
                raise GalleryError(
                    f"gallery {gallery.path} changed while the import was checked "
                    "(someone enrolled or changed a person): run the import again"
                )
            now = now_text()
            for decision in plan.changes:
                _apply(conn, decision, now)
    except FacegateError as exc:
        raise GalleryError(f"nothing imported, the gallery is as it was: {exc}") from exc


def _apply(conn: sqlite3.Connection, decision: Decision, now: str) -> None:
    person = decision.person
    if decision.action == ADD:
        enabled, pending, note, schedule, first, last = person.fields()
        cursor = conn.execute(
            _INSERT_SQL,
            (person.name, enabled, pending, person.created, note, schedule, first, last),
        )
        person_id = int(cursor.lastrowid)
    else:
        assert decision.local_id is not None
        person_id = decision.local_id
        conn.execute(_UPDATE_SQL, (*person.fields(), person_id))
        conn.execute("DELETE FROM embeddings WHERE person_id = ?", (person_id,))
    sources: list[str | None] = [SOURCE] * len(person.embeddings)
    insert_vectors(conn, person_id, person.embeddings, sources, now)
