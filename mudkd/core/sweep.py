"""Budget sweeps: many HSK budgets, one teacher pass, one results table and the marginal-utility curve.

``run`` expands a sweep (:mod:`mudkd.recipe.sweep`) into points, resolves every point's knowledge budget, and plans
the teacher-free store(s): one store at the smallest budget that serves every point (the union of the kept layer
pairs, the largest k, and a width that covers every point's width). Points that no single store can serve (e.g.
different token rankings) are grouped, one store per group. The teacher therefore runs once per store — once per
sweep unless the grid mixes token rankings — and never while the points train (except the ``full_hsk`` baseline,
whose knowledge is as big as the teacher's and is distilled online).

Layout of ``output_dir``::

    sweep.json                   the sweep, its points (in order) and stores
    store[-group]/               the teacher-free store(s), reused when the sweep is rerun
    points/<id>/hsk/             the HSK-distilled student of the point
    points/<id>/pred/            its final student (prediction distillation)
    points/<id>/result.json      written atomically when the point finishes; its presence means "done"
    results.csv, results.json    one row/record per finished point
    marginal_utility.png         dev metric against the HSK fraction (log x), baselines as horizontal lines

A rerun skips points with a ``result.json`` whose recipe is unchanged and restarts any other point from scratch,
so a sweep survives any interruption (``kill -9`` included). ``--shard i/n`` runs every n-th point; shards write
the same layout, and :func:`merge` combines their directories.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mudkd.core.outputs import (
    check_no_overlap,
    output_lock,
    read_marker,
    staging_path,
    write_json_atomic,
    write_marker,
    write_text_atomic,
)
from mudkd.core.training import RunEvents
from mudkd.errors import BudgetError, RecipeError, StoreError
from mudkd.knowledge import KnowledgeBudget, ModelShape, budget_from_recipe, budget_summary, can_serve
from mudkd.knowledge.schemes import SHORT_NAMES, StoreDtype
from mudkd.knowledge.serving import (
    LOGITS_ONLY_OVERRIDES,
    covering_overrides,
    needs_magnitude_check,
    stored_slots,
    token_key,
)
from mudkd.recipe.schema import Recipe
from mudkd.recipe.sweep import Point, Sweep, apply_overrides, expand_grid
from mudkd.recipe.sweep import shard as shard_points

RESULT_FILE = "result.json"
SWEEP_FILE = "sweep.json"
PLOT_FILE = "marginal_utility.png"
RecipeBuilder = Callable[[Mapping[str, Any]], Recipe]

#: Recipe keys that do not change a point's result (paths the sweep sets, devices, workers).
_HASH_EXCLUDED = {
    "hsk": ("output_dir", "hsk_store"),
    "pred": ("output_dir", "logits_store"),
    "cache": ("output_dir", "batch_size", "chunk_size"),
    "training": ("device", "dataloader_num_workers", "eval_batch_size", "logging_steps"),
    "output": ("dir", "overwrite"),
    "finetune": ("output_dir",),
    "score": ("output_dir",),
    "prune": ("output_dir", "scores"),
}


class SweepEvents(RunEvents):
    """Progress of a sweep. Stage events (steps, evals) of the running point arrive through :class:`RunEvents`."""

    def on_sweep_start(self, rows: list[dict[str, Any]], skipped: list[str]) -> None:
        """The points of this run (plan rows, see :meth:`PlannedPoint.row`); ``skipped`` are already done."""

    def on_point_start(self, point_id: str, stage: str) -> None:
        """A point enters a stage (``hsk`` or ``pred``)."""

    def on_point_end(self, record: dict[str, Any]) -> None:
        """A point finished; ``record`` is its ``result.json``."""


# ---------------------------------------------------------------------------------------------------------------
# Plan


@dataclass
class PlannedPoint:
    """A point with its resolved recipe and knowledge budget (None for ``no_hsk``)."""

    point: Point
    recipe: Recipe
    budget: KnowledgeBudget | None
    recipe_hash: str
    store: str | None = None

    @property
    def id(self) -> str:
        return self.point.id

    def row(self) -> dict[str, Any]:
        """The point as a plan row: id, kind, series, settings, budget and HSK fraction."""
        budget = self.budget
        return {
            "id": self.id,
            "kind": self.point.kind,
            "series": self.point.series,
            "settings": dict(self.point.settings),
            "budget": describe_budget(budget) if budget else "none (prediction distillation only)",
            "hsk_fraction": budget.hsk_fraction if budget else 0.0,
            "elements_per_example": budget.elements_per_example if budget else 0,
            "keep_layers": budget.keep_layers if budget else 0,
            "keep_tokens": budget.keep_tokens if budget else 0,
            "keep_hidden": budget.keep_hidden if budget else 0.0,
            "store": self.store,
            "overrides": self.point.sets,
        }


@dataclass
class PlannedStore:
    """A teacher-free store the sweep builds (or was given) and the points it serves."""

    name: str
    path: Path
    budget: KnowledgeBudget
    overrides: dict[str, Any]
    points: list[str]
    given: bool = False
    note: str = ""

    def row(self, dtype: str = StoreDtype.FLOAT16.value, num_examples: int | None = None) -> dict[str, Any]:
        summary = budget_summary(self.budget, num_examples, dtype)
        return {
            "name": self.name,
            "path": str(self.path),
            "budget": describe_budget(self.budget),
            "hsk_fraction": self.budget.hsk_fraction,
            "bytes_per_example": summary["bytes_per_example"],
            "bytes": summary["train_set_bytes"],
            "points": list(self.points),
            "given": self.given,
            "note": self.note,
        }


@dataclass
class SweepPlan:
    """Everything a sweep will do, resolved and validated, before anything is written."""

    sweep: Sweep
    output_dir: Path
    points: list[PlannedPoint]
    selected: list[str]
    stores: list[PlannedStore]
    shard: tuple[int, int] | None = None
    notes: list[str] = field(default_factory=list)
    logits_store: str | None = None

    def selected_points(self) -> list[PlannedPoint]:
        chosen = set(self.selected)
        return [planned for planned in self.points if planned.id in chosen]

    def needed_stores(self, points: Sequence[PlannedPoint]) -> list[PlannedStore]:
        """The stores ``points`` read: their own, and the first one for the baselines' logits."""
        names = {p.store for p in points if p.store}
        if self.stores and any(p.point.kind != "hsk" for p in points):
            names.add(self.stores[0].name)
        return [store for store in self.stores if store.name in names]

    def logits_for(self, planned: PlannedPoint) -> str | None:
        """Where a point's prediction stage reads the teacher's logits (None: the teacher runs online)."""
        if planned.store and not self.stores[0].given:
            return str(next(s.path for s in self.stores if s.name == planned.store))
        return self.logits_store

    def to_dict(self) -> dict[str, Any]:
        dtype = self.points[0].recipe.cache.dtype if self.points else StoreDtype.FLOAT16.value
        done = {p.id for p in self.points if (self.output_dir / "points" / p.id / RESULT_FILE).is_file()}
        return {
            "output_dir": str(self.output_dir),
            "shard": f"{self.shard[0]}/{self.shard[1]}" if self.shard else None,
            "teacher_free": self.sweep.teacher_free,
            "points": [{**p.row(), "done": p.id in done} for p in self.selected_points()],
            "stores": [store.row(dtype, _count_examples(self.points)) for store in self.stores],
            "notes": list(self.notes),
        }


