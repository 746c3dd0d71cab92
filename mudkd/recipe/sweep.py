"""Sweep recipes: a grid of knowledge budgets over one base recipe (pure Python, no torch).

A sweep file names a base recipe and one or more grid blocks. Each block is a cartesian product of its axes; the
blocks' points are concatenated (duplicates dropped), then the baselines are added::

    schema_version = 1
    base = "sweep_base_sst2.toml"    # relative to this file, like every path in a recipe file
    output_dir = "runs/sst2"         # optional, relative to this file too (-o DIR: to the working
                                     # directory); unset: mudkd sweep writes to ./outputs/<sweep file name>
    baselines = ["untrained", "no_hsk", "full_hsk"]
    seeds = [42, 43, 44]             # every point and baseline once per seed; tables show mean ± std

    [[grid]]                         # or a single [grid] table
    name = "length"
    keep_tokens = [4, 8, 16]
    token_scheme = ["left_first", "attention_no_sep"]

Every point becomes dotted recipe overrides (``hsk.keep_tokens = 8``...) applied on top of the base recipe. A
value of ``None`` in the overrides puts a key back to "unset" (e.g. the full-HSK baseline clears the budget).

With ``seeds`` every point (baselines included, except ``untrained``, which only evaluates) runs once per seed;
its runs have ids ``<point>-s<seed>`` and :attr:`Point.group` names the point they replicate. A grid block's own
``seed`` axis (the older way) gives the same ids.

A sweep has at most :data:`MAX_POINTS` runs, counted from the axis lengths before any point is made.
"""

from __future__ import annotations

import itertools
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from mudkd.errors import BudgetError, RecipeError
from mudkd.knowledge.schemes import (
    CONFIG_3D_HINT,
    SHORT_NAMES,
    HiddenScheme,
    TokenScheme,
    parse_config_3d,
    parse_layer_scheme,
)
from mudkd.recipe.load import build_recipe, locate_recipe, read_toml, resolve_path
from mudkd.recipe.overrides import apply_overrides, parse_sets, set_dotted, split_overrides, validate
from mudkd.recipe.schema import LOCAL_PATH, MAX_LAYERS, MAX_SEED, MAX_SEQ_LENGTH, Recipe, Section

SWEEP_SCHEMA_VERSION = 1
#: The most points one sweep may have (each point trains a student): a larger grid is refused before it is built.
MAX_POINTS = 10_000
KINDS = ("hsk", "no_hsk", "full_hsk", "untrained")
#: ``untrained``: the student evaluated on dev as it is (no training, no seed): the level distillation starts from.
BASELINES = ("untrained", "no_hsk", "full_hsk")

#: Grid axes, in the order they appear in point ids, and the recipe key each one sets.
AXES: dict[str, str] = {
    "config_3d": "hsk.config_3d",
    "keep_layers": "hsk.keep_layers",
    "keep_tokens": "hsk.keep_tokens",
    "keep_hidden": "hsk.keep_hidden",
    "layer_scheme": "hsk.layer_scheme",
    "token_scheme": "hsk.token_scheme",
    "hidden_scheme": "hsk.hidden_scheme",
    "seed": "training.seed",
}
BUDGET_AXES = ("config_3d", "keep_layers", "keep_tokens", "keep_hidden")
SCHEME_AXES = ("layer_scheme", "token_scheme", "hidden_scheme")
_DIMENSION_NAMES = {"config_3d": "3D", "keep_layers": "depth", "keep_tokens": "length", "keep_hidden": "width"}
_PREFIX = {"keep_layers": "K", "keep_tokens": "k", "keep_hidden": "h", "seed": "s"}

# ---------------------------------------------------------------------------------------------------------------
# Schema


def _parses(parser: Callable[[str], Any], text: str) -> bool:
    try:
        parser(text)
    except BudgetError:
        return False
    return True


