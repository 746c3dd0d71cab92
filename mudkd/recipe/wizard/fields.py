"""What the wizard reads from the recipe schema: descriptions, defaults, bounds and allowed values.

The wizard restates none of them. A question's help line is its key's schema description, its default is the
field's default, its range check uses the field's ``ge``/``gt``/``le``/``lt`` constraints, and the options of a
choice question are the field's ``Literal`` or Enum values (:mod:`mudkd.knowledge.schemes`).
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from mudkd.recipe.schema import Recipe

Answers = Mapping[str, Any]
Validator = Callable[[Any, Answers], str | None]


def schema_field(key: str) -> FieldInfo:
    """The schema field of a dotted recipe key (``hsk.keep_tokens``)."""
    section, name = key.split(".")
    model = Recipe.model_fields[section].annotation
    assert isinstance(model, type) and issubclass(model, BaseModel)
    return model.model_fields[name]


def schema_default(key: str) -> Any:
    """The schema default of a dotted recipe key."""
    return schema_field(key).get_default(call_default_factory=True)


def _schema_descriptions() -> dict[str, str]:
    descriptions: dict[str, str] = {}
    for section, section_field in Recipe.model_fields.items():
        model = section_field.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            for name, item in model.model_fields.items():
                descriptions[f"{section}.{name}"] = item.description or ""
        else:
            descriptions[section] = section_field.description or ""
    return descriptions


#: Every recipe key's schema description (the help line of the question that sets it).
DESCRIPTIONS = _schema_descriptions()


def allowed_values(annotation: Any) -> tuple[Any, ...]:
    """The values a ``Literal`` or Enum annotation (optionally inside ``X | None``) allows; () for any other."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(candidate) is Literal:
            return typing.get_args(candidate)
        if isinstance(candidate, type) and issubclass(candidate, Enum):
            return tuple(member.value for member in candidate)
    return ()


@dataclass(frozen=True)
class Bounds:
    """The numeric range a schema field allows; ``None`` is no bound, ``*_open`` a strict one (``gt``/``lt``)."""

    low: int | float | None = None
    high: int | float | None = None
    low_open: bool = False
    high_open: bool = False

    def above_low(self, value: Any) -> bool:
        """Whether ``value`` meets the lower bound (written positively, so nan fails)."""
        if self.low is None:
            return True
        return bool(value > self.low) if self.low_open else bool(value >= self.low)

    def below_high(self, value: Any) -> bool:
        """Whether ``value`` meets the upper bound (written positively, so nan fails)."""
        if self.high is None:
            return True
        return bool(value < self.high) if self.high_open else bool(value <= self.high)

    def interval(self) -> str:
        """``between 8 and 4096`` for a closed range, else interval notation: ``in (0, 1]``."""
        if not (self.low_open or self.high_open):
            return f"between {self.low} and {self.high}"
        return f"in {'(' if self.low_open else '['}{self.low}, {self.high}{')' if self.high_open else ']'}"


def schema_bounds(key: str) -> Bounds:
    """The ``ge``/``gt``/``le``/``lt`` constraints of a dotted recipe key."""
    found: dict[str, Any] = {}
    for item in schema_field(key).metadata:
        for name in ("ge", "gt", "le", "lt"):
            if getattr(item, name, None) is not None:
                found[name] = getattr(item, name)
    return Bounds(
        low=found.get("gt", found.get("ge")),
        high=found.get("lt", found.get("le")),
        low_open="gt" in found,
        high_open="lt" in found,
    )


def minimum(key: str) -> Validator:
    """A question validator: the schema's lower bound of ``key`` (``must be >= 1``, ``must be > 0``).

    Only the lower bound: the upper ones (typo guards such as ``MAX_LAYERS``) are reported by the schema itself when
    the answers become a recipe.
    """
    bounds = schema_bounds(key)

    def check(value: Any, answers: Answers) -> str | None:
        if bounds.above_low(value):
            return None
        return f"must be {'>' if bounds.low_open else '>='} {bounds.low} (got {value})"

    return check


def within(key: str, example: str = "") -> Validator:
    """A question validator: both schema bounds of ``key`` (``must be between 8 and 4096``, ``must be in (0, 1]``).

    Args:
        key: The dotted recipe key whose bounds are checked.
        example: Text added after the range, e.g. ``", e.g. 0.1 keeps 10% of the width"``.
    """
    bounds = schema_bounds(key)

    def check(value: Any, answers: Answers) -> str | None:
        if bounds.above_low(value) and bounds.below_high(value):
            return None
        return f"must be {bounds.interval()}{example} (got {value})"

    return check