def describe_budget(budget: KnowledgeBudget) -> str:
    """A one-line budget: ``K=1 (s6→t10) k=10/64 attention_no_sep ρ=0.1 mag``."""
    pairs = ",".join(f"{s}→{t}" for s, t in zip(budget.student_layers, budget.teacher_layers, strict=True))
    tokens = f"k={budget.keep_tokens}/{budget.max_seq_length}"
    if budget.token_selection_active:
        tokens += f" {budget.token_scheme}"
    width = "ρ=1"
    if budget.width_active:
        width = f"ρ={budget.keep_hidden:g} {SHORT_NAMES[budget.hidden_scheme]}"
    return f"K={budget.keep_layers} ({pairs}) {tokens} {width}"


def _recipe_hash(recipe: Recipe) -> str:
    data = recipe.model_dump(mode="json")
    for section, keys in _HASH_EXCLUDED.items():
        for key in keys:
            data.get(section, {}).pop(key, None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _count_examples(points: Sequence[PlannedPoint]) -> int | None:
    if not points:
        return None
    from mudkd.core.data import count_train_examples

    return count_train_examples(points[0].recipe)


def _model_shapes(base: Recipe, given_store: Any) -> dict[str, ModelShape]:
    """Student and teacher shapes (the teacher's label count included), from config files or a given store."""
    from mudkd.core.models import read_shape

    student = read_shape(base.student.model, "student")
    if given_store is not None:
        stored = KnowledgeBudget.from_dict(given_store.meta["budget"])
        teacher = ModelShape(stored.num_teacher_layers, stored.teacher_hidden, stored.num_labels)
    else:
        teacher = read_shape(base.teacher.model, "teacher")
    return {"student": student, "teacher": teacher}


def _budget(recipe: Recipe, shapes: Mapping[str, ModelShape]) -> KnowledgeBudget:
    return budget_from_recipe(
        recipe,
        num_student_layers=shapes["student"].layers,
        num_teacher_layers=shapes["teacher"].layers,
        teacher_hidden=shapes["teacher"].hidden,
        num_labels=shapes["teacher"].num_labels,
    )


def plan(sweep: Sweep, base_recipe_builder: RecipeBuilder, *, shard: tuple[int, int] | None = None) -> SweepPlan:
    """Resolve every point and the store(s) that serve them; validate everything; write nothing.

    Args:
        sweep: The validated sweep.
        base_recipe_builder: ``overrides -> Recipe`` (see :func:`mudkd.recipe.sweep.make_recipe_builder`).
        shard: ``(i, n)``: plan only every n-th point, starting with the i-th (1-based).

    Raises:
        RecipeError: Every point whose settings or budget do not fit, or that the given store cannot serve.
        CheckpointError: A missing teacher or student.
    """
    if not sweep.output_dir:
        raise RecipeError(
            f"{sweep.source}: output_dir: the sweep needs an output directory",
            hint="set output_dir in the sweep file or pass --output-dir DIR",
        )
    output_dir = Path(sweep.output_dir)
    base = base_recipe_builder({})
    given_path = base.hsk.hsk_store if sweep.teacher_free else None
    given_store = None
    if given_path:
        from mudkd.core.store import HskStore

        given_store = HskStore.open(given_path, verify=False)
    shapes = _model_shapes(base, given_store)

    problems: list[str] = []
    planned: list[PlannedPoint] = []
    for point in expand_grid(sweep):
        try:
            recipe = base_recipe_builder(point.overrides)
            budget = _budget(recipe, shapes) if point.kind != "no_hsk" else None
        except RecipeError as error:
            problems += [f"{sweep.source}: point {point.id}: {problem}" for problem in error.problems]
            continue
        except BudgetError as error:
            problems.append(f"{sweep.source}: point {point.id}: {error.message}")
            continue
        planned.append(PlannedPoint(point, recipe, budget, _recipe_hash(recipe)))
    if any(p.point.kind == "full_hsk" for p in planned) and not base.teacher.model:
        problems.append(f"{sweep.source}: baselines: full_hsk runs the teacher online and needs teacher.model")
    if problems:
        raise RecipeError(
            problems[0], hint="fix the grid values, or the base recipe they start from", problems=problems
        )

    notes: list[str] = []
    stores: list[PlannedStore] = []
    if sweep.teacher_free and given_store is not None:
        stores = [_given_store(given_store, planned, sweep)]
    elif sweep.teacher_free:
        stores = _plan_stores(planned, base, shapes, output_dir, notes)
    for store in stores:
        for planned_point in planned:
            if planned_point.id in store.points:
                planned_point.store = store.name

    points = [p.point for p in planned]
    selected = [p.id for p in (points if shard is None else shard_points(points, *shard))]
    logits_store = None
    if given_store is not None:
        logits_store = base.pred.logits_store or str(given_store.directory)
    elif stores:
        logits_store = str(stores[0].path)  # every store holds the teacher's logits; baselines read the first
    return SweepPlan(sweep, output_dir, planned, selected, stores, shard, notes, logits_store)


def _given_store(store: Any, planned: list[PlannedPoint], sweep: Sweep) -> PlannedStore:
    """The base recipe's ``hsk.hsk_store``: check it serves every HSK point (the teacher never runs)."""
    stored = KnowledgeBudget.from_dict(store.meta["budget"])
    problems = []
    served = []
    for planned_point in planned:
        if planned_point.point.kind != "hsk":
            continue
        assert planned_point.budget is not None
        servable, reason = can_serve(stored, planned_point.budget)
        if servable:
            reason = _magnitude_shortfall(store, stored, planned_point.budget) or ""
        if reason:
            problems.append(
                f"{sweep.source}: point {planned_point.id}: the store {store.directory} cannot serve it: {reason}"
            )
        served.append(planned_point.id)
    if problems:
        raise RecipeError(
            problems[0],
            hint="drop hsk.hsk_store from the base recipe (the sweep then builds a store that serves every point), "
            "or remove those points from the grid",
            problems=problems,
        )
    return PlannedStore(
        "store", Path(store.directory), stored, {}, served, given=True, note="given by the base recipe (hsk.hsk_store)"
    )


def _magnitude_shortfall(store: Any, stored: KnowledgeBudget, wanted: KnowledgeBudget) -> str | None:
    """For a Mag store read with fewer tokens: the first example lacking n' stored values in its first k' tokens.

    This is the check :func:`mudkd.core.hsk.unpack_targets` makes at load time, done over the whole store up front.
    """
    if not needs_magnitude_check(stored, wanted):
        return None
    import numpy as np

    limit = wanted.keep_tokens * wanted.teacher_hidden
    slots = stored_slots(stored, wanted)
    for first in range(0, len(store), 4096):
        positions = store.get(np.arange(first, min(first + 4096, len(store))))["positions"][:, slots]
        inside = (positions.astype(np.int64) < limit).sum(axis=2)  # [examples, layers]
        short = np.argwhere(inside < wanted.magnitude_count)
        if short.size:
            example = first + int(short[0][0])
            return (
                f"example {example} has only {int(inside.min())} stored magnitudes within its first "
                f"{wanted.keep_tokens} tokens, {wanted.magnitude_count} are needed"
            )
    return None


# -- store planning ----------------------------------------------------------------------------------------------


def _plan_stores(
    planned: list[PlannedPoint], base: Recipe, shapes: Mapping[str, ModelShape], output_dir: Path, notes: list[str]
) -> list[PlannedStore]:
    """Group HSK points by token ranking; one store per group at the smallest budget serving the whole group."""
    hsk_points = [p for p in planned if p.point.kind == "hsk"]
    dtype = base.cache.dtype
    if not hsk_points:  # baselines only: a minimal store, for the teacher's logits
        overrides: dict[str, Any] = dict(LOGITS_ONLY_OVERRIDES)
        budget = _budget(apply_overrides(base, overrides), shapes)
        return [PlannedStore("store", output_dir / "store", budget, overrides, [], note="teacher logits only")]

    groups: dict[tuple[str, bool | None], list[PlannedPoint]] = {}
    for planned_point in hsk_points:
        assert planned_point.budget is not None
        groups.setdefault(token_key(planned_point.budget), []).append(planned_point)
    pending = list(groups.items())
    stores: list[PlannedStore] = []
    while pending:
        key, members = pending.pop(0)
        budgets = [m.budget for m in members if m.budget is not None]
        overrides, note = covering_overrides(budgets, dtype)
        budget = _budget(apply_overrides(base, overrides, where="sweep store"), shapes)
        served = [m for m in members if can_serve(budget, m.budget, certain=True)[0]]  # type: ignore[arg-type]
        unserved = [m for m in members if m not in served]
        if not served:  # cannot happen for a single point (a store of its own budget serves it); stay safe
            raise StoreError(
                f"no store can serve point {members[0].id}: {can_serve(budget, budgets[0], certain=True)[1]}"
            )
        stores.append(PlannedStore("", Path(), budget, overrides, [m.id for m in served], note=note))
        pending += [((m.id, None), [m]) for m in unserved]
    if len(stores) == 1:
        stores[0].name, stores[0].path = "store", output_dir / "store"
    else:
        used: set[str] = set()
        for store in stores:
            label = SHORT_NAMES[store.budget.token_scheme] if store.budget.uses_attention_scores else "natural"
            if store.budget.uses_attention_scores and store.budget.att_ttop12:
                label += "-ttop12"
            label = label if label not in used else f"{label}-{len(used) + 1}"
            used.add(label)
            store.name, store.path = f"store-{label}", output_dir / f"store-{label}"
        kinds = sorted({s.budget.token_scheme if s.budget.uses_attention_scores else "natural order" for s in stores})
        notes.append(
            f"{len(stores)} stores (the teacher runs once per store): no single store serves every point, because "
            f"their tokens come from different rankings ({', '.join(kinds)})"
        )
    notes += [f"{store.name}: {store.note}" for store in stores if store.note]
    return stores


# ---------------------------------------------------------------------------------------------------------------
# Run


@dataclass
class SweepResult:
    """What a sweep (or a merge) returns: every finished point's record, and the files written."""

    output_dir: str
    records: list[dict[str, Any]]
    plots: list[str]
    results_csv: str
    results_json: str
    stores: list[dict[str, Any]] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    shard: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "output_dir": self.output_dir,
            "points": self.records,
            "plots": self.plots,
            "results_csv": self.results_csv,
            "results_json": self.results_json,
            "stores": self.stores,
            "ran": self.ran,
            "skipped": self.skipped,
            "pending": self.pending,
            "shard": self.shard,
            "notes": self.notes,
        }


