"""Replaying presentations for ``facegate eval liveness``: each cue on its own, and the door.

Two passes, on the same frames:

* :func:`judge_cues` runs the door's detector, face mesh and texture models and its
  liveness rule (:class:`~pi_facegate.core.liveness.TrackLiveness`) on every face track,
  whoever it is, and keeps each cue's presentation-level score: the texture median the
  door decides on, the planarity cue's verdict and score (its highest median nose parallax
  while the door still waits: the door grants as soon as both cues agree, so a cue that says
  3-D for one moment within ``max_wait_seconds`` has said it), and the fused verdict the
  door reaches within that wait. A presentation in which no face was ever judged is a
  failure to acquire: counted, but in neither APCER nor BPCER;
* :func:`door_replay` runs the real daemon (:class:`~pi_facegate.daemon.service.DoorService`
  with simulated GPIO, a private state dir, the presentation as its camera) with the
  subjects enrolled, and counts what the door did: unlocks, ``presentation_attack`` and
  ``no_liveness`` denials. That is the whole-door figure (IAPMR for attacks, the door's
  BPCER for live people).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pi_facegate.config.schema import Config
from pi_facegate.core.liveness import LivenessResult, LivenessSettings, TrackLiveness
from pi_facegate.core.planarity import Verdict as PlanarityVerdict
from pi_facegate.core.tracker import FaceTracker
from pi_facegate.daemon import wiring as components
from pi_facegate.devtools.pad_material import Material, Presentation, frames

#: ``enrol(subject, photos, gallery) -> stored?``: how the caller enrols a subject (the CLI
#: passes ``facegate enroll``, so the door meets people enrolled as an administrator would)
Enrol = Callable[[str, list[Path], Path], bool]


@dataclass
class TrackCues:
    """The evidence one track gathered, and when the fused rule decided."""

    judged: int = 0
    textures: list[float] = field(default_factory=list)
    last: LivenessResult | None = None
    live_after: float | None = None  # seconds from first judged to LIVE (within the wait)
    attack_after: float | None = None
    three_d_after: float | None = None  # planarity first said 3-D (within the wait)
    planarity_peak: float | None = None  # highest planarity score within the wait
    relief_at_peak: float | None = None


@dataclass
class CueRecord:
    """Each cue's presentation-level result (``None``: the cue gave no score)."""

    presentation: Presentation
    frames: int = 0
    face_frames: int = 0
    texture: float | None = None
    planarity: float | None = None
    planarity_verdict: str = "no face"
    relief: float | None = None
    fused: str = "no face"  # live / attack / no_liveness / no face
    live_after: float | None = None

    @property
    def acquired(self) -> bool:
        """A face was judged: the presentation counts in APCER or BPCER."""
        return self.fused != "no face"

    def as_dict(self) -> dict[str, Any]:
        p = self.presentation
        return {
            "path": str(p.path),
            "name": p.name,
            "label": p.label,
            "species": p.species,
            "subject": p.subject,
            "simulated": p.simulated,
            "frames": self.frames,
            "face_frames": self.face_frames,
            "texture": self.texture,
            "planarity": self.planarity,
            "planarity_verdict": self.planarity_verdict,
            "relief": self.relief,
            "fused": self.fused,
            "live_after_s": self.live_after,
        }


class CueJudge:
    """The door's perception (detector, face mesh, texture models) and its liveness rule."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.settings: LivenessSettings = components.liveness_settings(config)
        self.recognizer = components.build_recognizer(config, video=True)
        self.texture = components.build_texture_liveness(config) or _texture_needed()
        self._clock_ms = 0  # VIDEO-mode detection needs increasing times across presentations

    def close(self) -> None:
        self.recognizer.close()
        self.texture.close()

    def judge(self, p: Presentation, fps: float) -> CueRecord:
        record = CueRecord(p)
        tracker, tracks = FaceTracker(), {}
        start = self._clock_ms
        for t, image in frames(p, fps):
            record.frames += 1
            self._clock_ms = max(self._clock_ms + 1, start + int(t * 1000))
            faces = self.recognizer.detect(image, timestamp_ms=self._clock_ms)
            record.face_frames += bool(faces)
            ids = tracker.update([f.box for f in faces], t)
            for analysis, track in zip(self.recognizer.analyse(image, faces), ids, strict=True):
                if analysis.usable:
                    self._observe(tracks, track, t, image, analysis)
        self._clock_ms += 10_000
        return summarise(record, tracks, self.settings)

    def _observe(self, tracks: dict, track: int, t: float, image, analysis) -> None:
        state = tracks.get(track)
        if state is None:
            state = tracks[track] = (TrackLiveness(self.settings, t), TrackCues())
        liveness, cues = state

        def texture() -> float:
            cues.textures.append(self.texture.score(image, analysis.face))
            return cues.textures[-1]

        result = liveness.judge(t, texture, analysis.mesh)
        cues.judged += 1
        cues.last = result
        if result.live and cues.live_after is None and not result.timed_out:
            cues.live_after = result.waited
        if result.attack and cues.attack_after is None:
            cues.attack_after = result.waited
        if result.waited <= self.settings.max_wait_seconds:
            _planarity_within_wait(cues, result)


def _planarity_within_wait(cues: TrackCues, result: LivenessResult) -> None:
    p = result.planarity
    if p.verdict is PlanarityVerdict.THREE_D and cues.three_d_after is None:
        cues.three_d_after = result.waited
    if p.score is not None and (cues.planarity_peak is None or p.score > cues.planarity_peak):
        cues.planarity_peak, cues.relief_at_peak = p.score, p.relief


def _texture_needed():
    from pi_facegate.exc import ConfigError

    raise ConfigError("eval liveness needs liveness.enabled: true in the config")


def summarise(record: CueRecord, tracks: dict, settings: LivenessSettings) -> CueRecord:
    """The presentation's cues from its longest-judged track; fused over all its tracks."""
    if not tracks:
        return record
    cues = [c for _, c in tracks.values()]
    main = max(cues, key=lambda c: c.judged)
    first = main.textures[: settings.texture_frames]
    record.texture = float(np.median(first)) if first else None
    record.planarity, record.relief = main.planarity_peak, main.relief_at_peak
    if main.three_d_after is not None:
        record.planarity_verdict = PlanarityVerdict.THREE_D.value
    else:
        record.planarity_verdict = main.last.planarity.verdict.value
    lives = [c.live_after for c in cues if c.live_after is not None]
    if lives:
        record.fused, record.live_after = "live", min(lives)
    elif any(c.attack_after is not None for c in cues):
        record.fused = "attack"
    else:
        record.fused = "no_liveness"
    return record


