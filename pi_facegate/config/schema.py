"""The appliance's configuration: every setting, with its description, unit and bounds.

Every setting is a field of a frozen pydantic model with a description, a unit and bounds, so
a typo or an out-of-range value is caught before anything touches the camera or the relay
(like picamera2's ``_ALLOWED_FIELDS`` and Frigate's ``extra="forbid"`` base model). Rules that
span fields are ``model_validator``\\ s whose messages name every key involved.

This module is the schema only; reading the YAML file and reporting problems with their line
numbers is :mod:`pi_facegate.config.loader`. The shared base model and rule machinery are in
:mod:`pi_facegate.config.base`, the door's GPIO sections and the one-pin rule in
:mod:`pi_facegate.config.gpio`, the access rules (votes, time zone, alarms, schedules) in
:mod:`pi_facegate.config.access`, the MQTT / Home Assistant link in
:mod:`pi_facegate.config.mqtt`.

Values are checked strictly: ``pin: "17"`` or ``unlock_seconds: "3s"`` is an error, not a
silent conversion.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from pi_facegate.config.access import SCHEDULES_DESCRIPTION, AccessConfig, check_schedules
from pi_facegate.config.base import (
    FacegateBaseModel,
    KeyPath,
    Violation,
    dotted,
    lookup,
    raise_violations,
)
from pi_facegate.config.gpio import PIN_KEYS, BcmPin, DoorConfig, pin_conflicts
from pi_facegate.config.liveness import LivenessConfig
from pi_facegate.config.mqtt import MqttConfig

# --------------------------------------------------------------------------- camera


class ReplayConfig(FacegateBaseModel):
    """A recorded video or a folder of images played back instead of a live camera."""

    path: Path | None = Field(
        None,
        strict=False,
        description="video file or folder of images to play back (camera.type: replay); "
        "required for replay",
    )
    fps: float = Field(
        0.0,
        ge=0.0,
        le=240.0,
        description="playback rate in frames per second; 0 = as fast as the pipeline runs",
    )
    loop: bool = Field(False, description="start again at the end instead of stopping")


class CameraConfig(FacegateBaseModel):
    """Where frames come from and at what size."""

    type: Literal["picamera2", "opencv", "replay"] = Field(
        "picamera2",
        description="frame source: picamera2 (Pi camera via libcamera), opencv "
        "(USB camera, RTSP stream or video file), replay (recorded frames)",
    )
    device: Annotated[int, Field(ge=0, le=63)] | Annotated[str, Field(min_length=1)] = Field(
        0,
        description="opencv only: camera index (0 = /dev/video0), RTSP URL or video file path",
    )
    width: int = Field(640, ge=160, le=4608, description="capture width in pixels")
    height: int = Field(480, ge=120, le=3496, description="capture height in pixels")
    fps: float = Field(15.0, gt=0.0, le=120.0, description="capture rate in frames per second")
    detect_width: int = Field(
        320,
        ge=0,
        le=4608,
        description="width in pixels the frame is scaled down to for face detection "
        "(faster); 0 = detect on the full frame; otherwise 128..camera.width",
    )
    replay: ReplayConfig = Field(
        default_factory=ReplayConfig, description="settings of camera.type: replay"
    )
    retry_initial_seconds: float = Field(
        1.0,
        gt=0.0,
        le=60.0,
        description="seconds before the first attempt to reopen a failed camera "
        "(doubles on each failure)",
    )
    retry_max_seconds: float = Field(
        30.0, gt=0.0, le=3600.0, description="longest wait in seconds between reopen attempts"
    )

    @model_validator(mode="after")
    def _check(self) -> CameraConfig:
        found = []
        if self.type == "replay" and self.replay.path is None:
            found.append(
                Violation(
                    "camera.type is replay but camera.replay.path names no video or image folder",
                    (("replay", "path"), ("type",)),
                    self.type,
                )
            )
        if self.detect_width and not 128 <= self.detect_width <= self.width:
            found.append(
                Violation(
                    f"camera.detect_width must be 0 (full frame) or between 128 (the "
                    f"detector's input size) and camera.width ({self.width})",
                    (("detect_width",), ("width",)),
                    self.detect_width,
                )
            )
        if self.retry_initial_seconds > self.retry_max_seconds:
            found.append(
                Violation(
                    f"camera.retry_initial_seconds must not exceed camera.retry_max_seconds "
                    f"({self.retry_max_seconds:g})",
                    (("retry_initial_seconds",), ("retry_max_seconds",)),
                    self.retry_initial_seconds,
                )
            )
        raise_violations(found)
        return self


# --------------------------------------------------------------------------- models


class DetectorConfig(FacegateBaseModel):
    """The face detector (BlazeFace) and how much of what it finds is kept."""

    backend: Literal["auto", "mediapipe", "litert"] = Field(
        "auto",
        description="auto (LiteRT on CPUs MediaPipe cannot run on, e.g. the Pi 4; else "
        "MediaPipe), mediapipe, or litert",
    )
    model: str = Field(
        "face_detection_short_range",
        min_length=1,
        description="detector model: a manifest name in models/ or a path to its .json",
    )
    min_score: float = Field(
        0.75,
        gt=0.0,
        lt=1.0,
        description="detector confidence 0..1 below which a face is ignored; higher = fewer "
        "false faces, more missed ones",
    )
    min_face_size: int = Field(
        40,
        ge=0,
        le=4608,
        description="faces smaller than this (shorter box side, capture pixels) are ignored",
    )
    threads: int = Field(1, ge=1, le=8, description="CPU threads for the detector")


class EmbedderConfig(FacegateBaseModel):
    """The face embedder that turns an aligned face into a vector (its manifest says how long)."""

    model: str = Field(
        "dlib_resnet_v1_int8",
        min_length=1,
        description="embedder model: a manifest name in models/ or a path to its .json; a "
        "gallery refuses embeddings from a different model",
    )
    threads: int = Field(2, ge=1, le=8, description="CPU threads for the embedder")


class MatchingConfig(FacegateBaseModel):
    """Open-set 1:N matching: Euclidean distance between embeddings, smaller = more alike."""

    threshold: float | None = Field(
        None,
        gt=0.0,
        le=2.0,
        description="largest Euclidean distance to an enrolled person that counts as a match; "
        "smaller = stricter (fewer strangers let in, more retries); null = chosen for the "
        "gallery's size from false_accept_per_attempt (never looser than the embedder "
        "manifest's threshold); a number here is used as is, whatever the gallery's size",
    )
    false_accept_per_attempt: float = Field(
        0.01,
        gt=0.0,
        le=0.1,
        description="with threshold null: the chance that one attempt (one frame, judged "
        "alone) by a stranger is accepted as some enrolled person; the threshold tightens "
        "as people are enrolled to keep it (from the embedder manifest's impostor_far "
        "table); smaller = stricter",
    )
    min_margin: float | None = Field(
        None,
        ge=0.0,
        le=2.0,
        description="the second-best person must be at least this much farther (Euclidean "
        "distance) than the best; larger = stricter; null = the embedder manifest's default",
    )
    allow_loose_threshold: bool = Field(
        False,
        description="true accepts a threshold looser than the embedder manifest's "
        "loosest_threshold (its pair FAR 1e-2 point): strangers will be let in; for "
        "experiments only",
    )


class QualityConfig(FacegateBaseModel):
    """The gate a face passes before it is embedded: size, sharpness, pose, exposure."""

    min_face_size: int = Field(
        60,
        ge=0,
        le=4608,
        description="smallest face (shorter box side, capture pixels) worth recognising; "
        "larger = stricter",
    )
    min_sharpness: float = Field(
        15.0,
        ge=0.0,
        le=10000.0,
        description="smallest variance of the Laplacian of the face crop; larger = stricter "
        "(rejects more blur)",
    )
    max_yaw: float = Field(
        0.4,
        ge=0.0,
        le=1.0,
        description="largest head turn: nose-tip offset from the eyes' midpoint in eye "
        "distances, 0 (frontal) ..1; smaller = stricter",
    )
    min_brightness: float = Field(
        40.0, ge=0.0, le=255.0, description="darkest acceptable mean grey level of the face, 0..255"
    )
    max_brightness: float = Field(
        220.0,
        ge=0.0,
        le=255.0,
        description="brightest acceptable mean grey level of the face, 0..255",
    )

    @model_validator(mode="after")
    def _check(self) -> QualityConfig:
        if self.min_brightness >= self.max_brightness:
            raise_violations(
                [
                    Violation(
                        f"quality.min_brightness must be below quality.max_brightness "
                        f"({self.max_brightness:g})",
                        (("min_brightness",), ("max_brightness",)),
                        self.min_brightness,
                    )
                ]
            )
        return self


# --------------------------------------------------------------------------- enrolment


class EnrolmentConfig(FacegateBaseModel):
    """Enrolment at the door: armed by an administrator, never self-service.

    The capture keeps only frames with exactly one face that passes a stricter gate than
    recognition (the face stored is the reference every later match is measured against),
    and stores several embeddings that are not near-duplicates of each other.
    """

    button_pin: BcmPin | None = Field(
        None, description="BCM GPIO of the enrolment button at the door; null = none"
    )
    button_pull_up: bool = Field(
        True, description="true: button to ground with the internal pull-up; false: to 3V3"
    )
    button_bounce_seconds: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="seconds an edge must be stable before it counts (debounce: a bouncing switch gives one event); 0 = off",
    )
    long_press_seconds: float = Field(
        3.0,
        ge=0.5,
        le=30.0,
        description="holding the enrolment button this many seconds aborts a capture; a "
        "long press never starts one",
    )
    allow_pending: bool = Field(
        False,
        description="true: a button press while not armed captures a *pending* person with no "
        "access until an administrator approves it; false: the press is ignored",
    )
    capture_seconds: float = Field(
        8.0,
        ge=1.0,
        le=120.0,
        description="longest time one enrolment captures frames, seconds (it ends sooner "
        "once it has three good frames per embedding)",
    )
    embeddings: int = Field(
        5,
        ge=1,
        le=50,
        description="most embeddings stored per enrolment, picked to differ from each other",
    )
    min_good_frames: int = Field(
        3,
        ge=1,
        le=50,
        description="good frames, each no near-duplicate of another, that the capture needs "
        "to succeed; fewer and nothing is stored",
    )
    min_distance: float = Field(
        0.06,
        ge=0.0,
        le=2.0,
        description="two stored embeddings must be at least this far apart (Euclidean); a "
        "closer one is a near-duplicate (the same picture again) and is not stored",
    )
    max_armed_minutes: int = Field(
        30, ge=1, le=1440, description="longest time an administrator may arm enrolment, minutes"
    )
    min_face_size: int = Field(
        80,
        ge=0,
        le=4608,
        description="smallest face stored (shorter box side, capture pixels); the stricter "
        "of this and quality.min_face_size applies",
    )
    min_sharpness: float = Field(
        40.0,
        ge=0.0,
        le=10000.0,
        description="least variance of the Laplacian of the face crop for a stored face; the "
        "stricter of this and quality.min_sharpness applies",
    )
    max_yaw: float = Field(
        0.25,
        ge=0.0,
        le=1.0,
        description="largest head turn of a stored face (nose offset in eye distances); the "
        "stricter of this and quality.max_yaw applies",
    )
    min_brightness: float = Field(
        50.0,
        ge=0.0,
        le=255.0,
        description="darkest mean grey level 0..255 of a stored face; the stricter of this "
        "and quality.min_brightness applies",
    )
    max_brightness: float = Field(
        210.0,
        ge=0.0,
        le=255.0,
        description="brightest mean grey level 0..255 of a stored face; the stricter of this "
        "and quality.max_brightness applies",
    )

    @model_validator(mode="after")
    def _check(self) -> EnrolmentConfig:
        found = []
        if self.min_good_frames > self.embeddings:
            found.append(
                Violation(
                    f"enrolment.min_good_frames must not exceed enrolment.embeddings "
                    f"({self.embeddings}): the good frames needed are stored as embeddings",
                    (("min_good_frames",), ("embeddings",)),
                    self.min_good_frames,
                )
            )
        if self.min_brightness >= self.max_brightness:
            found.append(
                Violation(
                    f"enrolment.min_brightness must be below enrolment.max_brightness "
                    f"({self.max_brightness:g})",
                    (("min_brightness",), ("max_brightness",)),
                    self.min_brightness,
                )
            )
        raise_violations(found)
        return self


# --------------------------------------------------------------------------- storage etc.


class StorageConfig(FacegateBaseModel):
    """Where the gallery and the event log live."""

    gallery: Path | None = Field(
        None,
        strict=False,
        description="gallery SQLite file; null = <state dir>/gallery.db; a relative path is "
        "taken from the state dir",
    )
    events: Path | None = Field(
        None,
        strict=False,
        description="event log SQLite file; null = <state dir>/events.db; a relative path is "
        "taken from the state dir",
    )
    max_events: int = Field(
        100_000,
        ge=100,
        le=10_000_000,
        description="events kept; the oldest are deleted beyond this",
    )

    def resolve(self, state_dir: Path) -> tuple[Path, Path]:
        """``(gallery_path, events_path)``: defaults and relative paths taken from state_dir."""
        return (
            _under(state_dir, self.gallery, "gallery.db"),
            _under(state_dir, self.events, "events.db"),
        )


def _under(state_dir: Path, path: Path | None, default_name: str) -> Path:
    if path is None:
        return state_dir / default_name
    path = path.expanduser()
    return path if path.is_absolute() else state_dir / path


class ServiceConfig(FacegateBaseModel):
    """The systemd service loop."""

    watchdog_frame_age_seconds: float = Field(
        10.0,
        gt=0.0,
        le=600.0,
        description="ping the systemd watchdog only if a frame passed the whole pipeline "
        "within this many seconds (a hung camera then leads to a restart)",
    )
    status_interval_seconds: float = Field(
        5.0,
        gt=0.0,
        le=3600.0,
        description="seconds between status lines sent to systemd (systemctl status)",
    )
    max_camera_outage_seconds: float = Field(
        120.0,
        ge=5.0,
        le=3600.0,
        description="seconds without a frame (the camera failed, stalled or keeps failing to "
        "reopen) after which the daemon stops pinging the watchdog and exits with an error, so "
        "that systemd restarts it: a camera hung in its driver is freed only by a restart",
    )


class LoggingConfig(FacegateBaseModel):
    """Log level and destination."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO",
        description="least severe level logged: DEBUG, INFO, WARNING, ERROR, CRITICAL; DEBUG "
        "also shows the native libraries' own log lines (hidden otherwise)",
    )
    journal: Literal["auto", True, False] = Field(
        "auto",
        description="log to the systemd journal: auto (when running under systemd), true, "
        "false (stderr)",
    )

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


