"""GLUE metrics against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mudkd.core.metrics import compute_metrics


def test_accuracy_and_f1_by_hand():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0], [0.2, 0.1], [0.0, 1.0]])  # predicts 0,1,0,0,1
    labels = np.array([0, 1, 1, 0, 0])
    result = compute_metrics(("accuracy", "f1", "acc_and_f1"), logits, labels)
    # TP=1 (index 1), FP=1 (index 4), FN=1 (index 2) -> precision 1/2, recall 1/2, F1 1/2
    assert result["accuracy"] == pytest.approx(3 / 5)
    assert result["f1"] == pytest.approx(0.5)
    assert result["acc_and_f1"] == pytest.approx((0.6 + 0.5) / 2)


def test_mcc_by_hand():
    predicted = np.array([1, 1, 0, 0, 1, 0])
    labels = np.array([1, 0, 0, 0, 1, 1])
    logits = np.eye(2)[predicted]
    tp, tn, fp, fn = 2, 2, 1, 1
    expected = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert compute_metrics(("mcc",), logits, labels)["mcc"] == pytest.approx(expected)


def test_regression_correlations():
    outputs = np.array([[1.0], [2.0], [3.0], [4.0]])
    gold = np.array([2.0, 4.0, 6.0, 9.0])
    result = compute_metrics(("pearson", "spearman", "corr"), outputs, gold)
    x, y = outputs.ravel(), gold
    pearson = ((x - x.mean()) * (y - y.mean())).sum() / math.sqrt(
        ((x - x.mean()) ** 2).sum() * ((y - y.mean()) ** 2).sum()
    )
    assert result["pearson"] == pytest.approx(pearson)
    assert result["spearman"] == pytest.approx(1.0)  # monotone
    assert result["corr"] == pytest.approx((pearson + 1.0) / 2)
