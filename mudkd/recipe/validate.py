"""``mudkd recipe validate``: a file's kind (a recipe, a recipe with a ``[search]`` table, a sweep) and its problems.

Every check needs no model and no data: the TOML, the schema (unknown keys, types, ranges), the budget strings;
for a sweep also its base recipe, its seeds and every point it expands to (each applied to the base recipe).
The data a recipe names is checked by the caller (``mudkd recipe validate``, :mod:`mudkd.core.datacheck`: it reads
files). Model-dependent limits (more kept layers than the student has) and the fair baseline's update count (which
reads the training set) are checked when ``mudkd sweep`` or ``mudkd search`` plans.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mudkd.errors import RecipeError
from mudkd.recipe.load import build_recipe, locate_recipe, read_toml
from mudkd.recipe.overrides import apply_overrides
from mudkd.recipe.schema import Recipe
from mudkd.recipe.search import read_search
from mudkd.recipe.sweep import expand_grid, read_sweep
from mudkd.recipe.wizard import recipe_problems


@dataclass
class FileCheck:
    """What a checked file is, what it holds (``runs`` of a sweep), and every problem found (empty: valid).

    ``recipe`` is the recipe that was built (a sweep's base), None when it could not be: the caller checks the
    data it names (:mod:`mudkd.core.datacheck`, which reads files).
    """

    kind: str
    problems: list[str] = field(default_factory=list)
    runs: int | None = None
    recipe: Recipe | None = None


def is_sweep(data: Mapping[str, Any]) -> bool:
    """A sweep file names a ``base`` recipe and has a ``[grid]``/``[[grid]]`` or ``baselines``; a recipe has
    neither key."""
    return "base" in data and ("grid" in data or "baselines" in data)


def check_file(path: str | Path) -> FileCheck:
    """Validate a recipe, a recipe with a ``[search]`` table, or a sweep file; collect every problem."""
    try:
        located = locate_recipe(path)
        data = read_toml(located)
    except RecipeError as error:
        return FileCheck("recipe", list(error.problems))
    if is_sweep(data):
        return check_sweep(located)
    kind = "search" if "search" in data else "recipe"
    try:
        recipe = read_search(located)[0] if kind == "search" else build_recipe(located)
    except RecipeError as error:
        return FileCheck(kind, list(error.problems))
    return FileCheck(kind, recipe_problems(recipe, source=str(path)), recipe=recipe)


def check_sweep(path: Path) -> FileCheck:
    """A sweep's plan-level checks: its schema and seeds, its base recipe, and every point applied to the base."""
    try:
        sweep = read_sweep(path)
    except RecipeError as error:
        return FileCheck("sweep", list(error.problems))
    try:
        base = build_recipe(sweep.base)
    except RecipeError as error:
        return FileCheck("sweep", [f"{path}: base: {problem}" for problem in error.problems])
    of_base = recipe_problems(base, source=sweep.base)
    problems = [f"{path}: base: {problem}" for problem in of_base]
    inherited = {problem.removeprefix(f"{sweep.base}: ") for problem in of_base}  # said once, for the base
    points = expand_grid(sweep)
    for point in points:
        where = f"{path}: point {point.group or point.id}"  # one line per point, not one per seed
        try:
            recipe = apply_overrides(base, point.overrides, where=where)
        except RecipeError as error:
            problems += error.problems
            continue
        found = recipe_problems(recipe, source=where)
        problems += [problem for problem in found if problem.removeprefix(f"{where}: ") not in inherited]
    return FileCheck("sweep", list(dict.fromkeys(problems)), runs=len(points), recipe=base)
