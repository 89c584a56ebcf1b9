"""Wiring: build the pipeline's parts from a validated config.

The parts themselves take plain arguments and know nothing of the config file; this module
is the one place that maps config sections onto constructors, for the CLI, the daemon and
the benchmark alike.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import tzinfo
from pathlib import Path

from pi_facegate.config.access import load_zone
from pi_facegate.config.schema import Config
from pi_facegate.core.align import Aligner
from pi_facegate.core.attempts import AttemptLimiter
from pi_facegate.core.faces import Detector
from pi_facegate.core.liveness import LivenessSettings
from pi_facegate.core.matcher import GalleryIndex
from pi_facegate.core.open_set import OpenSetRule
from pi_facegate.core.planarity import PlanaritySettings
from pi_facegate.core.policy import AccessPolicy
from pi_facegate.core.quality import QualityLimits
from pi_facegate.core.schedule import Schedule, parse_schedule
from pi_facegate.door.controller import DoorController
from pi_facegate.door.pins import make_pin_factory
from pi_facegate.exc import ConfigError
from pi_facegate.storage.gallery import Gallery
from pi_facegate.vision.antispoof import TextureLiveness
from pi_facegate.vision.detection.factory import create_detector
from pi_facegate.vision.embedder import Embedder
from pi_facegate.vision.landmarks import DEFAULT_LANDMARKS, LandmarkRefiner
from pi_facegate.vision.manifest import Manifest, impostor_table, load_manifest
from pi_facegate.vision.recognizer import Recognizer

log = logging.getLogger("pi_facegate.service")


def build_detector(config: Config, video: bool = False) -> Detector:
    """The configured detector backend (``auto`` decides from the CPU before importing)."""
    d = config.detector
    return create_detector(
        d.backend,
        model=d.model,
        min_score=d.min_score,
        min_face_size=d.min_face_size,
        video=video,
        num_threads=d.threads,
    )


def build_embedder(config: Config) -> Embedder:
    """The configured embedder, its manifest checked against the model file.

    A converted model (``tools/convert_facenet.py``) comes with placeholder matching
    defaults marked ``embedding.calibrated: false``: said once per load, so nobody runs a
    door on them unknowingly.
    """
    manifest = load_manifest(config.embedder.model)
    if manifest.get("embedding", {}).get("calibrated") is False:
        log.warning(
            "embedder %s: its threshold and margin are provisional, not calibrated "
            "(measure them on the calibration split before trusting the door with it)",
            manifest.name,
        )
    return Embedder(manifest, num_threads=config.embedder.threads)


def quality_limits(config: Config) -> QualityLimits:
    """The live-camera quality gate from ``quality:``."""
    q = config.quality
    return QualityLimits(
        min_face_size=q.min_face_size,
        min_sharpness=q.min_sharpness,
        max_yaw=q.max_yaw,
        min_brightness=q.min_brightness,
        max_brightness=q.max_brightness,
    )


def still_limits(config: Config) -> QualityLimits:
    """The gate for photographs given on the command line: size and pose only.

    A photo is a deliberate choice of an administrator; its sharpness and lighting are
    whatever the photo has, so only what makes an embedding meaningless is refused.
    """
    return QualityLimits(
        min_face_size=config.detector.min_face_size,
        min_sharpness=0.0,
        max_yaw=config.quality.max_yaw,
        min_brightness=0.0,
        max_brightness=0.0,
    )


def build_refiner(config: Config, manifest: Manifest) -> LandmarkRefiner | None:
    """The face-mesh model the embedder's mesh template names, or None if it has none."""
    if not Aligner.wants_mesh(manifest):
        return None
    name = manifest["alignment"]["mesh_template"].get("landmarks", DEFAULT_LANDMARKS)
    # a 2.4 MB model run once per face: like the detector, one thread is as fast as two
    return LandmarkRefiner(load_manifest(name), num_threads=config.detector.threads)


def build_aligner(config: Config, manifest: Manifest) -> Aligner:
    """The aligner the embedder's manifest prescribes (on face-mesh points when it has them)."""
    return Aligner.from_manifest(manifest, build_refiner(config, manifest))


