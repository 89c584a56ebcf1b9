"""Measuring the recognition pipeline: the core of ``facegate bench``.

A door must decide while the person is still walking up, and the budget is a Raspberry Pi,
so speed is measured, not guessed. This module runs real frames (a video file or an image
folder) through the door's own per-frame work -- detect, align (with the quality gate),
embed, match, decision (tracker + access policy) -- and reports per-stage and per-frame
milliseconds, frames per second, CPU time and peak memory. Optionally it runs the same
frames through the ``face_recognition`` library (dlib's HOG detector + dlib's ResNet, the
usual Raspberry Pi door recipe) in the same process, and compares speed and identities.

It also reports what each bundled model costs per inference (parameters and
multiply-accumulates, counted from the ``.tflite`` file with the runtime alone, so Pi
timings can be estimated before they are measured on one) and how long a gallery search
over many embeddings takes.

Every frame is processed completely (every detected face gated, aligned, embedded, matched),
even when the daemon would skip a face it has decided already: the numbers are the cost of a
frame in which someone new stands at the door, and the comparison with the peer, which
embeds every face of every frame, is like for like. Decoding a frame (the camera's work) is
not timed.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import math
import os
import platform
import resource
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pi_facegate.camera.sources import ReplaySource
from pi_facegate.config.schema import Config
from pi_facegate.core.matcher import GalleryIndex, search
from pi_facegate.core.policy import AccessPolicy
from pi_facegate.core.tracker import FaceTracker
from pi_facegate.daemon import wiring as components
from pi_facegate.exc import ModelError, MultipleFacesError, NoFaceError, UsageError
from pi_facegate.paths import facedata_dir
from pi_facegate.vision.images import load_image
from pi_facegate.vision.litert import interpreter_class
from pi_facegate.vision.manifest import Manifest
from pi_facegate.vision.recognizer import Recognizer

#: the stages of one frame, in order; ``ours.stages`` has one entry per name
STAGES = ("detect", "align", "embed", "match", "decision")
#: other face-recognition libraries ``--peer`` can run on the same frames
PEERS = ("face_recognition",)
#: what ``--frames`` defaults to, inside the shared face data
DEFAULT_CLIP = Path("face_recognition_examples/examples/short_hamilton_clip.mp4")
#: who is enrolled by default when the default clip is used: the person in its close-ups
DEFAULT_REFERENCE = (
    "Lin-Manuel Miranda",
    Path("face_recognition_examples/examples/lin-manuel-miranda.png"),
)
#: operators that do multiply-accumulate work and hold the parameters (weights and biases)
WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
#: gallery size of the search benchmark, and how many embeddings each random person has
SEARCH_EMBEDDINGS = 100_000
SEARCH_PER_PERSON = 5
#: the peer's identity threshold: face_recognition's own default tolerance
PEER_TOLERANCE = 0.6

Progress = Callable[[str], None]


# --------------------------------------------------------------------------- numbers


def summarize(values_ms: Sequence[float]) -> dict[str, float]:
    """``median``, ``p95``, ``mean``, ``min`` and ``max`` of some milliseconds.

    The 95th percentile is the nearest-rank one (a value that occurred), so it is never
    below the median; for fewer than 20 values it is the maximum.
    """
    if not values_ms:
        return {"median": 0.0, "p95": 0.0, "mean": 0.0, "min": 0.0, "max": 0.0}
    ordered = sorted(float(v) for v in values_ms)
    rank = max(1, math.ceil(0.95 * len(ordered)))
    return {
        "median": round(statistics.median(ordered), 3),
        "p95": round(ordered[rank - 1], 3),
        "mean": round(statistics.fmean(ordered), 3),
        "min": round(ordered[0], 3),
        "max": round(ordered[-1], 3),
    }


def peak_rss_mb() -> float:
    """The process's peak resident memory so far, in MiB (a high-water mark: it never falls)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / 1024 if sys.platform != "darwin" else peak / 2**20, 1)


# --------------------------------------------------------------------------- frames


