"""Task metrics with plain names, and which ones each kind of task reports (issue 15).

Names: ``accuracy``, ``f1`` (GLUE's F1 of class ``1``: MRPC, QQP), ``acc_and_f1``, ``mcc``, ``macro_f1``,
``f1[LABEL]`` (the F1 of the class named LABEL), ``pearson``, ``spearman``, ``corr``.

What a task reports (:func:`task_metric_names`):

* GLUE tasks: their official metrics (SST-2 accuracy; CoLA MCC and accuracy; MRPC/QQP accuracy and F1; STS-B
  Pearson/Spearman), plus ``macro_f1`` for the classification tasks.
* A binary custom task (and ``rt-snippets``): ``accuracy``, ``f1[POSITIVE]`` and ``macro_f1``. The positive class
  is ``task.positive_label`` when set, else the minority class of the training labels (a tie: the second label in
  sorted order); ``rt-snippets`` names ``positive``.
* A multi-class custom task: ``accuracy``, ``macro_f1`` and ``f1[LABEL]`` for every class.
* Regression: ``pearson``, ``spearman``, ``corr``.

``macro_f1`` is the unweighted mean of the per-class F1 over the classes that occur in the gold labels or the
predictions (scikit-learn's convention): a class that is never predicted but present counts with F1 0.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from mudkd.errors import RecipeError
from mudkd.knowledge.tasks import METRIC_NAMES as PLAIN_METRICS  # names that do not name a class (else f1[LABEL])

# sklearn (~2.3 s at import) and scipy (~1.3 s) are imported inside the only metrics that need them (MCC,
# Pearson/Spearman).

__all__ = ["PLAIN_METRICS", "compute_metrics", "task_metric_names", "selection_metric"]
REGRESSION_METRICS = ("pearson", "spearman", "corr")
_CLASS_F1 = re.compile(r"^f1\[(.+)\]$")


def class_f1_name(label: str) -> str:
    """``f1[spam]``: the metric name of one class's F1."""
    return f"f1[{label}]"


def class_of(name: str) -> str | None:
    """The class a ``f1[LABEL]`` metric names, or None for another metric."""
    match = _CLASS_F1.match(name)
    return match.group(1) if match else None


