"""``mudkd pipeline``: every stage from one recipe, each stage's output feeding the next.

finetune → score → prune → [augment: a transfer set, when ``augment.enabled``] → cache (teacher-free store) →
distill hsk (from the store) → distill pred (from the store's logits) → summary. Each stage writes into
``output.dir/<stage>``; a stage whose output exists and was produced from the same inputs (a hash of the recipe
keys it depends on, kept in ``stage.json``) is skipped, so an interrupted pipeline resumes at the first unfinished
stage.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mudkd.core.datacheck import check_data
from mudkd.core.events import RunEvents, StageResult
from mudkd.core.outputs import (
    add_owned_file,
    check_folder,
    check_no_overlap,
    mark_folder,
    marker_notes,
    read_marker,
    recipe_inputs,
    record_owned_file,
    write_json_atomic,
)
from mudkd.core.ownership import register_layout, verify
from mudkd.errors import CheckpointError, RecipeError
from mudkd.recipe.schema import Recipe, recipe_source

STAGE_FILE = "stage.json"
SUMMARY_FILE = "summary.json"

# A pipeline root holds its summary and the stages' outputs, each proved by its own marker.
register_layout("pipeline", files=(SUMMARY_FILE,))


@dataclass(frozen=True)
class Stage:
    """One pipeline stage: its name, output subdirectory and the recipe keys its result depends on."""

    name: str
    directory: str
    depends_on: tuple[str, ...]


STAGES = (
    Stage("finetune", "teacher", ("task", "teacher.pretrained", "finetune", "training.seed")),
    Stage("score", "scores", ("task", "teacher.model", "score", "training.seed")),
    Stage("prune", "student", ("teacher.model", "prune")),
    Stage("augment", "augment", ("task", "teacher.model", "augment", "training.seed")),  # only when enabled
    Stage("cache", "store", ("task", "teacher.model", "student.model", "hsk", "cache", "training.seed")),
    Stage("hsk", "hsk", ("task", "student.model", "hsk", "training.seed")),
    Stage("pred", "final", ("task", "student.model", "pred", "training.seed")),
)


def resolve_paths(recipe: Recipe) -> tuple[Recipe, set[str]]:
    """Fill every stage's input and output paths from ``output.dir`` (explicit recipe paths win).

    Returns:
        The resolved recipe and the stages not needed (finetune when ``teacher.model`` is given; score and prune
        when ``student.model`` is given, e.g. a TinyBERT-style student).
    """
    if not recipe.output.dir:
        raise RecipeError("the pipeline needs output.dir", hint="pass --output-dir DIR or set [output] dir")
    root = Path(recipe.output.dir)
    data = recipe.model_dump()
    use_finetune = not recipe.teacher.model
    use_prune = not recipe.student.model
    if use_finetune and not recipe.teacher.pretrained:
        raise RecipeError("the pipeline needs teacher.pretrained (to fine-tune) or teacher.model (already fine-tuned)")
    data["finetune"]["output_dir"] = recipe.finetune.output_dir or str(root / "teacher")
    data["teacher"]["model"] = recipe.teacher.model or data["finetune"]["output_dir"]
    data["score"]["output_dir"] = recipe.score.output_dir or str(root / "scores")
    data["prune"]["output_dir"] = recipe.prune.output_dir or str(root / "student")
    data["prune"]["scores"] = recipe.prune.scores or data["score"]["output_dir"]
    data["student"]["model"] = recipe.student.model or data["prune"]["output_dir"]
    data["augment"]["output_dir"] = recipe.augment.output_dir or str(root / "augment")
    if recipe.augment.enabled:  # every later stage trains on the task's data plus the transfer set
        data["augment"]["transfer_set"] = recipe.augment.transfer_set or data["augment"]["output_dir"]
    data["cache"]["output_dir"] = recipe.cache.output_dir or str(root / "store")
    data["hsk"]["output_dir"] = recipe.hsk.output_dir or str(root / "hsk")
    data["hsk"]["hsk_store"] = recipe.hsk.hsk_store or data["cache"]["output_dir"]
    data["pred"]["output_dir"] = recipe.pred.output_dir or str(root / "final")
    data["pred"]["logits_store"] = recipe.pred.logits_store or data["cache"]["output_dir"]
    not_needed = ({"finetune"} if not use_finetune else set()) | ({"score", "prune"} if not use_prune else set())
    if not recipe.augment.enabled or recipe.augment.transfer_set:  # off, or a transfer set made elsewhere
        not_needed.add("augment")
    resolved = Recipe.model_validate(data)
    resolved._source = recipe_source(recipe)
    return resolved, not_needed


def _lookup(recipe: Recipe, dotted: str) -> Any:
    node: Any = recipe.model_dump(mode="json")
    for part in dotted.split("."):
        node = node[part]
    return node


def stage_key(recipe: Recipe, stage: Stage, upstream: str = "") -> str:
    """A hash of the recipe values the stage depends on (output paths excluded) and of the stages before it,
    so a re-run upstream stage makes every later stage stale."""
    values: dict[str, Any] = {"upstream": upstream}
    for key in stage.depends_on:
        value = _lookup(recipe, key)
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in {"output_dir"}}
        values[key] = value
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


def stage_keys(recipe: Recipe, not_needed: set[str]) -> dict[str, str]:
    """Each stage's key, chained through the stages that run before it."""
    keys: dict[str, str] = {}
    upstream = ""
    for stage in STAGES:
        keys[stage.name] = stage_key(recipe, stage, upstream)
        if stage.name not in not_needed:
            upstream = keys[stage.name]
    return keys