class GridBlock(Section):
    """One cartesian grid: every combination of the listed values becomes a point."""

    name: str | None = Field(
        None, description="Series label in tables and plots (default: the dimension varied, e.g. 'length')."
    )
    config_3d: list[str] | None = Field(
        None, description="Joint budgets '{K}l_{k}t_{rho}h'; each sets keep_layers, keep_tokens and keep_hidden."
    )
    keep_layers: list[Annotated[int, Field(le=MAX_LAYERS)]] | None = Field(
        None, description="K values: top student layers with HSK (>= 1)."
    )
    keep_tokens: list[Annotated[int, Field(le=MAX_SEQ_LENGTH)]] | None = Field(
        None, description="k values: tokens per example with HSK (>= 1)."
    )
    keep_hidden: list[float] | None = Field(None, description="rho values: kept fraction of the width, in (0, 1].")
    layer_scheme: list[str] | None = Field(None, description="Depth mappings t_topN (e.g. t_top10, t_top12).")
    token_scheme: list[TokenScheme] | None = Field(
        None, description=f"Token schemes: {', '.join(TokenScheme.values())}."
    )
    hidden_scheme: list[HiddenScheme] | None = Field(
        None, description=f"Width schemes: {', '.join(HiddenScheme.values())}."
    )
    seed: list[Annotated[int, Field(ge=0, le=MAX_SEED)]] | None = Field(
        None, description="Seeds (replicates of every other combination)."
    )

    @model_validator(mode="before")
    @classmethod
    def _scalars_to_lists(cls, data: Any) -> Any:
        """A single value is a one-element axis: ``token_scheme = "attention"`` fixes the scheme for the block."""
        if isinstance(data, dict):
            return {k: [v] if k in AXES and not isinstance(v, list) else v for k, v in data.items()}
        return data

    @field_validator("keep_layers", "keep_tokens")
    @classmethod
    def _positive(cls, values: list[int] | None) -> list[int] | None:
        bad = [v for v in values or [] if v < 1]
        if bad:
            raise ValueError(f"values must be >= 1 (got {bad})")
        return values

    @field_validator("keep_hidden")
    @classmethod
    def _fraction(cls, values: list[float] | None) -> list[float] | None:
        bad = [v for v in values or [] if not 0 < v <= 1]
        if bad:
            raise ValueError(f"values must be in (0, 1] (got {bad})")
        return values

    @field_validator("layer_scheme")
    @classmethod
    def _layer_scheme(cls, values: list[str] | None) -> list[str] | None:
        bad = [v for v in values or [] if not _parses(parse_layer_scheme, v)]
        if bad:
            raise ValueError(f"use t_topN, e.g. t_top10 (got {bad})")
        return values

    @field_validator("config_3d")
    @classmethod
    def _config_3d(cls, values: list[str] | None) -> list[str] | None:
        bad = [v for v in values or [] if not _parses(parse_config_3d, v)]
        if bad:
            raise ValueError(f"{CONFIG_3D_HINT} (got {bad})")
        return [v.strip() for v in values] if values is not None else None

    @model_validator(mode="after")
    def _check_block(self) -> GridBlock:
        for axis in AXES:
            values = getattr(self, axis)
            if values is not None and not values:
                raise ValueError(f"{axis}: give at least one value")
            if values is not None and len(set(values)) != len(values):
                raise ValueError(f"{axis}: duplicate values {values}")
        if self.config_3d and any(getattr(self, axis) for axis in ("keep_layers", "keep_tokens", "keep_hidden")):
            raise ValueError("config_3d already sets keep_layers, keep_tokens and keep_hidden: use one or the other")
        if not any(getattr(self, axis) for axis in AXES):
            raise ValueError(f"an empty grid block (give at least one of {', '.join(AXES)})")
        return self

    def axes(self) -> list[str]:
        """The axes this block lists, in id order."""
        return [axis for axis in AXES if getattr(self, axis)]

    def size(self) -> int:
        """The number of points of this block: the product of its axis lengths (seeds included)."""
        return math.prod(len(getattr(self, axis)) for axis in self.axes())

    def series_name(self) -> str:
        """The block's dimension label: its name, or what it varies ('length', 'width', '3D', ...)."""
        if self.name:
            return self.name
        dimensions = [_DIMENSION_NAMES[axis] for axis in BUDGET_AXES if getattr(self, axis)]
        if len(dimensions) > 1:
            return "joint (" + "+".join(dimensions) + ")"
        return dimensions[0] if dimensions else "schemes"


