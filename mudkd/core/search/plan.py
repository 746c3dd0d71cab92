"""Planning a search: the ladder resolved and ordered, the one store that serves it, the run cap, the CPU estimate.

The ladder's points and both baselines are planned as one sweep (:func:`mudkd.core.sweep.plan`) whose output
directory is the search's: the sweep planner resolves and checks every budget, plans the covering store
(``<output>/store``; or checks that the recipe's ``hsk.hsk_store`` serves every rung) and builds the recipes of the
``no_hsk`` and ``full_hsk`` points, so they get the sweep's protocol. Nothing here writes a file.
"""

from __future__ import annotations

import math
import re
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mudkd.core.data import count_train_examples
from mudkd.core.models import load_classifier, read_shape
from mudkd.core.search.decide import grid_runs, max_runs_needed
from mudkd.core.search.ladder import build_ladder
from mudkd.core.store import HskStore
from mudkd.core.sweep import PlannedStore, describe_budget, stage_updates
from mudkd.core.sweep import plan as plan_sweep
from mudkd.errors import RecipeError
from mudkd.knowledge import KnowledgeBudget, parse_config_3d
from mudkd.knowledge.schemes import HiddenScheme, TokenScheme
from mudkd.recipe.overrides import apply_overrides
from mudkd.recipe.schema import Recipe
from mudkd.recipe.search import SearchSettings, seeds_of
from mudkd.recipe.sweep import Sweep

# torch is imported inside calibrate() only: planning a search (--dry-run) stays torch-free (~1.5 s at import).

_POINT = re.compile(r"^[^:]*: point ([^\s:]+?)(?:-s\d+)?: ")

_BUDGET = re.compile(r"^search: budget (\S+): ")

SEARCH_FILE = "search.json"
RUNS_FILE = "runs.jsonl"
RESULT_FILE = "result.json"


@dataclass
class Rung:
    """One budget of the ladder: its ``{K}l_{k}t_{ρ}h`` id (also its sweep point id) and resolved budget."""

    id: str
    budget: KnowledgeBudget

    @property
    def fraction(self) -> float:
        return self.budget.hsk_fraction


@dataclass
class SearchPlan:
    """Everything a search will do, resolved and validated, before anything is written."""

    recipe: Recipe
    recipe_path: str
    settings: SearchSettings
    output_dir: Path
    ladder: list[Rung]
    seeds: list[int]
    store: PlannedStore
    max_runs: int
    num_examples: int | None
    notes: list[str] = field(default_factory=list)

    @property
    def needed_runs(self) -> int:
        """The most runs the search can take (:func:`max_runs_needed`)."""
        return max_runs_needed(len(self.ladder), len(self.seeds))

    @property
    def grid_runs(self) -> int:
        return grid_runs(len(self.ladder), len(self.seeds))

    def label(self, index: int) -> str:
        """The point id of a ladder index: ``no_hsk``, a rung id, ``full_hsk``."""
        if index < 0:
            return "no_hsk"
        return self.ladder[index].id if index < len(self.ladder) else "full_hsk"

    def fraction(self, index: int) -> float:
        if index < 0:
            return 0.0
        return self.ladder[index].fraction if index < len(self.ladder) else 1.0

    def store_row(self) -> dict[str, Any]:
        return self.store.row(self.recipe.cache.dtype, self.num_examples)

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe_path,
            "output_dir": str(self.output_dir),
            "tolerance": self.settings.tolerance,
            "seeds": list(self.seeds),
            "axes": "recipe" if self.settings.ladder else self.settings.axes,
            "ladder": [
                {"id": r.id, "budget": describe_budget(r.budget), "hsk_fraction": r.fraction} for r in self.ladder
            ],
            "store": self.store_row(),
            "max_runs": self.max_runs,
            "runs_needed_at_most": self.needed_runs,
            "grid_runs": self.grid_runs,
            "num_examples": self.num_examples,
            "notes": list(self.notes),
        }


def _shape_inputs(recipe: Recipe) -> tuple[int, int]:
    """The student's depth L_S and the teacher's width d (from the given store when there is one)."""
    student = read_shape(recipe.student.model, "student")
    if recipe.hsk.hsk_store:
        stored = KnowledgeBudget.from_dict(HskStore.open(recipe.hsk.hsk_store, verify=False).meta["budget"])
        return student.layers, stored.teacher_hidden
    return student.layers, read_shape(recipe.teacher.model, "teacher").hidden