def _stage_recipe(recipe: Recipe, stage: Stage) -> Recipe:
    """The recipe a stage runs with: prediction distillation starts from the HSK-distilled student, and a stage
    the pipeline re-runs may replace its own (stale) output."""
    update: dict[str, Any] = {"output": recipe.output.model_copy(update={"overwrite": True})}
    if stage.name == "pred":
        update["student"] = recipe.student.model_copy(update={"model": recipe.hsk.output_dir})
    return recipe.model_copy(update=update)


def _stage_dir(recipe: Recipe, stage: Stage) -> Path:
    paths = {
        "finetune": recipe.finetune.output_dir,
        "score": recipe.score.output_dir,
        "prune": recipe.prune.output_dir,
        "augment": recipe.augment.output_dir,
        "cache": recipe.cache.output_dir,
        "hsk": recipe.hsk.output_dir,
        "pred": recipe.pred.output_dir,
    }
    return Path(paths[stage.name])  # type: ignore[arg-type]


def active_stages(not_needed: set[str]) -> tuple[Stage, ...]:
    """The stages a pipeline lists: every stage, but the augment stage only when it is enabled."""
    return tuple(stage for stage in STAGES if stage.name != "augment" or "augment" not in not_needed)


def stage_status(recipe: Recipe, not_needed: set[str]) -> list[dict[str, Any]]:
    """Per stage: its directory and whether it will run, be skipped as done, or is not needed."""
    rows = []
    keys = stage_keys(recipe, not_needed)
    for stage in active_stages(not_needed):
        directory = _stage_dir(recipe, stage)
        marker = read_marker(directory)
        if stage.name in not_needed:
            status = "not needed"
        elif marker is not None and marker.get("pipeline_key") == keys[stage.name]:
            status = "done"  # the key is written into the marker at commit: no window where a kill loses it
        elif directory.exists() and any(directory.iterdir()):
            status = "stale" if verify(directory).owned else "not mudkd's"
        else:
            status = "to run"
        rows.append({"stage": stage.name, "output_dir": str(directory), "status": status})
    return rows


def plan(recipe: Recipe, *, resume: bool = False) -> dict[str, Any]:
    """The pipeline plan: which stages run and where, plus the knowledge budget when it can be resolved."""
    recipe, not_needed = resolve_paths(recipe)
    check_data(recipe.task)
    check_root(recipe)
    stages = stage_status(recipe, not_needed)
    foreign = [row["output_dir"] for row in stages if row["status"] == "not mudkd's"]
    if foreign:
        raise CheckpointError(
            f"{foreign[0]}: a stage directory {verify(Path(foreign[0])).describe()}",
            hint="mudkd never replaces a folder it cannot prove it made: choose another --output-dir",
        )
    stale = [row["stage"] for row in stages if row["status"] == "stale"]
    if stale and not recipe.output.overwrite:
        raise CheckpointError(
            f"stage output(s) {', '.join(stale)} exist but were made from different settings",
            hint="pass --overwrite to re-run them, or choose another --output-dir",
        )
    from mudkd.core.data import check_task_metric

    check_task_metric(recipe.task)
    budget = _check_budget(recipe, not_needed)
    schedule = _schedule(recipe, not_needed, budget)
    return {"stage": "pipeline", "output_dir": recipe.output.dir, "stages": stages, "budget": budget, **schedule}


