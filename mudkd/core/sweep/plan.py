"""Sweep planning: the grid's points with their recipes and budgets, and the teacher-free store(s) that serve them.

:func:`plan` expands a sweep (:mod:`mudkd.recipe.sweep`) into points, resolves every point's knowledge budget, and
plans the teacher-free store(s): one store at the smallest budget that serves every point (the union of the kept
layer pairs, the largest k, and a width that covers every point's width). Points that no single store can serve
(e.g. different token rankings) are grouped, one store per group. The teacher therefore runs once per store — once
per sweep unless the grid mixes token rankings — and never while the points train (except the ``full_hsk``
baseline, whose knowledge is as big as the teacher's and is distilled online). Nothing here writes a file.

The fair-baseline protocol (:func:`fair_baseline_overrides`): the ``no_hsk`` baseline trains prediction-only for
as many updates as an HSK point spends in its HSK and prediction stages together, with a 10 % warm-up (the
reference's setting for prediction-only runs), so "no HSK" differs from an HSK point in the knowledge only, not in
the training it gets. Every planned point knows its updates (:attr:`PlannedPoint.updates`). It also evaluates as
often as an HSK point's prediction stage (a longer ``pred.eval_step``), so every point picks its checkpoint from
the same number of evaluations: best-of-7 against best-of-4 would favour the baseline.

Selection without peeking: unless the base recipe sets ``training.selection_split``, every point selects its
checkpoint on :data:`SWEEP_SELECTION_SPLIT` of the training examples carved from the training file (the same
examples for every point and seed: :func:`mudkd.core.data.selection_carve`) and scores dev once, at the end.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mudkd.core.data import check_task_metric, count_train_examples
from mudkd.core.datacheck import check_data
from mudkd.core.models import read_shape
from mudkd.core.store import HskStore
from mudkd.core.sweep.results import RESULT_FILE
from mudkd.errors import BudgetError, RecipeError, StoreError
from mudkd.knowledge import KnowledgeBudget, ModelShape, budget_from_recipe, budget_summary, can_serve
from mudkd.knowledge.budget import budget_columns
from mudkd.knowledge.schemes import SHORT_NAMES, StoreDtype
from mudkd.knowledge.serving import (
    LOGITS_ONLY_OVERRIDES,
    covering_overrides,
    needs_magnitude_check,
    stored_slots,
    token_key,
)
from mudkd.recipe.overrides import apply_overrides
from mudkd.recipe.schema import Recipe, TrainingStage
from mudkd.recipe.sweep import Point, Sweep, expand_grid
from mudkd.recipe.sweep import shard as shard_points

# The distill stage (torch, ~2-5 s at import) is imported where a plan checks a store: the sweep's pure planning stays
# torch-free.

RecipeBuilder = Callable[[Mapping[str, Any]], Recipe]

#: The warm-up of a prediction-only run under the fair-baseline protocol (the reference's warmup_proportion).
FAIR_WARMUP_PROPORTION = 0.1

#: ``training.selection_split`` of a sweep's (and a search's) points when the base recipe leaves it unset.
SWEEP_SELECTION_SPLIT = 0.2

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


@dataclass
class PlannedPoint:
    """A point with its resolved recipe and knowledge budget (None for ``no_hsk`` and ``untrained``).

    ``updates`` are the optimiser updates of its stages, ``{"hsk": n, "pred": m}`` (None when the training set
    cannot be read yet and a stage runs by epochs).
    """

    point: Point
    recipe: Recipe
    budget: KnowledgeBudget | None
    recipe_hash: str
    store: str | None = None
    updates: dict[str, int | None] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.point.id

    @property
    def total_updates(self) -> int | None:
        """Every update the point trains for (HSK + prediction); None when one stage's count is unknown."""
        values = list(self.updates.values())
        return None if any(v is None for v in values) else sum(v for v in values if v is not None)

    def row(self) -> dict[str, Any]:
        """The point as a plan row: id, kind, series, seed, settings, budget, HSK fraction and updates."""
        budget = self.budget
        kind = self.point.kind
        if kind == "untrained":
            description = "none (evaluated as it is, no training)"
        else:
            description = describe_budget(budget) if budget else "none (prediction distillation only)"
        return {
            "id": self.id,
            "point": self.point.group or self.id,
            "kind": kind,
            "series": self.point.series,
            "seed": self.seed,
            "settings": dict(self.point.settings),
            "budget": description,
            **budget_columns(budget, schemes=False),
            "hsk_updates": self.updates.get("hsk", 0),
            "pred_updates": self.updates.get("pred", 0),
            "updates": self.total_updates,
            "pred_warmup": self.recipe.pred.warmup_proportion if kind != "untrained" else None,
            "store": self.store,
            "overrides": self.point.sets,
        }

    @property
    def seed(self) -> int | None:
        """The training seed of this run (None for ``untrained``, which does not train)."""
        return None if self.point.kind == "untrained" else self.recipe.training.seed


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
    num_examples: int | None = None

    def selected_points(self) -> list[PlannedPoint]:
        chosen = set(self.selected)
        return [planned for planned in self.points if planned.id in chosen]

    def needed_stores(self, points: Sequence[PlannedPoint]) -> list[PlannedStore]:
        """The stores ``points`` read: their own, and the first one for the baselines' logits."""
        names = {p.store for p in points if p.store}
        if self.stores and any(p.point.kind in ("no_hsk", "full_hsk") for p in points):
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
            "stores": [store.row(dtype, self.num_examples) for store in self.stores],
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
    if not data.get("training", {}).get("selection_split"):
        data.get("training", {}).pop("selection_split", None)  # off: the same hash as before the option existed
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _count_examples(recipe: Recipe) -> int | None:
    return count_train_examples(recipe)


