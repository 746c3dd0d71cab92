"""Running a search: the store, then one training at a time as :func:`~mudkd.core.search.decide.next_step` asks,
each recorded, then the result, its plot and (optionally) the final student.

Layout of a search's output directory::

    search.json          the plan: recipe, tolerance, seeds, ladder, store
    store/               the one teacher-free store (unless the recipe's hsk.hsk_store is used)
    store.json           beside it: its build's seconds and bytes (:func:`mudkd.core.sweep.ensure_store`)
    runs/s<seed>/        a sweep directory per seed: points/<id>/{hsk,pred,result.json}
    runs.jsonl           one line per finished run (point, seed, dev metric, seconds): a rerun skips these
    result.json          the chosen budget, every measured point, the compute spent vs the full grid
    search.png           the measured points against the HSK fraction (log x), with the tolerance band
    final/{hsk,pred}/    with --train-final: the student distilled at the chosen budget

Every run goes through :func:`mudkd.core.sweep.run` as a one-point sweep, so baselines and budgets get the sweep's
protocol (the fair no-HSK baseline, the run records); a kill loses at most the run in progress, which restarts from
scratch. The seed is the base recipe's ``training.seed`` of that sweep, one sweep directory per seed, rather than
the sweep's ``seeds``: those replicate every planned point at every seed, while the search picks one (point, seed)
at a time; ``runs/s<seed>/points/<point>`` keeps the point ids equal to the search's labels.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mudkd.core import sweep as core_sweep
from mudkd.core.outputs import (
    check_folder,
    check_no_overlap,
    mark_folder,
    output_lock,
    read_marker,
    resume_settings,
    write_json_atomic,
)
from mudkd.core.ownership import register_layout
from mudkd.core.search.decide import NO_HSK, Outcome, Step, next_step
from mudkd.core.search.plan import (
    RESULT_FILE,
    RUNS_FILE,
    SEARCH_FILE,
    SearchPlan,
    estimate,
    measured_seconds,
    search_sweep,
)
from mudkd.core.search.plot import PLOT_FILE, write_plot
from mudkd.core.sweep import SweepEvents, base_inputs, describe_budget, ensure_store
from mudkd.errors import RecipeError, RunError
from mudkd.recipe.overrides import apply_overrides
from mudkd.recipe.schema import Recipe
from mudkd.recipe.sweep import FULL_HSK_OVERRIDES

# The distill stage (torch, ~2-5 s at import) is imported where the final student is trained: a search's --dry-run and
# estimate stay torch-free.

# What a search folder may hold besides mudkd outputs with their own markers (the store, runs/s<seed> sweeps,
# final/hsk and final/pred): the layout above.
register_layout(
    "search",
    files=(SEARCH_FILE, "store*.json", RUNS_FILE, RESULT_FILE, PLOT_FILE, "final/metrics.json"),
    folders=("runs", "final", "final/hsk", "final/pred"),
)


class SearchEvents(SweepEvents):
    """Progress of a search; the running sweep point's events arrive through :class:`SweepEvents`."""

    def on_search_start(self, rows: list[dict[str, Any]], recorded: int) -> None:
        """The search starts: its points (see :func:`table_rows`) and how many runs were recorded earlier."""

    def on_run_start(self, point: str, seed: int, run: int, max_runs: int) -> None:
        """A training run starts (``run`` counts from 1)."""

    def on_run_end(self, record: dict[str, Any], rows: list[dict[str, Any]]) -> None:
        """A run finished and was recorded; ``rows`` is the updated table."""


#: ``(plan, kind, point id, seed, events) -> record`` with at least ``dev_metric``, ``metric`` and ``seconds``.
Runner = Callable[[SearchPlan, str, str, int, SearchEvents], Mapping[str, Any]]


@dataclass
class SearchResult:
    """The search's answer and what it cost."""

    output_dir: str
    outcome: dict[str, Any]
    chosen: dict[str, Any] | None
    points: list[dict[str, Any]]
    compute: dict[str, Any]
    store: dict[str, Any]
    files: dict[str, Any]
    final: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    metric: str = "accuracy"

    def to_dict(self) -> dict[str, Any]:
        return {
            "output_dir": self.output_dir,
            "metric": self.metric,
            **{
                k: self.outcome.get(k)
                for k in ("converged", "reason", "reference", "threshold", "noise", "caveat", "caveats", "flags")
            },
            "beats_prediction_only": self.outcome.get("beats_prediction_only", []),
            "tolerance": self.outcome["tolerance"],
            "chosen": self.chosen,
            "points": self.points,
            "compute": self.compute,
            "store": self.store,
            "files": self.files,
            "final": self.final,
            "notes": self.notes,
        }


# ---------------------------------------------------------------------------------------------------------------
# Records