def _schedule(recipe: Recipe, not_needed: set[str], budget: dict[str, Any] | None) -> dict[str, Any]:
    """The dry run's per-stage schedule (:mod:`mudkd.core.schedule`): examples, updates, store size and a rough
    CPU time; empty when the models' shapes cannot be read yet (hub names)."""
    from mudkd.core.data import load_raw, selection_carve
    from mudkd.core.models import read_config
    from mudkd.core.schedule import estimate, layer_weights, mean_tokens
    from mudkd.knowledge.shapes import model_shape

    teacher_path = recipe.teacher.pretrained if "finetune" not in not_needed else recipe.teacher.model
    if not teacher_path or not (Path(teacher_path) / "config.json").is_file():
        return {}
    teacher_config = read_config(teacher_path, "teacher")
    teacher = model_shape(teacher_config, f"{teacher_path} (teacher)")
    hidden, heads = teacher.hidden, teacher_config.get("num_attention_heads", 12)
    teacher_weights = teacher.layers * layer_weights(
        hidden, hidden, teacher_config.get("intermediate_size", 4 * hidden)
    )
    if "prune" in not_needed:  # a given student: its own shape (a pruned one keeps fewer heads: counted as all)
        student_config = read_config(recipe.student.model, "student")  # type: ignore[arg-type]
        student = model_shape(student_config, f"{recipe.student.model} (student)")
        ffn = student_config.get("intermediate_size", 4 * student.hidden)
        student_weights = student.layers * layer_weights(student.hidden, student.hidden, ffn)
    else:
        layers = len(recipe.prune.layers) if recipe.prune.layers else recipe.prune.num_layers
        kept = recipe.prune.keep_heads * hidden // heads
        student_weights = layers * layer_weights(hidden, kept, recipe.prune.ffn_hidden_dim)
    train = load_raw(recipe.task)[0]["train"]["text_a"]
    count = min(len(train), recipe.task.max_train_samples or len(train))
    carved, count = selection_carve(len(train), count, recipe.training.selection_split)  # never trained on
    rows = estimate(
        recipe,
        train_examples=count,
        transfer_examples=_transfer_examples(recipe, len(train) - count - carved, count),
        tokens=mean_tokens(train[:count], recipe.task.max_seq_length),
        teacher_weights=teacher_weights,
        student_weights=student_weights,
        bytes_per_example=(budget or {}).get("bytes_per_example"),
        teacher_stages=tuple(name for name in ("finetune", "score", "prune") if name not in not_needed),
    )
    return {"schedule": rows, "schedule_note": "CPU seconds: a rough model calibrated on the quickstart (2 CPU cores)"}


def _transfer_examples(recipe: Recipe, rest: int, count: int) -> int:
    """The transfer set's examples: counted when it is written, else the most the augment stage can write."""
    from mudkd.core.transfer import read_unlabeled, transfer_count

    if recipe.augment.transfer_set and Path(recipe.augment.transfer_set, "transfer.json").is_file():
        return transfer_count(recipe)
    if not recipe.augment.enabled:
        return 0
    config = recipe.augment
    unlabeled = (rest if config.unlabeled_rest else 0) + (
        len(read_unlabeled(config.unlabeled_file, recipe.task.text_columns)) if config.unlabeled_file else 0
    )
    return unlabeled + config.num_per_example * (count + (unlabeled if config.augment_unlabeled else 0))