def stage_updates(stage: TrainingStage, num_examples: int | None, gradient_accumulation_steps: int = 1) -> int | None:
    """The optimiser updates a training stage makes, as the transformers Trainer counts them.

    ``max_steps`` when set; else ``ceil(epochs × updates per epoch)``, an epoch being ``ceil(examples / batch)``
    batches, ``gradient_accumulation_steps`` of them per update. None when ``num_examples`` is unknown.
    """
    if stage.max_steps:
        return stage.max_steps
    if num_examples is None:
        return None
    batches = math.ceil(num_examples / stage.train_batch_size)
    per_epoch = max(math.ceil(batches / gradient_accumulation_steps), 1)
    return math.ceil(stage.num_train_epochs * per_epoch)


def fair_baseline_overrides(base_recipe: Recipe, num_examples: int | None = None) -> dict[str, Any]:
    """Recipe overrides that make a prediction-only ("no HSK") run a fair baseline for HSK + prediction runs.

    The fair-baseline protocol (the reference's: "when the student is trained only with prediction, set
    num_train_epochs to the same as HSK distillation"): the prediction stage trains for as many updates as the
    base recipe's HSK and prediction stages together, and warms up over the first 10 % of them
    (:data:`FAIR_WARMUP_PROPORTION`). Without it, the baseline gets a fraction of an HSK point's training and
    measures the schedule, not the knowledge. Every other setting (learning rate, schedule, batch) stays the base's.

    Args:
        base_recipe: The recipe the HSK points start from (its ``hsk`` and ``pred`` stages set the count).
        num_examples: Training examples; None reads the task's training set. Needed unless both stages set
            ``max_steps`` (or both run by epochs with the same batch size: the epochs are added then).

    Returns:
        Dotted overrides, e.g. ``{"pred.max_steps": 126, "pred.warmup_proportion": 0.1}``.

    Raises:
        RecipeError: The updates cannot be counted (the training set is unreadable and the stages differ).
    """
    warmup = {"pred.warmup_proportion": FAIR_WARMUP_PROPORTION}
    hsk, pred = base_recipe.hsk, base_recipe.pred
    accumulation = base_recipe.training.gradient_accumulation_steps
    if num_examples is None and not (hsk.max_steps and pred.max_steps):
        num_examples = _count_examples(base_recipe)
    hsk_updates = stage_updates(hsk, num_examples, accumulation)
    pred_updates = stage_updates(pred, num_examples, accumulation)
    if hsk_updates is not None and pred_updates is not None:
        total = hsk_updates + pred_updates
        return {"pred.max_steps": total, **equal_evaluations(pred.eval_step, pred_updates, total), **warmup}
    if not hsk.max_steps and not pred.max_steps and hsk.train_batch_size == pred.train_batch_size:
        return {"pred.num_train_epochs": hsk.num_train_epochs + pred.num_train_epochs, **warmup}
    raise RecipeError(
        "fair baseline: cannot count the updates of the HSK and prediction stages (the training set is unreadable)",
        hint="set hsk.max_steps and pred.max_steps, or fair_baseline = false in the sweep file",
    )


