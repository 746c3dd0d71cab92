"""The ``[search]`` table of a recipe: how ``mudkd search`` looks for the smallest sufficient budget (pure Python).

Any recipe can be searched as it is; a ``[search]`` table (read only by ``mudkd search``; other commands take the
recipe without it) sets the defaults of the command's flags::

    [search]
    tolerance = 0.5          # points (metric x 100) a budget may fall short of full HSK
    seeds = 3                # seeds of every point measured (the i-th seed shared, for paired tests)
    max_runs = 20            # the most trainings in all (default: what the search can need)
    axes = "3d"              # default ladder: 3d | depth | length | width
    ladder = ["1l_4t_0.1h", "1l_8t_0.5h", "2l_16t_1h"]   # or your own ladder ({K}l_{k}t_{rho}h strings)
    output_dir = "runs/search"   # relative to the recipe file (default: ./outputs/<recipe name>-search)

Flags and ``--set search.KEY=VALUE`` override the table; ``--set`` with any other key sets the recipe.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from mudkd.errors import BudgetError, RecipeError
from mudkd.knowledge.schemes import CONFIG_3D_HINT, parse_config_3d
from mudkd.recipe.load import build_recipe, locate_recipe, read_toml, resolve_path
from mudkd.recipe.overrides import parse_sets, set_dotted, split_overrides, validate
from mudkd.recipe.schema import LOCAL_PATH, MAX_SEED, Recipe, Section

#: The most seeds per point (each seed is a training run).
MAX_SEEDS = 20
#: The most runs one search may be allowed.
MAX_RUNS = 10_000


class SearchSettings(Section):
    """The search's settings: tolerance, seeds, run cap, ladder and output directory."""

    tolerance: float = Field(
        0.5, ge=0, le=100, description="Points (dev metric x 100) a budget may fall short of full HSK."
    )
    seeds: int = Field(
        3, ge=1, le=MAX_SEEDS, description="Seeds of every point measured (shared across points: paired tests)."
    )
    max_runs: int | None = Field(
        None, ge=1, le=MAX_RUNS, description="The most trainings in all (default: the most the search can need)."
    )
    axes: Literal["3d", "depth", "length", "width"] = Field(
        "3d", description="The default ladder: joint 3D budgets, or one axis with the recipe's other two."
    )
    ladder: list[str] | None = Field(
        None, description="Your own ladder of budgets '{K}l_{k}t_{rho}h' (replaces the default one)."
    )
    output_dir: str | None = Field(
        None, description="Where the search writes (relative to the recipe file).", json_schema_extra=LOCAL_PATH
    )

    @field_validator("ladder")
    @classmethod
    def _ladder(cls, values: list[str] | None) -> list[str] | None:
        if values is None:
            return None
        if not values:
            raise ValueError("an empty ladder: give at least one budget, e.g. ['1l_10t_0.1h']")
        bad = []
        for text in values:
            try:
                parse_config_3d(text)
            except BudgetError:
                bad.append(text)
        if bad:
            raise ValueError(f"{CONFIG_3D_HINT} (got {bad})")
        return [text.strip() for text in values]


def first_seed(recipe: Recipe) -> int:
    """The first seed of a search: the recipe's ``training.seed`` (then +1, +2, ...)."""
    return recipe.training.seed


def seeds_of(recipe: Recipe, count: int) -> list[int]:
    """The seeds of a search, ``training.seed`` and the next ``count - 1`` (wrapping at the seed range)."""
    return [(first_seed(recipe) + i) % (MAX_SEED + 1) for i in range(count)]


def owns_search_key(key: str) -> bool:
    """Whether a dotted override sets the search (``search.tolerance``) rather than the recipe."""
    return key.startswith("search.")


def read_search(
    path: str | Path, *, sets: Iterable[str] | Mapping[str, Any] | None = None, flags: Mapping[str, Any] | None = None
) -> tuple[Recipe, SearchSettings]:
    """The recipe (without its ``[search]`` table) and the validated search settings.

    Args:
        path: The recipe file, or a shipped recipe's name.
        sets: ``--set`` overrides (strings or typed): ``search.KEY`` sets the search, the others the recipe.
        flags: Typed ``search.KEY`` overrides from the command's flags (None: not given); they win over the table
            and ``--set``.

    Raises:
        RecipeError: Every problem of the recipe or of the search settings.
    """
    located = locate_recipe(path)
    data = read_toml(located)
    table = data.get("search", {})
    if not isinstance(table, dict):
        raise RecipeError(f"{located}: search: must be a table ([search])", hint="see 'mudkd search --help'")
    table = dict(table)
    if isinstance(table.get("output_dir"), str) and table["output_dir"]:
        table["output_dir"] = resolve_path(table["output_dir"], "local", located.parent)
    search_sets, recipe_sets = split_overrides(parse_sets(sets), owns_search_key)
    given = {key: value for key, value in (flags or {}).items() if value is not None}
    for key, value in {**search_sets, **given}.items():
        set_dotted(table, key.removeprefix("search."), value)
    settings, problems = validate(SearchSettings, table, str(located), prefix=("search",))
    try:
        recipe = build_recipe(located, sets=recipe_sets, ignore=("search",))
        if pipeline_models := _pipeline_models(recipe, located):
            recipe = build_recipe(located, sets={**pipeline_models, **recipe_sets}, ignore=("search",))
    except RecipeError as error:
        problems = [*problems, *error.problems]
        recipe = None
    if problems or settings is None or recipe is None:
        raise RecipeError(problems[0], hint="see 'mudkd search --help' and 'mudkd recipe show'", problems=problems)
    return recipe, settings


def _pipeline_models(recipe: Recipe, located: Path) -> dict[str, str]:
    """A pipeline recipe (it fine-tunes ``teacher.pretrained`` and prunes the student itself) is searched on the
    models its pipeline wrote, as ``mudkd pipeline`` names them: ``<output.dir>/teacher`` and ``<output.dir>/student``
    (``outputs/<recipe name>`` when it sets no ``output.dir``). Run the pipeline first; explicit models win."""
    if recipe.teacher.model or recipe.student.model or not recipe.teacher.pretrained:
        return {}
    root = Path(recipe.output.dir or Path("outputs", located.stem))
    return {"teacher.model": str(root / "teacher"), "student.model": str(root / "student")}
