"""The recipe as a commented TOML file: one ``#`` line (the schema description) above each key."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mudkd.recipe.load import COMMAND_LINE_ONLY, resolve_path
from mudkd.recipe.schema import Recipe, path_keys
from mudkd.recipe.wizard.fields import allowed_values


def _comment(description: str, annotation: Any) -> str:
    text = " ".join(description.split())
    allowed = allowed_values(annotation)
    if allowed and not all(str(value) in text for value in allowed):
        text = f"{text} One of: {', '.join(str(value) for value in allowed)}."
    return f"# {text}" if text else "#"


def _toml_value(value: Any) -> str:
    """One TOML value; arrays stay inline so that each key is one line under its comment."""
    import tomli_w

    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return tomli_w.dumps({"v": value}).removeprefix("v = ").rstrip("\n")


def render_commented_toml(
    recipe: Recipe,
    header: str | None = None,
    folder: Path | None = None,
    references: Mapping[str, str] | None = None,
) -> str:
    """The recipe as TOML text with one ``#`` comment line (the schema description) above each key.

    Keys whose value is None are left out (TOML has no null; None means "the stage decides"). The text parses back
    with tomllib into an equal recipe.

    Args:
        recipe: The validated recipe.
        header: Optional comment lines for the top of the file (without ``#``).
        folder: The folder the file is written to: relative path answers (relative to the working directory) are
            rewritten relative to it. None writes them as they are.
        references: Values to write as given instead of the recipe's, by dotted key: the ``package:NAME``
            references a recipe resolves to the package's directory on this machine
            (:func:`mudkd.recipe.wizard.answers.package_references`).
    """
    references = references or {}
    lines = [f"# {line}".rstrip() for line in (header or "").splitlines()]
    if lines:
        lines.append("")
    sections: list[tuple[str, BaseModel]] = []
    for name, section_field in Recipe.model_fields.items():
        value = getattr(recipe, name)
        if isinstance(value, BaseModel):
            sections.append((name, value))
        elif value is not None:
            lines += [
                _comment(section_field.description or "", section_field.annotation),
                f"{name} = {_toml_value(value)}",
            ]
    paths = path_keys()
    for name, section in sections:
        doc = (type(section).__doc__ or "").strip().splitlines()
        lines += ["", f"# {doc[0]}" if doc else "#", f"[{name}]"]
        for key, item in type(section).model_fields.items():
            value = getattr(section, key)
            if value is None or f"{name}.{key}" in COMMAND_LINE_ONLY:
                continue
            if f"{name}.{key}" in references:
                value = references[f"{name}.{key}"]
            elif folder is not None and isinstance(value, str) and f"{name}.{key}" in paths:
                value = _relative_to(value, paths[f"{name}.{key}"], folder)
            lines += [_comment(item.description or "", item.annotation), f"{key} = {_toml_value(value)}"]
    return "\n".join(lines) + "\n"


def _relative_to(value: str, kind: str, folder: Path) -> str:
    """A working-directory-relative path answer, rewritten relative to the recipe file's folder (which is what a
    recipe file's relative paths are resolved against). Hub names, ``package:`` names and absolute paths stay."""
    if os.path.isabs(os.path.expanduser(value)):
        return value
    resolved = resolve_path(value, kind, ".")
    if resolved == value:
        return value
    return os.path.relpath(resolved, folder.resolve())