def settings_hash(recipe: Recipe) -> str:
    """A hash of what a run's result depends on, paths mudkd sets and the seed left out (runs are keyed by seed)."""
    data = resume_settings(recipe)
    for section, key in (
        ("hsk", "output_dir"),
        ("hsk", "hsk_store"),
        ("pred", "output_dir"),
        ("pred", "logits_store"),
        ("cache", "output_dir"),
        ("training", "seed"),
    ):
        data.get(section, {}).pop(key, None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def read_runs(output_dir: Path) -> list[dict[str, Any]]:
    """Every run recorded in ``runs.jsonl`` (a line cut short by a kill is skipped)."""
    path = output_dir / RUNS_FILE
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "point" in record and "seed" in record:
            records.append(record)
    return records


def append_run(output_dir: Path, record: Mapping[str, Any]) -> None:
    """Append one run to ``runs.jsonl`` and sync it to disk before the search goes on."""
    with (output_dir / RUNS_FILE).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, default=str) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def observations(plan_: SearchPlan, records: list[Mapping[str, Any]], digest: str) -> dict[int, list[float]]:
    """Ladder index → dev metrics in seed order, from the records of these settings (a seed gap ends a list)."""
    by_key = {(r["point"], r["seed"]): r for r in records if r.get("settings_hash") == digest}
    found: dict[int, list[float]] = {}
    for index in range(NO_HSK, len(plan_.ladder) + 1):
        values = []
        for seed in plan_.seeds:
            record = by_key.get((plan_.label(index), seed))
            if record is None:
                break
            value = record.get("dev_metric")
            values.append(float(value) if isinstance(value, int | float) else 0.0)  # a diverged run falls short
        if values:
            found[index] = values
    return found


def table_rows(plan_: SearchPlan, outcome: Outcome, *, finished: bool = False) -> list[dict[str, Any]]:
    """One row per point (no HSK, every rung, full HSK): fraction, runs, mean, std and the decision (``chosen``
    for the answer once the search is ``finished``, followed by the outcome's caveats in a few words, so the table
    itself says when the answer is capped, untested or not resolved)."""
    rows = []
    for index in range(NO_HSK, len(plan_.ladder) + 1):
        status = outcome.statuses.get(index)
        rung = plan_.ladder[index] if 0 <= index < len(plan_.ladder) else None
        decision = status.decision if status else ""
        if finished and outcome.chosen == index:
            decision = "chosen" + (f" (caveats: {', '.join(outcome.flags)})" if outcome.flags else "")
        rows.append(
            {
                "index": index,
                "point": plan_.label(index),
                "kind": "hsk" if rung else plan_.label(index),
                "budget": describe_budget(rung.budget) if rung else None,
                "hsk_fraction": plan_.fraction(index),
                "runs": len(status.values) if status else 0,
                "values": list(status.values) if status else [],
                "mean": status.mean if status else None,
                "std": status.std if status else None,
                "decision": decision,
            }
        )
    return rows


# ---------------------------------------------------------------------------------------------------------------
# The sweep runner


def sweep_runner(plan_: SearchPlan, kind: str, point: str, seed: int, events: SearchEvents) -> dict[str, Any]:
    """Train one point with one seed as a one-point sweep in ``runs/s<seed>`` (teacher-free, the search's store)."""
    base = apply_overrides(
        plan_.recipe, {"training.seed": seed, "hsk.hsk_store": str(plan_.store.path)}, where="search run"
    )
    sweep = search_sweep(
        plan_.recipe_path,
        plan_.output_dir / "runs" / f"s{seed}",
        grid=[point] if kind == "hsk" else [],
        baselines=[] if kind == "hsk" else [kind],
    )
    result = core_sweep.run(sweep, lambda overrides: apply_overrides(base, overrides, where="search"), events=events)
    record = next((r for r in result.records if r["id"] == point), None)
    if record is None:
        raise RunError(f"search: the run of {point} (seed {seed}) left no result", hint="rerun the search")
    return record


# ---------------------------------------------------------------------------------------------------------------
# The search


def check_search_dir(directory: Path, inputs: Mapping[str, str | None]) -> None:
    """A search writes into a new directory or its own earlier one (to resume), never into anything else.

    Raises:
        RecipeError: A symlink, a file, or a non-empty folder that holds no search; one that overlaps an input.
    """
    if directory.is_symlink():
        raise RecipeError(f"{directory}: output_dir is a symbolic link", hint="pass the real directory")
    if directory.exists() and not directory.is_dir():
        raise RecipeError(f"{directory}: exists and is not a directory", hint="choose another output directory")
    check_folder(directory, commands=("search",), what="the output directory", kind="search", error=RecipeError)
    check_no_overlap(directory, inputs, what="search directory")


