"""The peer pipeline: the ``face_recognition`` library (dlib's HOG detector and ResNet).

The usual Raspberry Pi door recipe, run in the same process on the same frames as ours so
speed and identities can be compared like for like. The library is optional (the
``[bench]`` extra); :func:`import_face_recognition` says what to install when it is missing.
"""

from __future__ import annotations

import importlib
import importlib.util
import time
from typing import Any

import numpy as np

from pi_facegate.devtools.bench.frames import FrameResult, Reference, check_one_face
from pi_facegate.devtools.bench.measure import package_version
from pi_facegate.exc import UsageError
from pi_facegate.vision.images import load_image

#: other face-recognition libraries ``--peer`` can run on the same frames
PEERS = ("face_recognition",)
#: the peer's identity threshold: face_recognition's own default tolerance
PEER_TOLERANCE = 0.6


class FaceRecognitionPeer:
    """The ``face_recognition`` library's recipe: HOG detector, 5-point landmarks, dlib ResNet.

    Its defaults, as its README and Raspberry Pi example use them: ``face_locations`` with
    the HOG model and one upsampling, ``face_encodings`` with one jitter, and a face is a
    known person when the nearest enrolled encoding is within ``tolerance`` (0.6).
    """

    name = "face_recognition"

    def __init__(self, tolerance: float = PEER_TOLERANCE) -> None:
        self.fr = import_face_recognition()
        self.tolerance = float(tolerance)
        self.known: list[tuple[str, np.ndarray]] = []

    @property
    def version(self) -> str:
        return package_version("face_recognition")

    def enrol(self, reference: Reference) -> None:
        """Add the one face of ``reference``'s photo; NoFaceError/MultipleFacesError otherwise."""
        image = load_image(reference.path)
        locations = self.fr.face_locations(image)
        check_one_face(reference, len(locations), "face_recognition")
        self.known.append((reference.name, self.fr.face_encodings(image, locations)[0]))

    def process(self, image: np.ndarray) -> FrameResult:
        cpu0, t0 = time.process_time(), time.perf_counter()
        locations = self.fr.face_locations(image)
        t1 = time.perf_counter()
        encodings = self.fr.face_encodings(image, locations) if locations else []
        t2 = time.perf_counter()
        names = set()
        if self.known and encodings:
            known = np.stack([e for _, e in self.known])
            for encoding in encodings:
                distances = self.fr.face_distance(known, encoding)
                best = int(np.argmin(distances))
                if distances[best] <= self.tolerance:
                    names.add(self.known[best][0])
        t3 = time.perf_counter()
        stages = {"detect": (t1 - t0) * 1e3, "embed": (t2 - t1) * 1e3, "match": (t3 - t2) * 1e3}
        return FrameResult(
            stages,
            (t3 - t0) * 1e3,
            (time.process_time() - cpu0) * 1e3,
            len(locations),
            len(encodings),
            frozenset(names),
        )

    def close(self) -> None:
        """Nothing to release (dlib's models live as long as the module)."""


#: what ``--peer face_recognition`` imports, and the distribution that provides each module
PEER_MODULES = {
    "dlib": "dlib-bin",
    "pkg_resources": "setuptools<82",  # face_recognition_models still imports it
    "face_recognition_models": "face-recognition-models",
    "face_recognition": "face_recognition (with --no-deps: its requirements build dlib from source)",
}


def import_face_recognition() -> Any:
    """The ``face_recognition`` module, or a :class:`UsageError` saying what to install.

    Everything it needs is checked before importing it: without ``face_recognition_models``
    the library prints a misleading hint and calls ``quit()`` at import time, which would
    end the whole process.
    """
    hint = (
        "--peer face_recognition needs the face_recognition library: "
        "pip install 'pi-facegate[bench]' && pip install --no-deps face_recognition"
    )
    missing = [
        package
        for module, package in PEER_MODULES.items()
        if importlib.util.find_spec(module) is None
    ]
    if missing:
        raise UsageError(f"{hint}; missing: {', '.join(missing)}")
    try:
        importlib.import_module("face_recognition_models")  # a real reason, not quit()
        face_recognition = importlib.import_module("face_recognition")
    except (ImportError, SystemExit) as exc:
        raise UsageError(f"{hint}; importing it failed: {exc}") from exc
    return face_recognition