def confusion_matrix(gold: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """``matrix[g, p]``: how many examples of gold class ``g`` were predicted as ``p``."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(gold, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return matrix


def per_class_scores(matrix: np.ndarray) -> list[dict[str, float]]:
    """Precision, recall, F1 and support of every class of a confusion matrix (0 where undefined)."""
    scores = []
    for index in range(matrix.shape[0]):
        tp = float(matrix[index, index])
        predicted = float(matrix[:, index].sum())
        support = float(matrix[index, :].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * tp / (predicted + support) if predicted + support else 0.0
        scores.append({"precision": precision, "recall": recall, "f1": f1, "support": int(support)})
    return scores


def _macro_f1(matrix: np.ndarray) -> float:
    scores = per_class_scores(matrix)
    seen = [s["f1"] for i, s in enumerate(scores) if matrix[i, :].sum() or matrix[:, i].sum()]
    return float(np.mean(seen)) if seen else 0.0


def predicted_classes(predictions: np.ndarray) -> np.ndarray:
    """Class ids from logits ``[examples, classes]`` (argmax), or ids passed as they are."""
    predictions = np.asarray(predictions)
    return predictions.argmax(axis=-1) if predictions.ndim > 1 else predictions


def compute_metrics(
    names: Sequence[str],
    predictions: np.ndarray,
    labels: np.ndarray,
    label_names: Sequence[str] | None = None,
) -> dict[str, float]:
    """Compute the named metrics.

    Args:
        names: Metric names (:data:`PLAIN_METRICS`, or ``f1[LABEL]`` with LABEL one of ``label_names``).
        predictions: Logits [examples, classes] (argmax is taken) or regression outputs [examples] / [examples, 1].
        labels: Gold class ids or regression targets [examples].
        label_names: Class names in id order (needed for ``f1[LABEL]``; also fixes the number of classes).

    Returns:
        Metric name → value, as Python floats, in the order of ``names``.
    """
    predictions = np.asarray(predictions)
    labels = np.asarray(labels)
    if any(name in REGRESSION_METRICS for name in names):
        return _regression(names, predictions, labels)
    predicted = predicted_classes(predictions)
    gold = labels.astype(np.int64)
    num_classes = len(label_names) if label_names else 0
    num_classes = max(num_classes, predictions.shape[-1] if predictions.ndim > 1 else 0)
    num_classes = max(num_classes, int(gold.max(initial=-1)) + 1, int(predicted.max(initial=-1)) + 1, 2)
    matrix = confusion_matrix(gold, predicted, num_classes)
    scores = per_class_scores(matrix)
    accuracy = float(np.trace(matrix) / matrix.sum()) if matrix.sum() else 0.0
    results: dict[str, float] = {}
    for name in names:
        label = class_of(name)
        if name == "accuracy":
            results[name] = accuracy
        elif name == "f1":  # GLUE: the F1 of class 1
            results[name] = scores[1]["f1"]
        elif name == "acc_and_f1":
            results[name] = (accuracy + scores[1]["f1"]) / 2
        elif name == "mcc":
            results[name] = _mcc(gold, predicted)
        elif name == "macro_f1":
            results[name] = _macro_f1(matrix)
        elif label is not None and label_names and label in label_names:
            results[name] = scores[list(label_names).index(label)]["f1"]
        else:
            raise ValueError(f"unknown metric {name!r}")
    return results


def _mcc(gold: np.ndarray, predicted: np.ndarray) -> float:
    from sklearn.metrics import matthews_corrcoef

    return float(matthews_corrcoef(gold, predicted))


def _regression(names: Sequence[str], predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    from scipy.stats import pearsonr, spearmanr

    outputs = predictions.reshape(-1).astype(np.float64)
    gold = labels.reshape(-1).astype(np.float64)
    pearson = float(pearsonr(outputs, gold)[0]) if np.std(outputs) > 0 else 0.0
    spearman = float(spearmanr(outputs, gold)[0]) if np.std(outputs) > 0 else 0.0
    values = {"pearson": pearson, "spearman": spearman, "corr": (pearson + spearman) / 2}
    return {name: values[name] for name in names}


# ---------------------------------------------------------------------------------------------------------------
# Which metrics a task reports, and which one selects the best checkpoint


def minority_label(labels: Sequence[str], train_labels: Sequence[Any]) -> str:
    """The rarer class of a binary task's training labels (a tie: ``labels[1]``, the second in sorted order)."""
    counts = Counter(str(value) for value in train_labels)
    first, second = labels[0], labels[1]
    return first if counts[first] < counts[second] else second


def task_metric_names(
    official: Sequence[str] | None, labels: Sequence[str] | None, positive: str | None
) -> tuple[str, ...]:
    """The metrics a task reports (see the module docstring).

    Args:
        official: A GLUE task's official metrics, or None for a custom task.
        labels: Class names in id order, or None for regression.
        positive: A binary custom task's positive class (ignored otherwise).
    """
    if labels is None:
        return tuple(official or REGRESSION_METRICS)
    if official is not None:
        return (*official, "macro_f1")
    if len(labels) == 2:
        return ("accuracy", class_f1_name(positive or labels[1]), "macro_f1")
    return ("accuracy", "macro_f1", *(class_f1_name(label) for label in labels))


def selection_metric(chosen: str | None, default: str, available: Sequence[str], task: str) -> str:
    """``task.metric`` when set (it must be one of the task's metrics), else the task's primary metric.

    On a custom binary task, plain ``f1`` names the positive class's ``f1[LABEL]`` (its only per-class F1).

    Raises:
        RecipeError: ``task.metric`` names a metric the task does not report (exit 2, with the list).
    """
    if chosen is None:
        return default
    per_class = [name for name in available if class_of(name) is not None]
    if chosen == "f1" and chosen not in available and len(per_class) == 1:
        return per_class[0]  # a custom binary task: "f1" is its positive class's F1, as GLUE's f1 is class 1's
    if chosen not in available:
        raise RecipeError(
            f"task.metric: '{chosen}' is not a metric of task '{task}' (it reports: {', '.join(available)})",
            hint="choose one of those with --metric NAME (evaluate) or --set task.metric=NAME (any command)",
        )
    return chosen
