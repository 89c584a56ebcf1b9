"""The config models, their bounds and rules, and the error report with YAML line numbers."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import annotated_types
import pydantic
import pytest
import yaml

from pi_facegate.config.gpio import PIN_KEYS
from pi_facegate.config.loader import load_config, parse_config, parse_config_text
from pi_facegate.config.schema import Config, iter_fields
from pi_facegate.exc import ConfigError
from pi_facegate.paths import REPO_DIR

REPO_CONFIG = REPO_DIR / "config.yaml"


# ----------------------------------------------------------------- helpers


def nested(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """``("door", "relay", "pin"), 4`` -> ``{"door": {"relay": {"pin": 4}}}``."""
    data: Any = value
    for key in reversed(path):
        data = {key: data}
    return data


def problems(exc: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    return str(exc.value).splitlines()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def _bound_sources(field: pydantic.fields.FieldInfo) -> tuple[type | None, list[Any]]:
    """The numeric type of a field and its bound constraints (also inside Optional[...])."""
    metadata = list(field.metadata)
    numeric: type | None = None
    candidates = [field.annotation, *typing.get_args(field.annotation)]
    for candidate in candidates:
        args = typing.get_args(candidate)
        if typing.get_origin(candidate) is typing.Annotated:
            base, *extras = args
            for extra in extras:
                metadata += list(getattr(extra, "metadata", []))
            candidate = base
        if candidate in (int, float) and numeric is not float:
            numeric = candidate
    return numeric, metadata


def numeric_fields() -> list[tuple[tuple[Any, ...], type, dict[str, float]]]:
    """Every int/float key with its bounds, found by walking the models."""
    found = []
    for path, field in iter_fields():
        numeric, metadata = _bound_sources(field)
        if numeric is None:
            continue
        bounds: dict[str, float] = {}
        for item in metadata:
            for name in ("ge", "gt", "le", "lt"):
                if isinstance(item, getattr(annotated_types, name.capitalize())):
                    bounds[name] = getattr(item, name)
        found.append((path, numeric, bounds))
    return found


NUMERIC_FIELDS = numeric_fields()


def _dotted(path: tuple[Any, ...]) -> str:
    return ".".join(map(str, path))


# ----------------------------------------------------------------- defaults and docs


def test_empty_mapping_gives_the_documented_defaults():
    config = parse_config({})
    assert config == Config()
    assert (config.camera.type, config.camera.width, config.camera.height) == (
        "picamera2",
        640,
        480,
    )
    assert config.camera.fps == 15 and config.camera.detect_width == 320
    assert (config.camera.retry_initial_seconds, config.camera.retry_max_seconds) == (1, 30)
    assert config.detector.min_score == 0.75 and config.detector.min_face_size == 40
    assert config.matching.threshold is None and config.matching.min_margin is None
    assert (config.access.votes_required, config.access.window_frames) == (3, 5)
    assert config.door.simulate is False
    assert config.door.relay.pin == 17 and config.door.relay.lock_type == "fail_secure"
    assert config.door.relay.unlock_seconds == 3.0
    assert config.enrolment.allow_pending is False
    assert config.pins() == {"door.relay.pin": 17}


def test_every_field_has_a_description_and_every_number_two_bounds():
    for path, field in iter_fields():
        assert field.description and len(field.description) > 10, _dotted(path)
    assert len(NUMERIC_FIELDS) > 30
    for path, _numeric, bounds in NUMERIC_FIELDS:
        assert {"ge", "gt"} & bounds.keys(), f"{_dotted(path)} has no lower bound"
        assert {"le", "lt"} & bounds.keys(), f"{_dotted(path)} has no upper bound"


def test_the_repository_config_yaml_equals_the_defaults():
    assert load_config(REPO_CONFIG) == parse_config({})


def _key_lines(node: yaml.Node, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], int]:
    lines: dict[tuple[str, ...], int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, key.value)
            lines[child] = key.start_mark.line
            lines.update(_key_lines(value, child))
    return lines


def test_the_repository_config_yaml_documents_every_key():
    text = REPO_CONFIG.read_text()
    source_lines = text.splitlines()
    keys = _key_lines(yaml.compose(text))
    fields = [path for path, _ in iter_fields()]
    missing = [_dotted(path) for path in fields if path not in keys]
    assert not missing, f"config.yaml lacks {missing}"
    extra = [_dotted(path) for path in keys if path not in fields]
    assert not extra, f"config.yaml has keys the models lack: {extra}"
    for path in fields:
        line = keys[path]
        own = source_lines[line]
        above = source_lines[line - 1] if line else ""
        assert "#" in own or above.strip().startswith("#"), (
            f"config.yaml:{line + 1}: {_dotted(path)} has no comment on or above its line"
        )


def test_the_config_is_frozen():
    config = parse_config({})
    with pytest.raises(pydantic.ValidationError):
        config.door.relay.pin = 4  # type: ignore[misc]


# ----------------------------------------------------------------- bounds


@pytest.mark.parametrize(
    ("path", "numeric", "bounds"), NUMERIC_FIELDS, ids=[_dotted(p) for p, _, _ in NUMERIC_FIELDS]
)
def test_every_bound_is_enforced(path, numeric, bounds):
    step = 1 if numeric is int else 0.001
    key = _dotted(path)
    outside = []
    if "ge" in bounds:
        outside.append(numeric(bounds["ge"] - step))
    if "gt" in bounds:
        outside.append(numeric(bounds["gt"]))
    if "le" in bounds:
        outside.append(numeric(bounds["le"] + step))
    if "lt" in bounds:
        outside.append(numeric(bounds["lt"]))
    for value in outside:
        with pytest.raises(ConfigError) as exc:
            parse_config(nested(path, value))
        assert any(
            line.startswith(f"{key}: Input should be") and line.endswith(f"(got {value!r})")
            for line in problems(exc)
        ), problems(exc)
    inside = [bounds[name] for name in ("ge", "le") if name in bounds]
    inside += [bounds["gt"] + step] if "gt" in bounds else []
    inside += [bounds["lt"] - step] if "lt" in bounds else []
    for value in inside:
        # A value at the bound may still break a cross-field rule (e.g. N <= M), but never
        # the bound itself.
        try:
            parse_config(nested(path, numeric(value)))
        except ConfigError as exc:
            assert f"{key}: Input should be" not in str(exc), str(exc)


def test_bcm_pins_are_0_to_27_and_null_means_none():
    assert parse_config(nested(("door", "leds", "granted"), 27)).door.leds.granted == 27
    assert parse_config(nested(("door", "buzzer", "pin"), None)).door.buzzer.pin is None
    with pytest.raises(ConfigError, match=r"door\.relay\.pin: Input should be less"):
        parse_config(nested(("door", "relay", "pin"), 28))
    with pytest.raises(ConfigError, match=r"door\.relay\.pin: Input should be a valid integer"):
        parse_config(nested(("door", "relay", "pin"), None))  # the relay is not optional


# ----------------------------------------------------------------- types and keys


@pytest.mark.parametrize(
    ("path", "value", "got"),
    [
        (("door", "relay", "pin"), "17", "'17'"),  # quoted: not silently converted
        (("door", "relay", "unlock_seconds"), "3s", "'3s'"),
        (("door", "relay", "active_high"), "yes", "'yes'"),
        (("door", "simulate"), 1, "1"),
        (("camera", "width"), 640.5, "640.5"),
        (("camera", "type"), "usb", "'usb'"),
        (("camera", "device"), [0], "[0]"),
        (("door", "relay", "lock_type"), "maglock", "'maglock'"),
        (("logging", "journal"), "sometimes", "'sometimes'"),
        (("access",), 5, "5"),
    ],
)
def test_wrong_types_are_rejected_not_coerced(path, value, got):
    with pytest.raises(ConfigError) as exc:
        parse_config(nested(path, value))
    (line,) = problems(exc)
    assert line.startswith(f"{_dotted(path)}: Input should be ")
    assert line.endswith(f" (got {got})")


def test_accepted_spellings():
    config = parse_config(
        {
            "camera": {"device": "rtsp://cam.local/stream", "fps": 10, "type": "opencv"},
            "logging": {"level": "debug", "journal": False},
            "storage": {"gallery": "people.db"},
        }
    )
    assert config.camera.device == "rtsp://cam.local/stream" and config.camera.fps == 10.0
    assert config.logging.level == "DEBUG" and config.logging.journal is False
    assert config.storage.gallery == Path("people.db")


def test_an_unknown_key_is_reported_with_a_suggestion():
    with pytest.raises(ConfigError) as exc:
        parse_config({"camera": {"widht": 800}, "doors": {}})
    assert problems(exc) == [
        "camera.widht: unknown key; did you mean 'width'? (got 800)",
        "doors: unknown key; did you mean 'door'? (got {})",
    ]


def test_an_unknown_key_without_a_near_miss_lists_the_valid_ones():
    with pytest.raises(ConfigError) as exc:
        parse_config({"door": {"buzzer": {"frequency": 440}}})
    assert problems(exc) == ["door.buzzer.frequency: unknown key; valid keys here: pin (got 440)"]


def test_an_empty_section_means_its_defaults():
    config = parse_config_text("door:\n  leds:\naccess:\n")
    assert config == parse_config({})


# ----------------------------------------------------------------- cross-field rules


def test_votes_required_must_not_exceed_window_frames():
    assert parse_config({"access": {"votes_required": 5, "window_frames": 5}})
    with pytest.raises(ConfigError) as exc:
        parse_config({"access": {"votes_required": 6, "window_frames": 5}})
    (line,) = problems(exc)
    assert line.startswith("access.votes_required: access.votes_required (N) must not exceed")
    assert "access.window_frames (M = 5)" in line and line.endswith("(got 6)")


def test_a_window_smaller_than_the_default_votes_is_reported_at_the_key_written(tmp_path):
    path = write(tmp_path, "access:\n  window_frames: 2\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    (line,) = problems(exc)
    assert line.startswith(f"{path}:2: access.window_frames: access.votes_required (N)")


def test_a_pin_used_twice_names_both_keys(tmp_path):
    path = write(
        tmp_path,
        "door:\n  relay:\n    pin: 22\n  contact:\n    pin: 5\nenrolment:\n  button_pin: 22\n",
    )
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert problems(exc) == [
        f"{path}:7: enrolment.button_pin: door.relay.pin and enrolment.button_pin both use "
        "BCM pin 22; each pin can drive only one device (got 22)"
    ]


def test_a_pin_clashing_with_the_default_relay_pin_is_caught():
    with pytest.raises(ConfigError, match=r"door\.relay\.pin and door\.leds\.granted both use"):
        parse_config({"door": {"leds": {"granted": 17}}})


def test_every_pin_clash_is_listed():
    data = {"door": {"relay": {"pin": 4}, "buzzer": {"pin": 4}, "leds": {"denied": 4}}}
    with pytest.raises(ConfigError) as exc:
        parse_config(data)
    assert [line.split(":")[0] for line in problems(exc)] == [
        "door.leds.denied",
        "door.buzzer.pin",
    ]


def test_a_pin_clash_is_not_hidden_by_an_error_elsewhere(tmp_path):
    path = write(
        tmp_path,
        "camera:\n  widht: 640\ndoor:\n  relay: {pin: 4}\n  exit_button: {pin: 4}\n",
    )
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    lines = problems(exc)
    assert lines[0] == f"{path}:2: camera.widht: unknown key; did you mean 'width'? (got 640)"
    assert lines[1].startswith(f"{path}:5: door.exit_button.pin: door.relay.pin and ")
    assert len(lines) == 2


def test_all_pin_keys_exist_in_the_model():
    config = parse_config({})
    for path in PIN_KEYS:
        obj: Any = config
        for key in path:
            obj = getattr(obj, key)
    free = [4, 5, 6, 12, 13, 16, 20, 21]
    data: dict[str, Any] = {}
    for path, pin in zip(PIN_KEYS, free, strict=True):
        section = data
        for key in path[:-1]:
            section = section.setdefault(key, {})
        section[path[-1]] = pin
    pins = parse_config(data).pins()
    assert pins == {_dotted(path): pin for path, pin in zip(PIN_KEYS, free, strict=True)}


@pytest.mark.parametrize(
    ("data", "start"),
    [
        ({"camera": {"type": "replay"}}, "camera.replay.path: camera.type is replay but"),
        ({"camera": {"detect_width": 100}}, "camera.detect_width: camera.detect_width must be 0"),
        ({"camera": {"width": 320, "detect_width": 400}}, "camera.detect_width: camera.detect"),
        (
            {"camera": {"retry_initial_seconds": 40, "retry_max_seconds": 30}},
            "camera.retry_initial_seconds: camera.retry_initial_seconds must not exceed",
        ),
        (
            {"quality": {"min_brightness": 200, "max_brightness": 200}},
            "quality.min_brightness: quality.min_brightness must be below",
        ),
        (
            {"enrolment": {"min_good_frames": 6, "embeddings": 5}},
            "enrolment.min_good_frames: enrolment.min_good_frames must not exceed",
        ),
    ],
)
def test_cross_field_rules(data, start):
    with pytest.raises(ConfigError) as exc:
        parse_config(data)
    assert [line for line in problems(exc) if line.startswith(start)], problems(exc)


def test_several_rules_of_one_section_are_all_reported():
    data = {"camera": {"type": "replay", "detect_width": 100}}
    with pytest.raises(ConfigError) as exc:
        parse_config(data)
    assert [line.split(":")[0] for line in problems(exc)] == [
        "camera.replay.path",
        "camera.detect_width",
    ]


def test_replay_and_full_frame_detection_are_valid():
    config = parse_config(
        {"camera": {"type": "replay", "detect_width": 0, "replay": {"path": "clips/door.mp4"}}}
    )
    assert config.camera.replay.path == Path("clips/door.mp4")
    assert config.camera.detect_width == 0


# ----------------------------------------------------------------- YAML, files, lines


def test_every_problem_is_listed_with_its_line_in_file_order(tmp_path):
    path = write(
        tmp_path,
        """\
