"""Choose and build a face detector backend.

``auto`` decides from the CPU *before* anything imports mediapipe, because on a CPU it was
not built for (the Pi 4's Cortex-A72) that import dies with SIGILL, which no ``try`` can
catch: MediaPipe where it can run (Pi 5, x86-64), LiteRT everywhere else. Both backends run
the same bundled model and find the same faces. ``FACEGATE_DETECTOR=mediapipe|litert`` in
the environment replaces the ``auto`` choice (an explicit backend argument wins over it).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pi_facegate.core.faces import Detector
from pi_facegate.exc import ModelError
from pi_facegate.vision.detection.cpu import CpuVerdict, this_cpu
from pi_facegate.vision.manifest import Manifest

log = logging.getLogger("pi_facegate.detection.factory")  # journal name: stable across moves

BACKENDS = ("mediapipe", "litert")
ENV_VAR = "FACEGATE_DETECTOR"
DEFAULT_MODEL = "face_detection_short_range"


def choose_backend(backend: str = "auto", verdict: CpuVerdict | None = None) -> tuple[str, str]:
    """The backend to use and why: ``backend`` itself, or for ``auto`` the environment's
    ``FACEGATE_DETECTOR`` or the CPU's verdict. Imports no backend.

    Raises :class:`ModelError` for an unknown name, and for ``mediapipe`` on a CPU that
    would kill the process running it (a crash loop would help nobody).
    """
    name = (backend or "auto").strip().lower()
    reason = "requested"
    if name == "auto":
        env = os.environ.get(ENV_VAR, "").strip().lower()
        if env and env != "auto":
            name, reason = env, f"{ENV_VAR}={env}"
    if name not in (*BACKENDS, "auto"):
        raise ModelError(
            f"unknown detector backend {name!r} ({reason}): choose auto, mediapipe or litert"
        )
    if name == "litert":
        return name, reason
    verdict = verdict if verdict is not None else this_cpu()
    if name == "mediapipe":
        if not verdict:
            raise ModelError(f"the mediapipe detector cannot run on this machine: {verdict.reason}")
        return name, reason
    return ("mediapipe" if verdict else "litert"), verdict.reason


def create_detector(
    backend: str = "auto",
    model: str | Path | Manifest = DEFAULT_MODEL,
    min_score: float | None = None,
    min_face_size: float = 0,
    video: bool = False,
    num_threads: int = 1,
) -> Detector:
    """A ready :class:`Detector`.

    :param backend: ``auto``, ``mediapipe`` or ``litert``
    :param model: a detector model's name in ``models/``, its manifest path, or a Manifest
    :param min_score: lowest face confidence kept, 0..1 (None: the model's default, 0.5)
    :param min_face_size: smallest face kept (shorter box side, pixels)
    :param video: frames come from a stream (MediaPipe's VIDEO mode); stills otherwise
    :param num_threads: interpreter threads (LiteRT only; MediaPipe picks its own)
    :raises ModelError: unknown backend, missing or corrupt model, backend fails to load
    """
    from pi_facegate.vision.detection.litert_backend import detector_manifest

    requested = (backend or "auto").strip().lower()
    name, reason = choose_backend(requested)
    manifest = detector_manifest(model)  # missing/corrupt model fails here, for both
    if name == "mediapipe":
        from pi_facegate.vision.detection.mediapipe_backend import MediaPipeDetector

        try:
            detector: Detector = MediaPipeDetector(manifest, min_score, min_face_size, video)
        except ModelError as exc:
            if requested != "auto":
                raise
            log.warning("mediapipe detector unavailable (%s); falling back to litert", exc)
            name, reason = "litert", f"mediapipe failed to load: {exc}"
        else:
            log.info("face detector: mediapipe, model %s (%s)", manifest.name, reason)
            return detector
    from pi_facegate.vision.detection.litert_backend import LiteRTDetector

    detector = LiteRTDetector(manifest, min_score, min_face_size, num_threads)
    log.info("face detector: litert, model %s (%s)", manifest.name, reason)
    return detector
