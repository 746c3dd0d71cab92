"""Stage 1: fine-tune a pretrained BERT (or a pruned student) on a task with the transformers Trainer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mudkd.core.outputs import StagingDir, check_output_dir, recipe_inputs
from mudkd.core.training import (
    JsonlWriter,
    RunEvents,
    StageResult,
    attach_events,
    check_finite_model,
    check_positions,
    discard_checkpoints,
    latest_checkpoint,
    load_classifier,
    load_tokenizer,
    resolve_device,
    set_seed,
    training_arguments,
    write_run_files,
)
from mudkd.errors import CheckpointError
from mudkd.recipe.schema import Recipe


def plan(recipe: Recipe, *, resume: bool = False) -> dict[str, Any]:
    """What ``run`` would do, for ``--dry-run`` (validates paths, touches nothing)."""
    model = recipe.teacher.pretrained
    if not model:
        raise CheckpointError("no model to fine-tune", hint="pass --model-name-or-path MODEL")
    check_positions(recipe.task.max_seq_length, model)
    check_output_dir(
        recipe.finetune.output_dir,
        overwrite=recipe.output.overwrite,
        resume=resume,
        inputs={"--model-name-or-path": model, **recipe_inputs(recipe)},
    )
    stage = recipe.finetune
    return {
        "stage": "finetune",
        "model": model,
        "task": recipe.task.name,
        "output_dir": stage.output_dir,
        "learning_rate": stage.learning_rate,
        "epochs": stage.num_train_epochs,
        "max_steps": stage.max_steps,
        "train_batch_size": stage.train_batch_size,
        "eval_step": stage.eval_step,
        "max_seq_length": recipe.task.max_seq_length,
    }


def compute_metrics_fn(names: tuple[str, ...]) -> Any:
    """A Trainer ``compute_metrics`` returning plain GLUE metric names."""
    from mudkd.core.metrics import compute_metrics

    def compute(prediction: Any) -> dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        return compute_metrics(names, logits, prediction.label_ids)

    return compute


def evaluate_all(trainer: Any, dev: dict[str, Any]) -> dict[str, float]:
    """Evaluate on every dev split; the main split's metrics keep plain names, others get a split prefix."""
    results: dict[str, float] = {}
    for name, dataset in dev.items():
        metrics = trainer.evaluate(dataset, metric_key_prefix="eval")
        for key, value in metrics.items():
            plain = key.removeprefix("eval_")
            if plain in {"runtime", "samples_per_second", "steps_per_second", "epoch"}:
                continue
            results[plain if name == "dev" else f"{name}_{plain}"] = float(value)
    return results


def run(recipe: Recipe, *, events: RunEvents | None = None, resume: bool = False) -> StageResult:
    """Fine-tune ``recipe.teacher.pretrained`` on ``recipe.task`` and save the best-on-dev model.

    Writes a ``save_pretrained`` model + tokenizer, ``metrics.jsonl``, ``metrics.json``,
    ``recipe.resolved.toml`` and ``run_info.json`` into ``recipe.finetune.output_dir``, atomically.
    """
    from transformers import Trainer

    from mudkd.core.data import load_task

    events = events or RunEvents()
    plan(recipe, resume=resume)
    final = Path(recipe.finetune.output_dir)  # type: ignore[arg-type]
    model_path = recipe.teacher.pretrained
    assert model_path is not None
    set_seed(recipe.training.seed)
    tokenizer = load_tokenizer(model_path)
    data = load_task(recipe.task, tokenizer)
    model = load_classifier(model_path, num_labels=data.num_labels)
    _set_label_names(model, data.labels)
    device = resolve_device(recipe.training)
    events.on_message(f"device: {device}; train examples: {len(data.train)}; dev examples: {len(data.dev['dev'])}")

    with StagingDir(final, command="finetune", resume=resume, recipe=recipe) as staging:
        log = JsonlWriter(staging.path / "metrics.jsonl")
        arguments = training_arguments(recipe.finetune, recipe.training, staging.path, selection=data.selection)
        trainer = Trainer(
            model=model,
            args=arguments,
            train_dataset=data.train,
            eval_dataset=data.dev["dev"],
            compute_metrics=compute_metrics_fn(data.metrics),
        )
        attach_events(trainer, events, "finetune", log)
        checkpoint = latest_checkpoint(staging.path) if resume else None
        if checkpoint:
            events.on_message(f"resuming from {checkpoint}")
        trainer.train(resume_from_checkpoint=checkpoint)
        metrics = evaluate_all(trainer, data.dev)
        details = {"steps": trainer.state.global_step, "selection": data.selection}
        if not staging.main:  # DDP: the other ranks trained and evaluated with rank 0, which alone writes the output
            return StageResult(str(final), metrics, details)
        check_finite_model(trainer.model, "finetune")
        log.write({"step": trainer.state.global_step, "final": True, **metrics})
        trainer.model.save_pretrained(staging.path)
        tokenizer.save_pretrained(staging.path)
        discard_checkpoints(staging.path)
        write_run_files(staging.path, recipe, metrics=metrics, device=device)
        output = staging.commit()
    return StageResult(str(output), metrics, details)


def _set_label_names(model: Any, labels: list[str] | None) -> None:
    if labels:
        model.config.id2label = dict(enumerate(labels))
        model.config.label2id = {label: index for index, label in enumerate(labels)}
