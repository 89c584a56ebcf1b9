"""Our pipeline as the bench runs it: the door's per-frame work, and its in-memory gallery.

Every frame is processed completely (every detected face gated, aligned, embedded, matched),
even when the daemon would skip a face it has decided already: the numbers are the cost of a
frame in which someone new stands at the door.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from pi_facegate.config.schema import Config
from pi_facegate.core.liveness import LivenessJudge
from pi_facegate.core.matcher import GalleryIndex
from pi_facegate.core.policy import AccessPolicy
from pi_facegate.core.tracker import FaceTracker
from pi_facegate.daemon import wiring as components
from pi_facegate.devtools.bench.frames import FrameResult, Reference, check_one_face
from pi_facegate.devtools.bench.gallery_search import SEARCH_PER_PERSON, unit_vectors
from pi_facegate.exc import NoFaceError
from pi_facegate.vision.images import load_image
from pi_facegate.vision.recognizer import Recognizer

#: the stages of one frame, in order; ``ours.stages`` has one entry per name
STAGES = ("detect", "align", "embed", "match", "liveness", "decision")


class OurPipeline:
    """The daemon's per-frame work without the relay: recognizer, tracker, liveness, policy.

    A frame's identities are the people a face of it was *recognised* as (threshold and
    margin met): the per-frame answer the policy then votes on over several frames. The
    liveness stage is the daemon's: the texture models run on a recognised face while its
    verdict can still change, the planarity cue reads the mesh the aligner computed.
    """

    def __init__(
        self, recognizer: Recognizer, config: Config, index: GalleryIndex, texture=None
    ) -> None:
        self.recognizer = recognizer
        self.texture = texture  # the texture models (None: liveness off in the config)
        self.config = config
        self.index = index
        self.threshold, self.min_margin = components.gallery_match_settings(
            config, recognizer.embedder, index
        )
        self.interval = 1.0 / config.camera.fps  # seconds between frames of the simulated camera
        self._clock = 0.0
        self.reset()

    def reset(self) -> None:
        """Forget faces and votes (between the warm-up and the timed pass)."""
        a = self.config.access
        self.tracker = FaceTracker()
        self.liveness = LivenessJudge(components.liveness_settings(self.config))
        self.policy = AccessPolicy(
            votes_required=a.votes_required,
            window_frames=a.window_frames,
            window_seconds=a.window_seconds,
            cooldown_seconds=a.cooldown_seconds,
            unknown_log_interval_seconds=a.unknown_log_interval_seconds,
            require_liveness=self.texture is not None,
        )

    def process(self, image: np.ndarray) -> FrameResult:
        """Detect, gate, align, embed, match and decide on one RGB frame."""
        self._clock += self.interval  # the detector's VIDEO mode needs increasing times
        now = self._clock
        rec = self.recognizer
        cpu0, t0 = time.process_time(), time.perf_counter()
        faces = rec.detect(image, timestamp_ms=round(now * 1000))
        analyses = rec.analyse(image, faces)
        if self.index.size:
            rec.match(analyses, self.index, self.threshold, self.min_margin)
        else:
            rec.timings["match"] = 0.0
        t1 = time.perf_counter()
        track_ids = self.tracker.update([f.box for f in faces], now)
        for gone in self.tracker.dropped:
            self.policy.forget(gone)
            self.liveness.forget(gone)
        liveness_ms = 0.0
        for analysis, track in zip(analyses, track_ids, strict=True):
            if analysis.usable:
                t = time.perf_counter()
                verdict = self._judge(image, analysis, track, now)
                liveness_ms += (time.perf_counter() - t) * 1e3
                self.policy.observe(track, analysis.match, now, verdict)
        t2 = time.perf_counter()
        stages = {s: rec.timings[s] for s in STAGES[:4]}
        stages["liveness"] = liveness_ms
        stages["decision"] = (t2 - t1) * 1e3 - liveness_ms
        names = frozenset(
            a.match.name for a in analyses if a.match is not None and a.match.recognised
        )
        return FrameResult(
            stages,
            (t2 - t0) * 1e3,
            (time.process_time() - cpu0) * 1e3,
            len(faces),
            sum(a.usable for a in analyses),
            names,
        )

    def _judge(self, image: np.ndarray, analysis, track: int, now: float):
        """The daemon's liveness step for one face (``None`` when liveness is off)."""
        if self.texture is None or analysis.match is None:
            return None
        return self.liveness.judge(
            track, now, lambda: self.texture.score(image, analysis.face), analysis.mesh
        )


def add_strangers(
    index: GalleryIndex, people: int, per_person: int = SEARCH_PER_PERSON, seed: int = 0
) -> GalleryIndex:
    """``index`` plus ``people`` random people, to time the match stage at a realistic size.

    Their embeddings are random unit vectors: about 1.4 from any real face embedding (whose
    length is close to 1), far beyond any threshold, so they change how long a search
    takes but never who is recognised.
    """
    if people <= 0:
        return index
    rows = [
        (int(pid), name, bool(enabled), bool(pending))
        for pid, name, enabled, pending in zip(
            index.person_ids, index.names, index.enabled, index.pending, strict=True
        )
    ]
    first = max((r[0] for r in rows), default=0) + 1
    rows += [(first + i, f"stranger-{i + 1}", True, False) for i in range(people)]
    owners = np.concatenate(
        [index.person_ids[index.labels], np.repeat(np.arange(first, first + people), per_person)]
    )
    rng = np.random.default_rng(seed)
    strangers = unit_vectors(
        rng.standard_normal((people * per_person, index.dim), dtype=np.float32)
    )
    vectors = np.concatenate([index.embeddings, strangers])
    return GalleryIndex.build(rows, owners, vectors, index.fingerprint, index.version + 1)


def enrol_ours(
    recognizer: Recognizer, config: Config, references: Sequence[Reference]
) -> GalleryIndex:
    """An in-memory gallery of the references (one person per name), as ``enroll`` makes one.

    The bench never touches the appliance's gallery file: enrolled people stay private and
    the run cannot change who the door lets in.
    """
    embedder = recognizer.embedder
    fingerprint = components.embedder_fingerprint(embedder.manifest)
    names = list(dict.fromkeys(r.name for r in references))
    owners, vectors = [], []
    for reference in references:
        image = load_image(reference.path)
        faces = recognizer.detect_still(image)
        check_one_face(reference, len(faces), "the detector")
        (analysis,) = recognizer.analyse(image, faces, components.still_limits(config))
        if not analysis.usable:
            raise NoFaceError(
                f"{reference.path}: the face is {analysis.quality.reason}; choose another photo"
            )
        owners.append(names.index(reference.name) + 1)
        vectors.append(analysis.embedding)
    if not vectors:
        return GalleryIndex.empty(embedder.size, fingerprint)
    rows = [(i + 1, name, True, False) for i, name in enumerate(names)]
    return GalleryIndex.build(rows, owners, np.stack(vectors), fingerprint, version=1)