def check_root(recipe: Recipe) -> None:
    """The pipeline's root folder is new, empty or a pipeline's own (its marker), and overlaps no input."""
    root = Path(recipe.output.dir)  # type: ignore[arg-type]
    if root.is_symlink() or (root.exists() and not root.is_dir()):
        raise CheckpointError(f"{root}: output.dir is a symbolic link or a file", hint="pass a real directory")
    if root.resolve() == Path.cwd().resolve() or root.resolve() in Path.cwd().resolve().parents:
        raise CheckpointError(f"{root}: output.dir is (or contains) the current directory", hint="pass a subdirectory")
    if read_marker(root) is not None:
        check_folder(root, commands=("pipeline",), what="output.dir", kind="pipeline")
    elif not _pipeline_root(root):
        raise CheckpointError(
            f"{root}: output.dir exists and was not made by mudkd",
            hint="mudkd never writes into a folder it did not make: choose another --output-dir",
        )
    inputs = {"teacher.pretrained": recipe.teacher.pretrained, **recipe_inputs(recipe)}
    check_no_overlap(root, inputs, what="pipeline directory")


def _pipeline_root(root: Path) -> bool:
    """Missing, empty, or (not marked yet) holding only stage outputs mudkd can prove it made: a run killed
    between its first stage's commit and the root's marker."""
    if not root.is_dir():
        return True
    return all(
        (entry.name.startswith(".") and entry.name.endswith(".lock")) or (entry.is_dir() and verify(entry).owned)
        for entry in root.iterdir()
    )


def _check_budget(recipe: Recipe, not_needed: set[str]) -> dict[str, Any] | None:
    """Resolve the knowledge budget before any stage runs, so a budget that cannot fit fails in seconds.

    The teacher's shape comes from its ``config.json`` (the pretrained model: fine-tuning keeps the shape, and gives
    it the task's labels), the student's from the prune settings (or its own config). Hub names that are not local
    are checked later.
    """
    from mudkd.core.data import count_labels, count_train_examples
    from mudkd.core.models import read_shape
    from mudkd.knowledge import budget_from_recipe, budget_summary, task_num_labels

    teacher_path = recipe.teacher.pretrained if "finetune" not in not_needed else recipe.teacher.model
    if not teacher_path or not (Path(teacher_path) / "config.json").is_file():
        return None
    teacher = read_shape(teacher_path, "teacher")
    if "finetune" not in not_needed:  # the pretrained model's head is replaced by the task's: count its labels
        num_labels = count_labels(recipe.task) or task_num_labels(recipe.task.name, recipe.task.task_type)
    else:
        num_labels = teacher.num_labels
    if "prune" in not_needed:
        if not (Path(recipe.student.model or "") / "config.json").is_file():
            return None
        student_layers = read_shape(recipe.student.model, "student").layers
    else:
        student_layers = len(recipe.prune.layers) if recipe.prune.layers else recipe.prune.num_layers
    budget = budget_from_recipe(
        recipe,
        num_student_layers=student_layers,
        num_teacher_layers=teacher.layers,
        teacher_hidden=teacher.hidden,
        num_labels=num_labels,
    )
    return budget_summary(budget, count_train_examples(recipe), recipe.cache.dtype)


def _runner(name: str) -> Callable[..., StageResult]:
    from mudkd.core.stages import augment, cache, distill, finetune, prune, score

    return {
        "augment": augment.run,
        "finetune": finetune.run,
        "score": score.run,
        "prune": prune.run,
        "cache": cache.run,
        "hsk": distill.run_hsk,
        "pred": distill.run_pred,
    }[name]


