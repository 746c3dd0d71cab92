"""Stage 1: fine-tune a pretrained BERT (or a pruned student) on a task with the transformers Trainer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from mudkd.core.batching import make_collator
from mudkd.core.data import check_task_metric, load_task
from mudkd.core.datacheck import check_data, describe_data
from mudkd.core.events import RunEvents, StagePlan, StageResult
from mudkd.core.models import check_positions, load_classifier, load_tokenizer
from mudkd.core.outputs import check_output_dir, recipe_inputs
from mudkd.core.training import TrainerStage, resolve_device, run_trainer_stage, set_seed, with_selection_split
from mudkd.errors import CheckpointError
from mudkd.recipe.schema import Recipe


@dataclass(frozen=True)
class FinetunePlan(StagePlan):
    """What ``mudkd finetune`` would do (``--dry-run``).

    Attributes:
        model: The pretrained model to fine-tune (a hub name or a directory).
        task: The task's name.
        data: Where the data comes from (:func:`mudkd.core.datacheck.describe_data`).
        output_dir: Where the fine-tuned model goes.
        learning_rate: The peak learning rate.
        epochs: Training epochs (``max_steps`` wins when set).
        max_steps: The number of updates, or None for ``epochs``.
        train_batch_size: Examples per update.
        eval_step: Updates between dev evaluations.
        max_seq_length: Tokens per example after truncation.
    """

    stage: ClassVar[str] = "finetune"
    model: str
    task: str | None
    data: str
    output_dir: str | None
    learning_rate: float
    epochs: float
    max_steps: int | None
    train_batch_size: int
    eval_step: int
    max_seq_length: int


def plan(recipe: Recipe, *, resume: bool = False) -> FinetunePlan:
    """What ``run`` would do, for ``--dry-run`` (validates paths, touches nothing)."""
    model = recipe.teacher.pretrained
    if not model:
        raise CheckpointError("no model to fine-tune", hint="pass --model-name-or-path MODEL")
    check_data(recipe.task)
    check_positions(recipe.task.max_seq_length, model)
    check_task_metric(recipe.task)
    check_output_dir(
        recipe.finetune.output_dir,
        overwrite=recipe.output.overwrite,
        resume=resume,
        command="finetune",
        inputs={"--model-name-or-path": model, **recipe_inputs(recipe)},
    )
    stage = recipe.finetune
    return FinetunePlan(
        model=model,
        task=recipe.task.name,
        data=describe_data(recipe.task),
        output_dir=stage.output_dir,
        learning_rate=stage.learning_rate,
        epochs=stage.num_train_epochs,
        max_steps=stage.max_steps,
        train_batch_size=stage.train_batch_size,
        eval_step=stage.eval_step,
        max_seq_length=recipe.task.max_seq_length,
    )


def run(recipe: Recipe, *, events: RunEvents | None = None, resume: bool = False) -> StageResult:
    """Fine-tune ``recipe.teacher.pretrained`` on ``recipe.task`` and save the best-on-dev model.

    Writes a ``save_pretrained`` model + tokenizer, ``metrics.jsonl``, ``metrics.json``,
    ``recipe.resolved.toml`` and ``run_info.json`` into ``recipe.finetune.output_dir``, atomically.
    """
    events = events or RunEvents()
    plan(recipe, resume=resume)
    model_path = recipe.teacher.pretrained
    assert model_path is not None
    set_seed(recipe.training.seed)
    tokenizer = load_tokenizer(model_path)
    data = load_task(recipe.task, tokenizer)
    data = with_selection_split(data, recipe.task, tokenizer, recipe.training.selection_split)
    model = load_classifier(model_path, num_labels=data.num_labels)
    _set_label_names(model, data.labels)
    device = resolve_device(recipe.training)
    events.on_message(f"device: {device}; train examples: {len(data.train)}; dev examples: {len(data.dev['dev'])}")

    def save(directory: Path) -> None:
        model.save_pretrained(directory)
        tokenizer.save_pretrained(directory)

    stage = TrainerStage(
        command="finetune",
        config=recipe.finetune,
        output_dir=Path(recipe.finetune.output_dir),  # type: ignore[arg-type]
        model=model,
        train_dataset=data.train,
        save=save,
        dev=data.dev,
        selection=data.selection,
        metric_names=data.metrics,
        labels=data.labels,
        data_collator=make_collator(tokenizer, recipe.training.padding, recipe.task.max_seq_length),
        model_card=True,
    )
    outcome = run_trainer_stage(recipe, stage, events=events, resume=resume, device=device)
    details = {"steps": outcome.trainer.state.global_step, "selection": data.selection, **outcome.curve_details()}
    return StageResult(str(outcome.output_dir), outcome.metrics, details)


def _set_label_names(model: Any, labels: list[str] | None) -> None:
    if labels:
        model.config.id2label = dict(enumerate(labels))
        model.config.label2id = {label: index for index, label in enumerate(labels)}
