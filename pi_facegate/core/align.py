"""Alignment: warp a detected face to the embedder's chip with a similarity transform.

Each embedder was trained on chips cut its own way: the bundled one the dlib way
(``get_face_chip_details(size=150, padding=0.25)``), a converted FaceNet on 160x160 MTCNN
crops (``tools/facenet_alignment.py``). Our detector gives BlazeFace's six keypoints instead,
so the embedder's manifest carries a *template*: where those keypoints sit, on average, in
one of its chips (for dlib's, fitted by ``tools/fit_alignment_template.py`` on real faces);
chip size and template both come from the manifest, nothing here is dlib's. Aligning a
face is then a least-squares similarity fit (rotation, uniform scale, translation; no shear,
which would distort identity) from the detected keypoints to the template, and one warp.

BlazeFace's keypoints are coarse (eye centres, nose tip), so the manifest may also carry a
``mesh_template`` whose keypoints are face-mesh landmarks named ``"mesh:<index>"`` (dlib's own
eye corners and nose base, found by :class:`pi_facegate.vision.landmarks.LandmarkRefiner`). An
:class:`Aligner` given a refiner uses it; the detector-keypoint ``template`` stays the
fallback for a face the mesh model does not confirm, and for callers without a refiner.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from pi_facegate.core.faces import KEYPOINT_NAMES, Face
from pi_facegate.exc import ModelError

#: keypoint names of a template on face-mesh landmarks: "mesh:<landmark index>"
MESH_PREFIX = "mesh:"


class ManifestLike(Protocol):
    """What alignment reads from an embedder's manifest.

    :class:`pi_facegate.vision.manifest.Manifest` fits it; core does not import vision, so
    the shape is spelled out here instead.
    """

    @property
    def path(self) -> Path: ...

    def get(self, key: str, default: Any = None) -> Any: ...


@dataclass(frozen=True)
class AlignmentTemplate:
    """Target keypoint positions in chip pixels, with a weight per keypoint.

    ``source`` says which points ``indices`` select from: ``"blazeface"`` (a Face's six
    keypoints) or ``"mesh"`` (the 468 face-mesh landmarks).
    """

    size: int
    indices: tuple[int, ...]  # which of the source's points take part, by position
    points: np.ndarray  # (len(indices), 2) float64, chip pixel coordinates
    weights: np.ndarray  # (len(indices),) float64, relative trust in each keypoint
    source: str = "blazeface"

    @property
    def keypoint_names(self) -> list[str]:
        """The names a manifest gives these keypoints."""
        if self.source == "mesh":
            return [f"{MESH_PREFIX}{i}" for i in self.indices]
        return [KEYPOINT_NAMES[i] for i in self.indices]

    @classmethod
    def from_manifest(cls, manifest: ManifestLike, key: str = "template") -> AlignmentTemplate:
        """Read ``alignment.<key>`` from an embedder manifest; ModelError if it is absent."""
        section = manifest.get("alignment") or {}
        template = section.get(key)
        if not template:
            raise ModelError(f"embedder manifest {manifest.path} has no alignment {key}")
        names = list(template["keypoints"])
        source, indices = _parse_keypoints(names)
        points = np.asarray(template["points"], dtype=np.float64)
        weights = np.asarray(template.get("weights", [1.0] * len(names)), dtype=np.float64)
        if points.shape != (len(names), 2) or weights.shape != (len(names),):
            raise ModelError(f"alignment {key}: points/weights do not match its keypoints")
        return cls(
            size=int(section["size"]),
            indices=indices,
            points=points,
            weights=weights,
            source=source,
        )


def _parse_keypoints(names: list[str]) -> tuple[str, tuple[int, ...]]:
    """(source, indices) of template keypoint names: all BlazeFace names or all ``mesh:<i>``."""
    if names and all(str(n).startswith(MESH_PREFIX) for n in names):
        try:
            indices = tuple(int(str(n)[len(MESH_PREFIX) :]) for n in names)
        except ValueError as exc:
            raise ModelError(f"alignment template: bad mesh keypoint in {names}") from exc
        if min(indices) < 0:
            raise ModelError(f"alignment template: negative mesh index in {names}")
        return "mesh", indices
    unknown = [n for n in names if n not in KEYPOINT_NAMES]
    if unknown or not names:
        raise ModelError(f"alignment template names unknown keypoints {unknown or names}")
    return "blazeface", tuple(KEYPOINT_NAMES.index(n) for n in names)


def similarity_transform(
    src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """The 2x3 similarity matrix mapping ``src`` points onto ``dst`` in the weighted least-squares sense.

    Umeyama's closed form (1991), restricted to 2-D: no iteration, no randomness (unlike a
    RANSAC estimate), so the same keypoints always give the same chip.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    w = np.ones(len(src)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    mu_s = w @ src
    mu_d = w @ dst
    s = src - mu_s
    d = dst - mu_d
    cov = (d * w[:, None]).T @ s
    u, sig, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    rot = u @ np.diag(sign) @ vt
    var_s = float(w @ (s**2).sum(axis=1))
    scale = float((sig * sign).sum() / var_s) if var_s > 0 else 1.0
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rot
    matrix[:, 2] = mu_d - matrix[:, :2] @ mu_s
    return matrix


class Aligner:
    """Cuts embedder chips out of frames, as the embedder's manifest prescribes.

    :param template: the template on the detector's keypoints (always usable)
    :param mesh_template: a template on face-mesh landmarks, used when ``refiner`` is given
    :param refiner: a :class:`~pi_facegate.vision.landmarks.LandmarkRefiner`; it runs on each face
        aligned, and a face whose mesh score is below the model's ``min_score`` falls back
        to ``template`` (the detector saw a face; the mesh model just could not place it)
    """

    def __init__(
        self,
        template: AlignmentTemplate,
        mesh_template: AlignmentTemplate | None = None,
        refiner=None,
    ) -> None:
        if template.source != "blazeface":
            raise ModelError("the fallback alignment template must use the detector's keypoints")
        if mesh_template is not None and (
            mesh_template.source != "mesh" or mesh_template.size != template.size
        ):
            raise ModelError(
                "the mesh alignment template must use mesh keypoints and the same chip size"
            )
        if refiner is not None and mesh_template is None:
            raise ModelError("a landmark refiner was given but the embedder has no mesh template")
        if refiner is not None and max(mesh_template.indices) >= refiner.num_landmarks:
            raise ModelError(
                f"the mesh template names landmarks beyond the model's {refiner.num_landmarks}"
            )
        self.template = template
        self.mesh_template = mesh_template if refiner is not None else None
        self.refiner = refiner

    @classmethod
    def from_manifest(cls, manifest: ManifestLike, refiner=None) -> Aligner:
        """The aligner for an embedder; with ``refiner``, on the manifest's mesh template."""
        mesh = (
            AlignmentTemplate.from_manifest(manifest, "mesh_template")
            if refiner is not None
            else None
        )
        return cls(AlignmentTemplate.from_manifest(manifest), mesh, refiner)

    @staticmethod
    def wants_mesh(manifest: ManifestLike) -> bool:
        """Whether the embedder's manifest has a face-mesh template (so a refiner pays off)."""
        return bool((manifest.get("alignment") or {}).get("mesh_template"))

    def transform(
        self, keypoints: np.ndarray, template: AlignmentTemplate | None = None
    ) -> np.ndarray:
        """The 2x3 matrix taking frame pixels to chip pixels for these source points."""
        t = template or self.template
        return similarity_transform(keypoints[list(t.indices)], t.points, t.weights)

    def face_transform(self, image: np.ndarray, face: Face) -> np.ndarray:
        """The frame-to-chip matrix for ``face``: on its mesh if there is a refiner, else its keypoints."""
        return self.face_transform_and_mesh(image, face)[0]

    def face_transform_and_mesh(
        self, image: np.ndarray, face: Face
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The frame-to-chip matrix and the face-mesh points it came from (``None``: no
        refiner, or the mesh model did not confirm the face). The points are returned
        because liveness reads the same mesh: it is computed once per face per frame."""
        if self.refiner is not None and self.mesh_template is not None:
            mesh = self.refiner.mesh(image, face)
            if mesh.score >= self.refiner.min_score:
                return self.transform(mesh.points, self.mesh_template), mesh.points
        return self.transform(face.keypoints, self.template), None

    def align(self, image: np.ndarray, face: Face) -> np.ndarray:
        """The ``(size, size, 3)`` uint8 chip of ``face`` in ``image`` (RGB in, RGB out)."""
        return self.align_with_mesh(image, face)[0]

    def align_with_mesh(
        self, image: np.ndarray, face: Face
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The chip of ``face`` and its face-mesh points (see :meth:`face_transform_and_mesh`)."""
        size = self.template.size
        matrix, mesh = self.face_transform_and_mesh(image, face)
        chip = cv2.warpAffine(
            image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        return chip, mesh

    def align_many(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        """Chips for several faces of one frame, stacked ``(N, size, size, 3)``."""
        return self.align_many_with_meshes(image, faces)[0]

    def align_many_with_meshes(
        self, image: np.ndarray, faces: list[Face]
    ) -> tuple[np.ndarray, list[np.ndarray | None]]:
        """Chips for several faces of one frame, and each face's mesh points (or ``None``)."""
        size = self.template.size
        if not faces:
            return np.empty((0, size, size, 3), dtype=np.uint8), []
        pairs = [self.align_with_mesh(image, f) for f in faces]
        return np.stack([chip for chip, _ in pairs]), [mesh for _, mesh in pairs]
