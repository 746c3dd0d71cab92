"""A pipeline's training schedule before it runs: examples, updates, store size and a rough CPU time per stage.

The CPU time is a **rough model**, not a measurement of this run: a model's forward pass costs 2 FLOPs per
non-embedding weight per token, a training step 3 forward passes plus a fixed per-update overhead (optimizer,
batching, Trainer bookkeeping). Its two rates were measured on the quickstart on the development machine (2
shared CPU cores, torch 2.13; ``outputs/quickstart/summary.json``): the teacher pass of ``distill cache`` ran
165 examples/s through MiniLM (10.6 M non-embedding weights, about 25 tokens per snippet), i.e. about
:data:`FLOPS_PER_SECOND`; the HSK stage's 126 updates of 32 examples took 35.8 s, of which all but about 0.07 s
per update is :data:`SECONDS_PER_UPDATE` of overhead. Expect the estimate within a factor of about 2 on a similar
CPU; a GPU is far faster.
"""

from __future__ import annotations

import math
from typing import Any

#: Effective CPU rate of a forward pass, FLOP/s (measured: MiniLM teacher pass of the quickstart store build).
FLOPS_PER_SECOND = 8.7e10
#: Fixed cost of one training update besides its FLOPs, seconds (measured: the quickstart's HSK stage).
SECONDS_PER_UPDATE = 0.22
#: Tokens per word of English text in a BERT wordpiece vocabulary (a rough ratio used only for the estimate).
PIECES_PER_WORD = 1.25


def layer_weights(hidden: int, attention_width: int, ffn: int) -> int:
    """Non-embedding weights of one BERT layer: Q, K, V, O projections and the two FFN matrices."""
    return 4 * hidden * attention_width + 2 * hidden * ffn


def mean_tokens(texts: list[str], max_seq_length: int, sample: int = 1000) -> float:
    """The mean tokens per example (with [CLS] and [SEP]) estimated from the words of the first ``sample`` texts."""
    counts = [min(max_seq_length, round(len(text.split()) * PIECES_PER_WORD) + 2) for text in texts[:sample]]
    return sum(counts) / len(counts) if counts else float(max_seq_length)


def updates(examples: int, stage: Any) -> int:
    """Optimizer updates of a training stage (``max_steps`` wins over epochs, as in the Trainer)."""
    if stage.max_steps:
        return int(stage.max_steps)
    return math.ceil(math.ceil(examples / stage.train_batch_size) * stage.num_train_epochs)


def estimate(
    recipe: Any,
    *,
    train_examples: int,
    transfer_examples: int,
    tokens: float,
    teacher_weights: int,
    student_weights: int,
    bytes_per_example: int | None,
    teacher_stages: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """Per stage (finetune, score, prune when they run; augment, cache, hsk, pred): examples, updates, store
    bytes and estimated CPU seconds.

    Fine-tuning costs a teacher training step per update; scoring a forward and a backward pass (3 forward
    passes' worth, no optimizer) per example over ``score.num_train_epochs``; pruning copies weights (no time
    estimated). Dev evaluations are not counted.

    Args:
        recipe: The resolved pipeline recipe.
        train_examples: The task's training examples.
        transfer_examples: The transfer set's examples (at most, when it is not written yet).
        tokens: Mean tokens per example (:func:`mean_tokens`).
        teacher_weights: The teacher's non-embedding weights; ``student_weights`` the student's.
        bytes_per_example: What one stored example takes (the budget summary), or None.
        teacher_stages: Which of finetune, score and prune this run has to do.
    """
    examples = train_examples + transfer_examples
    forward_teacher = 2 * teacher_weights * tokens / FLOPS_PER_SECOND  # seconds per example
    step_student = 3 * 2 * student_weights * tokens / FLOPS_PER_SECOND
    rows: list[dict[str, Any]] = []
    if "finetune" in teacher_stages:
        count = updates(train_examples, recipe.finetune)
        step_teacher = 3 * forward_teacher * recipe.finetune.train_batch_size
        rows.append(
            {
                "stage": "finetune",
                "examples": train_examples,
                "updates": count,
                "cpu_seconds": count * (SECONDS_PER_UPDATE + step_teacher),
            }
        )
    if "score" in teacher_stages:
        scored = math.ceil(train_examples * recipe.score.num_train_epochs)
        rows.append({"stage": "score", "examples": scored, "updates": 0, "cpu_seconds": scored * 3 * forward_teacher})
    if "prune" in teacher_stages:
        rows.append({"stage": "prune", "examples": 0, "updates": 0, "cpu_seconds": None})
    if recipe.augment.enabled:
        rows.append({"stage": "augment", "examples": transfer_examples, "updates": 0, "cpu_seconds": None})
    rows.append(
        {
            "stage": "cache",
            "examples": examples,
            "updates": 0,
            "store_bytes": bytes_per_example * examples if bytes_per_example else None,
            "cpu_seconds": examples * forward_teacher,
        }
    )
    for name, stage in (("hsk", recipe.hsk), ("pred", recipe.pred)):
        count = updates(examples, stage)
        seconds = count * (SECONDS_PER_UPDATE + stage.train_batch_size * step_student)
        rows.append({"stage": name, "examples": examples, "updates": count, "cpu_seconds": seconds})
    return rows
