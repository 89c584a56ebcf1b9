"""Storing a finished capture in the gallery: the glue between the pure capture and storage.

:func:`complete` checks the faces a :class:`~pi_facegate.core.capture.CaptureSession`
picked against the gallery (a face that already matches someone else is refused, see
:func:`~pi_facegate.core.capture.lookalike`) and stores the person in ONE transaction, so
a crash never leaves half a person. The door's enrolment
(:mod:`pi_facegate.daemon.door_enrolment`) and ``facegate enroll NAME --camera`` both end
a capture here.
"""

from __future__ import annotations

from dataclasses import dataclass

from pi_facegate.core.capture import (
    CaptureResult,
    EnrolmentRequest,
    lookalike,
    update_mismatch,
)
from pi_facegate.core.matcher import GalleryIndex
from pi_facegate.exc import FacegateError
from pi_facegate.storage.gallery import Gallery, Person


@dataclass(frozen=True)
class EnrolmentOutcome:
    """The end of one enrolment: the stored person, or the reason nothing was stored."""

    request: EnrolmentRequest
    capture: CaptureResult
    person: Person | None = None
    reason: str | None = None
    lookalike: str | None = None  # the enrolled person the face already matches, if that failed it

    @property
    def ok(self) -> bool:
        return self.person is not None


def complete(
    gallery: Gallery,
    index: GalleryIndex,
    request: EnrolmentRequest,
    capture: CaptureResult,
    threshold: float,
    min_margin: float,
) -> EnrolmentOutcome:
    """Store a finished capture in ONE transaction, or say why not.

    Nothing is stored when the capture failed, when an update's faces are not recognised as
    the person being updated (whatever ``allow_lookalike`` says: an update is never a new
    identity), when the face already matches another enrolled person (unless
    ``request.allow_lookalike``), when the name is taken (without ``update``) or unknown
    (with ``update``). Gallery errors become the outcome's reason.
    """
    if not capture.ok:
        return EnrolmentOutcome(request, capture, reason=capture.reason)
    if request.update:
        mismatch = update_mismatch(index, capture.embeddings, threshold, min_margin, request.name)
        if mismatch is not None:
            return EnrolmentOutcome(request, capture, reason=mismatch)
    if not request.allow_lookalike:
        found = lookalike(index, capture.embeddings, threshold, min_margin, request.name)
        if found is not None:
            other, distance = found
            reason = f"already enrolled as {other!r} (distance {distance:.3f})"
            return EnrolmentOutcome(request, capture, reason=reason, lookalike=other)
    try:
        if request.update:
            person = gallery.add_embeddings(request.name, capture.embeddings, source=request.source)
        else:
            person = gallery.add_person(
                request.name,
                capture.embeddings,
                enabled=request.enabled,
                pending=request.pending,
                note=request.note,
                source=request.source,
            )
    except FacegateError as exc:
        return EnrolmentOutcome(request, capture, reason=str(exc))
    return EnrolmentOutcome(request, capture, person=person)
