"""Overrides, once: ``--set`` strings parsed, dotted keys set, split between owners, and validation errors worded.

Every reader of settings goes through here — a recipe (:mod:`mudkd.recipe.load`), a sweep file
(:mod:`mudkd.recipe.sweep`), a recipe's ``[search]`` table (:mod:`mudkd.recipe.search`) and the wizard's answers
(:mod:`mudkd.recipe.wizard.answers`) — so a ``--set`` means the same thing and a problem reads the same way
everywhere. Command-line flags arrive as typed ``{dotted key: value}`` dicts (:func:`mudkd.cli.options.overrides`);
only ``--set`` text is parsed, as a TOML literal with a plain-string fallback.
"""

from __future__ import annotations

import difflib
import sys
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from mudkd.errors import BudgetError, RecipeError
from mudkd.knowledge.schemes import parse_config_3d
from mudkd.recipe.schema import Recipe, list_keys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: Dotted key → value, the one form overrides travel in (``None``: unset the key).
Overrides = dict[str, Any]
Model = TypeVar("Model", bound=BaseModel)

#: pydantic error kinds whose "Input should be" reads better as "must be".
_BOUND_KINDS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number"}


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``section.key=value`` and parse the value as a TOML literal, falling back to a plain string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise RecipeError(f"--set {text!r}: expected KEY=VALUE, e.g. --set hsk.keep_tokens=10")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def parse_sets(sets: Iterable[str] | Mapping[str, Any] | None) -> Overrides:
    """``--set KEY=VALUE`` strings as typed overrides (a later key wins); a mapping is taken as it is."""
    if isinstance(sets, Mapping):
        return dict(sets)
    return dict(parse_override(text) for text in sets or [])


def split_overrides(overrides: Mapping[str, Any], owns: Callable[[str], bool]) -> tuple[Overrides, Overrides]:
    """``(the keys ``owns`` claims, the rest)``: e.g. a sweep's own keys and its base recipe's keys."""
    own = {key: value for key, value in overrides.items() if owns(key)}
    return own, {key: value for key, value in overrides.items() if key not in own}


def as_list(value: Any) -> Any:
    """A ``--set`` value of a list-typed key: ``text`` → ``["text"]``, ``a,b`` → ``["a", "b"]``, ``3`` → ``[3]``.

    A TOML list (``'["a", "b"]'``) is kept as it is; items of a comma list are stripped (pydantic then converts
    ``"3"`` to 3 for a list of layer numbers).
    """
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list | dict):
        return value
    return [value]


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``a.b.c`` in nested dicts, creating tables on the way; a digit steps into a list (``grid.0.keep_tokens``).

    A value in the way that is not a table is replaced by one (validation then reports the table's keys).

    Raises:
        RecipeError: The key ends inside a list, or steps into a list by something else than an index.
    """
    parts = key.split(".")
    node: Any = data
    for part in parts[:-1]:
        if isinstance(node, list):
            if not (part.isdigit() and int(part) < len(node)):
                raise RecipeError(f"--set {key}: cannot set inside {part!r}", hint="edit the file instead")
            node = node[int(part)]
            continue
        child = node.setdefault(part, {})
        if not isinstance(child, dict | list):
            child = node[part] = {}
        node = child
    if isinstance(node, list):
        raise RecipeError(f"--set {key}: {parts[-2]} is a list of blocks", hint=f"use {parts[-2]}.0.{parts[-1]}=...")
    node[parts[-1]] = value


def _model_at(model: type[BaseModel], location: Iterable[str | int]) -> type[BaseModel] | None:
    """The pydantic model that holds the last part of ``location`` (list items and optional tables stepped into)."""
    for part in location:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        kinds = [field.annotation] if field else []
        inner = None
        while kinds and inner is None:  # list[Block], Block | None, ...: the first model among the type arguments
            kind = kinds.pop(0)
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                inner = kind
            kinds += typing.get_args(kind)
        if inner is None:
            return None
        model = inner
    return model


def describe(error: Mapping[str, Any], model: type[BaseModel], *, prefix: tuple[str, ...] = ()) -> str:
    """One pydantic error as ``section.key: problem (got value)``; an unknown key with a "did you mean".

    Args:
        error: An item of ``ValidationError.errors()`` raised validating ``model``.
        model: The model validated (its field names are the suggestions for an unknown key).
        prefix: Location parts shown before the error's own (``("search",)`` for a ``[search]`` table).
    """
    location = tuple(error["loc"])
    where = ".".join(str(part) for part in (*prefix, *location)) or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        holder = _model_at(model, location[:-1])
        allowed = list(holder.model_fields) if holder else []
        close = difflib.get_close_matches(str(location[-1]), allowed, n=1)
        suggestion = f"did you mean {close[0]!r}?" if close else f"allowed keys: {', '.join(allowed)}"
        return f"{where}: unknown key ({suggestion})"
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind in _BOUND_KINDS:
        message = message.replace("Input should be", "must be")
    if "input" in error and kind != "missing" and not isinstance(error["input"], dict) and "(got " not in message:
        message = f"{message} (got {error['input']!r})"
    return f"{where}: {message}"


def validate(
    model: type[Model], data: Mapping[str, Any], source: str, *, prefix: tuple[str, ...] = ()
) -> tuple[Model | None, list[str]]:
    """``model`` validated from ``data``: ``(instance, [])``, or ``(None, every problem as "source: key: ...")``."""
    try:
        return model.model_validate(data), []
    except ValidationError as error:
        return None, [f"{source}: {describe(item, model, prefix=prefix)}" for item in error.errors()]


def apply_sets(data: dict[str, Any], overrides: Mapping[str, Any]) -> None:
    """Set typed ``--set`` overrides of a recipe in ``data``, a list-typed key's value as a list (:func:`as_list`)."""
    listed = list_keys()
    for key, value in overrides.items():
        set_dotted(data, key, as_list(value) if key in listed and value is not None else value)


def _expand_config_3d(hsk: dict[str, Any]) -> None:
    """Replace ``config_3d`` by the three keys it stands for (so an override can vary one of them)."""
    try:
        hsk["keep_layers"], hsk["keep_tokens"], hsk["keep_hidden"] = parse_config_3d(str(hsk.get("config_3d") or ""))
    except BudgetError:
        return
    hsk["config_3d"] = None


def apply_overrides(recipe: Recipe, overrides: Mapping[str, Any], *, where: str = "sweep point") -> Recipe:
    """A copy of ``recipe`` with dotted ``overrides`` set (``None`` = unset), validated.

    When the recipe sets ``hsk.config_3d`` and the overrides set one of keep_layers/keep_tokens/keep_hidden (but not
    ``config_3d``), the 3D string is first expanded into the three keys, so the other two keep the recipe's values.

    Raises:
        RecipeError: With every problem, each prefixed by ``where``.
    """
    data = recipe.model_dump()
    budget_keys = {"hsk.keep_layers", "hsk.keep_tokens", "hsk.keep_hidden"}
    if data["hsk"].get("config_3d") and budget_keys & set(overrides) and "hsk.config_3d" not in overrides:
        _expand_config_3d(data["hsk"])
    for key in overrides:
        section, _, name = key.partition(".")
        if not isinstance(data.get(section), dict) or not name:
            raise RecipeError(f"{where}: {key}: unknown recipe key", hint="'mudkd recipe show' lists every key")
    apply_sets(data, overrides)
    applied, problems = validate(Recipe, data, where)
    if problems or applied is None:
        raise RecipeError(
            problems[0], hint="see 'mudkd recipe show' for every key, its default and allowed values", problems=problems
        )
    return applied