def run(recipe: Recipe, *, events: RunEvents | None = None, resume: bool = False) -> StageResult:
    """Run every stage that is not done yet, then measure the student against the teacher."""
    events = events or RunEvents()
    plan(recipe)
    recipe, not_needed = resolve_paths(recipe)
    root = Path(recipe.output.dir)  # type: ignore[arg-type]
    results: dict[str, Any] = {}
    timings: dict[str, float] = {}
    keys = stage_keys(recipe, not_needed)
    for row, stage in zip(stage_status(recipe, not_needed), active_stages(not_needed), strict=True):
        directory = _stage_dir(recipe, stage)
        if row["status"] in {"done", "not needed"}:
            events.on_message(f"pipeline: {stage.name} {row['status']} ({directory})")
            if row["status"] == "done":
                results[stage.name] = _stage_record(directory)
                timings[stage.name] = results[stage.name].get("seconds", 0.0)
            continue
        events.on_message(f"pipeline: running {stage.name} → {directory}")
        started = time.monotonic()
        runner = _runner(stage.name)
        stage_recipe = _stage_recipe(recipe, stage)
        with marker_notes(pipeline_key=keys[stage.name]):
            result = runner(stage_recipe, events=events, resume=resume)
        seconds = time.monotonic() - started
        timings[stage.name] = seconds
        record = {**_compact(result.to_dict()), "seconds": seconds}
        results[stage.name] = record
        for warning in record.get("warnings") or ():  # now, and again in the summary
            events.on_message(f"Warning: {warning}")
        add_owned_file(directory, STAGE_FILE, {"stage": stage.name, "key": keys[stage.name], "result": record})
        if read_marker(root) is None:  # the root is marked once it holds a result (a refused run leaves nothing)
            mark_folder(root, command="pipeline")
    summary = summarise(recipe, results, timings, events)
    if recipe.pipeline.speed_check_steps:
        summary["hsk_speed"] = speed_check(recipe, events)
    write_json_atomic(Path(recipe.output.dir, SUMMARY_FILE), summary)  # type: ignore[arg-type]
    _card_with_summary(recipe, summary)
    return StageResult(str(recipe.output.dir), summary["student"]["metrics"], {"summary": summary})


def _card_with_summary(recipe: Recipe, summary: dict[str, Any]) -> None:
    """Rewrite the final student's card with the summary's teacher metrics and ratios.

    ``distill pred`` wrote the card inside its staging directory, before its commit, from its own records; the
    ratios exist only once the committed student has been measured against the teacher, so the pipeline replaces
    the card afterwards in one atomic rename (as it writes ``stage.json`` there), with the same records plus
    ``summary.json``'s figures.
    """
    from mudkd.core.card import write_card

    final = Path(recipe.pred.output_dir)  # type: ignore[arg-type]
    if final.is_dir():
        card = write_card(final, _stage_recipe(recipe, STAGES[-1]), command="distill pred", summary=summary)
        record_owned_file(final, card.name)  # the output stays provably mudkd's (a kill before this: refused)


def _stage_record(directory: Path) -> dict[str, Any]:
    """A finished stage's recorded result (empty when a kill came between its commit and this record)."""
    try:
        return json.loads((directory / STAGE_FILE).read_text()).get("result", {})
    except (OSError, ValueError):
        return {}


def _compact(document: dict[str, Any]) -> dict[str, Any]:
    """A stage result without bulky per-step lists."""
    return {k: v for k, v in document.items() if k not in {"step_losses", "layers"}}


def summarise(recipe: Recipe, results: dict[str, Any], timings: dict[str, float], events: RunEvents) -> dict[str, Any]:
    """Teacher vs student: dev metrics, parameters, CPU latency ratio, HSK fraction and training times; the pruned
    student's health before training and every stage's warnings (degenerate student, flat learning curve)."""
    from mudkd.core.stages.export import report

    teacher_metrics, teacher_source = _teacher_metrics(recipe, fine_tuned_here="finetune" in results)
    student_metrics = _read_metrics(recipe.pred.output_dir)
    events.on_message("pipeline: measuring CPU latency of teacher and student side by side")
    measured = report(  # on dev batches padded to their own longest example: no time spent on padding
        recipe.pred.output_dir,
        teacher_path=recipe.teacher.model,
        task=recipe.task,
        batch_size=32,
        repeats=recipe.pipeline.latency_repeats,
    )
    budget = results.get("cache", {}).get("budget") or results.get("hsk", {}).get("budget") or {}
    return {
        "teacher": {
            "model": recipe.teacher.model,
            "metrics": teacher_metrics,
            "metrics_source": teacher_source,
            "params": measured["teacher"]["params"]["total"],
        },
        "student": {"model": recipe.pred.output_dir, "metrics": student_metrics, "params": measured["params"]["total"]},
        "param_ratio": measured["param_ratio"],
        "flop_ratio": measured["flop_ratio"],
        "latency_ratio": measured["latency_ratio"],
        "latency_spread": measured["latency_spread"],
        "latency_input": measured["input"],
        "hsk_fraction": budget.get("hsk_fraction"),
        "store_bytes": results.get("cache", {}).get("bytes"),
        "stage_seconds": timings,
        "student_before_training": results.get("prune", {}).get("student_before_training"),
        "warnings": [text for stage in STAGES for text in results.get(stage.name, {}).get("warnings") or ()]
        + final_warnings(recipe, teacher_metrics, student_metrics),
        # whether the reported dev metrics also picked the checkpoints (training.selection_split, issue 20)
        "selected_on": {name: results.get(name, {}).get("selected_on") for name in ("finetune", "pred")},
    }