class Sweep(Section):
    """A sweep: one base recipe, grid blocks of budgets/schemes, optional baselines, one output directory."""

    schema_version: int = Field(SWEEP_SCHEMA_VERSION, ge=1, description="Sweep format version.")
    base: str = Field(description="Base recipe (TOML), relative to the sweep file; every point starts from it.")
    grid: list[GridBlock] = Field(
        default_factory=list, description="A [grid] table, or several [[grid]] blocks (each a cartesian product)."
    )
    baselines: list[Literal["untrained", "no_hsk", "full_hsk"]] = Field(
        default_factory=list,
        description="Reference runs: 'untrained' (the student evaluated as it is, no training), 'no_hsk' "
        "(prediction distillation only, see fair_baseline) and 'full_hsk' (all layers, tokens and width, teacher "
        "online).",
    )
    seeds: list[Annotated[int, Field(ge=0, le=MAX_SEED)]] | None = Field(
        None,
        description="Run every point and the no_hsk/full_hsk baselines once per seed (sets training.seed); "
        "tables and plots show mean ± std over the seeds. Unset: one run per point at the base recipe's seed.",
    )
    fair_baseline: bool = Field(
        True,
        description="no_hsk trains prediction-only for as many updates as an HSK point's HSK + prediction "
        "stages together, with a 10 % warm-up (the reference's protocol); false: the base recipe's prediction "
        "stage as it is.",
    )
    output_dir: str | None = Field(
        None,
        description="Where points, results and plots are written, relative to the sweep file (default for "
        "'mudkd sweep FILE': outputs/<sweep file name> in the working directory).",
        json_schema_extra=LOCAL_PATH,
    )
    teacher_free: bool = Field(
        True, description="Run the teacher once into a store that serves every point (false: teacher online)."
    )

    _source: str = PrivateAttr("sweep")

    @model_validator(mode="before")
    @classmethod
    def _table_to_list(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("grid"), dict):
            return {**data, "grid": [data["grid"]]}
        return data

    @model_validator(mode="after")
    def _check(self) -> Sweep:
        if self.schema_version > SWEEP_SCHEMA_VERSION:
            raise ValueError(f"schema_version {self.schema_version} is newer than this mudkd ({SWEEP_SCHEMA_VERSION})")
        if len(set(self.baselines)) != len(self.baselines):
            raise ValueError(f"baselines: duplicate entries {self.baselines}")
        if not self.grid and not self.baselines:
            raise ValueError("nothing to run: give a [grid] and/or baselines")
        if self.seeds is not None:
            if not self.seeds:
                raise ValueError("seeds: give at least one seed (or drop the key: one run per point)")
            if len(set(self.seeds)) != len(self.seeds):
                raise ValueError(f"seeds: duplicate values {self.seeds}")
            blocks = [str(index + 1) for index, block in enumerate(self.grid) if block.seed]
            if blocks:
                raise ValueError(
                    f"seeds is set for the whole sweep and grid block {', '.join(blocks)} lists its own seed axis: "
                    "keep one of them"
                )
        return self

    @property
    def source(self) -> str:
        """The sweep file (for messages)."""
        return self._source

    def size(self) -> int:
        """The number of runs before duplicates are dropped: (replicated baselines plus every block's size) times
        the seeds, plus ``untrained``. Arithmetic only, so a grid of a million points is counted without being
        built."""
        replicated = len([b for b in self.baselines if b != "untrained"]) + sum(block.size() for block in self.grid)
        return replicated * len(self.seeds or [None]) + ("untrained" in self.baselines)

    def check_size(self) -> None:
        """Refuse a sweep of more than :data:`MAX_POINTS` points (before any point is built).

        Raises:
            RecipeError: With the count.
        """
        count = self.size()
        if count > MAX_POINTS:
            raise RecipeError(
                f"{self.source}: grid: {count:,} points, more than the {MAX_POINTS:,} a sweep may have",
                hint="use fewer values per axis, or split the grid into several sweep files",
            )


# ---------------------------------------------------------------------------------------------------------------
# Reading


def owns_sweep_key(key: str) -> bool:
    """Whether a dotted override sets the sweep (``output_dir``, ``grid.keep_tokens``) rather than its base recipe."""
    return key.split(".")[0] in Sweep.model_fields


