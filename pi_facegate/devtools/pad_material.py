"""Labelled presentation-attack material for ``facegate eval liveness``: what to replay.

Three layouts are read, and several can be given at once:

* **a CSV manifest** (``tools/make_attacks.py`` writes one): ``path,label,type,subject,
  simulated[,source][,split]`` with ``path`` relative to the CSV's folder (a video, a folder
  of frames or an image), ``label`` ``live``, ``attack`` or ``enrol`` (a photo the door
  enrols ``subject`` from), ``type`` the attack instrument (the PAI species);
* **the NUAA Photograph Imposter Database** (a folder with ``ClientRaw/`` and
  ``ImposterRaw/``): every capture session (file-name prefix) is one presentation, each
  subject folder one person, enrolled from the first frame of their first live session;
* **plain folders**: ``ROOT/live/<item>`` and ``ROOT/attack/<species>/<item>``, where an item
  is a video, a folder of frames or an image; no subject, so no door figure.
"""

from __future__ import annotations

import collections
import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pi_facegate.camera.replay import VIDEO_SUFFIXES, ReplaySource
from pi_facegate.exc import FacegateError

LIVE, ATTACK, ENROL = "live", "attack", "enrol"
#: the PAI species name of live presentations
BONA_FIDE = "bona fide"


@dataclass(frozen=True)
class Presentation:
    """One showing of a face to the camera.

    ``frames`` lists the frame files when the presentation is part of a folder (a NUAA
    session); otherwise ``path`` (a video, a folder of frames or one image) is replayed.
    """

    path: Path
    label: str
    species: str
    subject: str | None = None
    simulated: bool = False
    split: str = "report"
    frames: tuple[Path, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.path.parent.name}/{self.path.name}"  # the kind's folder tells twins apart

    @property
    def is_video(self) -> bool:
        return not self.frames and self.path.suffix.lower() in VIDEO_SUFFIXES


@dataclass
class Material:
    """Presentations and the photos that enrol their subjects."""

    presentations: list[Presentation] = field(default_factory=list)
    enrol: dict[str, list[Path]] = field(default_factory=dict)

    def extend(self, other: Material) -> None:
        self.presentations += other.presentations
        for subject, photos in other.enrol.items():
            self.enrol.setdefault(subject, []).extend(photos)

    def without(self, subjects: set[str], split: str | None) -> Material:
        """The material minus ``subjects`` and presentations of another ``split``."""
        kept = [
            p
            for p in self.presentations
            if p.subject not in subjects and (split is None or p.split == split)
        ]
        enrol = {s: v for s, v in self.enrol.items() if s not in subjects}
        return Material(kept, enrol)


def load(root: Path) -> Material:
    """The material at ``root``: a CSV manifest, a NUAA folder or live/attack folders."""
    root = root.resolve()  # frame lists become symlinks: they must not be relative
    if root.is_file() and root.suffix.lower() == ".csv":
        return load_manifest(root)
    if (root / "manifest.csv").is_file():
        return load_manifest(root / "manifest.csv")
    if (root / "ClientRaw").is_dir() and (root / "ImposterRaw").is_dir():
        return load_nuaa(root)
    if (root / "live").is_dir() or (root / "attack").is_dir():
        return load_folders(root)
    raise FacegateError(
        f"{root}: not liveness material (want a CSV manifest, a NUAA folder with ClientRaw/ "
        "and ImposterRaw/, or live/ and attack/<type>/ folders)"
    )


def load_manifest(path: Path) -> Material:
    """Rows of a ``path,label,type,subject,simulated`` CSV (paths relative to its folder)."""
    material = Material()
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"path", "label", "type"} - set(reader.fieldnames or ())
        if missing:
            raise FacegateError(f"{path}: the manifest has no column {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            item = (path.parent / row["path"]).resolve()
            label = row["label"].strip().lower()
            subject = (row.get("subject") or "").strip() or None
            if not item.exists():
                raise FacegateError(f"{path}:{line}: {item} does not exist")
            if label == ENROL:
                if subject is None:
                    raise FacegateError(f"{path}:{line}: an enrol row needs a subject")
                material.enrol.setdefault(subject, []).append(item)
                continue
            if label not in (LIVE, ATTACK):
                raise FacegateError(f"{path}:{line}: label {label!r} is not live/attack/enrol")
            species = BONA_FIDE if label == LIVE else (row["type"].strip() or "unknown")
            material.presentations.append(
                Presentation(
                    item,
                    label,
                    species,
                    subject,
                    simulated=(row.get("simulated") or "").strip().lower() in ("yes", "true", "1"),
                    split=(row.get("split") or "report").strip() or "report",
                )
            )
    return material


def _sessions(folder: Path) -> dict[str, list[Path]]:
    """NUAA capture sessions: file-name prefix -> frames in capture order."""
    found: dict[str, list[Path]] = collections.defaultdict(list)
    for path in folder.glob("*.jpg"):
        found[path.stem.rsplit("_", 1)[0]].append(path)
    return {
        key: sorted(paths, key=lambda p: int(p.stem.rsplit("_", 1)[1]))
        for key, paths in sorted(found.items())
    }


def load_nuaa(root: Path) -> Material:
    """NUAA sessions as presentations (subject ``nuaa-<id>``), enrolled from live frame 1."""
    material = Material()
    for subject_dir in sorted(p for p in (root / "ClientRaw").iterdir() if p.is_dir()):
        subject = f"nuaa-{subject_dir.name}"
        for label, top in ((LIVE, "ClientRaw"), (ATTACK, "ImposterRaw")):
            for prefix, frames in _sessions(root / top / subject_dir.name).items():
                if label == LIVE and subject not in material.enrol:
                    material.enrol[subject] = [frames[0]]
                material.presentations.append(
                    Presentation(
                        root / top / subject_dir.name / prefix,
                        label,
                        BONA_FIDE if label == LIVE else "print (NUAA)",
                        subject,
                        frames=tuple(frames),
                    )
                )
    return material


def load_folders(root: Path) -> Material:
    """``live/<item>`` and ``attack/<species>/<item>`` (no subjects: cues only)."""
    material = Material()
    for item in _items(root / "live"):
        material.presentations.append(Presentation(item, LIVE, BONA_FIDE))
    attack = root / "attack"
    for species in sorted(p for p in attack.iterdir() if p.is_dir()) if attack.is_dir() else ():
        for item in _items(species):
            material.presentations.append(Presentation(item, ATTACK, species.name))
    return material


def _items(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def frames(p: Presentation, fps: float) -> Iterator[tuple[float, np.ndarray]]:
    """(seconds since the start, RGB frame) of a presentation, in order.

    Videos are stamped at their own frame rate; frame folders and lists at ``fps``.
    """
    if p.frames:
        from pi_facegate.vision.images import load_image

        for i, path in enumerate(p.frames):
            yield i / fps, load_image(path)
        return
    with ReplaySource(p.path) as source:
        while (frame := source.read(1.0)) is not None:
            position = frame.position
            yield (frame.index / fps if position is None else position), frame.image
