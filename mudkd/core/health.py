"""Is a student alive before training, and did a training stage's dev metric ever move? (issue 11)

Two checks catch a student that distillation cannot rescue:

- :func:`check_student` evaluates a freshly pruned student on the dev set and measures how much its top-layer
  [CLS] hidden state varies across examples (:func:`cls_spread`). A teacher trained with mean pooling
  (sentence-transformers models such as all-MiniLM-L6-v2) has a near-constant [CLS] in its lower layers; a student
  that keeps only those layers hands its pooler and classifier a constant, so it predicts one class for every
  example, and prediction distillation with a short budget never leaves that state.
- :func:`flat_curve` recognises a training stage whose dev metric never moved from its first evaluation.

Both only report: the stage result carries the figures and a warning line, which the CLI prints on stderr.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mudkd.core.data import load_task
from mudkd.core.metrics import compute_metrics
from mudkd.recipe.schema import Recipe, TaskConfig

# torch and the batching helpers (~1.5 s at import) are imported inside the functions that run a model: training
# imports this module, which stays torch-free (see there).

#: Below this :func:`cls_spread`, the top-layer [CLS] counts as near-constant across examples. MiniLM-L6 (mean
#: pooling) measures 0.001-0.009 at layers 1-4 and 0.53 at layer 6 on SST-2 dev; BERT-style [CLS] poolers sit far
#: above it.
CLS_SPREAD_FLOOR = 0.05
#: A classifier whose most frequent prediction covers at least this share of the dev set predicts "one class".
ONE_CLASS_SHARE = 0.98
#: A dev accuracy within this distance of the majority-class rate is "at the majority-class rate".
MAJORITY_TOLERANCE = 0.01
#: A dev metric whose evaluations all lie within this range of each other "never moved" (about one example of
#: a 1,000-example dev set, for accuracy).
FLAT_TOLERANCE = 0.002

HEALTH_FILE = "student_health.json"
README_SECTION = "'Student health check' in the README"


# ---------------------------------------------------------------------------------------------------------------
# The figures


def cls_spread(states: Any) -> float | None:
    """How much the [CLS] hidden state varies across examples, relative to its size.

    For ``states`` = H, the [CLS] vectors of N examples ([N, d]):

        spread = mean_j std_i(H[i, j]) / (mean_i ‖H[i]‖₂ / √d)

    the mean over the d dimensions of the (population) standard deviation across examples, divided by the root
    mean square of one element (the mean vector norm over √d). It does not depend on the width or on the scale
    of the states: 0 for the same vector on every example, around 0.5 for a [CLS] that carries the sentence.

    Returns:
        The spread, 0.0 for all-zero states, or None with fewer than two examples.
    """
    import torch

    matrix = torch.as_tensor(states, dtype=torch.float64)
    if matrix.dim() != 2 or matrix.shape[0] < 2:
        return None
    scale = matrix.norm(dim=1).mean() / matrix.shape[1] ** 0.5
    if float(scale) == 0.0:
        return 0.0
    return float(matrix.std(dim=0, unbiased=False).mean() / scale)


def is_degenerate(record: dict[str, Any]) -> bool:
    """A student is degenerate when its predictions collapsed and its top-layer [CLS] is near-constant.

    Collapsed: a classifier predicts one class for at least :data:`ONE_CLASS_SHARE` of the dev set, or scores an
    accuracy within :data:`MAJORITY_TOLERANCE` of the majority-class rate; a regressor's outputs vary by less
    than a thousandth of the labels' standard deviation.
    """
    spread = record.get("cls_spread")
    if spread is None or spread >= CLS_SPREAD_FLOOR:
        return False
    if record.get("majority_rate") is None:
        return record["prediction_std"] <= 1e-3 * max(record["label_std"], 1e-12)
    at_majority = abs(record["accuracy"] - record["majority_rate"]) <= MAJORITY_TOLERANCE
    return record["top_class_share"] >= ONE_CLASS_SHARE or at_majority


def health_record(
    logits: Any,
    labels: Any,
    cls_states: Any,
    *,
    metric_names: Sequence[str],
    selection: str,
    label_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The figures of one evaluated student: its dev metric, the majority-class rate, the [CLS] spread, the verdict.

    Args:
        logits: The student's outputs on the dev set, [N, classes] (or [N, 1] for regression).
        labels: Gold labels, [N].
        cls_states: The top-layer [CLS] hidden states, [N, hidden].
        metric_names: The task's metrics; ``selection`` is the one reported as ``metric``.
        label_names: The task's class names in id order (for ``f1[LABEL]``).
    """
    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels)
    metrics = compute_metrics(metric_names, logits, labels, label_names)
    record: dict[str, Any] = {"metric": selection, "value": metrics[selection], "examples": int(len(labels))}
    regression = logits.ndim == 1 or logits.shape[-1] == 1
    if regression:
        record |= {
            "majority_rate": None,
            "prediction_std": float(logits.reshape(-1).std()),
            "label_std": float(labels.astype(np.float64).std()),
        }
    else:
        predicted = logits.argmax(axis=-1)
        record |= {
            "majority_rate": float(np.bincount(labels).max() / len(labels)),
            "accuracy": float((predicted == labels).mean()),
            "top_class_share": float(np.bincount(predicted).max() / len(predicted)),
        }
    record["cls_spread"] = cls_spread(cls_states)
    record["degenerate"] = is_degenerate(record)
    return record


# ---------------------------------------------------------------------------------------------------------------
# Evaluating a student on the dev set