def read_sweep(
    path: str | Path, *, sets: Iterable[str] | Mapping[str, Any] | None = None, flags: Mapping[str, Any] | None = None
) -> Sweep:
    """Read and validate a sweep file; ``base`` is resolved relative to the file.

    Args:
        path: The sweep TOML file, or the name of a shipped sweep (``sweep_sst2_minilm``).
        sets: ``--set`` overrides (strings or typed); only sweep keys are applied (:func:`owns_sweep_key`).
        flags: Typed overrides from the command's flags (None: not given); sweep keys win over ``sets``.

    Raises:
        RecipeError: With every problem found, one per line, each naming the file and the key.
    """
    path = locate_recipe(path)  # a file, or the name of a shipped sweep
    data = read_toml(path)
    if isinstance(data.get("output_dir"), str) and data["output_dir"]:
        # a path in the file is relative to the file; one from --set / -o stays relative to the working directory
        data["output_dir"] = resolve_path(data["output_dir"], "local", path.parent)
    given = {**parse_sets(sets), **{key: value for key, value in (flags or {}).items() if value is not None}}
    for key, value in split_overrides(given, owns_sweep_key)[0].items():
        set_dotted(data, key, value)
    grid_was_table = isinstance(data.get("grid"), dict)
    sweep, problems = validate(Sweep, data, str(path))
    if grid_was_table:  # a single [grid] table is block 0 of the list: name it as the file does
        problems = [re.sub(r": grid\.0(?=[.:])", ": grid", problem, count=1) for problem in problems]
    base_value = data.get("base")
    base_path = path.parent / os.path.expanduser(base_value) if isinstance(base_value, str) else path
    if isinstance(base_value, str) and not base_path.is_file():
        problems.append(f"{path}: base: base recipe not found ({base_path})")
    if problems or sweep is None:
        raise RecipeError(
            problems[0],
            hint="see the commented example recipes/sweep_sst2_minilm.toml for every key",
            problems=problems,
        )
    sweep.base = str(base_path)
    sweep._source = str(path)
    sweep.check_size()
    return sweep


# ---------------------------------------------------------------------------------------------------------------
# Points


@dataclass(frozen=True)
class Point:
    """One run of a sweep.

    Attributes:
        id: Stable, filesystem-safe slug of the settings, e.g. ``k10-attnosep``, ``1l_10t_0.1h`` or, one seed of
            a replicated point, ``1l_10t_0.1h-s42``.
        kind: ``hsk`` (a grid point), ``no_hsk``, ``full_hsk`` or ``untrained`` (baselines).
        settings: The grid values of this point, e.g. ``{"keep_tokens": 10, "token_scheme": "attention_no_sep"}``.
        overrides: Dotted recipe keys to set on the base recipe (``None`` = unset).
        series: The curve this point belongs to in tables and plots, e.g. ``length · attention_no_sep``.
        group: The point this run replicates (its id without the seed); tables average the runs of a group.
        seed: The seed the sweep sets for this run (``seeds`` or a grid ``seed`` axis); None: the base's seed.
    """

    id: str
    kind: str
    settings: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    series: str = ""
    group: str = ""
    seed: int | None = None

    @property
    def sets(self) -> list[str]:
        """The overrides as ``--set`` strings (an unset key shows as ``key=unset``)."""
        return [f"{key}={_literal(value)}" for key, value in self.overrides.items()]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "point": self.group or self.id,
            "kind": self.kind,
            "series": self.series,
            "seed": self.seed,
            "settings": dict(self.settings),
            "overrides": self.sets,
        }


def group_id(point_id: str, kind: str, settings: Mapping[str, Any]) -> str:
    """The point a run replicates: its id without the seed (``k4-s1`` → ``k4``, ``no_hsk-s42`` → ``no_hsk``).

    Reads records written before runs carried their group too (``result.json`` of older sweeps).
    """
    if kind == "hsk" and "seed" in settings:
        return _slug({axis: value for axis, value in settings.items() if axis != "seed"}) or point_id
    if kind in BASELINES:
        return kind
    return point_id


def _literal(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_literal(item) for item in value) + "]"
    return format(value, "g") if isinstance(value, float) else str(value)


def _slug(settings: Mapping[str, Any]) -> str:
    parts = []
    for axis in AXES:
        if axis not in settings:
            continue
        value = settings[axis]
        if isinstance(value, float):
            text = format(value, "g")
        else:
            text = SHORT_NAMES.get(str(value), str(value))
        parts.append(f"{_PREFIX.get(axis, '')}{text}")
    return "-".join(parts)