def _finished(output_dir: Path, planned: PlannedPoint) -> bool:
    """A point is done when its result.json exists and was produced from the same recipe."""
    try:
        record = json.loads((output_dir / "points" / planned.id / RESULT_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get("recipe_hash") == planned.recipe_hash


def _store_matches(path: Path, budget: KnowledgeBudget, recipe: Recipe) -> str:
    """``complete``, ``partial`` (same budget, resumable), or ``stale``/``missing`` (rebuild)."""
    from mudkd.core.store import MANIFEST_NAME, fingerprint_mismatches

    manifest_file = path / MANIFEST_NAME
    if not manifest_file.is_file() and (staging_path(path) / MANIFEST_NAME).is_file():
        manifest_file = staging_path(path) / MANIFEST_NAME  # an interrupted build, resumable
    if not manifest_file.is_file():
        return "stale" if path.exists() and any(path.iterdir()) else "missing"
    try:
        manifest = json.loads(manifest_file.read_text())
        same_budget = json.dumps(manifest["meta"]["budget"], sort_keys=True) == json.dumps(
            json.loads(json.dumps(budget.to_dict())), sort_keys=True
        )
        fingerprint = manifest["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        return "stale"
    from mudkd.core.models import teacher_fingerprint

    same_run = same_budget and not fingerprint_mismatches(
        fingerprint,
        {
            "task": recipe.task.name,
            "max_seq_length": str(recipe.task.max_seq_length),
            "max_train_samples": str(recipe.task.max_train_samples),
            "dtype": recipe.cache.dtype,
            "teacher": teacher_fingerprint(recipe.teacher.model),  # type: ignore[arg-type]
        },
    )
    if not same_run:
        return "stale"
    return "complete" if manifest.get("complete") else "partial"


def _ensure_store(store: PlannedStore, base: Recipe, events: SweepEvents) -> dict[str, Any]:
    """Build the store (one teacher pass), resume a partial build, or reuse a finished one."""
    from mudkd.core import cache

    row = store.row(base.cache.dtype)
    if store.given:
        return {**row, "action": "given"}
    recipe = apply_overrides(
        base, {**store.overrides, "cache.output_dir": str(store.path), "output.overwrite": True}, where="sweep store"
    )
    state = _store_matches(store.path, store.budget, recipe)
    if state == "complete":
        events.on_message(f"{store.name}: reusing the store at {store.path}")
        return {**row, "action": "reused", "seconds": 0.0}
    if state == "stale":
        events.on_message(f"{store.name}: the store at {store.path} was built for other settings: rebuilding it")
    events.on_message(f"{store.name}: running the teacher once over the training set ({describe_budget(store.budget)})")
    started = time.monotonic()
    result = cache.run(recipe, events=events, resume=state == "partial")
    built = KnowledgeBudget.from_dict(result.details["budget"])
    if built.to_dict() != store.budget.to_dict():
        raise StoreError(f"{store.path}: the store was built for another budget than planned")
    return {
        **row,
        "action": "resumed" if state == "partial" else "built",
        "seconds": time.monotonic() - started,
        "bytes": result.details.get("bytes"),
    }


def _check_stores(stores: list[PlannedStore], todo: list[PlannedPoint]) -> None:
    """Before any training: every point is served by the store it will read (as built, from its metadata)."""
    from mudkd.core.store import HskStore

    problems = []
    stored_budgets = {}
    for store in stores:
        opened = HskStore.open(store.path, verify=False)
        stored_budgets[store.name] = (KnowledgeBudget.from_dict(opened.meta["budget"]), opened)
    for planned in todo:
        if planned.point.kind != "hsk" or not planned.store or planned.budget is None:
            continue
        stored, opened = stored_budgets[planned.store]
        servable, reason = can_serve(stored, planned.budget, certain=True)
        if servable and stored.magnitude_mask:
            reason = _magnitude_shortfall(opened, stored, planned.budget) or ""
        if reason:
            problems.append(f"point {planned.id}: the store {opened.directory} cannot serve it: {reason}")
    if problems:
        raise StoreError("; ".join(problems), hint="delete the store directory so the sweep rebuilds it")


def _run_point(
    plan_: SweepPlan, planned: PlannedPoint, events: SweepEvents, stores: Mapping[str, PlannedStore]
) -> dict[str, Any]:
    """Train one point (HSK then prediction distillation) from scratch and write its result.json."""
    from mudkd.core import distill

    point_dir = plan_.output_dir / "points" / planned.id
    if point_dir.exists():  # a point interrupted earlier restarts from scratch
        shutil.rmtree(point_dir)
    point_dir.mkdir(parents=True)
    kind, recipe = planned.point.kind, planned.recipe
    store_path = str(stores[planned.store].path) if planned.store else None
    seconds: dict[str, float] = {}
    student = recipe.student.model
    if kind != "no_hsk":
        events.on_point_start(planned.id, "hsk")
        hsk_recipe = apply_overrides(
            recipe,
            {
                "hsk.output_dir": str(point_dir / "hsk"),
                "hsk.hsk_store": store_path if kind == "hsk" else None,
                "output.overwrite": False,
            },
            where=f"point {planned.id}",
        )
        started = time.monotonic()
        student = distill.run_hsk(hsk_recipe, events=events).output_dir
        seconds["hsk"] = time.monotonic() - started
    events.on_point_start(planned.id, "pred")
    logits_store = plan_.logits_for(planned)
    pred_recipe = apply_overrides(
        recipe,
        {
            "student.model": student,
            "pred.output_dir": str(point_dir / "pred"),
            "pred.logits_store": logits_store,
            "output.overwrite": False,
        },
        where=f"point {planned.id}",
    )
    started = time.monotonic()
    result = distill.run_pred(pred_recipe, events=events)
    seconds["pred"] = time.monotonic() - started
    metric = result.details.get("selection", "accuracy")
    teacher_free = logits_store is not None and (kind == "no_hsk" or (kind == "hsk" and store_path is not None))
    record = _record(planned, metric, result.metrics, seconds, result.output_dir, store_path, teacher_free)
    write_json_atomic(point_dir / RESULT_FILE, record)
    return record


def _record(
    planned: PlannedPoint,
    metric: str,
    metrics: Mapping[str, float],
    seconds: Mapping[str, float],
    model_dir: str,
    store: str | None,
    teacher_free: bool,
) -> dict[str, Any]:
    budget = planned.budget
    return {
        "id": planned.id,
        "kind": planned.point.kind,
        "series": planned.point.series,
        "settings": dict(planned.point.settings),
        "budget": describe_budget(budget) if budget else None,
        "hsk_fraction": budget.hsk_fraction if budget else 0.0,
        "elements_per_example": budget.elements_per_example if budget else 0,
        "keep_layers": budget.keep_layers if budget else 0,
        "keep_tokens": budget.keep_tokens if budget else 0,
        "keep_hidden": budget.keep_hidden if budget else 0.0,
        "layer_scheme": budget.layer_scheme if budget else None,
        "token_scheme": budget.token_scheme if budget else None,
        "hidden_scheme": budget.hidden_scheme if budget else None,
        "seed": planned.recipe.training.seed,
        "metric": metric,
        "dev_metric": metrics.get(metric),
        "dev_metrics": dict(metrics),
        "hsk_seconds": seconds.get("hsk"),
        "pred_seconds": seconds.get("pred"),
        "seconds": sum(seconds.values()),
        "teacher_free": teacher_free,
        "store": store,
        "model_dir": model_dir,
        "recipe_hash": planned.recipe_hash,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def run(
    sweep: Sweep,
    base_recipe_builder: RecipeBuilder,
    *,
    shard: tuple[int, int] | None = None,
    events: SweepEvents | None = None,
) -> SweepResult:
    """Run a sweep (or one shard of it): stores first, then every unfinished point, then results and plots.

    Args:
        sweep: The validated sweep (:func:`mudkd.recipe.sweep.read_sweep`).
        base_recipe_builder: ``overrides -> Recipe`` (:func:`mudkd.recipe.sweep.make_recipe_builder`).
        shard: ``(i, n)``: run only every n-th point, starting with the i-th (1-based).
        events: Progress receiver; stage events of the running point are forwarded to it.

    Returns:
        Every finished point of the sweep found in ``output_dir`` (this run's and earlier ones), and the files.

    Raises:
        RecipeError: A point that does not fit (nothing is trained then).
        StoreError: A store that cannot serve a point.
    """
    events = events or SweepEvents()
    plan_ = plan(sweep, base_recipe_builder, shard=shard)
    output_dir = plan_.output_dir
    base = base_recipe_builder({})
    check_sweep_dir(output_dir, inputs=_base_inputs(base))
    with output_lock(output_dir):
        return _run_locked(plan_, base, shard, events)


def _base_inputs(base: Recipe) -> dict[str, str | None]:
    return {
        "teacher.model": base.teacher.model,
        "student.model": base.student.model,
        "task.data_dir": base.task.data_dir,
        "task.train_file": base.task.train_file,
        "task.validation_file": base.task.validation_file,
    }


def _run_locked(plan_: SweepPlan, base: Recipe, shard: tuple[int, int] | None, events: SweepEvents) -> SweepResult:
    output_dir = plan_.output_dir
    if not output_dir.is_dir():
        output_dir.mkdir(parents=True)
        write_marker(output_dir, command="sweep", complete=True)
    _write_sweep_file(plan_)
    selected = plan_.selected_points()
    skipped = [p.id for p in selected if _finished(output_dir, p)]
    todo = [p for p in selected if p.id not in skipped]
    events.on_sweep_start([p.row() for p in selected], skipped)

    stores = {store.name: store for store in plan_.stores}
    needed = plan_.needed_stores(todo)
    store_rows = [_ensure_store(store, base, events) for store in needed]
    _check_stores(needed, todo)  # before any training
    ran = []
    for planned in todo:
        record = _run_point(plan_, planned, events, stores)
        ran.append(planned.id)
        events.on_point_end(record)

    records = collect_records(output_dir, [p.id for p in plan_.points])
    files = write_results(output_dir, records)
    done = {r["id"] for r in records}
    return SweepResult(
        output_dir=str(output_dir),
        records=records,
        stores=store_rows,
        ran=ran,
        skipped=skipped,
        pending=[p.id for p in plan_.points if p.id not in done],
        shard=f"{shard[0]}/{shard[1]}" if shard else None,
        notes=plan_.notes,
        **files,
    )


def check_sweep_dir(directory: Path, *, inputs: Mapping[str, str | None] | None = None) -> None:
    """A sweep writes into a new directory or its own earlier one (to resume or merge), never into anything else.

    Raises:
        RecipeError: A symlink, a file, a non-empty folder that holds no sweep, or one that overlaps an input.
    """
    if directory.is_symlink():
        raise RecipeError(f"{directory}: output_dir is a symbolic link", hint="pass the real directory")
    if directory.exists() and not directory.is_dir():
        raise RecipeError(f"{directory}: exists and is not a directory", hint="choose another output_dir")
    ours = (directory / SWEEP_FILE).is_file() or read_marker(directory) is not None
    if directory.is_dir() and any(directory.iterdir()) and not ours:
        raise RecipeError(
            f"{directory}: output_dir exists, is not empty and holds no sweep",
            hint="choose another output_dir (a sweep's own directory is resumed)",
        )
    check_no_overlap(directory, inputs or {}, what="sweep directory")


def _write_sweep_file(plan_: SweepPlan) -> None:
    document = {
        "source": plan_.sweep.source,
        "sweep": plan_.sweep.model_dump(mode="json"),
        "points": [{**p.point.to_dict(), "recipe_hash": p.recipe_hash} for p in plan_.points],
        "notes": plan_.notes,
    }
    write_json_atomic(plan_.output_dir / SWEEP_FILE, document)


# ---------------------------------------------------------------------------------------------------------------
# Results, merge, plots


def collect_records(output_dir: Path, order: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Every ``points/<id>/result.json`` under ``output_dir``, in ``order`` (ids not in it come last, sorted)."""
    records = {}
    for path in sorted((output_dir / "points").glob(f"*/{RESULT_FILE}")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # written atomically, so only a foreign file can be unreadable
        records[record.get("id", path.parent.name)] = record
    rank = {point_id: index for index, point_id in enumerate(order or [])}
    return sorted(records.values(), key=lambda r: (rank.get(r["id"], len(rank)), r["id"]))


CSV_COLUMNS = (
    "id",
    "kind",
    "series",
    "hsk_fraction",
    "elements_per_example",
    "keep_layers",
    "keep_tokens",
    "keep_hidden",
    "layer_scheme",
    "token_scheme",
    "hidden_scheme",
    "seed",
    "metric",
    "dev_metric",
    "hsk_seconds",
    "pred_seconds",
    "teacher_free",
    "budget",
    "model_dir",
)


def results_csv(records: Sequence[Mapping[str, Any]]) -> str:
    """The records as CSV: fixed columns, then ``dev_<name>`` for every dev metric."""
    metric_names = sorted({name for r in records for name in r.get("dev_metrics", {})})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, *(f"dev_{name}" for name in metric_names)])
    for record in records:
        metrics = record.get("dev_metrics", {})
        writer.writerow(
            [_csv_value(record.get(column)) for column in CSV_COLUMNS]
            + [_csv_value(metrics.get(name)) for name in metric_names]
        )
    return buffer.getvalue()


def _csv_value(value: Any) -> Any:
    return "" if value is None else value


def write_results(output_dir: Path, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Write results.csv, results.json and the plot(s); returns their paths."""
    csv_path, json_path = output_dir / "results.csv", output_dir / "results.json"
    write_text_atomic(csv_path, results_csv(records))
    write_json_atomic(json_path, records)
    plots = write_plots(records, output_dir)
    return {"results_csv": str(csv_path), "results_json": str(json_path), "plots": plots}


def merge(output_dirs: Sequence[str | Path], *, into: str | Path) -> SweepResult:
    """Combine the finished points of several shard directories into ``into`` (results, plots, sweep.json).

    Each point's ``result.json`` is copied into ``into/points/<id>/``; models stay where they were trained (the
    records keep their paths). ``into`` may be one of the inputs.

    Raises:
        RecipeError: A directory that is not a sweep output, or one point id finished with different recipes.
    """
    target = Path(into)
    sources = [Path(d) for d in output_dirs]
    if target.is_dir() and (target / SWEEP_FILE).is_file() and target.resolve() not in {s.resolve() for s in sources}:
        sources.append(target)
    problems: list[str] = []
    order: list[str] = []
    records: dict[str, dict[str, Any]] = {}
    origins: dict[str, Path] = {}
    sweep_document = None
    for source in sources:
        if not (source / SWEEP_FILE).is_file() and not (source / "points").is_dir():
            problems.append(f"{source}: not a sweep output directory (no {SWEEP_FILE} or points/)")
            continue
        if (source / SWEEP_FILE).is_file():
            document = json.loads((source / SWEEP_FILE).read_text())
            sweep_document = sweep_document or document
            order += [p["id"] for p in document.get("points", []) if p["id"] not in order]
        for record in collect_records(source):
            seen = records.get(record["id"])
            if seen is not None and seen.get("recipe_hash") != record.get("recipe_hash"):
                problems.append(
                    f"point {record['id']}: finished with different recipes in {origins[record['id']]} and {source}"
                )
                continue
            if seen is None:
                records[record["id"]] = record
                origins[record["id"]] = source
    if problems:
        raise RecipeError(problems[0], hint="merge only shards of the same sweep", problems=problems)
    check_sweep_dir(target, inputs={str(s): str(s) for s in sources if s.resolve() != target.resolve()})
    with output_lock(target):
        if not target.is_dir():
            target.mkdir(parents=True)
            write_marker(target, command="sweep-merge", complete=True)
        return _merge_locked(target, sources, records, origins, order, sweep_document)


def _merge_locked(
    target: Path,
    sources: list[Path],
    records: dict[str, dict[str, Any]],
    origins: dict[str, Path],
    order: list[str],
    sweep_document: dict[str, Any] | None,
) -> SweepResult:
    for point_id, record in records.items():
        destination = target / "points" / point_id
        destination.mkdir(parents=True, exist_ok=True)
        if not (destination / RESULT_FILE).is_file() or origins[point_id].resolve() != target.resolve():
            write_json_atomic(destination / RESULT_FILE, record)
    if sweep_document is not None:
        write_json_atomic(target / SWEEP_FILE, {**sweep_document, "merged_from": [str(s) for s in sources]})
    merged = collect_records(target, order)
    files = write_results(target, merged)
    return SweepResult(
        output_dir=str(target),
        records=merged,
        **files,
        pending=[point_id for point_id in order if point_id not in records],
    )


def _curves(records: Sequence[Mapping[str, Any]]) -> tuple[dict[str, list[tuple[float, float]]], dict[str, float]]:
    """Series name → [(fraction, mean metric)] sorted by fraction; baseline kind → mean metric."""
    series: dict[str, dict[float, list[float]]] = {}
    baselines: dict[str, list[float]] = {}
    for record in records:
        value = record.get("dev_metric")
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        if record["kind"] in ("no_hsk", "full_hsk"):
            baselines.setdefault(record["kind"], []).append(value)
        elif record.get("hsk_fraction", 0) > 0:
            series.setdefault(record.get("series") or "HSK", {}).setdefault(record["hsk_fraction"], []).append(value)
    curves = {name: sorted((x, sum(v) / len(v)) for x, v in points.items()) for name, points in series.items()}
    return curves, {kind: sum(v) / len(v) for kind, v in baselines.items()}


def _metric_name(records: Sequence[Mapping[str, Any]]) -> str:
    return next((str(r["metric"]) for r in records if r.get("metric")), "dev metric")


def write_plots(records: Sequence[Mapping[str, Any]], directory: str | Path) -> list[str]:
    """``marginal_utility.png``: dev metric against HSK fraction (log x), one line per series, baselines as lines.

    Returns:
        The written files (none when no point has finished).
    """
    curves, baselines = _curves(records)
    if not curves and not baselines:
        return []
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import pyplot as plt

    metric = _metric_name(records)
    figure, axes = plt.subplots(figsize=(7.0, 4.5), dpi=120)
    markers = "os^Dv<>pPX*h"
    for index, (name, points) in enumerate(curves.items()):
        xs, ys = zip(*points, strict=True)
        axes.plot(xs, ys, marker=markers[index % len(markers)], label=name)
    for record in records:  # replicates (seeds) as faint dots around the means
        if record["kind"] == "hsk" and record.get("dev_metric") is not None and record.get("hsk_fraction", 0) > 0:
            axes.scatter([record["hsk_fraction"]], [record["dev_metric"]], color="0.6", s=8, zorder=1)
    styles = {"full_hsk": ("tab:red", "--", "full HSK"), "no_hsk": ("0.35", ":", "no HSK")}
    for kind, value in baselines.items():
        color, style, label = styles[kind]
        axes.axhline(value, color=color, linestyle=style, label=f"{label} ({value:.4g})")
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axes.set_xscale("log")
    axes.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: _percent(value)))
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.set_xlabel("amount of HSK: fraction of the student's full HSK (log scale)")
    axes.set_ylabel(f"dev {metric}")
    axes.set_title("Marginal utility of hidden-state knowledge")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    path = Path(directory) / PLOT_FILE
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    figure.savefig(temporary, format="png", bbox_inches="tight")
    plt.close(figure)
    os.replace(temporary, path)
    return [str(path)]


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.2g}%"


def text_curve(records: Sequence[Mapping[str, Any]], *, width: int = 50, height: int = 10) -> list[str]:
    """The marginal-utility curve as text lines for the terminal (one letter per series, baselines as rules).

    Returns:
        Lines without trailing newlines; empty when nothing has finished.
    """
    curves, baselines = _curves(records)
    if not curves and not baselines:
        return []
    xs = [x for points in curves.values() for x, _ in points]
    ys = [y for points in curves.values() for _, y in points] + list(baselines.values())
    low_x, high_x = (math.log10(min(xs)), math.log10(max(xs))) if xs else (-2.0, 0.0)
    if high_x - low_x < 1e-9:
        low_x, high_x = low_x - 0.5, high_x + 0.5
    low_y, high_y = min(ys), max(ys)
    if high_y - low_y < 1e-9:
        low_y, high_y = low_y - 0.005, high_y + 0.005
    grid = [[" "] * width for _ in range(height)]

    def row_of(value: float) -> int:
        return height - 1 - round((value - low_y) / (high_y - low_y) * (height - 1))

    for kind, value in baselines.items():
        grid[row_of(value)] = ["─" if kind == "full_hsk" else "┄"] * width
    letters = "abcdefghijklmnopqrstuvwxyz"
    for index, points in enumerate(curves.values()):
        for x, y in points:
            column = round((math.log10(x) - low_x) / (high_x - low_x) * (width - 1))
            cell = grid[row_of(y)][column]
            grid[row_of(y)][column] = letters[index % 26] if cell in " ─┄" else "*"
    metric = _metric_name(records)
    label_width = max(len(f"{low_y:.4g}"), len(f"{high_y:.4g}"))
    lines = [f"dev {metric} vs HSK fraction (log scale)"]
    for row_index, row in enumerate(grid):
        value = high_y - row_index / (height - 1) * (high_y - low_y)
        label = f"{value:.4g}" if row_index in (0, height // 2, height - 1) else ""
        lines.append(f"{label:>{label_width}} ┤" + "".join(row))
    lines.append(" " * label_width + " └" + "─" * width)
    left, right = _percent(10**low_x), _percent(10**high_x)
    middle = _percent(10 ** ((low_x + high_x) / 2))
    gap = width - len(left) - len(middle) - len(right)
    axis = left + " " * (gap // 2) + middle + " " * (gap - gap // 2) + right
    lines.append(" " * (label_width + 2) + axis)
    legend = [f"{letters[i % 26]} = {name}" for i, name in enumerate(curves)]
    legend += [
        f"{'─' if kind == 'full_hsk' else '┄'} = {kind.replace('_', ' ')} ({value:.4g})"
        for kind, value in baselines.items()
    ]
    lines += ["  " + item for item in legend]
    return lines