def _recipe_budget(recipe: Recipe) -> tuple[int | None, int | None, float]:
    """The recipe's own (K, k, ρ): what a 1-D ladder keeps on the axes it does not vary."""
    hsk = recipe.hsk
    if hsk.config_3d:
        return parse_config_3d(hsk.config_3d)
    layers = hsk.keep_layers or (len(hsk.student_layers) if hsk.student_layers else None)
    return layers, hsk.keep_tokens, hsk.keep_hidden


def ladder_strings(recipe: Recipe, settings: SearchSettings) -> list[str]:
    """The ladder's budget strings: the ``[search]`` table's, or the default one along ``settings.axes``."""
    if settings.ladder is not None:
        return list(settings.ladder)
    num_layers, hidden = _shape_inputs(recipe)
    return build_ladder(
        settings.axes,
        num_layers=num_layers,
        seq_length=recipe.task.max_seq_length,
        hidden=hidden,
        ranked=recipe.hsk.token_scheme != TokenScheme.LEFT_FIRST,
        magnitude=recipe.hsk.hidden_scheme == HiddenScheme.IMPORTANCE_MASK_DYNAMIC,
        base=_recipe_budget(recipe),
    )


def search_sweep(
    recipe_path: str, output_dir: Path, *, grid: list[str], baselines: list[str], seeds: list[int] | None = None
) -> Sweep:
    """A sweep of the search: ``grid`` budgets (× ``seeds``) and ``baselines``, teacher-free, into ``output_dir``."""
    block: dict[str, Any] = {"config_3d": grid, **({"seed": seeds} if seeds else {})}
    return Sweep.model_validate(
        {
            "base": recipe_path,
            "grid": [block] if grid else [],
            "baselines": baselines,
            "output_dir": str(output_dir),
            "teacher_free": True,
            "fair_baseline": True,  # no_hsk trains as long as an HSK run (the sweep's protocol), said explicitly
        }
    )


def plan(recipe: Recipe, settings: SearchSettings, *, recipe_path: str, output_dir: str | Path) -> SearchPlan:
    """Resolve the ladder, plan its one store, and fix the run cap; write nothing.

    Raises:
        RecipeError: An empty ladder, a budget that does not fit the models, a ladder one store cannot serve (or
            that the recipe's ``hsk.hsk_store`` cannot serve).
    """
    output = Path(output_dir)
    strings = ladder_strings(recipe, settings)
    if not strings:
        raise RecipeError(
            "search: the ladder is empty: no budget to try",
            hint="give [search] ladder = ['1l_10t_0.1h', ...] or another --axes",
        )
    seeds = seeds_of(recipe, settings.seeds)
    # every seed of every rung, so the store serves them all (a rand_mask's dims follow the seed)
    sweep = search_sweep(recipe_path, output, grid=strings, baselines=["no_hsk", "full_hsk"], seeds=seeds)
    try:
        planned = plan_sweep(sweep, lambda overrides: apply_overrides(recipe, overrides, where="search"))
    except RecipeError as error:  # the sweep names points per seed: one line per ladder budget instead
        problems = list(dict.fromkeys(_POINT.sub(r"search: budget \1: ", problem) for problem in error.problems))
        others = [match.group(1) for p in problems[1:] if (match := _BUDGET.match(p))]
        message = problems[0] + (f" (also: {', '.join(others)})" if others else "")
        hint = "fix the ladder, or the recipe" if error.hint and "grid" in error.hint else error.hint
        raise RecipeError(message, hint=hint) from None
    notes = list(planned.notes)
    budgets = {}
    for point in planned.points:
        if point.point.kind == "hsk" and point.budget is not None:
            budgets.setdefault(str(point.point.settings["config_3d"]), point.budget)
    rungs = [Rung(text, budget) for text, budget in budgets.items()]
    full = [r for r in rungs if r.fraction >= 1.0]
    if full:
        notes.append(f"{', '.join(r.id for r in full)}: full HSK is the search's reference, not a rung")
    rungs = sorted((r for r in rungs if r.fraction < 1.0), key=lambda r: (r.fraction, r.id))
    if not rungs:
        raise RecipeError(
            "search: the ladder is empty: every budget of it is full HSK (the reference)",
            hint="give budgets smaller than full HSK",
        )
    if len(planned.stores) != 1:
        raise RecipeError(
            f"search: the ladder needs {len(planned.stores)} stores, a search builds one "
            f"({'; '.join(planned.notes) or 'different token rankings'})",
            hint="use one token ranking for every budget (e.g. no rung with all tokens and an attention scheme)",
        )
    store = planned.stores[0]
    needed = max_runs_needed(len(rungs), len(seeds))
    max_runs = min(settings.max_runs, needed) if settings.max_runs else needed

    return SearchPlan(
        recipe, recipe_path, settings, output, rungs, seeds, store, max_runs, count_train_examples(recipe), notes
    )