def final_warnings(recipe: Recipe, teacher: dict[str, float], student: dict[str, float]) -> list[str]:
    """What the final numbers do not say by themselves: a class no model predicts (its F1 is 0 for teacher and
    student), and a student that predicts one class for (nearly) every dev example, whose accuracy is then just
    that class's share."""
    from mudkd.core.health import ONE_CLASS_SHARE, check_student
    from mudkd.core.metrics import class_of
    from mudkd.core.models import load_classifier, load_tokenizer

    warnings = [
        f"class {class_of(name)}: F1 0 for teacher and student: no model predicts it (too few training examples?)"
        for name, value in student.items()
        if class_of(name) is not None and value == 0.0 and teacher.get(name) == 0.0
    ]
    path = str(recipe.pred.output_dir)
    record = check_student(load_classifier(path).eval(), recipe, load_tokenizer(path), device="cpu")
    share = record.get("top_class_share")
    if record.get("majority_rate") is not None and share is not None and share >= ONE_CLASS_SHARE:
        warnings.append(
            f"the student predicts one class for {share:.0%} of the dev examples: its accuracy "
            f"{record['accuracy']:.4f} is that class's share (majority-class rate {record['majority_rate']:.4f}), "
            "not a sign it learned the task"
        )
    return warnings


def speed_check(recipe: Recipe, events: RunEvents) -> dict[str, Any]:
    """Time the same HSK updates online (teacher run on every batch) and from the store, in interleaved pairs.

    Both sources are loaded once and each pair runs the online updates and the store updates back to back
    (:func:`mudkd.core.stages.distill.time_hsk_updates`), so both share the machine's load of the moment; the result is
    the median of the pairs' ratios with their range (:func:`mudkd.core.measure.paired_ratios`), and "measurable"
    only when every pair agrees on which side of 1.0 the speed-up lies.
    """
    from mudkd.core.measure import paired_ratios
    from mudkd.core.stages.distill import time_hsk_updates

    steps, repeats = recipe.pipeline.speed_check_steps, recipe.pipeline.speed_check_repeats
    events.on_message(f"pipeline: timing {steps} HSK updates online and from the store, {repeats} interleaved pairs")
    seconds = time_hsk_updates(recipe, steps=steps, repeats=repeats)
    spread = paired_ratios(seconds["online"], seconds["store"])
    return {
        "steps": steps,
        "online_seconds": seconds["online"],
        "store_seconds": seconds["store"],
        "speedup": spread["median"],
        "spread": spread,
    }


def _teacher_metrics(recipe: Recipe, *, fine_tuned_here: bool) -> tuple[dict[str, float], str]:
    """The teacher's dev metrics on **this** run's task and dev set, and where they come from.

    A teacher this pipeline fine-tuned recorded them on this dev set; a given teacher's own ``metrics.json`` may be
    from another task, dev set or ``max_eval_samples`` (the quickstart's rt-snippets teacher distilled on SST-2),
    so a given teacher is evaluated here, on the examples the student's metrics are from.
    """
    if fine_tuned_here:
        return _read_metrics(recipe.teacher.model), "fine-tuning (this pipeline)"
    from mudkd.core.stages.evaluate import evaluate

    splits = evaluate(recipe, str(recipe.teacher.model)).splits
    return dict(splits["dev"]["metrics"]), "evaluated on this run's dev set"


def _read_metrics(directory: str | None) -> dict[str, float]:
    path = Path(directory or "", "metrics.json")
    return json.loads(path.read_text()) if path.is_file() else {}