def equal_evaluations(eval_step: int, updates: int, total: int) -> dict[str, Any]:
    """``pred.eval_step`` for a baseline of ``total`` updates that evaluates as often as a prediction stage of
    ``updates`` updates evaluating every ``eval_step``.

    The Trainer evaluates at every multiple of the step and once more at the last update when that is not one:
    ``ceil(updates / eval_step)`` evaluations. The baseline gets the smallest step with as many (evenly spread),
    or the step whose count is nearest; ``{}`` when the stage never evaluates or the counts already match. E.g.
    63 updates every 20 → 4 evaluations (20, 40, 60, 63); the 126-update baseline then evaluates every 32 (32, 64,
    96, 126) instead of every 20 (7 evaluations).
    """
    if not eval_step or updates < 1:
        return {}
    evaluations = math.ceil(updates / eval_step)
    if math.ceil(total / eval_step) == evaluations:
        return {}
    step = math.ceil(total / evaluations)
    if math.ceil(total / step) != evaluations:
        step = min(range(1, total + 1), key=lambda e: (abs(math.ceil(total / e) - evaluations), e))
    return {"pred.eval_step": step}


def _model_shapes(base: Recipe, given_store: Any) -> dict[str, ModelShape]:
    """Student and teacher shapes (the teacher's label count included), from config files or a given store."""
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

    if base_recipe_builder({}).training.selection_split is None:
        base_recipe_builder = _with_selection_split(base_recipe_builder)
    base = base_recipe_builder({})
    check_data(base.task)
    check_task_metric(base.task)
    given_path = base.hsk.hsk_store if sweep.teacher_free else None
    given_store = None
    if given_path:
        from mudkd.core.stages.store_check import plan_store_check

        given_store = HskStore.open(given_path, verify=False)
        plan_store_check(base, given_path, given_store)  # every point trains on the base's data, read from it
    shapes = _model_shapes(base, given_store)

    num_examples = _count_examples(base)
    accumulation = base.training.gradient_accumulation_steps
    problems: list[str] = []
    planned: list[PlannedPoint] = []
    notes: list[str] = []
    fair: dict[str, Any] = {}
    if sweep.fair_baseline and "no_hsk" in sweep.baselines:
        try:
            fair = fair_baseline_overrides(base, num_examples)
        except RecipeError as error:
            problems.append(f"{sweep.source}: baselines: {error.message}")
    for point in expand_grid(sweep):
        if point.kind == "no_hsk" and fair:
            point = dataclasses.replace(point, overrides={**point.overrides, **fair})
        try:
            planned.append(_plan_point(point, base_recipe_builder, shapes, num_examples, accumulation))
        except RecipeError as error:
            problems += [f"{sweep.source}: point {point.id}: {problem}" for problem in error.problems]
        except BudgetError as error:
            problems.append(f"{sweep.source}: point {point.id}: {error.message}")
    notes += _protocol_notes(planned, fair)
    if any(p.point.kind == "full_hsk" for p in planned) and not base.teacher.model:
        problems.append(f"{sweep.source}: baselines: full_hsk runs the teacher online and needs teacher.model")
    if problems:
        raise RecipeError(
            problems[0], hint="fix the grid values, or the base recipe they start from", problems=problems
        )

    stores: list[PlannedStore] = []
    if sweep.teacher_free and given_store is not None:
        stores = [_given_store(given_store, planned, sweep)]
    elif sweep.teacher_free and any(p.point.kind != "untrained" for p in planned):
        stores = _plan_stores(planned, base, shapes, output_dir, notes)
    _assign_stores(planned, stores)

    points = [p.point for p in planned]
    selected = [p.id for p in (points if shard is None else shard_points(points, *shard))]
    logits_store = None
    if given_store is not None:
        logits_store = base.pred.logits_store or str(given_store.directory)
    elif stores:
        logits_store = str(stores[0].path)  # every store holds the teacher's logits; baselines read the first
    return SweepPlan(sweep, output_dir, planned, selected, stores, shard, notes, logits_store, num_examples)


