"""Strangers at scale: how often is a stranger let in as *somebody*, as the gallery grows?

Every enrolled person is one more chance for a lookalike, so one attempt's false-accept
chance grows with the number of people enrolled; ``facegate eval identify`` (a few dozen
people from one photo set) cannot show that. This protocol pools the shared photo sets into
one population of identities, and for each gallery size N and seed:

* enrols N people drawn from those with at least ``enrol + 1`` photos, ``enrol`` photos each;
* probes with their remaining photos (genuine: accepted as themselves? as someone else?);
* probes with ONE photo of every other identity (strangers: accepted as anyone?),

with the fixed threshold and with the threshold chosen for the gallery's size side by side.
Single photos, each judged alone: the door's vote over several frames comes on top.

The people the embedder's open-set table was calibrated on (the manifest's
``embedding.calibration.people``) are left out: a threshold is never reported on the people
it was measured on. This module is pure over embeddings (rows of one matrix); reading and
embedding the photos is the CLI's (``pi_facegate.cli.eval_strangers``).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from pi_facegate.core.matcher import GalleryIndex, search
from pi_facegate.core.open_set import OpenSetRule


@dataclass(frozen=True)
class Identity:
    """One person of the pooled population: ``key`` is ``<source>/<name>``."""

    key: str
    source: str
    photos: tuple[Path, ...]


def _att_faces(root: Path) -> dict[str, list[Path]]:
    return {d.name: sorted(d.glob("*.pgm")) for d in sorted(root.glob("s*")) if d.is_dir()}


def _yalefaces(root: Path) -> dict[str, list[Path]]:
    people: dict[str, list[Path]] = {}
    for path in sorted(root.iterdir()):
        found = re.match(r"subject\d+", path.name)
        if found and path.is_file():
            people.setdefault(found.group(0), []).append(path)
    return people


def _deepface_testset(root: Path) -> dict[str, list[Path]]:
    people: dict[str, list[Path]] = {}
    with open(root / "identities_derived.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if (root / row["file"]).is_file():
                people.setdefault(row["identity_id"], []).append(root / row["file"])
    return people


#: face_recognition_examples' one-face photos by person: each distinct photo once (the
#: repository holds byte copies, resized and letterboxed copies and crops of the same photos,
#: which would be "genuine" probes identical to an enrolled photo)
FACE_RECOGNITION_PHOTOS = {
    "obama": [
        "examples/obama.jpg",
        "examples/obama2.jpg",
        "examples/obama_small.jpg",
        "examples/knn_examples/test/obama1.jpg",
        "tests/test_images/obama3.jpg",
    ],
    "biden": ["examples/biden.jpg", "examples/knn_examples/train/biden/biden2.jpg"],
    "alex_lacamoire": [
        "examples/alex-lacamoire.png",
        "examples/knn_examples/train/alex_lacamoire/img1.jpg",
        "examples/knn_examples/test/alex_lacamoire1.jpg",
    ],
    "kit_harington": [
        "examples/knn_examples/train/kit_harington/john1.jpeg",
        "examples/knn_examples/train/kit_harington/john2.jpeg",
        "examples/knn_examples/test/johnsnow_test1.jpg",
    ],
    "rose_leslie": [
        "examples/knn_examples/train/rose_leslie/img1.jpg",
        "examples/knn_examples/train/rose_leslie/img2.jpg",
    ],
    "lin_manuel_miranda": ["examples/lin-manuel-miranda.png"],
}


def _face_recognition_examples(root: Path) -> dict[str, list[Path]]:
    return {
        name: [root / rel for rel in files if (root / rel).is_file()]
        for name, files in FACE_RECOGNITION_PHOTOS.items()
    }


#: the photo sets pooled, by folder under the face data root
SOURCES: dict[str, Callable[[Path], dict[str, list[Path]]]] = {
    "att_faces": _att_faces,
    "yalefaces": _yalefaces,
    "deepface_testset": _deepface_testset,
    "face_recognition_examples": _face_recognition_examples,
}


def pooled_identities(
    root: Path, exclude: Iterable[str] = (), sources: Sequence[str] | None = None
) -> tuple[list[Identity], list[str]]:
    """``(identities, notes)``: every person of the pooled sets under ``root``.

    ``exclude`` names source folders left out (the calibration people); a source that is
    absent is noted, not an error. The sets hold different people (checked by
    ``facegate eval strangers``: no cross-set pair of photos is a near match).
    """
    excluded = set(exclude)
    identities, notes = [], []
    for source in sources or list(SOURCES):
        if source in excluded:
            notes.append(f"{source}: left out (calibration people of the embedder's table)")
            continue
        folder = root / source
        if not folder.is_dir():
            notes.append(f"{source}: not found under {root}")
            continue
        for name, photos in SOURCES[source](folder).items():
            if photos:
                identities.append(Identity(f"{source}/{name}", source, tuple(photos)))
    return identities, notes


@dataclass(frozen=True)
class Split:
    """One draw: who is enrolled with which photos, and the probes (rows of the matrix)."""

    enrolled: tuple[tuple[str, tuple[int, ...]], ...]
    genuine: tuple[tuple[int, str], ...]
    strangers: tuple[int, ...]


def eligible(identities: Sequence[Identity], enrol: int) -> list[Identity]:
    """The people who can be enrolled with ``enrol`` photos and still leave one to probe."""
    return [i for i in identities if len(i.photos) > enrol]


def largest_size(identities: Sequence[Identity], enrol: int, min_strangers: int) -> int:
    """The largest gallery the data allows with at least ``min_strangers`` left as strangers."""
    return max(0, min(len(eligible(identities, enrol)), len(identities) - min_strangers))


def draw_split(
    identities: Sequence[Identity],
    rows: dict[Path, int],
    people: int,
    enrol: int,
    rng: np.random.Generator,
) -> Split:
    """Enrol ``people`` random eligible people, ``enrol`` random photos each; the rest of
    their photos are genuine probes, one random photo of everyone else a stranger probe."""
    pool = eligible(identities, enrol)
    chosen = {pool[i].key for i in rng.choice(len(pool), size=people, replace=False)}
    enrolled, genuine, strangers = [], [], []
    for identity in identities:
        photos = [rows[p] for p in identity.photos]
        order = [photos[i] for i in rng.permutation(len(photos))]
        if identity.key in chosen:
            enrolled.append((identity.key, tuple(order[:enrol])))
            genuine += [(r, identity.key) for r in order[enrol:]]
        else:
            strangers.append(order[0])
    return Split(tuple(enrolled), tuple(genuine), tuple(strangers))


@dataclass
class Tally:
    """Counts of one threshold over one or more splits."""

    genuine: int = 0
    genuine_accepted: int = 0
    wrong_person: int = 0
    strangers: int = 0
    strangers_accepted: int = 0

    def add(self, other: Tally) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    def rates(self) -> dict[str, float | int | None]:
        def rate(count: int, total: int) -> float | None:
            return count / total if total else None

        return {
            "genuine_accept": rate(self.genuine_accepted, self.genuine),
            "wrong_person": rate(self.wrong_person, self.genuine),
            "strangers_accepted": rate(self.strangers_accepted, self.strangers),
            "strangers_accepted_count": self.strangers_accepted,
        }


def gallery_of(split: Split, vectors: np.ndarray) -> GalleryIndex:
    """The split's enrolled people as a search index (everyone enabled and approved)."""
    people = [(pid, key, True, False) for pid, (key, _) in enumerate(split.enrolled)]
    owners = [pid for pid, (_, rows) in enumerate(split.enrolled) for _ in rows]
    picked = [r for _, rows in split.enrolled for r in rows]
    return GalleryIndex.build(people, owners, vectors[picked], "eval", 0)