def has_dev_data(task: TaskConfig) -> bool:
    """Whether the recipe names data to evaluate on (a GLUE folder, the offline demo, custom files or a hub set)."""
    return task.name == "rt-snippets" or any((task.data_dir, task.dataset_name, task.train_file, task.validation_file))


def predict(model: Any, dataset: Any, *, collator: Any, batch_size: int, device: str) -> tuple[Any, Any, Any]:
    """The model's logits, the gold labels and the top-layer [CLS] states on ``dataset`` (eval mode, no dropout)."""
    import torch
    from torch.utils.data import DataLoader

    logits, labels, cls = [], [], []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for batch in DataLoader(dataset, batch_size=batch_size, collate_fn=collator):
            labels.append(batch.pop("labels"))
            outputs = model(**{k: v.to(device) for k, v in batch.items()}, output_hidden_states=True)
            logits.append(outputs.logits.float().cpu())
            cls.append(outputs.hidden_states[-1][:, 0].float().cpu())
    model.train(was_training)
    return torch.cat(logits).numpy(), torch.cat(labels).numpy(), torch.cat(cls)


def check_student(model: Any, recipe: Recipe, tokenizer: Any, *, device: str) -> dict[str, Any]:
    """Evaluate ``model`` on the recipe's dev split (``task.max_eval_samples`` respected) and judge its health.

    The metrics are the training stages' (:func:`mudkd.core.metrics.compute_metrics` on the same tokenised dev
    split, padded by the same collator); only the training split is not tokenised (one example is enough).

    Returns:
        :func:`health_record`'s figures.
    """
    from mudkd.core.batching import make_collator

    task = recipe.task.model_copy(update={"max_train_samples": 1})
    data = load_task(task, tokenizer)
    collator = make_collator(tokenizer, recipe.training.padding, recipe.task.max_seq_length)
    logits, labels, cls = predict(
        model, data.dev["dev"], collator=collator, batch_size=recipe.training.eval_batch_size, device=device
    )
    return health_record(
        logits, labels, cls, metric_names=data.metrics, selection=data.selection, label_names=data.labels
    )


def suggest_layers(teacher_layers: int, kept: Sequence[int]) -> list[int] | None:
    """Teacher layers to keep instead: the bottom one and the top ones, as many as ``kept`` (None if that is it)."""
    count = len(kept)
    if count == 0 or count > teacher_layers:
        return None
    suggestion = sorted({0, *range(teacher_layers - count + 1, teacher_layers)}) if count > 1 else [teacher_layers - 1]
    return None if suggestion == sorted(kept) else suggestion


def degenerate_warning(record: dict[str, Any], *, kept: Sequence[int], teacher_layers: int) -> str:
    """The warning for a degenerate pruned student, with the fix (other layers, or more of them)."""
    if record.get("majority_rate") is None:
        collapsed = f"its outputs barely vary (std {record['prediction_std']:.3g})"
    else:
        collapsed = (
            f"it predicts one class for {record['top_class_share']:.0%} of the dev examples (accuracy "
            f"{record['accuracy']:.3f}, majority-class rate {record['majority_rate']:.3f})"
        )
    better = suggest_layers(teacher_layers, kept)
    fix = f"keep other teacher layers, e.g. --layers {','.join(map(str, better))}" if better else "keep other layers"
    return (
        f"prune: the pruned student is degenerate before training: {collapsed}, and its top-layer [CLS] is "
        f"near-constant across examples (spread {record['cls_spread']:.3g} < {CLS_SPREAD_FLOOR}), as in a teacher "
        f"trained with mean pooling (sentence-transformers). Distillation may never leave this state. Fix: {fix} "
        f"(the top layers carry the sentence), or keep more layers (--num-layers); see {README_SECTION}"
    )


# ---------------------------------------------------------------------------------------------------------------
# Flat learning curves


def eval_history(log_history: Sequence[dict[str, Any]], selection: str) -> list[tuple[int, float]]:
    """``(step, value)`` of every dev evaluation of ``selection`` in a Trainer's ``state.log_history``."""
    key = f"eval_{selection}"
    return [(int(record.get("step", 0)), float(record[key])) for record in log_history if key in record]


def flat_curve(
    history: Sequence[tuple[int, float]], metric: str, *, tolerance: float = FLAT_TOLERANCE
) -> dict[str, Any] | None:
    """A record when the dev metric never moved: the best evaluation is the first one and every evaluation lies
    within ``tolerance`` of every other (at least two evaluations); None otherwise."""
    if len(history) < 2:
        return None
    values = [value for _, value in history]
    best = values.index(max(values))
    if best != 0 or max(values) - min(values) > tolerance:
        return None
    return {
        "metric": metric,
        "first": values[0],
        "min": min(values),
        "max": max(values),
        "evaluations": len(values),
        "steps": [step for step, _ in history],
    }


def flat_curve_warning(stage: str, curve: dict[str, Any], split: str = "dev") -> str:
    """The warning line of a stage whose metric on ``split`` (dev, or the selection split) never moved."""
    if curve["max"] == curve["min"]:
        moved = f"{curve['first']:.3f} at every evaluation"
    else:
        moved = f"{curve['min']:.3f}-{curve['max']:.3f} over {curve['evaluations']} evaluations, best at the first"
    return (
        f"{stage}: the {split} {curve['metric']} never moved ({moved}): the student may be degenerate; "
        f"see {README_SECTION}"
    )
