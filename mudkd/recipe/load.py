"""Read, override, validate and write recipes.

Precedence, lowest first: schema defaults, the recipe file, command-line flags, ``--set key=value``. Every
problem is collected and reported at once as ``file: section.key: problem (got value)``
(:mod:`mudkd.recipe.overrides` parses ``--set`` and words the problems, for every reader of settings).

Relative paths in a recipe file resolve against the file's folder, like every config system; paths given as flags
or ``--set`` resolve against the working directory. Destructive settings (``output.overwrite``) come from the
command line only: a recipe file that sets one is refused, so a file alone can never make mudkd replace anything.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mudkd.errors import RecipeError
from mudkd.recipe.overrides import apply_sets, parse_sets, set_dotted, validate
from mudkd.recipe.schema import Recipe, path_keys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


#: The example recipes shipped inside the package (``mudkd/recipes``; ``recipes/`` in a checkout links to it).
SHIPPED_RECIPES = Path(__file__).resolve().parent.parent / "recipes"


def shipped_recipes() -> list[tuple[str, Path, str]]:
    """Every shipped recipe as ``(name, file, summary)``; the summary is the first sentence of the file's opening
    comment (which may run over several lines)."""
    found = []
    for path in sorted(SHIPPED_RECIPES.glob("*.toml")):
        opening = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.startswith("#") or not line.lstrip("#").strip():
                break  # the opening comment ends at its first blank comment line or at the first key
            opening.append(line.lstrip("#").strip())
        text = " ".join(opening)
        end = text.find(". ")
        found.append((path.stem, path, text if end < 0 else text[: end + 1]))
    return found


def locate_recipe(path: str | Path) -> Path:
    """The recipe file ``path`` names: an existing file as it is, else a shipped recipe of that name.

    ``quickstart``, ``quickstart.toml`` and ``recipes/quickstart.toml`` (the README's spelling, run from any
    folder) name ``mudkd/recipes/quickstart.toml`` when no such file exists, so a wheel install finds the shipped
    recipes. An existing file always wins; anything else is returned unchanged (and reported as not found).
    """
    path = Path(path)
    if path.is_file():
        return path
    name = path.name if path.suffix == ".toml" else f"{path.name}.toml"
    if path.parent in {Path("."), Path("recipes")} and (SHIPPED_RECIPES / name).is_file():
        return SHIPPED_RECIPES / name
    return path


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML recipe file into a dict, turning I/O and syntax errors into :class:`RecipeError`."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(
            f"{path}: recipe file not found",
            hint="check the path, name a shipped recipe ('mudkd recipe list'), or run 'mudkd wizard' to write one",
        )
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise RecipeError(f"{path}: malformed TOML: {error}", hint="fix the syntax at the line shown") from None


#: Recipe keys a recipe file may not set (to true): they can destroy data, so only the command line sets them.
COMMAND_LINE_ONLY = ("output.overwrite",)


def looks_local(value: str) -> bool:
    """Whether a model reference is spelled as a path (``./x``, ``../x``, ``/x``, ``~/x``) rather than a hub name."""
    return value in {".", ".."} or value.startswith(("./", "../", "/", "~"))


def resolve_path(value: str, kind: str, folder: str | Path) -> str:
    """A path key's value made absolute, a relative one taken against ``folder``.

    ``kind`` is the key's kind (:func:`mudkd.recipe.schema.path_keys`): a ``model`` value may be a hub name
    (``bert-base-uncased``, ``org/name``) or ``package:NAME``; it is resolved only when it looks local or exists
    relative to ``folder``. Absolute paths are returned as they are (``~`` expanded).
    """
    if kind == "model" and value.startswith("package:"):
        return value
    expanded = os.path.expanduser(value)
    if os.path.isabs(expanded):
        return expanded
    candidate = Path(folder, expanded)
    if kind == "model" and not (looks_local(value) or candidate.exists()):
        return value
    return os.path.abspath(candidate)


def _resolve_file_paths(file_data: dict[str, Any], folder: Path) -> None:
    """Resolve the relative path values of a recipe file against the file's folder, in place."""
    for key, kind in path_keys().items():
        section, _, name = key.partition(".")
        table = file_data.get(section)
        if isinstance(table, dict) and isinstance(table.get(name), str) and table[name]:
            table[name] = resolve_path(table[name], kind, folder)


def _command_line_only(file_data: dict[str, Any], source: str) -> list[str]:
    """One problem per command-line-only key the recipe file sets to anything but false."""
    problems = []
    for key in COMMAND_LINE_ONLY:
        section, _, name = key.partition(".")
        table = file_data.get(section)
        if isinstance(table, dict) and name in table and table[name] is not False:
            problems.append(f"{source}: {key}: not allowed in a recipe file (got {table[name]!r})")
    return problems