# ---------------------------------------------------------------------------- the door
@dataclass
class DoorRecord:
    """What the daemon did during one presentation."""

    presentation: Presentation
    unlocked: bool = False
    granted_to: list[str] = field(default_factory=list)
    presentation_attack: bool = False
    no_liveness: bool = False
    #: the identity votes were met (a grant, or a liveness denial): without liveness it opens
    recognised: bool = False

    def as_dict(self) -> dict[str, Any]:
        p = self.presentation
        return {
            "name": p.name,
            "label": p.label,
            "species": p.species,
            "subject": p.subject,
            "simulated": p.simulated,
            "unlocked": self.unlocked,
            "granted_to": self.granted_to,
            "presentation_attack": self.presentation_attack,
            "no_liveness": self.no_liveness,
            "recognised": self.recognised,
        }


class DoorBench:
    """A private state dir with one gallery per subject, replayed through the daemon.

    Each subject has a gallery of their own, so a presentation of one person meets only
    that person (two subjects who look alike cannot refuse or shadow each other).
    """

    def __init__(self, config_path: Path, config: Config, material: Material, enrol: Enrol) -> None:
        self.config_path, self.config = config_path, config
        self._tmp = tempfile.TemporaryDirectory(prefix="facegate-eval-")
        self.state = Path(self._tmp.name)
        os.chmod(self.state, 0o700)  # a gallery is only trusted in a private directory
        # never the appliance's own gallery, whatever the config names
        self.galleries = {}
        for i, (subject, photos) in enumerate(sorted(material.enrol.items())):
            gallery = self.state / f"gallery-{i}.db"
            if enrol(subject, photos, gallery):
                self.galleries[subject] = gallery

    @property
    def enrolled(self) -> set[str]:
        return set(self.galleries)

    def close(self) -> None:
        self._tmp.cleanup()

    def replay(self, p: Presentation, fps: float) -> DoorRecord:
        from pi_facegate.daemon.service import DoorService, RunOptions

        record = DoorRecord(p)
        with _as_camera(p, self.state) as camera:
            options = RunOptions(
                config_path=self.config_path,
                state_dir=self.state,
                replay=camera,
                replay_fps=0,
                simulate_gpio=True,
                gallery_path=self.galleries[p.subject],
                events_path=self.state / f"events-{id(record)}.db",
            )
            service = DoorService(options, self.config, on_event=_recorder(record))
            service.start()
            try:
                while (frame := service.camera.read(1.0)) is not None:
                    at = frame.index / fps if frame.position is None else frame.position
                    service.process(frame.image, at, frame.lores)
            finally:
                service.close()
        return record


def _recorder(record: DoorRecord) -> Callable[[str, dict], None]:
    def seen(kind: str, fields: dict) -> None:
        detail = fields.get("detail") or {}
        if kind == "unlocked":
            record.unlocked = True
        elif kind == "granted":
            record.granted_to.append(str(fields.get("person")))
            record.recognised = True
        elif kind == "presentation_attack":
            record.presentation_attack = record.recognised = True
        elif kind == "denied" and detail.get("reason") == "no_liveness":
            record.no_liveness = record.recognised = True

    return seen


@contextlib.contextmanager
def _as_camera(p: Presentation, state: Path) -> Iterator[Path]:
    """A path the replay camera can read: the item itself, or a folder of its frames."""
    if not p.frames:
        yield p.path
        return
    folder = state / "frames"
    folder.mkdir()
    try:
        for i, path in enumerate(p.frames):
            (folder / f"{i:05d}{path.suffix}").symlink_to(path)
        yield folder
    finally:
        for link in folder.iterdir():
            link.unlink()
        folder.rmdir()