# --------------------------------------------------------------------------- root


class Config(FacegateBaseModel):
    """The whole configuration; every section and key is optional and has a safe default."""

    camera: CameraConfig = Field(
        default_factory=CameraConfig, description="where frames come from, at what size and rate"
    )
    detector: DetectorConfig = Field(
        default_factory=DetectorConfig, description="the face detector (BlazeFace)"
    )
    embedder: EmbedderConfig = Field(
        default_factory=EmbedderConfig,
        description="the face embedder (INT8 TFLite; size, chip and alignment from its manifest)",
    )
    matching: MatchingConfig = Field(
        default_factory=MatchingConfig, description="1:N matching: distance threshold and margin"
    )
    quality: QualityConfig = Field(
        default_factory=QualityConfig, description="the quality gate before recognition"
    )
    access: AccessConfig = Field(
        default_factory=AccessConfig,
        description="when matches become a grant (votes, cooldown, time zone, alarms)",
    )
    schedules: dict[str, list[str]] = Field(default_factory=dict, description=SCHEDULES_DESCRIPTION)
    liveness: LivenessConfig = Field(
        default_factory=LivenessConfig, description="presentation-attack detection per track"
    )
    door: DoorConfig = Field(
        default_factory=DoorConfig, description="door I/O on the GPIO header (BCM numbers)"
    )
    enrolment: EnrolmentConfig = Field(
        default_factory=EnrolmentConfig, description="enrolment at the door, armed by an admin"
    )
    storage: StorageConfig = Field(
        default_factory=StorageConfig, description="gallery and event log files"
    )
    service: ServiceConfig = Field(
        default_factory=ServiceConfig, description="the systemd service loop (watchdog, status)"
    )
    logging: LoggingConfig = Field(
        default_factory=LoggingConfig, description="log level and destination"
    )
    mqtt: MqttConfig = Field(
        default_factory=MqttConfig,
        description="events and state to an MQTT broker (Home Assistant); off by default",
    )

    @field_validator("schedules", mode="before")
    @classmethod
    def _schedules(cls, value: Any) -> Any:
        return check_schedules(value)

    @model_validator(mode="after")
    def _check(self) -> Config:
        raise_violations(pin_conflicts({path: lookup(self, path) for path in PIN_KEYS}))
        return self

    def resolve_paths(self, state_dir: Path) -> tuple[Path, Path]:
        """``(gallery_path, events_path)`` for this config and state directory."""
        return self.storage.resolve(state_dir)

    def pins(self) -> dict[str, int]:
        """Every BCM pin in use, by dotted key (e.g. ``{"door.relay.pin": 17}``)."""
        found = {dotted(path): lookup(self, path) for path in PIN_KEYS}
        return {key: pin for key, pin in found.items() if pin is not None}


def iter_fields(
    model: type[BaseModel] = Config, prefix: KeyPath = ()
) -> Iterator[tuple[KeyPath, Any]]:
    """Every key path of the config, sections before their keys, with its pydantic field.

    The documentation test walks this to prove each key appears in the annotated config.yaml.
    """
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        yield path, field
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from iter_fields(annotation, path)