def _plan_point(
    point: Any, builder: RecipeBuilder, shapes: Any, num_examples: int | None, accumulation: int
) -> PlannedPoint:
    """One grid point resolved: its recipe, its budget (HSK points) and its updates per distillation stage.

    Raises:
        RecipeError: The point's settings do not fit the schema.
        BudgetError: Its budget does not fit the models.
    """
    recipe = builder(point.overrides)
    budget = _budget(recipe, shapes) if point.kind in ("hsk", "full_hsk") else None
    updates: dict[str, int | None] = {}
    if point.kind in ("hsk", "full_hsk"):
        updates["hsk"] = stage_updates(recipe.hsk, num_examples, accumulation)
    if point.kind != "untrained":
        updates["pred"] = stage_updates(recipe.pred, num_examples, accumulation)
    return PlannedPoint(point, recipe, budget, _recipe_hash(recipe), updates=updates)


def _assign_stores(planned: list[PlannedPoint], stores: list[PlannedStore]) -> None:
    """Name on every planned point the store that serves it."""
    for store in stores:
        for planned_point in planned:
            if planned_point.id in store.points:
                planned_point.store = store.name


def _with_selection_split(builder: RecipeBuilder) -> RecipeBuilder:
    """``builder`` with :data:`SWEEP_SELECTION_SPLIT` under every point's own overrides."""

    def build(overrides: Mapping[str, Any]) -> Recipe:
        return builder({"training.selection_split": SWEEP_SELECTION_SPLIT, **overrides})

    return build


def _protocol_notes(planned: Sequence[PlannedPoint], fair: Mapping[str, Any]) -> list[str]:
    """One line on what the baselines are: the fair no-HSK schedule, the untrained level."""
    notes = []
    baseline = next((p for p in planned if p.point.kind == "no_hsk"), None)
    trained = next((p for p in planned if p.point.kind in ("hsk", "full_hsk")), None)
    if baseline is not None:
        total = baseline.total_updates
        updates = "its epochs" if total is None else f"{total} updates"
        if fair and trained is not None and trained.updates.get("hsk") is not None:
            updates += f" (= an HSK point's {trained.updates['hsk']} HSK + {trained.updates['pred']} prediction)"
        warmup = f"{baseline.recipe.pred.warmup_proportion:.0%} warm-up"
        how = "fair baseline" if fair else "fair_baseline = false: the base recipe's prediction stage"
        notes.append(f"no_hsk: prediction distillation only for {updates}, {warmup} ({how})")
    first = next((p for p in planned if p.point.kind != "untrained"), None)
    if first is not None:
        split = first.recipe.training.selection_split
        notes.append(
            f"checkpoint selection: on {split:.0%} of the training examples (the last of the training file, the "
            "same for every seed); dev scored once, at the end"
            if split
            else "checkpoint selection: on dev, the set reported (training.selection_split = 0: optimistic)"
        )
    if any(p.point.kind == "untrained" for p in planned):
        notes.append("untrained: the student evaluated on dev before any training (a floor, not a distillation result)")
    return notes


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
            reason = magnitude_shortfall(store, stored, planned_point.budget) or ""
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


def magnitude_shortfall(store: Any, stored: KnowledgeBudget, wanted: KnowledgeBudget) -> str | None:
    """For a Mag store read with fewer tokens: the first example lacking n' stored values in its first k' tokens.

    This is the check :func:`mudkd.core.hsk.unpack_targets` makes at load time, done over the whole store up front.
    """
    if not needs_magnitude_check(stored, wanted):
        return None

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