def parse_size(text: str) -> tuple[int, int]:
    """``"640x480"`` as ``(640, 480)``; a :class:`UsageError` for anything else."""
    width, sep, height = text.lower().partition("x")
    try:
        size = (int(width), int(height)) if sep else None
    except ValueError:
        size = None
    if size is None or min(size) < 16 or max(size) > 8192:
        raise UsageError(f"--size must be WIDTHxHEIGHT in pixels, 16..8192 each (got {text!r})")
    return size


def letterbox(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` scaled to fit ``size`` (width, height) without distortion, centred on black.

    A camera frame of another shape becomes a ``size`` frame whose faces keep their
    proportions (stretching would change what identity the embedder sees).
    """
    width, height = size
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    scale = min(width / w, height / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    scaled = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    out = np.zeros((height, width) + image.shape[2:], dtype=image.dtype)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    out[top : top + new_h, left : left + new_w] = scaled
    return out


def read_frames(
    path: Path, size: tuple[int, int] | None = None, limit: int | None = None
) -> Iterator[np.ndarray]:
    """RGB frames of a video file, an image or an image folder, in order, at most ``limit``."""
    count = 0
    with ReplaySource(path) as source:
        while limit is None or count < limit:
            frame = source.read()
            if frame is None:
                return
            count += 1
            yield letterbox(frame.image, size) if size else frame.image


# --------------------------------------------------------------------------- model cost


@dataclass(frozen=True)
class LayerCost:
    """One weighted operator: its kind, parameter count and MACs per inference."""

    op: str
    params: int
    macs: int


@dataclass(frozen=True)
class ModelCost:
    """What one inference of a ``.tflite`` model costs, counted from the file.

    ``params`` counts the weights and biases of the weighted operators (:data:`WEIGHTED_OPS`),
    ``param_bytes`` what they take in the file (int8, float16 or float32 storage), ``macs``
    the multiply-accumulates of one inference (batch 1); other operators (adds, pools,
    activations) do comparatively little work and are not counted.
    """

    file: str
    file_bytes: int
    params: int
    param_bytes: int
    macs: int
    ops: dict[str, int]
    layers: tuple[LayerCost, ...] = field(repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "file_bytes": self.file_bytes,
            "params": self.params,
            "param_bytes": self.param_bytes,
            "macs": self.macs,
            "ops": self.ops,
        }


def model_cost(model: Path | Manifest) -> ModelCost:
    """Count parameters and MACs of a TFLite model with the interpreter alone.

    The interpreter is built without its default delegate (XNNPACK would fold the graph
    into one opaque node) and only read: ``_get_ops_details()`` lists the operators with
    their tensor indices, ``get_tensor_details()`` gives every tensor's shape and type.
    A weight is a tensor no operator produces (and not a graph input), or the output of a
    DEQUANTIZE of one (float16 weights are stored that way).
    """
    path = model.model_path if isinstance(model, Manifest) else Path(model)
    interpreter = _plain_interpreter(path)
    ops = interpreter._get_ops_details()
    tensors = {int(t["index"]): t for t in interpreter.get_tensor_details()}
    inputs = {int(d["index"]) for d in interpreter.get_input_details()}
    batch = max(1, int(interpreter.get_input_details()[0]["shape"][0]))
    produced = {int(i): op for op in ops for i in op["outputs"] if i >= 0}

    def storage(index: int) -> tuple[bool, int]:
        """(is a constant, bytes it takes in the file)."""
        op = produced.get(index)
        if op is None:
            tensor = tensors[index]
            size = int(np.prod(tensor["shape"])) * np.dtype(tensor["dtype"]).itemsize
            return index not in inputs, size
        if op["op_name"] == "DEQUANTIZE":
            return storage(int(op["inputs"][0]))
        return False, 0

    layers, counted, param_bytes = [], set(), 0
    for op in ops:
        name = op["op_name"]
        if name not in WEIGHTED_OPS:
            continue
        params = 0
        for index in (int(i) for i in op["inputs"][1:] if i >= 0):
            constant, size = storage(index)
            if constant and index not in counted:
                counted.add(index)
                params += int(np.prod(tensors[index]["shape"]))
                param_bytes += size
        shapes = [tuple(int(v) for v in tensors[int(i)]["shape"]) for i in op["inputs"][:2]]
        out_shape = tuple(int(v) for v in tensors[int(op["outputs"][0])]["shape"])
        layers.append(LayerCost(name, params, _macs(name, shapes[1], out_shape) // batch))
    return ModelCost(
        file=path.name,
        file_bytes=path.stat().st_size,
        params=sum(layer.params for layer in layers),
        param_bytes=param_bytes,
        macs=sum(layer.macs for layer in layers),
        ops=dict(Counter(op["op_name"] for op in ops)),
        layers=tuple(layers),
    )


def _macs(op: str, weights: tuple[int, ...], output: tuple[int, ...]) -> int:
    """Multiply-accumulates of one weighted operator from its weight and output shapes.

    CONV_2D weights are ``(out, kh, kw, in)``: every output value takes ``kh*kw*in``.
    DEPTHWISE_CONV_2D weights are ``(1, kh, kw, channels)``: every output value takes
    ``kh*kw``. FULLY_CONNECTED weights are ``(out, in)``: every output value takes ``in``.
    """
    outputs = int(np.prod(output))
    if op == "CONV_2D":
        return outputs * int(np.prod(weights[1:]))
    if op == "DEPTHWISE_CONV_2D":
        return outputs * weights[1] * weights[2]
    return outputs * weights[-1]


def _plain_interpreter(path: Path) -> Any:
    """An allocated interpreter without default delegates, for reading the graph."""
    cls = interpreter_class()
    module = sys.modules[cls.__module__]
    resolver = getattr(
        getattr(module, "OpResolverType", None), "BUILTIN_WITHOUT_DEFAULT_DELEGATES", None
    )
    kwargs = {"experimental_op_resolver_type": resolver} if resolver is not None else {}
    try:
        interpreter = cls(model_path=str(path), **kwargs)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot read TFLite model {path}: {exc}") from exc
    return interpreter


# --------------------------------------------------------------------------- gallery search


def random_gallery(
    people: int, per_person: int = SEARCH_PER_PERSON, dim: int = 128, seed: int = 0
) -> tuple[list[tuple[int, str, bool, bool]], np.ndarray, np.ndarray]:
    """``(rows, owners, vectors)`` of ``people`` random people, as :meth:`GalleryIndex.build` takes them.

    dlib's embeddings have norms close to 1, and the search time does not depend on the
    values, so random unit vectors time the search as a real gallery would.
    """
    rng = np.random.default_rng(seed)
    vectors = _unit(rng.standard_normal((people * per_person, dim), dtype=np.float32))
    rows = [(i + 1, f"person-{i + 1}", True, False) for i in range(people)]
    owners = np.repeat(np.arange(1, people + 1), per_person)
    return rows, owners, vectors


def random_index(
    embeddings: int, per_person: int = SEARCH_PER_PERSON, dim: int = 128, seed: int = 0
) -> GalleryIndex:
    """A searchable gallery of about ``embeddings`` random vectors, ``per_person`` each."""
    people = max(1, embeddings // max(1, per_person))
    rows, owners, vectors = random_gallery(people, per_person, dim, seed)
    return GalleryIndex.build(rows, owners, vectors, fingerprint="bench", version=1)


def time_search(
    index: GalleryIndex, batch: int = 1, repeat: int = 200, seed: int = 0
) -> list[float]:
    """Milliseconds per :func:`~pi_facegate.core.matcher.search` call of ``batch`` random queries."""
    rng = np.random.default_rng(seed + 1)
    queries = [
        _unit(rng.standard_normal((batch, index.dim), dtype=np.float32)) for _ in range(repeat + 1)
    ]
    search(index, queries[0], 0.6, 0.1)  # first call pays for page faults, not the search
    times = []
    for block in queries[1:]:
        start = time.perf_counter()
        search(index, block, 0.6, 0.1)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def search_benchmark(
    embeddings: int = SEARCH_EMBEDDINGS, per_person: int = SEARCH_PER_PERSON, repeat: int = 200
) -> dict[str, Any]:
    """One query against a random gallery of ``embeddings`` vectors, ``repeat`` times."""
    index = random_index(embeddings, per_person)
    times = time_search(index, repeat=repeat)
    return {
        "embeddings": int(index.embeddings.shape[0]),
        "people": index.size,
        "dim": index.dim,
        "ms": summarize(times),
    }


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


# --------------------------------------------------------------------------- one frame


@dataclass(frozen=True)
class FrameResult:
    """One frame through a pipeline: stage and total milliseconds, faces, identities."""

    stages_ms: dict[str, float]
    total_ms: float
    cpu_ms: float
    faces: int
    embedded: int
    names: frozenset[str]


@dataclass(frozen=True)
class Reference:
    """A photo enrolled for the run (in both pipelines, so their answers can be compared)."""

    name: str
    path: Path


class OurPipeline:
    """The daemon's per-frame work without the relay: recognizer, tracker, access policy.

    A frame's identities are the people a face of it was *recognised* as (threshold and
    margin met): the per-frame answer the policy then votes on over several frames.
    """

    def __init__(self, recognizer: Recognizer, config: Config, index: GalleryIndex) -> None:
        self.recognizer = recognizer
        self.config = config
        self.index = index
        self.threshold, self.min_margin = components.match_settings(config, recognizer.embedder)
        self.interval = 1.0 / config.camera.fps  # seconds between frames of the simulated camera
        self._clock = 0.0
        self.reset()

    def reset(self) -> None:
        """Forget faces and votes (between the warm-up and the timed pass)."""
        a = self.config.access
        self.tracker = FaceTracker()
        self.policy = AccessPolicy(
            votes_required=a.votes_required,
            window_frames=a.window_frames,
            window_seconds=a.window_seconds,
            cooldown_seconds=a.cooldown_seconds,
            unknown_log_interval_seconds=a.unknown_log_interval_seconds,
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
        for analysis, track in zip(analyses, track_ids, strict=True):
            if analysis.usable:
                self.policy.observe(track, analysis.match, now)
        t2 = time.perf_counter()
        stages = {s: rec.timings[s] for s in STAGES[:4]}
        stages["decision"] = (t2 - t1) * 1e3
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
        return _version("face_recognition")

    def enrol(self, reference: Reference) -> None:
        """Add the one face of ``reference``'s photo; NoFaceError/MultipleFacesError otherwise."""
        image = load_image(reference.path)
        locations = self.fr.face_locations(image)
        _one_face(reference, len(locations), "face_recognition")
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


def _one_face(reference: Reference, count: int, who: str) -> None:
    if count == 0:
        raise NoFaceError(f"{reference.path}: {who} finds no face to enrol {reference.name!r} from")
    if count > 1:
        raise MultipleFacesError(
            f"{reference.path}: {who} finds {count} faces; a reference photo must show one"
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
    strangers = _unit(rng.standard_normal((people * per_person, index.dim), dtype=np.float32))
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
        _one_face(reference, len(faces), "the detector")
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


# --------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class BenchOptions:
    """What to measure; ``None`` fields take the defaults described in ``facegate bench -h``."""

    frames: Path | None = None
    size: tuple[int, int] | None = None
    max_frames: int | None = None
    warmup: int = 3
    threads: int | None = None
    references: tuple[Reference, ...] | None = None
    peer: str | None = None
    search_embeddings: int = SEARCH_EMBEDDINGS
    strangers: int = 0


def resolve_inputs(options: BenchOptions) -> BenchOptions:
    """Fill in the default clip and, for it, the default reference photo."""
    if options.peer is not None and options.peer not in PEERS:
        raise UsageError(f"unknown peer {options.peer!r}: choose one of {', '.join(PEERS)}")
    frames, references = options.frames, options.references
    if frames is None:
        frames = facedata_dir() / DEFAULT_CLIP
        if not frames.exists():
            raise UsageError(
                f"no --frames given and the default clip {frames} is missing "
                "(set FACEGATE_TESTDATA to the shared face data, or give --frames PATH)"
            )
        if references is None:
            name, photo = DEFAULT_REFERENCE
            references = (Reference(name, facedata_dir() / photo),)
    return replace(options, frames=frames, references=tuple(references or ()))


def bench_config(config: Config, threads: int | None) -> Config:
    """``config`` with ``threads`` interpreter threads for the detector and the embedder."""
    if not threads:
        return config
    return config.model_copy(
        update={
            "detector": config.detector.model_copy(update={"threads": threads}),
            "embedder": config.embedder.model_copy(update={"threads": threads}),
        }
    )


def run_bench(
    config: Config, options: BenchOptions, progress: Progress | None = None
) -> dict[str, Any]:
    """Measure our pipeline (and the peer's) on the frames; the report as plain data.

    :raises UsageError: bad options, or the peer library is not installed
    :raises CameraError: the frames cannot be read
    :raises NoFaceError, MultipleFacesError: a reference photo does not show one face
    """
    options = resolve_inputs(options)
    config = bench_config(config, options.threads)
    load_before = _loadavg()
    say = progress or (lambda _: None)
    peer = FaceRecognitionPeer() if options.peer else None  # fail on a missing library first

    recognizer = components.build_recognizer(config, video=True)
    try:
        index = add_strangers(enrol_ours(recognizer, config, options.references), options.strangers)
        ours = OurPipeline(recognizer, config, index)
        say(f"warming up on {options.warmup} frames")
        _run_pass(ours.process, options, limit=options.warmup)
        ours.reset()
        say(f"timing pi-facegate on {options.frames}")
        our_results, our_wall = _run_pass(ours.process, options, say=say)
        detector = recognizer.detector
        settings = {
            "detector_backend": detector.backend,
            "detector_model": detector.manifest.name,
            "detect_width": recognizer.detect_width,
            "detector_threads": config.detector.threads,
            "embedder_model": recognizer.embedder.name,
            "embedder_threads": config.embedder.threads,
            "threshold": ours.threshold,
            "min_margin": ours.min_margin,
        }
        models = {
            "detector": model_cost(detector.manifest).as_dict(),
            "embedder": model_cost(recognizer.embedder.manifest).as_dict(),
        }
    finally:
        recognizer.close()
    if not our_results:
        raise UsageError(f"{options.frames}: no frames to measure")
    report: dict[str, Any] = {
        "frames": len(our_results),
        "source": _source(options),
        "settings": settings,
        "enrolled": sorted({r.name for r in options.references}),
        "gallery_people": index.size,
        "ours": _pipeline_report(our_results, our_wall, STAGES),
        "peer": None,
        "ratio_peer_over_ours": None,
        "ratio_peer_over_ours_one_face": None,
        "agreement": None,
        "models": models,
    }
    report["ours"]["peak_rss_mb"] = peak_rss_mb()
    if peer is not None:
        for reference in options.references:
            peer.enrol(reference)
        say(f"warming up {peer.name}")
        _run_pass(peer.process, options, limit=min(options.warmup, 1))
        say(f"timing {peer.name} on the same frames")
        peer_results, peer_wall = _run_pass(peer.process, options, say=say)
        report["peer"] = {
            "name": peer.name,
            "version": peer.version,
            "dlib": _version("dlib-bin") or _version("dlib"),
            "tolerance": peer.tolerance,
            **_pipeline_report(peer_results, peer_wall, ("detect", "embed", "match")),
            "process_peak_rss_mb": peak_rss_mb(),
        }
        ours_median = report["ours"]["ms_per_frame"]["median"]
        peer_median = report["peer"]["ms_per_frame"]["median"]
        report["ratio_peer_over_ours"] = _ratio(peer_median, ours_median)
        report["ratio_peer_over_ours_one_face"] = _ratio(
            report["peer"]["one_face"]["ms_per_frame"]["median"],
            report["ours"]["one_face"]["ms_per_frame"]["median"],
        )
        report["agreement"] = agreement(our_results, peer_results)
    if options.search_embeddings:
        say(f"timing a gallery search over {options.search_embeddings} embeddings")
        report["gallery_search"] = search_benchmark(options.search_embeddings)
    report["machine"] = {**machine_info(), "load_before": load_before, "load_after": _loadavg()}
    return report


def _ratio(peer_ms: float, ours_ms: float) -> float | None:
    return round(peer_ms / ours_ms, 2) if ours_ms > 0 and peer_ms > 0 else None


def _loadavg() -> float | None:
    """The 1-minute load average: timings from a busy machine are not the machine's speed."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _run_pass(
    process: Callable[[np.ndarray], FrameResult],
    options: BenchOptions,
    limit: int | None = None,
    say: Progress | None = None,
) -> tuple[list[FrameResult], float]:
    """Every frame (or the first ``limit``) through ``process``; results and wall seconds."""
    limit = options.max_frames if limit is None else min(limit, options.max_frames or limit)
    results = []
    wall = 0.0
    for image in read_frames(options.frames, options.size, limit):
        start = time.perf_counter()
        results.append(process(image))
        wall += time.perf_counter() - start
        if say and len(results) % 50 == 0:
            say(f"  {len(results)} frames")
    return results, wall


def _pipeline_report(
    results: list[FrameResult], wall: float, stages: Sequence[str]
) -> dict[str, Any]:
    """Per-frame and per-stage statistics, over all frames and over one-face frames."""
    one_face = [r for r in results if r.faces == 1 and r.embedded == 1]
    cpu = sum(r.cpu_ms for r in results) / 1e3
    return {
        "ms_per_frame": summarize([r.total_ms for r in results]),
        "fps": round(len(results) / wall, 2) if wall > 0 else None,
        "cpu_seconds": round(cpu, 3),
        "cpu_ms_per_frame": round(cpu * 1e3 / len(results), 3) if results else None,
        "cpu_utilisation": round(cpu / wall, 2) if wall > 0 else None,
        "stages": {s: summarize([r.stages_ms[s] for r in results]) for s in stages},
        "frames_with_faces": sum(r.faces > 0 for r in results),
        "faces_detected": sum(r.faces for r in results),
        "faces_embedded": sum(r.embedded for r in results),
        "frames_identified": sum(bool(r.names) for r in results),
        "one_face": {
            "frames": len(one_face),
            "ms_per_frame": summarize([r.total_ms for r in one_face]),
            "cpu_ms_per_frame": summarize([r.cpu_ms for r in one_face]),
            "stages": {s: summarize([r.stages_ms[s] for r in one_face]) for s in stages},
        },
    }


def agreement(ours: Sequence[FrameResult], peer: Sequence[FrameResult]) -> dict[str, Any]:
    """How often the two pipelines name the same people in a frame (also "nobody").

    ``both``/``ours_only``/``peer_only``/``neither`` count frames in which each pipeline
    recognised at least one enrolled person; ``disagree_frames`` lists (up to 50) frame
    numbers where the answers differ, to look at.
    """
    pairs = list(zip(ours, peer, strict=True))
    same = [a.names == b.names for a, b in pairs]
    differ = [i for i, ok in enumerate(same) if not ok]
    return {
        "frames": len(pairs),
        "agree": sum(same),
        "rate": round(sum(same) / len(pairs), 4) if pairs else None,
        "both": sum(bool(a.names) and bool(b.names) for a, b in pairs),
        "ours_only": sum(bool(a.names) and not b.names for a, b in pairs),
        "peer_only": sum(not a.names and bool(b.names) for a, b in pairs),
        "neither": sum(not a.names and not b.names for a, b in pairs),
        "disagree_frames": differ[:50],
    }


def _source(options: BenchOptions) -> dict[str, Any]:
    first = next(read_frames(options.frames, options.size, 1))
    return {
        "path": str(options.frames),
        "size": [int(first.shape[1]), int(first.shape[0])],
        "letterboxed": options.size is not None,
        "max_frames": options.max_frames,
        "warmup": options.warmup,
    }


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "litert": _version("ai-edge-litert") or _version("tflite-runtime"),
        "mediapipe": _version("mediapipe"),
        "tensorflow_loaded": "tensorflow" in sys.modules,
    }


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


# --------------------------------------------------------------------------- the table


def format_report(report: dict[str, Any]) -> str:
    """The report as a short text table for a terminal."""
    ours, peer = report["ours"], report["peer"]
    source = report["source"]
    s = report["settings"]
    lines = [
        f"frames: {report['frames']} of {source['path']} at {source['size'][0]}x{source['size'][1]}"
        f" ({ours['frames_with_faces']} with a face, {ours['one_face']['frames']} with one usable face)",
        f"gallery: {report['gallery_people']} people ({', '.join(report['enrolled']) or 'nobody'} enrolled); "
        f"detector {s['detector_backend']} {s['detector_model']} (detect width {s['detect_width'] or 'full'},"
        f" {s['detector_threads']} thread(s)); embedder {s['embedder_model']} ({s['embedder_threads']} thread(s))",
        "",
        f"{'pi-facegate, ms':<22}{'median':>9}{'p95':>9}   {'one face: median':>16}{'p95':>9}",
    ]
    for stage in STAGES:
        lines.append(_row(stage, ours["stages"][stage], ours["one_face"]["stages"][stage]))
    lines.append(_row("whole frame", ours["ms_per_frame"], ours["one_face"]["ms_per_frame"]))
    lines.append(
        f"{ours['fps']} frames/s, CPU {ours['cpu_ms_per_frame']} ms/frame "
        f"({ours['cpu_utilisation']} cores busy), peak RSS {ours['peak_rss_mb']} MiB"
    )
    if peer is not None:
        lines += [
            "",
            f"{peer['name'] + ' ' + str(peer['version']) + ', ms':<22}{'median':>9}{'p95':>9}",
        ]
        for stage in ("detect", "embed", "match"):
            lines.append(_row(stage, peer["stages"][stage]))
        lines.append(_row("whole frame", peer["ms_per_frame"]))
        lines.append(f"{peer['fps']} frames/s, CPU {peer['cpu_ms_per_frame']} ms/frame")
        a = report["agreement"]
        lines += [
            "",
            f"peer / ours (median frame): {report['ratio_peer_over_ours']}x; "
            f"on one-face frames: {report['ratio_peer_over_ours_one_face']}x",
            f"same identities in {a['agree']} of {a['frames']} frames ({a['rate']:.1%}): both recognised "
            f"{a['both']}, only ours {a['ours_only']}, only {peer['name']} {a['peer_only']}, neither {a['neither']}",
        ]
    lines += ["", f"{'model':<30}{'MB':>7}{'params':>12}{'MMACs':>10}"]
    for model in report["models"].values():
        lines.append(
            f"{model['file']:<30}{model['file_bytes'] / 1e6:>7.2f}{model['params']:>12,}{model['macs'] / 1e6:>10.1f}"
        )
    search_report = report.get("gallery_search")
    if search_report:
        ms = search_report["ms"]
        lines.append(
            f"\ngallery search, {search_report['embeddings']:,} embeddings of {search_report['people']:,} people: "
            f"median {ms['median']} ms, p95 {ms['p95']} ms"
        )
    return "\n".join(lines)


def _row(label: str, stats: dict[str, float], one: dict[str, float] | None = None) -> str:
    text = f"{label:<22}{stats['median']:>9.2f}{stats['p95']:>9.2f}"
    if one is not None:
        text += f"   {one['median']:>16.2f}{one['p95']:>9.2f}"
    return text
