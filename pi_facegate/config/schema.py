"""The appliance's configuration: one YAML file, validated in one place.

Every setting is a field of a frozen pydantic model with a description, a unit and bounds, so
a typo or an out-of-range value is caught before anything touches the camera or the relay
(like picamera2's ``_ALLOWED_FIELDS`` and Frigate's ``extra="forbid"`` base model). Rules that
span fields are ``model_validator``\\ s whose messages name every key involved.

Parsing is separate from file I/O (as in Frigate's ``load -> parse``): :func:`parse_config`
validates a plain ``dict`` and is pure; :func:`parse_config_text` and :func:`load_config` add
YAML and keep each key's line number by composing the YAML node tree, so one
:class:`~pi_facegate.exc.ConfigError` lists *every* problem as
``path:LINE: key.path: reason (got VALUE)``. A bad edit therefore never reaches the running
daemon: it keeps its last good :class:`Config` and the operator sees exactly what to fix.

Decisions that keep the door safe:

* values are checked strictly (``pin: "17"`` or ``unlock_seconds: "3s"`` is an error, not a
  silent conversion);
* a key written twice in the same mapping is an error (YAML would silently keep the last);
* a missing file, an unreadable one, an empty one (a truncated edit looks just like that) and
  a top level that is not a mapping are errors; ``{}`` is the way to ask for all defaults.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from pi_facegate.exc import ConfigError

KeyPath = tuple[str | int, ...]

#: A Broadcom (BCM) GPIO number of the 40-pin header: GPIO0..GPIO27.
BcmPin = Annotated[int, Field(ge=0, le=27)]

_CROSS_FIELD = "cross_field"  # pydantic error type of our model validators


@dataclass(frozen=True)
class _Violation:
    """A broken cross-field rule: its message, the keys it involves, the offending value.

    The keys, most to blame first, are relative to the model whose validator found it; they
    travel in the error's context so the report can point at the line of the first key the
    YAML file spells out.
    """

    message: str
    paths: tuple[KeyPath, ...]
    value: Any = None


def _raise_violations(violations: list[_Violation]) -> None:
    """Raise one pydantic error carrying every violation (a validator may raise only once)."""
    if violations:
        message = "; ".join(v.message for v in violations)
        # The message is a template: escape braces so values cannot be misread.
        template = message.replace("{", "{{").replace("}", "}}")
        raise PydanticCustomError(_CROSS_FIELD, template, {"violations": tuple(violations)})


class FacegateBaseModel(BaseModel):
    """Base of every config section: unknown keys are errors, values are never coerced.

    ``frozen`` makes a loaded config a value: the daemon can compare the old and the new one
    on reload and hand the same object to every thread without copies.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_section(cls, data: Any) -> Any:
        """A section left with no keys (``leds:`` with all keys commented out) means defaults."""
        return {} if data is None else data


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
                _Violation(
                    "camera.type is replay but camera.replay.path names no video or image folder",
                    (("replay", "path"), ("type",)),
                    self.type,
                )
            )
        if self.detect_width and not 128 <= self.detect_width <= self.width:
            found.append(
                _Violation(
                    f"camera.detect_width must be 0 (full frame) or between 128 (the "
                    f"detector's input size) and camera.width ({self.width})",
                    (("detect_width",), ("width",)),
                    self.detect_width,
                )
            )
        if self.retry_initial_seconds > self.retry_max_seconds:
            found.append(
                _Violation(
                    f"camera.retry_initial_seconds must not exceed camera.retry_max_seconds "
                    f"({self.retry_max_seconds:g})",
                    (("retry_initial_seconds",), ("retry_max_seconds",)),
                    self.retry_initial_seconds,
                )
            )
        _raise_violations(found)
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
    """The face embedder that turns an aligned face into a 128-D vector."""

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
        "smaller = stricter (fewer strangers let in, more retries); null = the embedder "
        "manifest's default",
    )
    min_margin: float | None = Field(
        None,
        ge=0.0,
        le=2.0,
        description="the second-best person must be at least this much farther (Euclidean "
        "distance) than the best; larger = stricter; null = the embedder manifest's default",
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
            _raise_violations(
                [
                    _Violation(
                        f"quality.min_brightness must be below quality.max_brightness "
                        f"({self.max_brightness:g})",
                        (("min_brightness",), ("max_brightness",)),
                        self.min_brightness,
                    )
                ]
            )
        return self


# --------------------------------------------------------------------------- access


class AccessConfig(FacegateBaseModel):
    """When a run of matches becomes a grant: N votes in the last M frames within T seconds."""

    votes_required: int = Field(
        3,
        ge=1,
        le=60,
        description="N: frames that must match the same person to grant; larger = stricter",
    )
    window_frames: int = Field(
        5, ge=1, le=60, description="M: the votes are counted over the last M frames"
    )
    window_seconds: float = Field(
        2.0,
        gt=0.0,
        le=60.0,
        description="T: votes older than this many seconds are dropped",
    )
    cooldown_seconds: float = Field(
        5.0,
        ge=0.0,
        le=3600.0,
        description="after a grant, seconds before the same person can be granted again",
    )
    unknown_log_interval_seconds: float = Field(
        10.0,
        ge=0.0,
        le=3600.0,
        description="at most one 'unknown face' event per this many seconds; 0 = log each",
    )

    @model_validator(mode="after")
    def _check(self) -> AccessConfig:
        if self.votes_required > self.window_frames:
            _raise_violations(
                [
                    _Violation(
                        f"access.votes_required (N) must not exceed access.window_frames (M = "
                        f"{self.window_frames}): N votes are counted within the last M frames",
                        (("votes_required",), ("window_frames",)),
                        self.votes_required,
                    )
                ]
            )
        return self


# --------------------------------------------------------------------------- door


class RelayConfig(FacegateBaseModel):
    """The relay that drives the lock."""

    pin: BcmPin = Field(17, description="BCM GPIO number of the relay input (0..27)")
    active_high: bool = Field(
        True, description="true if the relay board switches on a high level (false: low)"
    )
    lock_type: Literal["fail_secure", "fail_safe"] = Field(
        "fail_secure",
        description="fail_secure: the lock opens while powered (strike); fail_safe: it opens "
        "when power is cut (maglock)",
    )
    unlock_seconds: float = Field(
        3.0, ge=0.5, le=60.0, description="how long a grant keeps the door unlocked, seconds"
    )


class ContactConfig(FacegateBaseModel):
    """An optional door contact (reed switch) to log opening and a door held open."""

    pin: BcmPin | None = Field(None, description="BCM GPIO number of the contact; null = none")
    closed_when: Literal["low", "high"] = Field(
        "low", description="the input level while the door is closed"
    )
    held_open_seconds: float = Field(
        30.0, ge=1.0, le=3600.0, description="seconds open before a 'held open' event"
    )


class ExitButtonConfig(FacegateBaseModel):
    """An optional request-to-exit button inside the door."""

    pin: BcmPin | None = Field(None, description="BCM GPIO number of the button; null = none")
    pull_up: bool = Field(
        True, description="true: button to ground with the internal pull-up; false: to 3V3"
    )


class LedsConfig(FacegateBaseModel):
    """Optional indicator LEDs."""

    granted: BcmPin | None = Field(None, description="BCM GPIO of the 'granted' LED; null = none")
    denied: BcmPin | None = Field(None, description="BCM GPIO of the 'denied' LED; null = none")
    enrolment: BcmPin | None = Field(
        None, description="BCM GPIO of the 'enrolment armed' LED; null = none"
    )


class BuzzerConfig(FacegateBaseModel):
    """An optional buzzer."""

    pin: BcmPin | None = Field(None, description="BCM GPIO of the buzzer; null = none")


class DoorConfig(FacegateBaseModel):
    """The door I/O: relay, contact, exit button, LEDs and buzzer."""

    simulate: bool = Field(
        False,
        description="drive a simulated GPIO (gpiozero MockFactory) instead of the real pins: "
        "the door never moves. Only ever on when set here",
    )
    relay: RelayConfig = Field(
        default_factory=RelayConfig, description="the relay that drives the lock"
    )
    contact: ContactConfig = Field(
        default_factory=ContactConfig, description="optional door contact (reed switch)"
    )
    exit_button: ExitButtonConfig = Field(
        default_factory=ExitButtonConfig, description="optional request-to-exit button inside"
    )
    leds: LedsConfig = Field(default_factory=LedsConfig, description="optional indicator LEDs")
    buzzer: BuzzerConfig = Field(default_factory=BuzzerConfig, description="optional buzzer")


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
                _Violation(
                    f"enrolment.min_good_frames must not exceed enrolment.embeddings "
                    f"({self.embeddings}): the good frames needed are stored as embeddings",
                    (("min_good_frames",), ("embeddings",)),
                    self.min_good_frames,
                )
            )
        if self.min_brightness >= self.max_brightness:
            found.append(
                _Violation(
                    f"enrolment.min_brightness must be below enrolment.max_brightness "
                    f"({self.max_brightness:g})",
                    (("min_brightness",), ("max_brightness",)),
                    self.min_brightness,
                )
            )
        _raise_violations(found)
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
    snapshots: bool = Field(
        False,
        description="true: also store a face crop with each event (biometric data: off "
        "unless needed)",
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


class LoggingConfig(FacegateBaseModel):
    """Log level and destination."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", description="least severe level logged: DEBUG, INFO, WARNING, ERROR, CRITICAL"
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

#: Every key holding a BCM pin; no pin may be used twice.
PIN_KEYS: tuple[KeyPath, ...] = (
    ("door", "relay", "pin"),
    ("door", "contact", "pin"),
    ("door", "exit_button", "pin"),
    ("door", "leds", "granted"),
    ("door", "leds", "denied"),
    ("door", "leds", "enrolment"),
    ("door", "buzzer", "pin"),
    ("enrolment", "button_pin"),
)


class Config(FacegateBaseModel):
    """The whole configuration; every section and key is optional and has a safe default."""

    camera: CameraConfig = Field(
        default_factory=CameraConfig, description="where frames come from, at what size and rate"
    )
    detector: DetectorConfig = Field(
        default_factory=DetectorConfig, description="the face detector (BlazeFace)"
    )
    embedder: EmbedderConfig = Field(
        default_factory=EmbedderConfig, description="the face embedder (INT8 TFLite, 128-D)"
    )
    matching: MatchingConfig = Field(
        default_factory=MatchingConfig, description="1:N matching: distance threshold and margin"
    )
    quality: QualityConfig = Field(
        default_factory=QualityConfig, description="the quality gate before recognition"
    )
    access: AccessConfig = Field(
        default_factory=AccessConfig, description="when matches become a grant (votes, cooldown)"
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

    @model_validator(mode="after")
    def _check(self) -> Config:
        _raise_violations(_pin_conflicts({path: _lookup(self, path) for path in PIN_KEYS}))
        return self

    def resolve_paths(self, state_dir: Path) -> tuple[Path, Path]:
        """``(gallery_path, events_path)`` for this config and state directory."""
        return self.storage.resolve(state_dir)

    def pins(self) -> dict[str, int]:
        """Every BCM pin in use, by dotted key (e.g. ``{"door.relay.pin": 17}``)."""
        found = {_dotted(path): _lookup(self, path) for path in PIN_KEYS}
        return {key: pin for key, pin in found.items() if pin is not None}


def _lookup(obj: Any, path: KeyPath) -> Any:
    for key in path:
        obj = getattr(obj, str(key))
    return obj


def _pin_conflicts(pins: Mapping[KeyPath, Any]) -> list[_Violation]:
    """Each BCM pin used again after its first key, naming both keys."""
    found: list[_Violation] = []
    seen: dict[int, KeyPath] = {}
    for path, pin in pins.items():
        if not _is_pin(pin):
            continue
        if pin in seen:
            first = seen[pin]
            message = (
                f"{_dotted(first)} and {_dotted(path)} both use BCM pin {pin}; "
                "each pin can drive only one device"
            )
            found.append(_Violation(message, (path, first), pin))
        else:
            seen[pin] = path
    return found


def _is_pin(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 27


# --------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in a config: where it is, what is wrong, and the offending value."""

    path: KeyPath  # key path into the config, () for the whole file
    reason: str
    line: int | None = None  # 1-based line in the YAML file, when known
    value: Any = None
    has_value: bool = True

    @property
    def key(self) -> str:
        """The dotted key path, e.g. ``door.relay.pin``."""
        return _dotted(self.path)

    def format(self, source: str | None = None) -> str:
        """``source:LINE: key.path: reason (got VALUE)``, leaving out what is unknown."""
        prefix = ""
        if source is not None:
            prefix = f"{source}:{self.line}: " if self.line else f"{source}: "
        key = f"{self.key}: " if self.path else ""
        got = f" (got {_show(self.value)})" if self.has_value else ""
        return f"{prefix}{key}{self.reason}{got}"


def _show(value: Any, limit: int = 80) -> str:
    """A value as the operator wrote it in YAML, shortened if long."""
    if isinstance(value, str):
        text = repr(value)
    else:
        try:
            text = json.dumps(value, default=str)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _dotted(path: KeyPath) -> str:
    return ".".join(str(part) for part in path)


@dataclass
class _YamlIndex:
    """Line numbers of the keys in a composed YAML tree, and any key written twice."""

    lines: dict[KeyPath, int]
    duplicates: list[ConfigProblem]

    def line_of(self, path: KeyPath) -> int | None:
        """The line of ``path``, else of its nearest ancestor in the file."""
        for end in range(len(path), 0, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None


def _index_yaml(node: yaml.Node) -> _YamlIndex:
    """Map each key path to the line of its key (``start_mark.line + 1``)."""
    index = _YamlIndex({}, [])

    def walk(node: yaml.Node, path: KeyPath) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    continue
                child = (*path, key_node.value)
                line = key_node.start_mark.line + 1
                if child in index.lines:
                    first = index.lines[child]
                    reason = f"key given twice (first on line {first}); remove one"
                    index.duplicates.append(ConfigProblem(child, reason, line, has_value=False))
                else:
                    index.lines[child] = line
                walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                index.lines.setdefault((*path, i), item.start_mark.line + 1)
                walk(item, (*path, i))

    walk(node, ())
    return index


def _model_at(path: KeyPath) -> type[BaseModel] | None:
    """The section model that ``path`` (a key path into the config) points into."""
    model: type[BaseModel] = Config
    for key in path:
        field = model.model_fields.get(str(key))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _unknown_key_reason(path: KeyPath) -> str:
    """Pydantic's "extra inputs" in words an operator can act on: suggest or list keys."""
    model = _model_at(path[:-1])
    if model is None:
        return "unknown key"
    valid = list(model.model_fields)
    close = difflib.get_close_matches(str(path[-1]), valid, n=1)
    if close:
        return f"unknown key; did you mean {close[0]!r}?"
    return f"unknown key; valid keys here: {', '.join(valid)}"


def _data_path(data: Any, loc: KeyPath) -> KeyPath:
    """The part of a pydantic error location that exists in the data (drops union tags)."""
    path: list[str | int] = []
    for part in loc:
        if isinstance(data, Mapping) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            break
        path.append(part)
    return tuple(path)


def _violation_problem(loc: KeyPath, found: _Violation, index: _YamlIndex | None) -> ConfigProblem:
    """A broken cross-field rule, placed at the first key it names that the file spells out."""
    candidates = [(*loc, *rel) for rel in found.paths] or [loc]
    present = [p for p in candidates if index is not None and p in index.lines]
    path = (present or candidates)[0]
    return ConfigProblem(path, found.message, value=found.value)


def _problems_from(
    error: ValidationError, data: Mapping[str, Any], index: _YamlIndex | None
) -> list[ConfigProblem]:
    """Turn pydantic's errors into problems with key paths and values."""
    problems: list[ConfigProblem] = []
    for err in error.errors(include_url=False):
        loc = tuple(err["loc"])
        if err["type"] == _CROSS_FIELD:
            violations = (err.get("ctx") or {}).get("violations", ())
            problems += [_violation_problem(loc, v, index) for v in violations]
        elif err["type"] == "extra_forbidden":
            problems.append(ConfigProblem(loc, _unknown_key_reason(loc), value=err["input"]))
        elif err["type"] == "missing":
            problems.append(ConfigProblem(loc, err["msg"], has_value=False))
        else:
            problems.append(ConfigProblem(_data_path(data, loc), err["msg"], value=err["input"]))
    return _merge_same_key(problems)


def _merge_same_key(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    """One line per key and value: a union type reports each alternative separately."""
    merged: dict[tuple[KeyPath, str], ConfigProblem] = {}
    for problem in problems:
        slot = (problem.path, _show(problem.value))
        earlier = merged.get(slot)
        if earlier is None:
            merged[slot] = problem
            continue
        if problem.reason in earlier.reason:
            continue
        lead = "Input should be "
        second = problem.reason
        if earlier.reason.startswith(lead) and second.startswith(lead):
            second = second[len(lead) :]
        merged[slot] = replace(earlier, reason=f"{earlier.reason}, or {second}")
    return list(merged.values())


def _pin_conflicts_in_raw(data: Mapping[str, Any], index: _YamlIndex | None) -> list[ConfigProblem]:
    """BCM pins used twice, found in the raw data.

    Pydantic runs the root ``model_validator`` only once every section is valid, so a typo
    anywhere would hide a duplicate pin; the operator should see both at once.
    """
    defaults = Config()
    pins: dict[KeyPath, Any] = {}
    for path in PIN_KEYS:
        node: Any = data
        for key in path:
            node = node.get(key, _DEFAULT) if isinstance(node, Mapping) else None
            if node is _DEFAULT or node is None:
                break
        pins[path] = _lookup(defaults, path) if node is _DEFAULT else node
    return [_violation_problem((), v, index) for v in _pin_conflicts(pins)]


_DEFAULT = object()


def _validate(data: Mapping[str, Any], source: str | None, index: _YamlIndex | None) -> Config:
    """The config, or a ConfigError listing every problem (in file order when lines are known)."""
    problems = list(index.duplicates) if index else []
    config: Config | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems += _problems_from(exc, data, index)
        if all(err["loc"] for err in exc.errors()):  # the root validator did not run
            problems += _pin_conflicts_in_raw(data, index)
    if not problems:
        assert config is not None
        return config
    if index is not None:
        problems = [replace(p, line=p.line or index.line_of(p.path) or 1) for p in problems]
        problems.sort(key=lambda p: p.line or 0)
    raise ConfigError("\n".join(p.format(source) for p in problems))


# --------------------------------------------------------------------------- public API


def parse_config(data: Mapping[str, Any]) -> Config:
    """Validate a plain mapping (e.g. from ``yaml.safe_load``); missing keys take defaults.

    Pure: no file or line numbers, so each problem reads ``key.path: reason (got VALUE)``.
    Raises :class:`ConfigError` listing every problem, one per line.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"the config must be a mapping of sections, got {type(data).__name__}")
    return _validate(dict(data), None, None)


def parse_config_text(text: str, source: str = "<config>") -> Config:
    """Validate YAML text; problems read ``source:LINE: key.path: reason (got VALUE)``."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(_yaml_syntax_message(exc, source)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: YAML error: {exc}") from None
    finally:
        loader.dispose()
    if node is None:
        raise ConfigError(
            f"{source}: the config file is empty; write '{{}}' in it to use every default"
        )
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}:{node.start_mark.line + 1}: the top level must be a mapping of sections "
            f"(camera:, door:, ...), got {_yaml_kind(data)}"
        )
    return _validate(data, source, _index_yaml(node))


def load_config(path: str | Path) -> Config:
    """Read, parse and validate the YAML config file at ``path``.

    Every failure is a :class:`ConfigError` whose message starts with the path: a missing or
    unreadable file, bad YAML (with its line), an empty file, or invalid values (one line per
    problem, with its line).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror or exc}") from None
    return parse_config_text(text, str(path))


def _yaml_syntax_message(exc: yaml.MarkedYAMLError, source: str) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"{source}:{mark.line + 1}: " if mark else f"{source}: "
    column = f" (column {mark.column + 1})" if mark else ""
    detail = ": ".join(part for part in (exc.context, exc.problem) if part)
    return f"{where}YAML syntax error: {detail}{column}"


def _yaml_kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    return f"a single value ({_show(value)})"


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