def build_recognizer(
    config: Config, video: bool = False, embedder: Embedder | None = None
) -> Recognizer:
    """Detector + aligner (+ landmark model) + embedder; the parts hold nothing to release
    until the detector is built last, so a failure before it leaks nothing."""
    embedder = embedder or build_embedder(config)
    aligner = build_aligner(config, embedder.manifest)
    detector = build_detector(config, video=video)
    return Recognizer(
        detector,
        aligner,
        embedder,
        quality_limits(config),
        detect_width=config.camera.detect_width if video else 0,
    )


def match_settings(config: Config, embedder: Embedder) -> tuple[float, float]:
    """(threshold, min_margin) regardless of the gallery: the loosest threshold ever used.

    That is an explicit ``matching.threshold``, else the manifest's fixed ``threshold``. A
    decision about a gallery uses :func:`gallery_match_settings` (tighter for big
    galleries); this bound is for checks that must not depend on who is enrolled (linking an
    enrolment's own photos, an import's lookalike check).

    :raises ConfigError: the threshold is looser than the manifest allows (see
        :func:`threshold_problem`): a config that lets strangers in never runs by accident.
    """
    rule, margin = match_rule(config, embedder.manifest)
    return (rule.ceiling if rule.fixed is None else rule.fixed), margin


def match_rule(config: Config, manifest: Manifest) -> tuple[OpenSetRule, float]:
    """(the threshold rule for any gallery, min_margin), from the config and the manifest.

    The rule (:class:`~pi_facegate.core.open_set.OpenSetRule`) chooses the threshold for a
    gallery's size from ``matching.false_accept_per_attempt`` and the manifest's impostor
    table, never looser than the manifest's ``threshold`` nor its ``loosest_threshold``; an
    explicit ``matching.threshold`` wins.

    :raises ConfigError: see :func:`match_settings`.
    :raises ModelError: the manifest's impostor table is malformed.
    """
    embedding = manifest["embedding"]
    problem = threshold_problem(config, embedding)
    if problem:
        raise ConfigError(problem)
    ceiling = float(embedding["threshold"])
    if embedding.get("loosest_threshold") is not None:
        ceiling = min(ceiling, float(embedding["loosest_threshold"]))
    m = config.matching
    rule = OpenSetRule(
        ceiling=ceiling,
        per_attempt=m.false_accept_per_attempt,
        table=impostor_table(manifest),
        fixed=None if m.threshold is None else float(m.threshold),
    )
    margin = float(embedding.get("min_margin", 0.0) if m.min_margin is None else m.min_margin)
    return rule, margin


def gallery_match_settings(
    config: Config, embedder: Embedder, index: GalleryIndex
) -> tuple[float, float]:
    """(threshold, min_margin) for deciding against this gallery snapshot (its size)."""
    rule, margin = match_rule(config, embedder.manifest)
    return rule.for_index(index).threshold, margin


def gallery_threshold(rule: OpenSetRule, index: GalleryIndex, previous: float | None) -> float:
    """The threshold for ``index``; logged when it differs from ``previous`` (the daemon's).

    The daemon calls this at start, on every gallery change and on reload, so its log
    always says which threshold is in force and what it promises.
    """
    choice = rule.for_index(index)
    if previous is None or abs(choice.threshold - previous) > 1e-9:
        log.info("%s", choice.describe())
    return choice.threshold


def threshold_problem(config: Config, embedding: dict) -> str | None:
    """Why ``matching.threshold`` is refused for an embedder, or ``None``.

    Distances mean something only for the model that made them, so the bound comes from
    its manifest: ``loosest_threshold``, the distance at which one stranger pair in a
    hundred already matches on its calibration split. Above it the door lets in strangers
    (``threshold: 2.0`` matched Obama as Lin-Manuel Miranda); ``allow_loose_threshold``
    says it is meant.
    """
    threshold, loosest = config.matching.threshold, embedding.get("loosest_threshold")
    if threshold is None or loosest is None or threshold <= float(loosest):
        return None
    if config.matching.allow_loose_threshold:
        log.warning(
            "matching.threshold %s is looser than the embedder's loosest_threshold %s "
            "(allow_loose_threshold: true): strangers will be let in",
            threshold,
            loosest,
        )
        return None
    return (
        f"matching.threshold {threshold} is looser than {loosest}, the embedder's "
        "loosest_threshold (one stranger pair in a hundred already matches there on its "
        "calibration split): strangers would be let in. Use a value <= "
        f"{loosest}, or null for the manifest's {embedding.get('threshold')}; to accept "
        "it deliberately set matching.allow_loose_threshold: true"
    )