camera:
  width: 100          # too small
  fps: fast
door:
  relay:
    unlock_seconds: "3s"
access:
  votes_required: 9
  window_frames: 4
logging:
  level: INFO
  level: DEBUG
""",
    )
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert problems(exc) == [
        f"{path}:2: camera.width: Input should be greater than or equal to 160 (got 100)",
        f"{path}:3: camera.fps: Input should be a valid number (got 'fast')",
        f"{path}:6: door.relay.unlock_seconds: Input should be a valid number (got '3s')",
        f"{path}:8: access.votes_required: access.votes_required (N) must not exceed "
        "access.window_frames (M = 4): N votes are counted within the last M frames (got 9)",
        f"{path}:12: logging.level: key given twice (first on line 11); remove one",
    ]


def test_flow_style_keys_get_their_own_line(tmp_path):
    path = write(tmp_path, "# comment\n\ndoor: {relay: {pin: 40}}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert problems(exc) == [
        f"{path}:3: door.relay.pin: Input should be less than or equal to 27 (got 40)"
    ]


def test_yaml_syntax_error_has_its_line(tmp_path):
    path = write(tmp_path, "camera:\n  width: 640\n height: 480\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    (line,) = problems(exc)
    assert line.startswith(f"{path}:3: YAML syntax error: ")


def test_unsafe_yaml_tags_are_refused(tmp_path):
    path = write(tmp_path, "camera: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match=r":1: YAML syntax error: .*python/object"):
        load_config(path)


def test_an_empty_file_is_an_error_but_an_empty_mapping_is_the_defaults(tmp_path):
    for text in ("", "\n", "# only comments\n"):
        path = write(tmp_path, text)
        with pytest.raises(ConfigError, match=r"config\.yaml: the config file is empty"):
            load_config(path)
    assert load_config(write(tmp_path, "{}\n")) == Config()


@pytest.mark.parametrize("text", ["- camera\n- door\n", "17\n", "null\n"])
def test_the_top_level_must_be_a_mapping(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=rf"^{path}:1: the top level must be a mapping"):
        load_config(path)


def test_a_missing_or_unreadable_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml: no such config file"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match=r"is a directory"):
        load_config(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match=r"cannot read config file: Not a directory"):
        load_config(blocker / "config.yaml")
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("logging: {level: d\xe9bug}\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"not UTF-8 text"):
        load_config(latin1)


def test_config_error_is_a_value_error():
    with pytest.raises(ValueError):
        parse_config({"x": 1})
    with pytest.raises(ConfigError, match="must be a mapping"):
        parse_config(["camera"])  # type: ignore[arg-type]


# ----------------------------------------------------------------- paths


def test_resolve_paths(tmp_path):
    state = tmp_path / "state"
    assert parse_config({}).resolve_paths(state) == (state / "gallery.db", state / "events.db")
    config = parse_config({"storage": {"gallery": "sub/people.db", "events": "/var/log/ev.db"}})
    assert config.resolve_paths(state) == (state / "sub" / "people.db", Path("/var/log/ev.db"))
    home = parse_config({"storage": {"gallery": "~/g.db"}}).resolve_paths(state)[0]
    assert home == Path.home() / "g.db"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("matching: &a [*a]\n", "matching.0: a YAML alias refers to itself"),
        ("access: &a {x: *a}\n", "access.x: a YAML alias refers to itself"),
        (
            "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
            "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
            "d: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
            "more than 10000 values",
        ),
        ("camera: " + "[" * 40 + "]" * 40 + "\n", "nested more than 20 levels deep"),
    ],
    ids=["recursive-list", "recursive-map", "alias-bomb", "deep"],
)
def test_yaml_that_would_crash_the_validator_is_a_config_error(text, message, tmp_path):
    """A recursive alias once crashed ``config check`` (RecursionError, rc 70) and the daemon
    on SIGHUP; now it is a config error like any other, so the daemon keeps its config."""
    with pytest.raises(ConfigError, match=message):
        parse_config_text(text, "c.yaml")
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_exponent_numbers_are_numbers_and_bounds_say_so():
    """YAML 1.1 read ``1e12`` as a string: the error said "not a valid number" instead of
    naming the bound that the value breaks."""
    assert parse_config_text("access:\n  cooldown_seconds: 3e1\n").access.cooldown_seconds == 30.0
    with pytest.raises(ConfigError, match="cooldown_seconds: Input should be less than or equal"):
        parse_config_text("access:\n  cooldown_seconds: 1e12\n", "c.yaml")


def test_storage_snapshots_is_not_an_option():
    """It was documented but nothing read it (no face crop was ever stored): a config that
    sets it is told the key does not exist rather than believing crops are kept."""
    with pytest.raises(ConfigError, match="snapshots"):
        parse_config_text("storage:\n  snapshots: true\n", "c.yaml")
    # a config installed with the old default still loads after an upgrade
    assert parse_config_text("storage:\n  snapshots: false\n  max_events: 500\n").storage.max_events == 500
