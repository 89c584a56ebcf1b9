"""Reading the config: YAML with line numbers, and every problem reported at once.

Parsing is separate from file I/O (as in Frigate's ``load -> parse``): :func:`parse_config`
validates a plain ``dict`` and is pure; :func:`parse_config_text` and :func:`load_config` add
YAML and keep each key's line number by composing the YAML node tree, so one
:class:`~pi_facegate.exc.ConfigError` lists *every* problem as
``path:LINE: key.path: reason (got VALUE)``. A bad edit therefore never reaches the running
daemon: it keeps its last good :class:`~pi_facegate.config.schema.Config` and the operator sees
exactly what to fix.

Decisions that keep the door safe:

* a key written twice in the same mapping is an error (YAML would silently keep the last);
* a missing file, an unreadable one, an empty one (a truncated edit looks just like that) and
  a top level that is not a mapping are errors; ``{}`` is the way to ask for all defaults.
"""

from __future__ import annotations

import difflib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from pi_facegate.config.base import CROSS_FIELD, KeyPath, Violation, dotted, lookup
from pi_facegate.config.gpio import PIN_KEYS, pin_conflicts
from pi_facegate.config.schema import Config
from pi_facegate.exc import ConfigError

log = logging.getLogger("pi_facegate.config")

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
        return dotted(self.path)

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


def _violation_problem(loc: KeyPath, found: Violation, index: _YamlIndex | None) -> ConfigProblem:
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
        if err["type"] == CROSS_FIELD:
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
        pins[path] = lookup(defaults, path) if node is _DEFAULT else node
    return [_violation_problem((), v, index) for v in pin_conflicts(pins)]


_DEFAULT = object()


def _without_retired(data: Mapping[str, Any], source: str | None) -> Mapping[str, Any]:
    """``data`` without ``storage.snapshots: false``, a key earlier versions documented.

    Nothing ever read it, so it is gone; a config installed with its default (false) must
    still load after an upgrade, or the door would stop at the next restart. ``true`` stays
    in and is refused as an unknown key: no face crops are stored, and nobody should think so.
    """
    storage = data.get("storage")
    if not (isinstance(storage, Mapping) and storage.get("snapshots", None) is False):
        return data
    log.warning("%s: storage.snapshots is no longer an option: remove the line", source)
    return {**data, "storage": {k: v for k, v in storage.items() if k != "snapshots"}}


def _validate(data: Mapping[str, Any], source: str | None, index: _YamlIndex | None) -> Config:
    """The config, or a ConfigError listing every problem (in file order when lines are known)."""
    data = _without_retired(data, source)
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


class ConfigYamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading ``1e12`` and ``5e-3`` as numbers, as YAML 1.2 does.

    PyYAML follows YAML 1.1, where a float needs a dot (``1.0e12``): ``cooldown_seconds:
    1e12`` became the *string* "1e12" and was refused as "not a valid number", which is not
    the problem (it is far beyond the bound). Only the resolver changes; nothing is executed.
    """


ConfigYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_config_text(text: str, source: str = "<config>") -> Config:
    """Validate YAML text; problems read ``source:LINE: key.path: reason (got VALUE)``."""
    loader = ConfigYamlLoader(text)
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
    check_shape(data, source)
    try:
        return _validate(data, source, _index_yaml(node))
    except RecursionError:  # a shape check_shape let through: still a config error, never a crash
        raise ConfigError(f"{source}: the config is nested too deeply to check") from None


#: more values than any real config has (the annotated default has about 150): YAML aliases
#: can make a few lines expand to millions ("billion laughs"); refused before validation
MAX_VALUES = 10_000
#: deeper than any config section goes
MAX_DEPTH = 20


def check_shape(data: Any, source: str) -> None:
    """Refuse a recursive alias (``a: &x [*x]``), an alias bomb or absurd nesting.

    PyYAML builds a list that contains itself for a recursive alias; validating it would
    recurse until Python's stack runs out (a crash, and under systemd a restart loop into
    the same file). Walked iteratively, so the check itself cannot overflow.
    """
    stack: list[tuple[Any, tuple[int, ...], tuple[str, ...]]] = [(data, (), ())]
    seen = 0
    while stack:
        value, ancestors, path = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise ConfigError(f"{source}: more than {MAX_VALUES} values: not a pi-facegate config")
        if not isinstance(value, (dict, list)):
            continue
        where = ".".join(path) or "the top level"
        if id(value) in ancestors:
            raise ConfigError(f"{source}: {where}: a YAML alias refers to itself (recursive)")
        if len(path) > MAX_DEPTH:
            raise ConfigError(f"{source}: {where}: nested more than {MAX_DEPTH} levels deep")
        inner = (*ancestors, id(value))
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            stack.append((item, inner, (*path, str(key))))


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
