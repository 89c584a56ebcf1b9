"""The one lookalike rule of every enrolment (photos, door, camera): recognised as another."""

from __future__ import annotations

import numpy as np
import pytest

from pi_facegate.core.capture import lookalike
from pi_facegate.core.matcher import GalleryIndex


def _index() -> GalleryIndex:
    """Alice at the origin, Bob 0.3 away from her along x (close, as siblings are)."""
    people = [(1, "Alice", True, False), (2, "Bob", True, False)]
    vectors = np.zeros((2, 4), np.float32)
    vectors[1, 0] = 0.3
    return GalleryIndex.build(people, [1, 2], vectors, "test", version=1)


def _face(x: float, y: float = 0.0) -> np.ndarray:
    return np.array([[x, y, 0.0, 0.0]], np.float32)


@pytest.mark.parametrize(
    ("face", "name", "found"),
    [
        (_face(-0.2), "Carol", "Alice"),  # recognised as Alice (0.2; Bob 0.5): refused
        (_face(0.15), "Carol", None),  # within 0.6 of both, ahead by nothing: not recognised
        (_face(-0.2), "alice", None),  # Alice herself, whatever the case of the name
        (_face(0.0, 0.9), "Carol", None),  # nobody within the threshold
    ],
)
def test_a_face_the_door_would_recognise_as_someone_else_is_a_lookalike(face, name, found):
    result = lookalike(_index(), face, threshold=0.6, min_margin=0.1, name=name)
    assert (result[0] if result else None) == found


def test_an_empty_gallery_or_no_face_has_no_lookalike():
    empty = GalleryIndex.empty(4, "test")
    assert lookalike(empty, _face(0.0), 0.6, 0.1, "Carol") is None
    assert lookalike(_index(), np.empty((0, 4), np.float32), 0.6, 0.1, "Carol") is None
