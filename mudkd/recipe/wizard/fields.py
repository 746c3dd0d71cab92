"""What the wizard reads from the recipe schema: descriptions, defaults, bounds and allowed values.

The wizard restates none of them. A question's help line is its key's schema description, its default is the
field's default, its answer is validated through the field itself (:func:`schema_problem`: bounds, types and the
field's validators, when the answer is given), and the options of a choice question are the field's ``Literal`` or
Enum values (:mod:`mudkd.knowledge.schemes`).
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
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

    def interval(self) -> str:
        """``between 8 and 4096`` for a closed range, else interval notation: ``in (0, 1]``; ``>= 1`` for one bound."""
        if self.low is None or self.high is None:
            if self.low is None:
                return f"{'<' if self.high_open else '<='} {self.high}"
            return f"{'>' if self.low_open else '>='} {self.low}"
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


def schema_problem(key: str, value: Any, example: str = "") -> str | None:
    """Validate one answer through the schema field of ``key`` (types, bounds, field and table validators).

    The schema is the single source of bounds: the value is assigned to a default instance of the key's table with
    pydantic's validation, so the wizard refuses exactly what a recipe file would refuse, when the answer is given.

    Args:
        key: The dotted recipe key.
        value: The typed answer.
        example: Text added after a range problem, e.g. ``", e.g. 0.1 keeps 10% of the width"``.

    Returns:
        The problem (``must be between 8 and 4096 (got 5000)``), or None.
    """
    section, name = key.split(".")
    model = Recipe.model_fields[section].annotation
    assert isinstance(model, type) and issubclass(model, BaseModel)
    try:
        model.__pydantic_validator__.validate_assignment(model.model_construct(), name, value)
    except ValidationError as error:
        first = error.errors()[0]
        if first["type"] in RANGE_ERRORS:
            return f"must be {schema_bounds(key).interval()}{example} (got {value})"
        return str(first["msg"]).removeprefix("Value error, ")
    return None


#: pydantic error types of a number outside a field's range.
RANGE_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}


def within(key: str, example: str = "") -> Validator:
    """A question validator: the schema field of ``key`` (:func:`schema_problem`).

    Args:
        key: The dotted recipe key whose field checks the answer.
        example: Text added after a range problem, e.g. ``", e.g. 0.1 keeps 10% of the width"``.
    """

    def check(value: Any, answers: Answers) -> str | None:
        return schema_problem(key, value, example)

    return check
