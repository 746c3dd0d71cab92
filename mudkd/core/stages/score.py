"""Stage 2: first-order Taylor importance of every attention head and FFN neuron of the teacher (method.md §5).

The fine-tuned teacher runs over its task's training data in random order (dropout on, gold labels, no optimiser
step); :func:`mudkd.core.pruning.compute_taylor_scores` accumulates the scores, which are saved as
``importance.safetensors`` + ``summary.json`` for ``mudkd prune``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from mudkd.core.batching import PaddingCollator, make_collator
from mudkd.core.data import load_task
from mudkd.core.datacheck import check_data, describe_data
from mudkd.core.events import RunEvents, StagePlan, StageResult
from mudkd.core.models import check_positions, load_classifier, load_tokenizer, untrained_weights
from mudkd.core.outputs import StagingDir, check_output_dir, recipe_inputs
from mudkd.core.training import resolve_device, set_seed, write_run_files
from mudkd.errors import CheckpointError, DataError
from mudkd.recipe.schema import Recipe

# pruning (transformers' models, ~5 s at import) is imported inside run(): plan() (--dry-run) does not load it.


@dataclass(frozen=True)
class ScorePlan(StagePlan):
    """What ``mudkd score`` would do (``--dry-run``).

    Attributes:
        teacher: The fine-tuned teacher's directory.
        task: The task's name.
        data: Where the data comes from (:func:`mudkd.core.datacheck.describe_data`).
        output_dir: Where the scores go.
        train_batch_size: Examples per scored batch.
        epochs: Passes over the training data.
        max_seq_length: Tokens per example after truncation.
        max_train_samples: The training examples scored, or None for all.
        seed: The seed of the shuffled order.
    """

    stage: ClassVar[str] = "score"
    teacher: str
    task: str | None
    data: str
    output_dir: str | None
    train_batch_size: int
    epochs: float
    max_seq_length: int
    max_train_samples: int | None
    seed: int


def plan(recipe: Recipe, *, resume: bool = False) -> ScorePlan:
    """What ``run`` would do, for ``--dry-run`` (validates paths, touches nothing)."""
    teacher = require_teacher(recipe, flag="--model-name-or-path")
    check_data(recipe.task)
    check_positions(recipe.task.max_seq_length, teacher)
    check_output_dir(
        recipe.score.output_dir,
        overwrite=recipe.output.overwrite,
        command="score",
        inputs={"--teacher-model": teacher, **recipe_inputs(recipe)},
    )
    return ScorePlan(
        teacher=teacher,
        task=recipe.task.name,
        data=describe_data(recipe.task),
        output_dir=recipe.score.output_dir,
        train_batch_size=recipe.score.train_batch_size,
        epochs=recipe.score.num_train_epochs,
        max_seq_length=recipe.task.max_seq_length,
        max_train_samples=recipe.task.max_train_samples,
        seed=recipe.training.seed,
    )


def require_teacher(recipe: Recipe, *, flag: str) -> str:
    """``recipe.teacher.model``, checked to be a model directory (``config.json``) without loading weights.

    Args:
        recipe: The resolved recipe.
        flag: The command's flag for the teacher, named in the hint when it is missing.
    """
    teacher = recipe.teacher.model
    if not teacher:
        raise CheckpointError("no fine-tuned teacher given", hint=f"pass {flag} TEACHER_DIR")
    path = Path(teacher)
    if not (path / "config.json").is_file():
        reason = "does not exist" if not path.exists() else "is not a model directory (no config.json)"
        raise CheckpointError(f"{teacher}: {reason}", hint="pass the directory written by 'mudkd finetune'")
    return teacher


def run(recipe: Recipe, *, events: RunEvents | None = None, resume: bool = False) -> StageResult:
    """Score the teacher's heads and FFN neurons on its training data and save the scores.

    ``resume`` is accepted for the signature every stage shares; this stage keeps no checkpoints and runs whole.

    Writes ``importance.safetensors``, ``summary.json``, ``recipe.resolved.toml`` and ``run_info.json`` into
    ``recipe.score.output_dir``, atomically.

    Returns:
        A :class:`StageResult` whose details hold ``num_batches``, ``num_examples``, ``layers`` (per layer:
        head score min/mean/max and max/min ratio, heads in descending score order, FFN score min/mean/max),
        ``untrained_weights`` (weights the checkpoint lacked, initialised at random) and ``warnings``.
    """
    from mudkd.core.pruning import compute_taylor_scores, save_scores

    events = events or RunEvents()
    teacher_path = plan(recipe).teacher
    final = Path(recipe.score.output_dir)  # type: ignore[arg-type]
    set_seed(recipe.training.seed)
    tokenizer = load_tokenizer(teacher_path)
    data = load_task(recipe.task, tokenizer)
    model = load_classifier(teacher_path)
    if model.config.num_labels != data.num_labels:
        raise CheckpointError(
            f"{teacher_path}: the teacher has {model.config.num_labels} labels but task "
            f"{recipe.task.name} has {data.num_labels}",
            hint="score the teacher fine-tuned on this task",
        )
    untrained = untrained_weights(model)
    warnings = [untrained_warning(teacher_path, untrained)] if untrained else []
    device = resolve_device(recipe.training)
    batch_size = recipe.score.train_batch_size
    per_epoch = math.ceil(len(data.train) / batch_size)
    total = max(1, math.ceil(recipe.score.num_train_epochs * per_epoch - 1e-9))
    events.on_message(f"device: {device}; train examples: {len(data.train)}; batches: {total}")

    def on_step(step: int, loss: float) -> None:
        events.on_step(step, {"loss": loss, "epoch": step / per_epoch})

    events.on_start("score", total)
    collator = make_collator(tokenizer, recipe.training.padding, recipe.task.max_seq_length)
    batches = shuffled_batches(data.train, batch_size, total, seed=recipe.training.seed, collator=collator)
    scores = compute_taylor_scores(model, batches, device=device, on_step=on_step)
    events.on_end("score")

    provenance = {
        "teacher": teacher_path,
        "task": recipe.task.name,
        "max_seq_length": recipe.task.max_seq_length,
        "max_train_samples": recipe.task.max_train_samples,
        "train_batch_size": batch_size,
        "num_train_epochs": recipe.score.num_train_epochs,
        "seed": recipe.training.seed,
    }
    with StagingDir(final, command="score", recipe=recipe) as staging:
        save_scores(scores, staging.path, model_fingerprint=scores.fingerprint, extra=provenance)
        write_run_files(staging.path, recipe, metrics=None, device=device)
        output = staging.commit()
    details = {
        "num_batches": scores.num_batches,
        "num_examples": scores.num_examples,
        "layers": layer_summaries(scores.head_scores, scores.ffn_scores),
        "untrained_weights": untrained,
        "warnings": warnings,
    }
    return StageResult(str(output), {}, details)


def untrained_warning(teacher_path: str, untrained: list[str]) -> str:
    """The line that says a scored checkpoint had no trained classification head (its scores rank by a random one).

    The scores still fit the checkpoint (its fingerprint leaves the random weights out, so ``mudkd prune`` accepts
    them), but the gradients came through a head drawn at random, not one trained on the task.
    """
    return (
        f"{teacher_path} has no trained classification head ({', '.join(untrained)} initialised at random): the "
        "scores rank heads and neurons by a random head's loss; fine-tune it first ('mudkd finetune') to score "
        "what the task needs"
    )


def shuffled_batches(
    dataset: Any, batch_size: int, total: int, *, seed: int, collator: Any = None
) -> Iterator[dict[str, Any]]:
    """``total`` batches of tensors, reshuffling (with a generator seeded by ``seed``) at every pass.

    The batches are random, not grouped by length: the Taylor score sums |gradient| per batch, so which examples
    share a batch is part of the criterion. Each batch is padded only to its own longest example (``collator``),
    which leaves every batch's loss and gradients as they are with static padding.

    Args:
        dataset: A ``datasets.Dataset`` with ``input_ids``/``token_type_ids``/``attention_mask``/``labels``.
        batch_size: Examples per batch (the last batch of a pass may be smaller).
        total: Batches to yield; more than one pass's worth wraps into further passes.
        seed: Seed of the shuffling.
        collator: Pads a list of examples into a batch (:class:`mudkd.core.batching.PaddingCollator`); default:
            the padding token id 0 of BERT tokenizers.
    """
    collator = collator or PaddingCollator(0)

    if len(dataset) == 0:
        raise DataError("the training split is empty", hint="check --data-dir and --max-train-samples")
    generator = torch.Generator().manual_seed(seed)
    produced = 0
    while True:
        order = torch.randperm(len(dataset), generator=generator).tolist()
        for start in range(0, len(order), batch_size):
            if produced == total:
                return
            rows = dataset[order[start : start + batch_size]]
            yield collator([dict(zip(rows, values, strict=True)) for values in zip(*rows.values(), strict=True)])
            produced += 1


def layer_summaries(head_scores: list[Any], ffn_scores: list[Any]) -> list[dict[str, Any]]:
    """Per-layer spread of the scores: how sharply the heads (and FFN neurons) of each layer differ."""

    def stats(values: Any) -> dict[str, float | None]:
        if not values.numel():  # a layer pruned to 0 heads
            return {"min": None, "mean": None, "max": None}
        return {"min": float(values.min()), "mean": float(values.mean()), "max": float(values.max())}

    layers = []
    for index, (heads, ffn) in enumerate(zip(head_scores, ffn_scores, strict=True)):
        head_stats = {**stats(heads), "ratio": None}
        if head_stats["min"]:  # no ratio when a head scores exactly 0 (or there are no heads)
            head_stats["ratio"] = float(heads.max() / heads.min())
        layers.append(
            {
                "layer": index,
                "heads": head_stats,
                "top_heads": heads.argsort(descending=True, stable=True).tolist(),
                "ffn": stats(ffn),
            }
        )
    return layers