# ---------------------------------------------------------------------------------------------------------------
# CPU-time estimate


def stage_steps(recipe: Recipe, num_examples: int | None) -> dict[str, int]:
    """Updates of the HSK and prediction stages of one run, as the sweep counts them (:func:`stage_updates`)."""
    accumulation = recipe.training.gradient_accumulation_steps
    return {
        name: stage_updates(stage, num_examples, accumulation) or 0
        for name, stage in (("hsk", recipe.hsk), ("pred", recipe.pred))
    }


def measured_seconds(records: list[Mapping[str, Any]]) -> dict[str, float]:
    """Mean seconds per run of each kind (``hsk``, ``no_hsk``, ``full_hsk``) among finished runs."""
    by_kind: dict[str, list[float]] = {}
    for record in records:
        if isinstance(record.get("seconds"), int | float):
            by_kind.setdefault(record["kind"], []).append(float(record["seconds"]))
    return {kind: sum(v) / len(v) for kind, v in by_kind.items()}


def calibrate(recipe: Recipe, *, repeats: int = 2) -> dict[str, float]:
    """Seconds of one student training step and one teacher forward pass at the recipe's batch size and T.

    A short calibration on random token ids (no data, nothing written): one warm-up step, then the median of
    ``repeats`` timed ones.
    """
    import torch

    batch, length = recipe.hsk.train_batch_size, recipe.task.max_seq_length
    student = load_classifier(recipe.student.model)  # type: ignore[arg-type]
    student.train()
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-5)
    vocab = int(student.config.vocab_size)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (batch, length), generator=generator)
    mask = torch.ones_like(ids)

    def student_step() -> float:
        started = time.perf_counter()
        output = student(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        loss = output.logits.float().pow(2).mean() + sum(h.float().pow(2).mean() for h in output.hidden_states)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return time.perf_counter() - started

    student_step()
    timings = {"student_step": statistics.median(student_step() for _ in range(repeats))}
    if recipe.teacher.model:
        teacher = load_classifier(recipe.teacher.model)
        teacher.eval()

        def teacher_pass() -> float:
            started = time.perf_counter()
            with torch.no_grad():
                # as distillation runs it: hidden states only (the [CLS] attention row is recomputed from them,
                # core/hsk.py), so no eager-attention fallback and no sdpa/output_attentions warning
                teacher(input_ids=ids, attention_mask=mask, output_hidden_states=True)
            return time.perf_counter() - started

        teacher_pass()
        timings["teacher_pass"] = statistics.median(teacher_pass() for _ in range(repeats))
    return timings


def estimate(plan_: SearchPlan, records: list[Mapping[str, Any]], *, calibration: bool = True) -> dict[str, Any]:
    """CPU seconds of one run of each kind, of the store build, the search at most and the full grid.

    Measured runs of this output directory are used when there are some; else a short calibration (or None).
    """
    measured = measured_seconds(records)
    steps = stage_steps(plan_.recipe, plan_.num_examples)
    per_run: dict[str, float] = {}
    source = "measured runs"
    store_seconds = None
    if len(measured) == 3:
        per_run = dict(measured)
    elif calibration:
        timings = calibrate(plan_.recipe)
        source = "a calibration of 2 training steps"
        student = (steps["hsk"] + steps["pred"]) * timings["student_step"]
        teacher = timings.get("teacher_pass", 0.0)
        per_run = {
            "hsk": student,
            "no_hsk": student,  # the sweep's fair baseline trains as many updates
            "full_hsk": student + steps["hsk"] * teacher,
            **measured,
        }
        if plan_.store.given:
            store_seconds = 0.0
        elif teacher:
            store_seconds = math.ceil((plan_.num_examples or 0) / plan_.recipe.hsk.train_batch_size) * teacher
    if not per_run:
        return {"source": None, "steps_per_run": steps}
    seeds, rungs = len(plan_.seeds), len(plan_.ladder)
    bisection = plan_.needed_runs - 2 * seeds
    worst = seeds * per_run["full_hsk"] + seeds * per_run["no_hsk"] + bisection * per_run["hsk"]
    grid = seeds * (per_run["full_hsk"] + per_run["no_hsk"] + rungs * per_run["hsk"])
    return {
        "source": source,
        "steps_per_run": steps,
        "seconds_per_run": per_run,
        "store_seconds": store_seconds,
        "search_seconds_at_most": worst * plan_.max_runs / plan_.needed_runs,
        "grid_seconds": grid,
    }
