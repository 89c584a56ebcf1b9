"""The camera a config section describes: :func:`create_source` and :func:`create_camera`.

The settings are the config schema's :class:`~pi_facegate.config.schema.CameraConfig`: a
section, a mapping or keyword overrides are validated by it, so its defaults and bounds are
the only ones (a typo or an out-of-range value is a ``ConfigError`` naming the key).

:func:`create_source` builds the bare backend; :func:`create_camera` the source the door
loop reads: a live camera (picamera2, opencv) wrapped in
``SupervisedSource(FrameGrabber(backend))``, a replay left bare so every frame arrives in
order. picamera2 is imported only when a picamera2 source is asked for.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from pi_facegate.camera.grabber import FrameGrabber
from pi_facegate.camera.opencv import OpenCVSource
from pi_facegate.camera.replay import ReplaySource
from pi_facegate.camera.source import FrameSource, check_lores_width
from pi_facegate.camera.supervisor import DEFAULT_STALL_SECONDS, EventCallback, SupervisedSource
from pi_facegate.config.schema import CameraConfig
from pi_facegate.exc import ConfigError

#: the backends ``camera.type`` names (the schema's choices)
CAMERA_TYPES: tuple[str, ...] = get_args(CameraConfig.model_fields["type"].annotation)

#: keyword spellings of nested or source-level settings: keyword -> key path in CameraConfig
_ALIASES = {
    "replay_path": ("replay", "path"),
    "replay_fps": ("replay", "fps"),
    "replay_loop": ("replay", "loop"),
    "lores_width": ("detect_width",),
}


def camera_config(
    camera: CameraConfig | Mapping[str, Any] | None = None, /, **overrides: Any
) -> CameraConfig:
    """The validated settings: ``camera`` (a section, a mapping, or ``None`` for the
    defaults) with ``overrides`` applied, checked by :class:`CameraConfig`.

    Keywords are its fields (``type``, ``device``, ``width``, ``height``, ``fps``,
    ``detect_width``, ``replay``, ``retry_initial_seconds``, ``retry_max_seconds``) or
    ``replay_path``/``replay_fps``/``replay_loop`` (the ``replay`` fields) and
    ``lores_width`` (= ``detect_width``); a keyword given as ``None`` keeps the section's
    value. Unknown keys are rejected (typos).

    The one check not applied is the detector's own size rule for ``detect_width`` (0 or
    128 … ``width``, a rule about the config file's detector): here it is just the width of
    the frames' detection copy, which the source checks (:func:`check_lores_width`).
    """
    if isinstance(camera, CameraConfig):
        data = camera.model_dump()
    elif isinstance(camera, Mapping):
        data = dict(camera)
    elif camera is None:
        data = {}
    else:
        raise ConfigError(
            f"camera settings must be a CameraConfig or a mapping (got {type(camera).__name__})"
        )
    changes = {key: data.pop(key) for key in list(data) if key in _ALIASES}
    changes.update(overrides)
    data["replay"] = _as_dict(data.get("replay"))
    for key, value in changes.items():
        if value is None:
            continue
        *parents, name = _ALIASES.get(key, (key,))
        target = data
        for parent in parents:
            target = target[parent]
        target[name] = _as_dict(value) if key == "replay" else value
    detect_width = data.pop("detect_width", CameraConfig.model_fields["detect_width"].default)
    try:
        config = CameraConfig.model_validate({**data, "detect_width": 0})
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    try:
        lores_width = check_lores_width(detect_width)
    except ConfigError as exc:
        raise ConfigError(f"camera.detect_width: {exc}") from None
    return config.model_copy(update={"detect_width": lores_width or 0})


def _as_dict(section: Any) -> dict[str, Any]:
    """A nested section (a model, a mapping or ``None``) as a fresh dict to update."""
    if isinstance(section, BaseModel):
        return section.model_dump()
    return dict(section or {})


def create_source(
    camera: CameraConfig | Mapping[str, Any] | None = None, /, **overrides: Any
) -> FrameSource:
    """The bare backend a camera config section describes (not started, not grabbed).

    ``camera`` is the config's ``camera`` section — the pydantic model, or a mapping — and
    keywords override or replace it: ``type`` (picamera2 | opencv | replay), ``device``,
    ``width``, ``height``, ``fps``, ``detect_width`` (or ``lores_width``; 0 = none),
    ``replay`` (with ``path``, ``fps``, ``loop``) or ``replay_path``/``replay_fps``/
    ``replay_loop``. Everything is validated by :class:`CameraConfig` (see
    :func:`camera_config`), so unknown keys and bad values are a ``ConfigError``. A replay
    keeps its recording's size.
    """
    return _backend(camera_config(camera, **overrides))


def create_camera(
    camera: CameraConfig | Mapping[str, Any] | None = None,
    /,
    *,
    on_event: EventCallback | None = None,
    stop_event: threading.Event | None = None,
    stall_seconds: float = DEFAULT_STALL_SECONDS,
    **overrides: Any,
) -> FrameSource:
    """The source the door loop reads, for the config's ``camera`` section.

    A live camera (picamera2, opencv) becomes ``SupervisedSource(FrameGrabber(backend))``:
    always the newest frame, and reopened with back-off (``retry_initial_seconds`` …
    ``retry_max_seconds``) when it fails. A replay is returned bare, so every frame arrives
    in order and a bad path is an immediate ``CameraError`` at ``start()``. Either way the
    loop just calls ``read(timeout)``. (A recording given as an opencv ``device`` is read
    as a live camera: newest frame only, and its end is a failure; use replay for files.)
    """
    config = camera_config(camera, **overrides)
    if config.type == "replay":
        return _backend(config)
    _backend(config).close()  # check the settings now, not at the first retry
    return SupervisedSource(
        lambda: FrameGrabber(_backend(config)),
        retry_initial=config.retry_initial_seconds,
        retry_max=config.retry_max_seconds,
        stall_seconds=stall_seconds,
        on_event=on_event,
        stop_event=stop_event,
        name=f"camera ({config.type})",
    )


def _backend(config: CameraConfig) -> FrameSource:
    """The source for validated settings."""
    lores = config.detect_width or None
    if config.type == "replay":
        assert config.replay.path is not None  # the schema requires it for a replay
        return ReplaySource(
            config.replay.path, fps=config.replay.fps, loop=config.replay.loop, lores_width=lores
        )
    if config.type == "opencv":
        return OpenCVSource(
            config.device, config.width, config.height, config.fps, lores_width=lores
        )
    from pi_facegate.camera.picamera import Picamera2Source  # only now: picamera2 is optional

    return Picamera2Source(config.width, config.height, lores_width=lores, fps=config.fps)


def _describe(error: ValidationError) -> str:
    """The schema's complaints, one line per key: ``camera.KEY: reason (got VALUE)``."""
    found: dict[str, list[str]] = {}
    for err in error.errors(include_url=False):
        loc = [str(part) for part in err["loc"]]
        if err["type"] == "extra_forbidden":
            valid = ", ".join([*CameraConfig.model_fields, *_ALIASES])
            key = ".".join(["camera", *loc]) + ": "
            found.setdefault(key, []).append(f"unknown camera setting (valid: {valid})")
            continue
        if err["type"] == "cross_field":  # the message names the keys itself
            key, reason = "", err["msg"]
        else:
            key = ".".join(["camera", *_field_path(loc)]) + ": "
            reason = f"{err['msg']} (got {err['input']!r})"
        if reason not in found.setdefault(key, []):
            found[key].append(reason)
    return "\n".join(f"{key}{', or '.join(reasons)}" for key, reasons in found.items())


def _field_path(loc: list[str]) -> list[str]:
    """The field names of a pydantic error location (without union member tags)."""
    path: list[str] = []
    model: Any = CameraConfig
    for part in loc:
        fields = getattr(model, "model_fields", None)
        if not isinstance(fields, dict) or part not in fields:
            break
        path.append(part)
        model = fields[part].annotation
    return path
