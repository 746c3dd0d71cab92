"""GLUE metrics with plain names: ``accuracy``, ``f1``, ``mcc``, ``pearson``, ``spearman``, ``corr``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def compute_metrics(names: Sequence[str], predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Compute the named metrics.

    Args:
        names: Metric names (``accuracy``, ``f1``, ``acc_and_f1``, ``mcc``, ``pearson``, ``spearman``, ``corr``).
        predictions: Logits [examples, classes] (argmax is taken) or regression outputs [examples] / [examples, 1].
        labels: Gold class ids or regression targets [examples].

    Returns:
        Metric name → value, as Python floats.
    """
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import f1_score, matthews_corrcoef

    predictions = np.asarray(predictions)
    labels = np.asarray(labels)
    regression = "pearson" in names or "spearman" in names or "corr" in names
    if regression:
        outputs = predictions.reshape(-1).astype(np.float64)
        gold = labels.reshape(-1).astype(np.float64)
        pearson = float(pearsonr(outputs, gold)[0]) if np.std(outputs) > 0 else 0.0
        spearman = float(spearmanr(outputs, gold)[0]) if np.std(outputs) > 0 else 0.0
        values = {"pearson": pearson, "spearman": spearman, "corr": (pearson + spearman) / 2}
        return {name: values[name] for name in names}
    predicted = predictions.argmax(axis=-1) if predictions.ndim > 1 else predictions
    results: dict[str, float] = {}
    accuracy = float((predicted == labels).mean())
    for name in names:
        if name == "accuracy":
            results[name] = accuracy
        elif name == "f1":
            results[name] = float(f1_score(labels, predicted, zero_division=0))
        elif name == "acc_and_f1":
            results[name] = (accuracy + float(f1_score(labels, predicted, zero_division=0))) / 2
        elif name == "mcc":
            results[name] = float(matthews_corrcoef(labels, predicted))
        else:
            raise ValueError(f"unknown metric {name!r}")
    return results
