"""What every config section shares: the strict base model and the cross-field rule machinery.

A section is a :class:`FacegateBaseModel`: unknown keys are errors and values are never
coerced. A rule that spans fields raises one pydantic error of type :data:`CROSS_FIELD` that
carries every broken rule as a :class:`Violation` naming the keys involved, so the loader
(:mod:`pi_facegate.config.loader`) can point at the line of the key the file spells out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

KeyPath = tuple[str | int, ...]

CROSS_FIELD = "cross_field"  # pydantic error type of our model validators


@dataclass(frozen=True)
class Violation:
    """A broken cross-field rule: its message, the keys it involves, the offending value.

    The keys, most to blame first, are relative to the model whose validator found it; they
    travel in the error's context so the report can point at the line of the first key the
    YAML file spells out.
    """

    message: str
    paths: tuple[KeyPath, ...]
    value: Any = None


def raise_violations(violations: list[Violation]) -> None:
    """Raise one pydantic error carrying every violation (a validator may raise only once)."""
    if violations:
        message = "; ".join(v.message for v in violations)
        # The message is a template: escape braces so values cannot be misread.
        template = message.replace("{", "{{").replace("}", "}}")
        raise PydanticCustomError(CROSS_FIELD, template, {"violations": tuple(violations)})


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


def dotted(path: KeyPath) -> str:
    """A key path as the operator writes it, e.g. ``door.relay.pin``."""
    return ".".join(str(part) for part in path)


def lookup(obj: Any, path: KeyPath) -> Any:
    """The value at ``path`` in a (validated) model, one attribute per key."""
    for key in path:
        obj = getattr(obj, str(key))
    return obj
