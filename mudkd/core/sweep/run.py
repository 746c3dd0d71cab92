"""Running a sweep: its store(s) first, then every unfinished point of the selected shard, then the results.

A rerun skips points with a ``result.json`` whose recipe is unchanged and restarts any other point from scratch,
so a sweep survives any interruption (``kill -9`` included). Runs the sweep no longer plans (an edited grid, fewer
seeds) stay on disk but are left out of the results (``SweepResult.stale``). ``--shard i/n`` runs every n-th
point; shards write the same layout (:mod:`mudkd.core.sweep.results`), and
:func:`mudkd.core.sweep.results.merge` combines them.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mudkd.core.events import RunEvents
from mudkd.core.outputs import mark_folder, output_lock, read_marker, write_json_atomic
from mudkd.core.store import HskStore
from mudkd.core.sweep.plan import (
    PlannedPoint,
    PlannedStore,
    RecipeBuilder,
    SweepPlan,
    describe_budget,
    magnitude_shortfall,
    plan,
)
from mudkd.core.sweep.results import (
    RESULT_FILE,
    SWEEP_FILE,
    SweepResult,
    check_sweep_dir,
    collect_records,
    current_records,
    write_results,
)
from mudkd.core.sweep.stores import ensure_store
from mudkd.errors import StoreError
from mudkd.knowledge import KnowledgeBudget, can_serve
from mudkd.knowledge.budget import budget_columns
from mudkd.recipe.overrides import apply_overrides
from mudkd.recipe.schema import Recipe
from mudkd.recipe.sweep import Sweep

# The distill stage (torch, ~2-5 s at import) is imported where a point is trained: a sweep's --dry-run stays torch-
# free.


class SweepEvents(RunEvents):
    """Progress of a sweep. Stage events (steps, evals) of the running point arrive through :class:`RunEvents`."""

    def on_sweep_start(self, rows: list[dict[str, Any]], skipped: list[str]) -> None:
        """The points of this run (plan rows, see :meth:`PlannedPoint.row`); ``skipped`` are already done."""

    def on_point_start(self, point_id: str, stage: str) -> None:
        """A point enters a stage (``hsk``, ``pred``, or ``eval`` for the untrained student)."""

    def on_point_end(self, record: dict[str, Any]) -> None:
        """A point finished; ``record`` is its ``result.json``."""


def _finished(output_dir: Path, planned: PlannedPoint) -> bool:
    """A point is done when its result.json exists and was produced from the same recipe."""
    try:
        record = json.loads((output_dir / "points" / planned.id / RESULT_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get("recipe_hash") == planned.recipe_hash


def _check_stores(stores: list[PlannedStore], todo: list[PlannedPoint]) -> None:
    """Before any training: every point is served by the store it will read (as built, from its metadata)."""
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
            reason = magnitude_shortfall(opened, stored, planned.budget) or ""
        if reason:
            problems.append(f"point {planned.id}: the store {opened.directory} cannot serve it: {reason}")
    if problems:
        raise StoreError("; ".join(problems), hint="delete the store directory so the sweep rebuilds it")


def _run_point(
    plan_: SweepPlan, planned: PlannedPoint, events: SweepEvents, stores: Mapping[str, PlannedStore]
) -> dict[str, Any]:
    """Train one point (HSK then prediction distillation) from scratch and write its result.json.

    The ``untrained`` baseline trains nothing: its student is evaluated on dev as it is.
    """
    from mudkd.core.stages import distill

    point_dir = plan_.output_dir / "points" / planned.id
    if point_dir.exists():  # a point interrupted earlier restarts from scratch
        shutil.rmtree(point_dir)
    point_dir.mkdir(parents=True)
    kind, recipe = planned.point.kind, planned.recipe
    if kind == "untrained":
        events.on_point_start(planned.id, "eval")
        started = time.monotonic()
        result = distill.evaluate_student(recipe, events=events)
        metric = result.details.get("selection", "accuracy")
        seconds = {"eval": time.monotonic() - started}
        record = _record(planned, metric, result.metrics, seconds, str(recipe.student.model), None, True)
        write_json_atomic(point_dir / RESULT_FILE, record)
        return record
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
    # the checkpoint the Trainer picked, and from how many evaluations on which set (issue 20)
    record |= {key: result.details.get(key) for key in ("selected_step", "selection_evaluations", "selected_on")}
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
        "point": planned.point.group or planned.id,
        "kind": planned.point.kind,
        "series": planned.point.series,
        "settings": dict(planned.point.settings),
        "budget": describe_budget(budget) if budget else None,
        **budget_columns(budget),
        "seed": planned.seed,
        "hsk_updates": planned.updates.get("hsk", 0),
        "pred_updates": planned.updates.get("pred", 0),
        "updates": planned.total_updates,
        "pred_warmup": planned.recipe.pred.warmup_proportion if planned.point.kind != "untrained" else None,
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
    check_sweep_dir(output_dir, inputs=base_inputs(base))
    with output_lock(output_dir):
        check_sweep_dir(output_dir)  # again under the lock: another process may have acted since
        return _run_locked(plan_, base, shard, events)


def base_inputs(base: Recipe) -> dict[str, str | None]:
    """The models and data a sweep (or a search) reads: its output directory may not overlap them."""
    return {
        "teacher.model": base.teacher.model,
        "student.model": base.student.model,
        "task.data_dir": base.task.data_dir,
        "task.train_file": base.task.train_file,
        "task.validation_file": base.task.validation_file,
    }


def _run_locked(plan_: SweepPlan, base: Recipe, shard: tuple[int, int] | None, events: SweepEvents) -> SweepResult:
    output_dir = plan_.output_dir
    if read_marker(output_dir) is None:  # new or empty (checked): the folder is the sweep's from now on
        output_dir.mkdir(parents=True, exist_ok=True)
        mark_folder(output_dir, command="sweep")
    _write_sweep_file(plan_)
    selected = plan_.selected_points()
    skipped = [p.id for p in selected if _finished(output_dir, p)]
    todo = [p for p in selected if p.id not in skipped]
    events.on_sweep_start([p.row() for p in selected], skipped)

    stores = {store.name: store for store in plan_.stores}
    needed = plan_.needed_stores(todo)
    store_rows = [ensure_store(store, base, events) for store in needed]
    _check_stores(needed, todo)  # before any training
    ran = []
    for planned in todo:
        record = _run_point(plan_, planned, events, stores)
        ran.append(planned.id)
        events.on_point_end(record)

    everything = collect_records(output_dir, [p.id for p in plan_.points])
    records, stale = current_records(everything, {p.id: p.recipe_hash for p in plan_.points})
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
        stale=stale,
        **files,
    )


def _write_sweep_file(plan_: SweepPlan) -> None:
    document = {
        "source": plan_.sweep.source,
        "sweep": plan_.sweep.model_dump(mode="json"),
        "points": [{**p.point.to_dict(), "recipe_hash": p.recipe_hash} for p in plan_.points],
        "notes": plan_.notes,
    }
    write_json_atomic(plan_.output_dir / SWEEP_FILE, document)
