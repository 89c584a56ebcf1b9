"""The similarity fit recovers known transforms exactly and never shears."""

from __future__ import annotations

import numpy as np
import pytest

from pi_facegate.core.align import Aligner, AlignmentTemplate, similarity_transform
from pi_facegate.core.faces import Face


def _apply(matrix: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ matrix[:, :2].T + matrix[:, 2]


@pytest.mark.parametrize(
    "angle,scale,shift", [(0.0, 1.0, (0, 0)), (0.4, 2.5, (10, -7)), (-1.2, 0.3, (100, 50))]
)
def test_recovers_a_known_similarity(angle, scale, shift):
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 200, size=(5, 2))
    c, s = np.cos(angle), np.sin(angle)
    truth = np.array([[scale * c, -scale * s, shift[0]], [scale * s, scale * c, shift[1]]])
    fitted = similarity_transform(src, _apply(truth, src))
    np.testing.assert_allclose(fitted, truth, atol=1e-9)


def test_never_reflects_or_shears():
    src = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    dst = src * np.array([1.0, -1.0])  # a mirror image: not a similarity
    m = similarity_transform(src, dst)[:, :2]
    assert np.linalg.det(m) > 0
    assert m[0, 0] == pytest.approx(m[1, 1]) and m[0, 1] == pytest.approx(-m[1, 0])


def test_align_puts_keypoints_on_the_template():
    template = AlignmentTemplate(
        size=50,
        indices=(0, 1, 2, 3),
        points=np.array([[15.0, 20.0], [35.0, 20.0], [25.0, 30.0], [25.0, 38.0]]),
        weights=np.ones(4),
    )
    image = np.zeros((200, 200, 3), dtype=np.uint8)
    kps = np.zeros((6, 2))
    kps[:4] = template.points * 2 + 40  # the same face, twice as large, shifted
    image[int(kps[0, 1]), int(kps[0, 0])] = 255  # mark the right eye
    chip = Aligner(template).align(image, Face((0, 0, 1, 1), 1.0, kps))
    assert chip.shape == (50, 50, 3)
    y, x = np.unravel_index(np.argmax(chip[:, :, 0]), chip.shape[:2])
    assert abs(x - 15) <= 1 and abs(y - 20) <= 1


def test_mesh_templates_name_their_landmarks_and_are_not_mixed(tmp_path):
    import json

    from pi_facegate.exc import ModelError
    from pi_facegate.vision.manifest import Manifest

    def manifest(names):
        pts = [[float(i), float(i)] for i in range(len(names))]
        return Manifest(
            tmp_path / "m.json",
            {"alignment": {"size": 150, "mesh_template": {"keypoints": names, "points": pts}}},
        )

    t = AlignmentTemplate.from_manifest(
        manifest(["mesh:33", "mesh:263", "mesh:2"]), "mesh_template"
    )
    assert t.source == "mesh" and t.indices == (33, 263, 2)
    assert t.keypoint_names == ["mesh:33", "mesh:263", "mesh:2"]
    json.dumps(t.keypoint_names)  # what the fitting tool writes back
    for bad in (["mesh:33", "right_eye"], ["mesh:x"], ["mesh:-1", "mesh:2"], []):
        with pytest.raises(ModelError):
            AlignmentTemplate.from_manifest(manifest(bad), "mesh_template")
    with pytest.raises(ModelError, match="no alignment template"):
        AlignmentTemplate.from_manifest(manifest(["mesh:1"]))


def test_mesh_template_aligns_on_the_points_it_is_given():
    """A mesh template picks its landmarks out of the 468 and fits them like keypoints."""
    mesh = AlignmentTemplate(
        50, (10, 20, 30), np.array([[15.0, 20.0], [35.0, 20.0], [25.0, 35.0]]), np.ones(3), "mesh"
    )
    points = np.zeros((468, 2))
    points[[10, 20, 30]] = mesh.points * 3 + 7
    plain = AlignmentTemplate(50, (0, 1), np.array([[15.0, 20.0], [35.0, 20.0]]), np.ones(2))
    m = Aligner(plain).transform(points, mesh)
    np.testing.assert_allclose(_apply(m, points[[10, 20, 30]]), mesh.points, atol=1e-9)
