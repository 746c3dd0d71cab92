"""``mudkd recipe list``, ``show`` and ``validate``: shipped recipes, a resolved recipe, checked recipe files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mudkd.cli import common as c
from mudkd.cli import options as o
from mudkd.errors import RecipeError
from mudkd.recipe import Recipe, build_recipe, recipe_fields
from mudkd.recipe.load import flatten, shipped_recipes
from mudkd.recipe.validate import FileCheck, check_file

LIST_EPILOG = """Examples:

  $ mudkd recipe list

  $ mudkd pipeline quickstart --dry-run

  $ mudkd recipe show glue_rosita_3d
"""

SHOW_EPILOG = """Examples:

  $ mudkd recipe show

  $ mudkd recipe show recipes/glue_rosita.toml --set hsk.config_3d=1l_10t_0.1h

  $ mudkd recipe show recipes/quickstart.toml --json
"""

VALIDATE_EPILOG = """Examples:

  $ mudkd recipe validate recipe.toml

  $ mudkd recipe validate recipes/*.toml

  $ mudkd recipe validate sweep_sst2_minilm --json
"""

recipe_app = typer.Typer(
    help="List, show and validate recipes (the TOML files every command reads).",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode="rich",
)


def _text(value: Any) -> str:
    """A value as it would be written in TOML ("unset" for None)."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "[" + ", ".join(_text(item) for item in value) + "]"
    return repr(value)


def list_cli(json_: o.JsonOpt = False) -> None:
    """List the recipes shipped with mudkd: name, summary and file.

    Every command takes a shipped recipe by name where it takes a recipe file (mudkd pipeline quickstart), also
    from a wheel install; an existing file of that name in the working directory wins.
    """
    recipes = shipped_recipes()
    if json_:
        c.emit_json({"recipes": [{"name": n, "path": str(p), "summary": s} for n, p, s in recipes]})
        return
    _print_shipped(recipes)


def _print_shipped(recipes: list[tuple[str, Path, str]]) -> None:
    from rich.table import Table

    table = Table(title="Shipped recipes", title_justify="left")
    table.add_column("name", no_wrap=True, style="bold")
    table.add_column("summary", ratio=1)
    for name, _, summary in recipes:
        table.add_row(_escape(name), _escape(summary))
    c.stdout_console().print(table)
    c.stdout_console().print(f"in {recipes[0][1].parent}" if recipes else "none found", highlight=False, markup=False)


def show_cli(recipe: o.RecipeArg = None, set_: o.SetOpt = None, json_: o.JsonOpt = False) -> None:
    """Show the resolved recipe: every key with its value, default and description.

    Resolves RECIPE (or the defaults alone) with the --set overrides, exactly as a command would, and validates it.
    Changed values are highlighted. With --json, prints the resolved recipe as one JSON document.
    """
    resolved = build_recipe(recipe, sets=set_)
    if json_:
        c.emit_json(resolved.model_dump(mode="json"))
        return
    _print_recipe(resolved, title=f"Recipe: {recipe or 'defaults'}")


#: Below this terminal width ``recipe show`` prints one block per key instead of a four-column table.
WIDE_TABLE_COLUMNS = 120


def _print_recipe(resolved: Recipe, *, title: str) -> None:
    """Every key: its value (highlighted when changed), its default and its description."""
    from rich.table import Table

    values = flatten(resolved.model_dump(mode="json"))
    defaults = flatten(Recipe.model_validate({}).model_dump(mode="json"))
    if c.stdout_console().width < WIDE_TABLE_COLUMNS:
        _print_recipe_blocks(values, defaults, title=title)
        return
    table = Table(title=title, title_justify="left")
    table.add_column("key", no_wrap=True, style="bold")
    table.add_column("value", overflow="fold", max_width=28)
    table.add_column("default", overflow="fold", max_width=28)
    table.add_column("description", ratio=1)
    for key, _, description in recipe_fields():
        changed = values.get(key) != defaults.get(key)
        value = _text(values.get(key))
        table.add_row(
            key,
            f"[bold yellow]{_escape(value)}[/]" if changed else _escape(value),
            _escape(_text(defaults.get(key))),
            _escape(description),
        )
    c.stdout_console().print(table)


def _print_recipe_blocks(values: dict[str, Any], defaults: dict[str, Any], *, title: str) -> None:
    """One block per key for narrow terminals: ``key = value`` (and the default when changed), then the
    description indented below, grouped by table."""
    from rich.padding import Padding

    console = c.stdout_console()
    console.print(f"[bold]{_escape(title)}[/]")
    section = None
    for key, _, description in recipe_fields():
        if "." in key and key.split(".")[0] != section:
            section = key.split(".")[0]
            console.print(f"\n[bold]\\[{section}][/]")
        value, default = _text(values.get(key)), _text(defaults.get(key))
        changed = values.get(key) != defaults.get(key)
        line = (
            f"[bold yellow]{_escape(key)} = {_escape(value)}[/] (default {_escape(default)})"
            if changed
            else (f"[bold]{_escape(key)}[/] = {_escape(value)}")
        )
        console.print(line, overflow="fold")
        console.print(Padding(f"[dim]{_escape(description)}[/]", (0, 0, 0, 4)))


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def validate_cli(
    recipes: Annotated[
        list[Path], typer.Argument(help="Recipe or sweep files (or shipped names) to check.", show_default=False)
    ],
    json_: o.JsonOpt = False,
) -> None:
    """Validate recipe and sweep files and report every problem in all of them.

    Checks the TOML syntax, unknown keys, types and ranges, the budget strings (hsk.config_3d,
    hsk.layer_scheme), and the data the recipe names: files and folders exist, the text and label columns are in
    the header (only the first line is read; data left to the command line is checked by --dry-run). A recipe's
    [search] table is checked as mudkd search reads it. A sweep file (base and [[grid]] or baselines) is checked
    as a sweep: its keys and seeds, its base recipe (and its data), and every point applied to the base. Exits
    with 2 if any file has a problem. Model-dependent limits (e.g. more kept layers than the student has) are
    checked when a command loads the models.
    """
    checks = {str(path): _check(path) for path in recipes}
    _render_checks(checks, json_)
    every = [problem for check in checks.values() for problem in check.problems]
    if every:
        invalid = sum(1 for check in checks.values() if check.problems)
        hint = f"{invalid} of {len(checks)} recipe(s) invalid; 'mudkd recipe show' lists every key"
        raise RecipeError(every[0], hint=hint, problems=every)


def _render_checks(checks: dict[str, FileCheck], json_: bool) -> None:
    """One JSON document, or an 'ok' line per valid file (problems go to stderr through the raised error)."""
    if json_:
        c.emit_json(
            {
                "recipes": [
                    {"path": p, "kind": check.kind, "valid": not check.problems, "problems": check.problems}
                    | ({"runs": check.runs} if check.runs is not None else {})
                    for p, check in checks.items()
                ]
            }
        )
        return
    for name, check in checks.items():
        if not check.problems:
            what = {"sweep": f" (sweep, {check.runs} runs)", "search": " (recipe with a [search] table)"}
            c.stdout_console().print(
                f"{name}: ok{what.get(check.kind, '')}", highlight=False, markup=False, soft_wrap=True
            )


def _check(path: Path) -> FileCheck:
    """The file's own checks (:func:`check_file`), then the data its recipe (a sweep's base) names."""
    from mudkd.core.datacheck import data_problems

    check = check_file(path)
    if check.recipe is not None:
        where = f"{path}: base" if check.kind == "sweep" else str(path)
        check.problems += [f"{where}: {problem}" for problem in data_problems(check.recipe.task, named_only=True)]
    return check


recipe_app.command("list", epilog=LIST_EPILOG)(list_cli)
recipe_app.command("show", epilog=SHOW_EPILOG)(show_cli)
recipe_app.command("validate", epilog=VALIDATE_EPILOG)(validate_cli)
