"""The recognition pipeline of one frame: detect → quality gate → align → embed → match.

:class:`Recognizer` owns the three models and nothing else; it knows no camera, relay or
config file (the daemon, the CLI and the benchmark all drive it the same way). It records
how long each stage took for the last frame, which ``facegate bench`` and the event log's
latency figures read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from pi_facegate.core.align import Aligner
from pi_facegate.core.faces import Detector, Face
from pi_facegate.core.matcher import GalleryIndex, Match, search
from pi_facegate.core.quality import QualityLimits, QualityReport, assess

STAGES = ("detect", "align", "embed", "match")
STILL_PADDING = 0.4  # border added around a photo in which no face was found, per side


@dataclass
class FaceAnalysis:
    """What the pipeline learnt about one face of a frame."""

    face: Face
    quality: QualityReport
    embedding: np.ndarray | None = field(default=None, repr=False)  # None: failed the gate
    match: Match | None = None  # None: not embedded, or nobody in the gallery
    #: the face-mesh points (468, 2) in frame pixels the chip was aligned on (None: no mesh)
    mesh: np.ndarray | None = field(default=None, repr=False)

    @property
    def usable(self) -> bool:
        return self.embedding is not None


class Recognizer:
    """Runs detector, aligner and embedder on frames; matching is a separate, cheap step."""

    def __init__(
        self,
        detector: Detector,
        aligner: Aligner,
        embedder,
        limits: QualityLimits | None = None,
        detect_width: int = 0,
    ) -> None:
        self.detector = detector
        self.aligner = aligner
        self.embedder = embedder
        self.limits = limits or QualityLimits()
        self.detect_width = int(detect_width)
        self.timings: dict[str, float] = dict.fromkeys(STAGES, 0.0)  # ms, last frame

    def detect(
        self, image: np.ndarray, timestamp_ms: int | None = None, lores: np.ndarray | None = None
    ) -> list[Face]:
        """Faces in full-resolution coordinates, detected on ``lores`` or a downscaled copy.

        Detection runs at low resolution because BlazeFace sees 128x128 anyway; alignment
        then cuts the chip from the full-resolution frame, which is what identity needs.
        """
        t0 = time.perf_counter()
        small, factor = lores, 1.0
        if small is not None:
            factor = image.shape[1] / small.shape[1]
        elif self.detect_width and image.shape[1] > self.detect_width:
            factor = image.shape[1] / self.detect_width
            height = max(1, round(image.shape[0] / factor))
            small = cv2.resize(image, (self.detect_width, height), interpolation=cv2.INTER_AREA)
        faces = self.detector.detect(small if small is not None else image, timestamp_ms)
        if factor != 1.0:
            faces = [f.scaled(factor) for f in faces]
        self.timings["detect"] = (time.perf_counter() - t0) * 1e3
        return faces

    def detect_still(self, image: np.ndarray) -> list[Face]:
        """Faces in a photograph, also when the face fills the whole picture.

        BlazeFace expects a face with some surroundings; a passport-style crop (the face
        edge to edge) is detected after a grey border is added, and the faces are mapped
        back to the original picture's coordinates.
        """
        faces = self.detect(image)
        if faces:
            return faces
        h, w = image.shape[:2]
        top, side = int(h * STILL_PADDING), int(w * STILL_PADDING)
        padded = cv2.copyMakeBorder(
            image, top, top, side, side, cv2.BORDER_CONSTANT, value=(128, 128, 128)
        )
        shift = np.array([side, top], dtype=np.float64)
        return [
            Face(
                (f.box[0] - side, f.box[1] - top, f.box[2], f.box[3]), f.score, f.keypoints - shift
            )
            for f in self.detect(padded)
        ]

    def analyse(
        self,
        image: np.ndarray,
        faces: list[Face],
        limits: QualityLimits | None = None,
    ) -> list[FaceAnalysis]:
        """Gate, align and embed ``faces`` of ``image`` (one batched embedder call).

        With a face-mesh aligner the landmark model runs per face inside "align".
        """
        t0 = time.perf_counter()
        chips, meshes = self.aligner.align_many_with_meshes(image, faces)
        reports = [assess(f, c, limits or self.limits) for f, c in zip(faces, chips, strict=True)]
        good = [i for i, r in enumerate(reports) if r.ok]
        t1 = time.perf_counter()
        embeddings = self.embedder.embed(chips[good]) if good else np.empty((0, 0), np.float32)
        t2 = time.perf_counter()
        self.timings["align"] = (t1 - t0) * 1e3
        self.timings["embed"] = (t2 - t1) * 1e3
        out = [FaceAnalysis(f, r, mesh=m) for f, r, m in zip(faces, reports, meshes, strict=True)]
        for row, i in enumerate(good):
            out[i].embedding = embeddings[row]
        return out

    def match(
        self, analyses: list[FaceAnalysis], index: GalleryIndex, threshold: float, min_margin: float
    ) -> list[FaceAnalysis]:
        """Fill in ``match`` for every embedded face (one vectorised gallery search)."""
        t0 = time.perf_counter()
        usable = [a for a in analyses if a.usable]
        if usable:
            queries = np.stack([a.embedding for a in usable])
            for a, m in zip(usable, search(index, queries, threshold, min_margin), strict=True):
                a.match = m
        self.timings["match"] = (time.perf_counter() - t0) * 1e3
        return analyses

    def close(self) -> None:
        """Release the detector and the aligner's landmark model (the embedder holds no OS resources)."""
        self.detector.close()
        if self.aligner.refiner is not None:
            self.aligner.refiner.close()
