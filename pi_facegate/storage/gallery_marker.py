"""The gallery's marker: a small file beside it that remembers the gallery existed.

A gallery that vanished (deleted, a failed restore, a mount that did not come up) must
not be quietly re-created empty: the door would then run, let nobody in, and nobody
would learn why. So whenever a gallery is created -- or an older one without a marker is
opened -- a marker ``.<gallery file name>-created`` (``.gallery.db-created``) is written
next to it (atomically, mode 0600), recording when the gallery was created and whether
anybody was ever enrolled in it. :class:`~pi_facegate.storage.gallery.Gallery` refuses
to create a gallery where a marker says one existed, unless asked to start over
(``facegate gallery init --force``), and the daemon warns when a gallery that had people
holds nobody.

The marker is a state file like the others: read under the rules of
:mod:`pi_facegate.storage.trust`. It proves nothing about the gallery's content; it only
turns "no file" from "first run" into "lost".
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from pi_facegate.exc import GalleryError
from pi_facegate.storage.trust import GALLERY_MARKER, open_private, write_private_text

log = logging.getLogger("pi_facegate.gallery")  # journal name: stable across moves

#: The most of a marker file that is read; a real one is under 200 bytes.
_MAX_BYTES = 4096


@dataclass(frozen=True)
class GalleryMarker:
    """When the gallery was created (its ``meta`` ISO 8601 UTC time) and whether anybody
    was ever stored in it."""

    created: str
    had_people: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True) + "\n"


def marker_path(gallery: Path) -> Path:
    """The marker of the gallery file ``gallery``: a hidden file in the same directory."""
    gallery = Path(gallery)
    return gallery.with_name(f".{gallery.name}-created")


def read_marker(gallery: Path) -> GalleryMarker | None:
    """The marker of ``gallery``, or None when there is none (or no directory).

    :raises GalleryError: when the marker could have been planted (trust rules) or is not
        a marker: it is never silently ignored, as it alone tells a loss from a first run.
    """
    path = marker_path(gallery)
    try:
        with os.fdopen(open_private(path, GALLERY_MARKER), encoding="utf-8") as handle:
            text = handle.read(_MAX_BYTES)
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise GalleryError(f"gallery marker {path}: cannot read it: {exc}") from None
    try:
        data = json.loads(text)
        marker = GalleryMarker(str(data["created"]), bool(data.get("had_people", False)))
    except (ValueError, TypeError, KeyError):
        raise GalleryError(
            f"gallery marker {path} is not a gallery marker: remove it if the gallery "
            f"{gallery} is as it should be"
        ) from None
    return marker


def write_marker(gallery: Path, marker: GalleryMarker) -> None:
    """Write the marker of ``gallery`` atomically, mode 0600."""
    write_private_text(marker_path(gallery), marker.to_json())


def save_marker(gallery: Path, marker: GalleryMarker) -> bool:
    """:func:`write_marker`, logging (not raising) a failure: True when it was written.

    A marker that cannot be written costs only the detection of a later loss; the gallery
    itself, just opened or just changed, is fine, so its caller goes on.
    """
    try:
        write_marker(gallery, marker)
    except OSError as exc:
        log.warning(
            "gallery %s: cannot write its marker %s (%s): a later loss of the gallery would "
            "not be noticed",
            gallery,
            marker_path(gallery),
            exc.strerror or exc,
        )
        return False
    return True


def reconcile_marker(
    gallery: Path, created: str, has_people: bool, new: bool = False
) -> tuple[GalleryMarker | None, GalleryMarker]:
    """``(found, now)``: the marker of the gallery just opened, as found and as it is now.

    ``found`` is None when there was none, or when it is not this gallery's: ``new`` (the
    gallery was created just now, e.g. started over) or another ``created`` (restored from
    elsewhere). A gallery without its marker gets one (also a gallery made before markers
    existed); ``had_people`` only ever turns on, so an emptied gallery is still told apart.
    """
    found = read_marker(gallery)
    if found is not None and (new or found.created != created):
        found = None
    now = GalleryMarker(created, has_people or bool(found and found.had_people))
    if now != found:
        save_marker(gallery, now)
    return found, now


def lost_gallery_message(gallery: Path, marker: GalleryMarker, state: str) -> str:
    """What to tell an operator whose gallery ``state`` (``"is gone"``, ``"is an empty
    file"``) although its marker says it was created: how to restore or start over."""
    return (
        f"the gallery {gallery} existed (created {marker.created}) and {state}: restore it "
        f"from a backup, or `facegate gallery init --force` to start empty"
    )