def tally(
    split: Split, index: GalleryIndex, vectors: np.ndarray, threshold: float, margin: float
) -> Tally:
    """What the door would decide for every probe of ``split`` at ``threshold``."""
    result = Tally(genuine=len(split.genuine), strangers=len(split.strangers))
    genuine = search(index, vectors[[r for r, _ in split.genuine]], threshold, margin)
    for match, (_, truth) in zip(genuine, split.genuine, strict=True):
        if match is not None and match.accepted:
            if match.name == truth:
                result.genuine_accepted += 1
            else:
                result.wrong_person += 1
    for match in search(index, vectors[list(split.strangers)], threshold, margin):
        result.strangers_accepted += int(match is not None and match.accepted)
    return result


@dataclass
class CurvePoint:
    """One gallery size over all seeds: both thresholds' tallies."""

    people: int
    asked: int
    seeds: int
    fixed_threshold: float
    size_threshold: float
    predicted_per_attempt: float | None
    fixed: Tally = field(default_factory=Tally)
    size: Tally = field(default_factory=Tally)

    def as_dict(self) -> dict:
        return {
            "people": self.people,
            "asked": self.asked,
            "seeds": self.seeds,
            "genuine_probes": self.fixed.genuine,
            "stranger_probes": self.fixed.strangers,
            "fixed": {"threshold": self.fixed_threshold, **self.fixed.rates()},
            "gallery_size": {
                "threshold": self.size_threshold,
                "predicted_per_attempt": self.predicted_per_attempt,
                **self.size.rates(),
            },
        }


def strangers_curve(
    identities: Sequence[Identity],
    vectors: np.ndarray,
    rows: dict[Path, int],
    sizes: Sequence[tuple[int, int]],
    enrol: int,
    seeds: Sequence[int],
    fixed: float,
    rule: OpenSetRule,
    margin: float,
) -> list[CurvePoint]:
    """One :class:`CurvePoint` per ``(people, asked)`` size, over every seed.

    The gallery-size threshold depends only on N (everyone enrolled here has access), so it
    is the same for every seed of a size.
    """
    points = []
    for people, asked in sizes:
        choice = rule.choose(people)
        point = CurvePoint(people, asked, len(seeds), fixed, choice.threshold, choice.per_attempt)
        for seed in seeds:
            split = draw_split(identities, rows, people, enrol, np.random.default_rng(seed))
            index = gallery_of(split, vectors)
            point.fixed.add(tally(split, index, vectors, fixed, margin))
            point.size.add(tally(split, index, vectors, choice.threshold, margin))
        points.append(point)
    return points


def cross_source_near_matches(
    identities: Sequence[Identity], vectors: np.ndarray, rows: dict[Path, int], below: float
) -> list[tuple[str, str, float]]:
    """Pairs of identities from *different* sets with photos closer than ``below``.

    The protocol assumes the sets hold different people (a person in two sets would be a
    "stranger" matching themselves); this is the check, reported by the CLI.
    """
    keys = [i.key for i in identities for _ in i.photos]
    sources = np.array([i.source for i in identities for _ in i.photos])
    picked = vectors[[rows[p] for i in identities for p in i.photos]]
    found: dict[tuple[str, str], float] = {}
    for a in range(len(picked)):
        d = np.linalg.norm(picked[a + 1 :] - picked[a], axis=1)
        for off in np.flatnonzero((d < below) & (sources[a + 1 :] != sources[a])):
            b = a + 1 + int(off)
            pair = (min(keys[a], keys[b]), max(keys[a], keys[b]))
            found[pair] = min(found.get(pair, np.inf), float(d[off]))
    return sorted((a, b, dist) for (a, b), dist in found.items())