def _inputs(recipe: Recipe) -> dict[str, str | None]:
    return {**base_inputs(recipe), "hsk.hsk_store": recipe.hsk.hsk_store}


def run(
    plan_: SearchPlan,
    *,
    events: SearchEvents | None = None,
    runner: Runner | None = None,
    train_final: bool = False,
) -> SearchResult:
    """Search the ladder: build or reuse the store, train what the search asks for, write the result.

    Args:
        plan_: The plan (:func:`mudkd.core.search.plan.plan`).
        events: Progress receiver.
        runner: Trains one (point, seed); default :func:`sweep_runner`. Tests pass a fake.
        train_final: Distil the student at the chosen budget into ``final/``.

    Raises:
        RecipeError: An output directory the search may not use.
    """
    events = events or SearchEvents()
    output_dir = plan_.output_dir
    check_search_dir(output_dir, _inputs(plan_.recipe))
    with output_lock(output_dir):
        check_search_dir(output_dir, {})  # again under the lock: another process may have acted since
        if read_marker(output_dir) is None:  # new or empty (checked): the folder is the search's from now on
            output_dir.mkdir(parents=True, exist_ok=True)
            mark_folder(output_dir, command="search")
        return _run_locked(plan_, events, runner or sweep_runner, train_final)


def _run_locked(plan_: SearchPlan, events: SearchEvents, runner: Runner, train_final: bool) -> SearchResult:
    output_dir = plan_.output_dir
    write_json_atomic(output_dir / SEARCH_FILE, plan_.to_dict())
    store_row = ensure_store(plan_.store, plan_.recipe, events)
    digest = settings_hash(plan_.recipe)
    records = read_runs(output_dir)
    step = _step(plan_, records, digest)
    recorded = step.outcome.runs
    events.on_search_start(table_rows(plan_, step.outcome), recorded)
    while step.run is not None:
        index, seed = step.run.index, plan_.seeds[step.run.seed_index]
        point = plan_.label(index)
        kind = "hsk" if 0 <= index < len(plan_.ladder) else point
        events.on_run_start(point, seed, step.outcome.runs + 1, plan_.max_runs)
        result = runner(plan_, kind, point, seed, events)
        record = {
            "point": point,
            "kind": kind,
            "seed": seed,
            "hsk_fraction": plan_.fraction(index),
            "metric": result.get("metric"),
            "dev_metric": result.get("dev_metric"),
            "seconds": result.get("seconds"),
            "model_dir": result.get("model_dir"),
            "settings_hash": digest,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        append_run(output_dir, record)
        records.append(record)
        step = _step(plan_, records, digest)
        events.on_run_end(record, table_rows(plan_, step.outcome, finished=step.run is None))
    return _finish(plan_, step.outcome, records, digest, store_row, events, train_final)


def _step(plan_: SearchPlan, records: list[Mapping[str, Any]], digest: str) -> Step:
    return next_step(
        observations(plan_, records, digest),
        rungs=len(plan_.ladder),
        tolerance=plan_.settings.tolerance,
        labels={index: rung.id for index, rung in enumerate(plan_.ladder)},
        seeds=len(plan_.seeds),
        max_runs=plan_.max_runs,
    )


def _finish(
    plan_: SearchPlan,
    outcome: Outcome,
    records: list[Mapping[str, Any]],
    digest: str,
    store_row: dict[str, Any],
    events: SearchEvents,
    train_final: bool,
) -> SearchResult:
    output_dir = plan_.output_dir
    ours = [r for r in records if r.get("settings_hash") == digest]
    metric = next((str(r["metric"]) for r in ours if r.get("metric")), "accuracy")
    rows = table_rows(plan_, outcome, finished=True)
    chosen = _chosen(plan_, outcome, rows)
    compute = _compute(plan_, ours, outcome, store_row)
    document = {"tolerance": plan_.settings.tolerance, **outcome.to_dict()}
    plot = write_plot(rows, outcome, plan_.settings.tolerance, metric, output_dir / PLOT_FILE)
    files = {"runs": str(output_dir / RUNS_FILE), "result": str(output_dir / RESULT_FILE), "plot": plot}
    final = None
    if train_final and chosen is not None:
        final = train_final_student(plan_, chosen, events)
    result = SearchResult(
        str(output_dir), document, chosen, rows, compute, store_row, files, final, plan_.notes, metric
    )
    write_json_atomic(output_dir / RESULT_FILE, result.to_dict())
    return result


def _chosen(plan_: SearchPlan, outcome: Outcome, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The chosen budget with a ready recipe snippet and flags."""
    if outcome.chosen is None:
        return None
    row = next(r for r in rows if r["index"] == outcome.chosen)
    store = str(plan_.store.path)
    if outcome.chosen == NO_HSK:
        snippet = "# no HSK needed: prediction distillation alone is within tolerance (skip 'distill hsk')"
        flags = f"mudkd distill pred RECIPE --logits-store {store}"
    elif outcome.chosen >= len(plan_.ladder):
        snippet = "# full HSK: no budget of the ladder is within tolerance\n[hsk]\nkeep_hidden = 1.0"
        flags = "mudkd distill hsk RECIPE   # every layer, token and dimension (no --config-3d)"
    else:
        snippet = f'[hsk]\nconfig_3d = "{row["point"]}"'
        flags = f"mudkd distill hsk RECIPE --config-3d {row['point']} --hsk-store {store}"
    return {**row, "config_3d": row["point"] if row["kind"] == "hsk" else None, "snippet": snippet, "flags": flags}


def _compute(
    plan_: SearchPlan, records: list[Mapping[str, Any]], outcome: Outcome, store_row: Mapping[str, Any]
) -> dict[str, Any]:
    """Runs and CPU seconds the search took, against the full grid (every rung and baseline, every seed)."""
    seconds = sum(float(r.get("seconds") or 0.0) for r in records)
    per_kind = measured_seconds(list(records))
    fallback = seconds / len(records) if records else 0.0
    seeds = len(plan_.seeds)
    grid_seconds = seeds * (
        per_kind.get("full_hsk", fallback)
        + per_kind.get("no_hsk", fallback)
        + len(plan_.ladder) * per_kind.get("hsk", fallback)
    )
    store_seconds = float(store_row.get("build_seconds") or 0.0)  # also when an earlier run built it
    return {
        "runs": outcome.runs,
        "runs_recorded": len(records),
        "max_runs": plan_.max_runs,
        "grid_runs": plan_.grid_runs,
        "run_seconds": seconds,
        "store_seconds": store_seconds,
        "cpu_seconds": seconds + store_seconds,
        "grid_cpu_seconds_estimate": grid_seconds + store_seconds,
    }


def estimate_plan(plan_: SearchPlan, *, calibration: bool = True) -> dict[str, Any]:
    """The dry-run document: the plan, the runs recorded already, and the CPU estimate."""
    records = [r for r in read_runs(plan_.output_dir) if r.get("settings_hash") == settings_hash(plan_.recipe)]
    return {
        "dry_run": True,
        **plan_.to_dict(),
        "runs_recorded": len(records),
        "estimate": estimate(plan_, records, calibration=calibration),
    }


# ---------------------------------------------------------------------------------------------------------------
# The final student


def final_overrides(plan_: SearchPlan, chosen: Mapping[str, Any]) -> dict[str, Any]:
    """Recipe overrides of the final student's HSK stage (None when no HSK is needed)."""
    if chosen["index"] == NO_HSK:
        return {}
    if chosen["index"] >= len(plan_.ladder):
        return {**FULL_HSK_OVERRIDES, "hsk.hsk_store": None}
    return {
        "hsk.config_3d": chosen["point"],
        "hsk.keep_layers": None,
        "hsk.keep_tokens": None,
        "hsk.student_layers": None,
        "hsk.teacher_layers": None,
        "hsk.hsk_store": str(plan_.store.path),
    }


def train_final_student(plan_: SearchPlan, chosen: Mapping[str, Any], events: SearchEvents) -> dict[str, Any]:
    """``final/hsk`` and ``final/pred``: the student distilled at the chosen budget (skipped when done earlier)."""
    from mudkd.core.stages import distill

    final = plan_.output_dir / "final"
    final.mkdir(exist_ok=True)
    student = plan_.recipe.student.model
    document: dict[str, Any] = {"hsk": None}
    if chosen["index"] != NO_HSK:
        hsk_dir = final / "hsk"
        if not (read_marker(hsk_dir) or {}).get("complete"):
            events.on_message(f"final student: distill hsk at {chosen['point']} → {hsk_dir}")
            recipe = apply_overrides(
                plan_.recipe, {**final_overrides(plan_, chosen), "hsk.output_dir": str(hsk_dir)}, where="final"
            )
            distill.run_hsk(recipe, events=events)
        student, document["hsk"] = str(hsk_dir), str(hsk_dir)
    pred_dir = final / "pred"
    metrics: dict[str, float] = {}
    if (read_marker(pred_dir) or {}).get("complete") and (final / "metrics.json").is_file():
        metrics = json.loads((final / "metrics.json").read_text())
    else:
        events.on_message(f"final student: distill pred → {pred_dir}")
        recipe = apply_overrides(
            plan_.recipe,
            {"student.model": student, "pred.output_dir": str(pred_dir), "pred.logits_store": str(plan_.store.path)},
            where="final",
        )
        metrics = dict(distill.run_pred(recipe, events=events).metrics)
        write_json_atomic(final / "metrics.json", metrics)
    return {**document, "pred": str(pred_dir), "dev_metrics": metrics}