def build_recipe(
    path: str | Path | None = None,
    *,
    flags: Mapping[str, Any] | None = None,
    sets: Iterable[str] | Mapping[str, Any] | None = None,
    base: dict[str, Any] | None = None,
    ignore: tuple[str, ...] = (),
) -> Recipe:
    """Build the validated recipe from a file, command-line flags and ``--set`` overrides.

    Args:
        path: TOML recipe file, or the name of a shipped recipe (:func:`locate_recipe`), or None for defaults only.
        flags: Dotted keys from command-line flags; None values are ignored (flag not given).
        sets: ``--set`` overrides: raw ``KEY=VALUE`` strings, or already typed ``{dotted key: value}``
            (:func:`mudkd.recipe.overrides.parse_sets`).
        base: Extra defaults applied below the file (e.g. a command's own stage defaults).
        ignore: Top-level tables of the file that belong to a command, not to the recipe (``search``).

    Relative paths in the file resolve against its folder; those in ``flags``, ``sets`` and ``base`` are left as
    given (the working directory). A file may not set ``output.overwrite``: only the command line may.
    ``--set`` takes a list-typed key as a comma list (``task.text_columns=a,b``) or a TOML list. A training file
    (``task.train_file``) with no ``task.name`` given anywhere means ``task.name = "custom"``.

    Raises:
        RecipeError: With every problem found, one per line.
    """
    path = locate_recipe(path) if path else None
    source = str(path) if path else "command line"
    data: dict[str, Any] = {}
    command_line_only: list[str] = []
    for key, value in (base or {}).items():
        set_dotted(data, key, value)
    if path:
        file_data = {k: v for k, v in read_toml(path).items() if k not in ignore}
        command_line_only = _command_line_only(file_data, source)
        _resolve_file_paths(file_data, Path(path).parent)
        for key, value in flatten(file_data, keep_empty=True).items():
            set_dotted(data, key, value)
    for key, value in (flags or {}).items():
        if value is not None:
            set_dotted(data, key, value)
    apply_sets(data, parse_sets(sets))
    task = data.get("task")
    if isinstance(task, dict) and task.get("train_file") and "name" not in task:
        task["name"] = "custom"  # your own training file means your own task, unless a task is named
    recipe, invalid = validate(Recipe, data, source)
    problems = [*command_line_only, *invalid]
    if problems or recipe is None:
        hint = "see 'mudkd recipe show' for every key, its default and allowed values"
        if problems == command_line_only:
            hint = "delete it from the recipe file and pass --overwrite on the command line"
        raise RecipeError(problems[0], hint=hint, problems=problems)
    recipe._source = str(path) if path else None
    return recipe


def flatten(data: Mapping[str, Any], *, keep_empty: bool = False) -> dict[str, Any]:
    """Nested tables as one level of dotted keys: ``{"hsk": {"keep_tokens": 10}}`` → ``{"hsk.keep_tokens": 10}``.

    Args:
        data: A recipe as nested mappings (a TOML document, ``Recipe.model_dump()``). Lists are values.
        keep_empty: Keep an empty table as one key whose value is ``{}`` (a recipe file's ``[foo]`` with no keys
            still reaches validation, so an unknown empty table is reported); by default it holds no key.

    Returns:
        Dotted key → value, in the order of ``data``.
    """
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping) and (value or not keep_empty):
            flat.update({f"{key}.{inner}": item for inner, item in flatten(value, keep_empty=keep_empty).items()})
        else:
            flat[str(key)] = value
    return flat


def recipe_to_toml(recipe: Recipe) -> str:
    """The fully resolved recipe as TOML text, valid to run again from anywhere.

    None values are omitted (TOML has no null); paths are written absolute (a relative one was relative to the
    working directory, and the file would resolve it against its own folder); command-line-only keys
    (``output.overwrite``) are left out, since a recipe file may not set them.
    """
    import tomli_w

    data = recipe.model_dump(mode="json", exclude_none=True)
    for key, kind in path_keys().items():
        section, _, name = key.partition(".")
        if isinstance(data.get(section, {}).get(name), str):
            data[section][name] = resolve_path(data[section][name], kind, ".")
    for key in COMMAND_LINE_ONLY:
        section, _, name = key.partition(".")
        data.get(section, {}).pop(name, None)
    return tomli_w.dumps(data)


def recipe_fields() -> list[tuple[str, str, str]]:
    """Every recipe key as ``(dotted key, default, description)``, for help screens and ``recipe show``."""
    rows: list[tuple[str, str, str]] = []
    for section_name, section_field in Recipe.model_fields.items():
        annotation = section_field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for name, field in annotation.model_fields.items():
                default = field.get_default(call_default_factory=True)
                rows.append((f"{section_name}.{name}", repr(default), field.description or ""))
        else:
            rows.append((section_name, repr(section_field.default), section_field.description or ""))
    return rows
