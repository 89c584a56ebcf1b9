"""BlazeFace through MediaPipe Tasks' FaceDetector (the Pi 5 and x86-64 backend).

Import this module only after :mod:`pi_facegate.vision.detection.cpu` said yes: mediapipe is
imported when a :class:`MediaPipeDetector` is made, and on a CPU without ARMv8.1 atomics
(the Pi 4) that import kills the process with SIGILL. :func:`create_detector` does the check.

MediaPipe gives boxes as whole pixels (truncated, clamped to the frame) and keypoints
normalised to the frame; they are returned as :class:`Face` objects in frame pixels, like
the LiteRT backend's, which reproduces this graph in numpy.
"""

from __future__ import annotations

import time
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from pi_facegate.core.faces import Detector, Face
from pi_facegate.exc import ModelError
from pi_facegate.vision.detection.litert_backend import (
    default_min_score,
    detector_manifest,
    rgb_frame,
    select_faces,
)
from pi_facegate.vision.manifest import Manifest


class MediaPipeDetector(Detector):
    """MediaPipe's FaceDetector task on a bundled detector model.

    :param manifest: the detector's manifest (or its name / JSON path)
    :param min_score: lowest face confidence kept, 0..1 (MediaPipe's min_detection_confidence);
        None for the manifest's default
    :param min_face_size: smallest face kept, as the shorter box side in frame pixels
    :param video: VIDEO running mode (``detect_for_video`` with increasing timestamps) for a
        camera stream; otherwise IMAGE mode for independent stills

    One instance is for one thread at a time.
    """

    backend = "mediapipe"

    def __init__(
        self,
        manifest: str | Path | Manifest,
        min_score: float | None = None,
        min_face_size: float = 0,
        video: bool = False,
    ) -> None:
        self._task: Any = None  # close() relies on it; set before anything can raise
        self._finalizer: weakref.finalize | None = None
        self.manifest = detector_manifest(manifest)
        self.min_score = default_min_score(self.manifest) if min_score is None else float(min_score)
        self.min_face_size = float(min_face_size)
        self.video = bool(video)
        self._last_timestamp = -1
        try:
            import mediapipe as mp
            from mediapipe.tasks.python import BaseOptions, vision
        except (ImportError, OSError) as exc:  # not installed, or libEGL/libGLESv2 missing
            raise ModelError(f"mediapipe cannot be loaded: {exc}") from exc
        self._mp = mp
        decoding = self.manifest.get("decoding") or {}
        mode = vision.RunningMode.VIDEO if self.video else vision.RunningMode.IMAGE
        options = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_path=str(self.manifest.model_path)),
            running_mode=mode,
            min_detection_confidence=self.min_score,
            min_suppression_threshold=float(decoding.get("min_suppression_threshold", 0.3)),
        )
        try:
            self._task = vision.FaceDetector.create_from_options(options)
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelError(
                f"MediaPipe cannot load detector {self.manifest.model_path}: {exc}"
            ) from exc
        # Close the native task before interpreter shutdown tears down what its __del__ needs.
        self._finalizer = weakref.finalize(self, self._task.close)

    def _timestamp(self, timestamp_ms: int | None) -> int:
        """A strictly increasing timestamp, as VIDEO mode demands (a repeat is nudged on)."""
        stamp = time.monotonic_ns() // 1_000_000 if timestamp_ms is None else int(timestamp_ms)
        stamp = max(stamp, self._last_timestamp + 1)
        self._last_timestamp = stamp
        return stamp

    def detect(self, image: np.ndarray, timestamp_ms: int | None = None) -> list[Face]:
        """Faces in the RGB ``image``, best first.

        In VIDEO mode ``timestamp_ms`` is the frame's time (monotonic clock if omitted);
        in IMAGE mode it is ignored.
        """
        if self._task is None:
            raise ModelError("the MediaPipe detector is closed")
        frame = rgb_frame(image)
        height, width = frame.shape[:2]
        mp_image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=frame)
        try:
            if self.video:
                result = self._task.detect_for_video(mp_image, self._timestamp(timestamp_ms))
            else:
                result = self._task.detect(mp_image)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"MediaPipe face detection failed: {exc}") from exc
        faces = [_face(det, width, height) for det in result.detections]
        return select_faces(faces, self.min_score, self.min_face_size)

    def close(self) -> None:
        """Shut the MediaPipe task down; safe to call twice."""
        task, self._task = self._task, None
        if self._finalizer is not None:
            self._finalizer.detach()
        if task is not None:
            task.close()


def _face(detection: Any, width: int, height: int) -> Face:
    """A MediaPipe Detection as a Face in frame pixels."""
    bbox = detection.bounding_box
    points = np.array(
        [(kp.x * width, kp.y * height) for kp in detection.keypoints or []], dtype=np.float64
    ).reshape(-1, 2)
    score = max((c.score for c in detection.categories or []), default=0.0)
    box = (float(bbox.origin_x), float(bbox.origin_y), float(bbox.width), float(bbox.height))
    return Face(box, float(score), points)