def _overrides(settings: Mapping[str, Any]) -> dict[str, Any]:
    overrides: dict[str, Any] = {AXES[axis]: value for axis, value in settings.items()}
    if "keep_layers" in settings or "config_3d" in settings:
        # an explicit layer list in the base would contradict the grid's K
        overrides |= {"hsk.student_layers": None, "hsk.teacher_layers": None}
    if "layer_scheme" in settings:
        overrides["hsk.teacher_layers"] = None
    return overrides


FULL_HSK_OVERRIDES: dict[str, Any] = {
    "hsk.config_3d": None,
    "hsk.keep_layers": None,
    "hsk.student_layers": None,
    "hsk.teacher_layers": None,
    "hsk.keep_tokens": None,
    "hsk.keep_hidden": 1.0,
}


def expand_grid(sweep: Sweep) -> list[Point]:
    """Every run of the sweep: ``untrained`` first, then, for each seed, the other baselines and each grid block's
    cartesian product in file order.

    Points with identical settings (from different blocks) are kept once, in the first block's series. With
    ``seeds`` the runs are seed-major (every point at the first seed, then every point at the second, ...), so an
    interrupted sweep has whole curves, not a few points with every seed.

    Raises:
        RecipeError: The sweep has more than :data:`MAX_POINTS` points.
    """
    sweep.check_size()
    points: list[Point] = []
    if "no_hsk" in sweep.baselines:
        points.append(Point("no_hsk", "no_hsk", {}, {}, "no HSK", "no_hsk"))
    if "full_hsk" in sweep.baselines:
        points.append(Point("full_hsk", "full_hsk", {}, dict(FULL_HSK_OVERRIDES), "full HSK", "full_hsk"))
    seen = {point.id for point in points}
    for block in sweep.grid:
        axes = block.axes()
        for values in itertools.product(*(getattr(block, axis) for axis in axes)):
            settings = dict(zip(axes, values, strict=True))
            point_id = _slug(settings)
            if point_id in seen:
                continue
            seen.add(point_id)
            schemes = [str(settings[axis]) for axis in SCHEME_AXES if axis in settings]
            series = block.series_name() + (" · " + ", ".join(schemes) if schemes else "")
            group = group_id(point_id, "hsk", settings)
            points.append(Point(point_id, "hsk", settings, _overrides(settings), series, group, settings.get("seed")))
    if sweep.seeds:
        points = [
            Point(
                f"{point.id}-s{seed}",
                point.kind,
                {**point.settings, "seed": seed},
                {**point.overrides, "training.seed": seed},
                point.series,
                point.id,
                seed,
            )
            for seed in sweep.seeds
            for point in points
        ]
    if "untrained" in sweep.baselines:  # one dev evaluation: no training, so no seed
        points.insert(0, Point("untrained", "untrained", {}, {}, "pruned, untrained", "untrained"))
    return points


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``--shard i/n`` (shards are numbered 1..n)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if match is None:
        raise RecipeError(f"--shard {text!r}: expected i/n, e.g. 1/4", hint="shards are numbered 1..n")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 1 <= index <= count:
        raise RecipeError(
            f"--shard {text}: i must be between 1 and n (got {index}/{count})",
            hint="shards are numbered 1..n, e.g. --shard 1/4 ... --shard 4/4",
        )
    return index, count


def shard(points: list[Point], index: int, count: int) -> list[Point]:
    """Shard ``index`` of ``count`` (1-based), round-robin over the grid order: disjoint and complete."""
    if count < 1 or not 1 <= index <= count:
        raise RecipeError(f"shard {index}/{count}: i must be between 1 and n", hint="shards are numbered 1..n")
    return points[index - 1 :: count]


# ---------------------------------------------------------------------------------------------------------------
# Point recipes


def make_recipe_builder(
    sweep: Sweep, sets: Iterable[str] | Mapping[str, Any] | None = None, flags: Mapping[str, Any] | None = None
) -> Callable[[Mapping[str, Any]], Recipe]:
    """Validate the base recipe (with the recipe keys of ``flags`` and ``sets``) and return ``overrides -> Recipe``.

    Raises:
        RecipeError: If the base recipe is invalid (every problem, naming the base file).
    """
    base = build_recipe(
        sweep.base,
        flags=split_overrides(flags or {}, owns_sweep_key)[1],
        sets=split_overrides(parse_sets(sets), owns_sweep_key)[1],
    )

    def build(overrides: Mapping[str, Any]) -> Recipe:
        return apply_overrides(base, overrides)

    return build
