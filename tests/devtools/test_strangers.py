"""The strangers-at-scale protocol on synthetic embeddings, and the embedding cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pi_facegate.core.open_set import ImpostorTable, OpenSetRule
from pi_facegate.devtools import strangers
from pi_facegate.devtools.embedding_cache import EmbeddingCache


def population(tmp_path: Path, counts: list[int]) -> tuple[list, np.ndarray, dict]:
    """Identities with ``counts`` photos each; a person's embeddings lie close together."""
    rng = np.random.default_rng(0)
    identities, vectors, rows = [], [], {}
    for n, count in enumerate(counts):
        centre = rng.standard_normal(8)
        photos = tuple(tmp_path / f"p{n}_{k}.jpg" for k in range(count))
        for photo in photos:
            rows[photo] = len(vectors)
            vectors.append(centre + 0.01 * rng.standard_normal(8))
        identities.append(strangers.Identity(f"set/p{n}", "set", photos))
    return identities, np.array(vectors, dtype=np.float32), rows


def test_a_split_never_probes_with_an_enrolled_photo(tmp_path):
    identities, _, rows = population(tmp_path, [5, 6, 4, 2, 1, 7])
    split = strangers.draw_split(identities, rows, 3, 3, np.random.default_rng(1))
    enrolled = {r for _, photos in split.enrolled for r in photos}
    assert len(split.enrolled) == 3 and all(len(p) == 3 for _, p in split.enrolled)
    assert enrolled.isdisjoint(r for r, _ in split.genuine)
    assert enrolled.isdisjoint(split.strangers)
    assert len(split.strangers) == len(identities) - 3  # one photo of everyone else
    assert all(i.key not in dict(split.enrolled) for i in identities if len(i.photos) <= 3)


def test_the_largest_gallery_keeps_the_strangers_asked_for(tmp_path):
    identities, _, _ = population(tmp_path, [5] * 8 + [1] * 2)
    assert strangers.largest_size(identities, 3, min_strangers=4) == 6
    assert strangers.largest_size(identities, 3, min_strangers=1) == 8  # all eligible


def test_well_separated_people_are_all_recognised_and_no_stranger_let_in(tmp_path):
    identities, vectors, rows = population(tmp_path, [5] * 10)
    table = ImpostorTable.from_rows([[0.3, 1e-5], [0.6, 1e-1]])
    rule = OpenSetRule(ceiling=0.6, per_attempt=1e-3, table=table)
    [point] = strangers.strangers_curve(
        identities, vectors, rows, [(5, 5)], 3, range(4), 0.6, rule, 0.1
    )
    result = point.as_dict()
    assert result["fixed"]["genuine_accept"] == 1.0 == result["gallery_size"]["genuine_accept"]
    assert result["fixed"]["strangers_accepted"] == 0.0
    assert result["gallery_size"]["threshold"] < 0.6
    assert result["stranger_probes"] == 4 * 5 and result["genuine_probes"] == 4 * 5 * 2


def test_the_cache_keeps_vectors_per_photo_and_fingerprint(tmp_path):
    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"x")
    path = tmp_path / "cache" / "c.npz"
    cache = EmbeddingCache(path, "model:1")
    cache.put(photo, "largest", np.ones(4), True)
    cache.save()
    assert path.stat().st_mode & 0o777 == 0o600
    vector, found = EmbeddingCache(path, "model:1").get(photo, "largest")
    assert found and np.array_equal(vector, np.ones(4))
    assert EmbeddingCache(path, "model:1").get(photo, "central") is None
    assert EmbeddingCache(path, "model:2").get(photo, "largest") is None  # another embedder
    photo.write_bytes(b"changed")
    assert EmbeddingCache(path, "model:1").get(photo, "largest") is None  # another photo