def embedder_fingerprint(manifest: Manifest) -> str:
    """What a gallery records about the embedder that made its vectors.

    Two things decide where a face lands in embedding space: the model file and the way
    chips are cut for it (the alignment templates, detector and face-mesh). Both go into the
    fingerprint, so a gallery made before either changed is refused instead of silently
    mismatching.
    """
    section = manifest.get("alignment", {})
    templates = [section.get("template")]
    if section.get("mesh_template"):
        templates.append(section["mesh_template"])
    alignment = json.dumps(templates[0] if len(templates) == 1 else templates, sort_keys=True)
    digest = hashlib.sha256(f"{manifest.sha256}\n{alignment}".encode()).hexdigest()
    return f"{manifest.name}:{digest[:16]}"


def open_gallery(path: Path, embedder: Embedder, create: bool = True) -> Gallery:
    """The gallery at ``path``, refusing one made by another embedder."""
    return Gallery.open(
        path,
        fingerprint=embedder_fingerprint(embedder.manifest),
        embedding_size=embedder.size,
        create=create,
    )


def make_policy(config: Config) -> AccessPolicy:
    """The access policy from ``access:`` (the votes, window and cooldown)."""
    a = config.access
    return AccessPolicy(
        votes_required=a.votes_required,
        window_frames=a.window_frames,
        window_seconds=a.window_seconds,
        cooldown_seconds=a.cooldown_seconds,
        unknown_log_interval_seconds=a.unknown_log_interval_seconds,
        require_liveness=config.liveness.enabled,
    )


def make_schedules(config: Config) -> dict[str, Schedule]:
    """The ``schedules:`` of the config, parsed (the schema has checked every window)."""
    return {name: parse_schedule(name, specs) for name, specs in config.schedules.items()}


def time_zone(config: Config) -> tzinfo | None:
    """The zone ``access.timezone`` names, or ``None`` for the system's local zone."""
    name = config.access.timezone
    return None if name is None else load_zone(name)


def make_attempt_limiter(config: Config) -> AttemptLimiter:
    """The attempt limits from ``access.alarm``."""
    a = config.access.alarm
    return AttemptLimiter(a.attempts, a.window_seconds, a.slowdown_seconds)


def liveness_settings(config: Config) -> LivenessSettings:
    """The liveness fusion rule and the planarity cue from ``liveness:``."""
    lv = config.liveness
    pl = lv.planarity
    return LivenessSettings(
        texture_live_above=lv.texture_live_above,
        texture_attack_below=lv.texture_attack_below,
        texture_frames=lv.texture_frames,
        max_wait_seconds=lv.max_wait_seconds,
        prompt_after_seconds=lv.prompt_after_seconds,
        planarity=PlanaritySettings(
            planar_below=pl.planar_below,
            three_d_above=pl.three_d_above,
            min_relief=pl.min_relief,
            min_motion=pl.min_motion,
        ),
    )


def build_texture_liveness(config: Config) -> TextureLiveness | None:
    """The texture anti-spoofing models when liveness is on (``None`` when it is off).

    A missing or modified model is a :class:`~pi_facegate.exc.ModelError` here, so the
    daemon refuses to start rather than run with liveness silently off.
    """
    if not config.liveness.enabled:
        return None
    return TextureLiveness(num_threads=1)


def make_door(config: Config, simulate: bool, on_event) -> DoorController:
    """The door I/O from ``door:``; simulated GPIO only when asked for (flag or config)."""
    d = config.door
    return DoorController(
        relay_pin=d.relay.pin,
        active_high=d.relay.active_high,
        lock_type=d.relay.lock_type,
        unlock_seconds=d.relay.unlock_seconds,
        contact_pin=d.contact.pin,
        contact_closed_when=d.contact.closed_when,
        held_open_seconds=d.contact.held_open_seconds,
        exit_button_pin=d.exit_button.pin,
        exit_button_pull_up=d.exit_button.pull_up,
        contact_bounce_seconds=d.contact.bounce_seconds,
        exit_button_bounce_seconds=d.exit_button.bounce_seconds,
        led_granted=d.leds.granted,
        led_denied=d.leds.denied,
        led_enrolment=d.leds.enrolment,
        buzzer_pin=d.buzzer.pin,
        pin_factory=make_pin_factory(simulate or d.simulate),
        on_event=on_event,
    )
