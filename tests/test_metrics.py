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


# ---------------------------------------------------------------------------------------------------------------
# Task metrics (issue 15): named positive class, macro-F1, per-class F1, task.metric


def test_binary_f1_of_the_named_positive_class_and_macro_f1_by_hand():
    # classes ham (0), spam (1); confusion matrix (rows gold, columns predicted):
    #   ham:  5 ham, 1 spam      spam: 2 ham, 2 spam
    gold = np.array([0] * 6 + [1] * 4)
    predicted = np.array([0] * 5 + [1] + [0] * 2 + [1] * 2)
    names = ("accuracy", "f1[spam]", "f1[ham]", "macro_f1")
    result = compute_metrics(names, np.eye(2)[predicted], gold, ["ham", "spam"])
    # spam: TP 2, FP 1, FN 2 -> F1 = 2*2 / (2*2 + 1 + 2) = 4/7;  ham: TP 5, FP 2, FN 1 -> 10/13
    assert result["accuracy"] == pytest.approx(7 / 10)
    assert result["f1[spam]"] == pytest.approx(4 / 7)
    assert result["f1[ham]"] == pytest.approx(10 / 13)
    assert result["macro_f1"] == pytest.approx((4 / 7 + 10 / 13) / 2)
    assert list(result) == list(names)


def test_multiclass_never_predicted_class_has_f1_zero_and_counts_in_macro_f1():
    # 3 classes a, b, c; c is in the gold labels but never predicted
    #   gold a: 3 a, 1 b      gold b: 1 a, 2 b      gold c: 1 a, 1 b
    gold = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2])
    predicted = np.array([0, 0, 0, 1, 0, 1, 1, 0, 1])
    labels = ["a", "b", "c"]
    names = ("accuracy", "macro_f1", "f1[a]", "f1[b]", "f1[c]")
    result = compute_metrics(names, np.eye(3)[predicted], gold, labels)
    f1_a = 2 * 3 / (2 * 3 + 2 + 1)  # TP 3, FP 2 (one b, one c predicted a), FN 1
    f1_b = 2 * 2 / (2 * 2 + 2 + 1)  # TP 2, FP 2, FN 1
    assert result["accuracy"] == pytest.approx(5 / 9)
    assert result["f1[a]"] == pytest.approx(f1_a)
    assert result["f1[b]"] == pytest.approx(f1_b)
    assert result["f1[c]"] == 0.0
    assert result["macro_f1"] == pytest.approx((f1_a + f1_b + 0.0) / 3)


def test_confusion_matrix_and_per_class_report_by_hand():
    from mudkd.core.metrics import confusion_matrix, per_class_scores

    matrix = confusion_matrix(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 0, 2]), 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    scores = per_class_scores(matrix)
    assert scores[0] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert scores[1]["precision"] == pytest.approx(1 / 2) and scores[1]["recall"] == 1.0
    assert scores[2]["precision"] == 1.0 and scores[2]["recall"] == pytest.approx(2 / 3)
    assert scores[2]["f1"] == pytest.approx(2 * 2 / (2 * 2 + 0 + 1))


def test_which_metrics_each_kind_of_task_reports():
    from mudkd.core.metrics import minority_label, task_metric_names

    assert task_metric_names(("accuracy",), ["0", "1"], None) == ("accuracy", "macro_f1")  # SST-2
    assert task_metric_names(("mcc", "accuracy"), ["0", "1"], None) == ("mcc", "accuracy", "macro_f1")  # CoLA
    assert task_metric_names(("pearson", "spearman", "corr"), None, None) == ("pearson", "spearman", "corr")
    assert task_metric_names(None, ["ham", "spam"], "spam") == ("accuracy", "f1[spam]", "macro_f1")
    assert task_metric_names(None, ["a", "b", "c"], None) == ("accuracy", "macro_f1", "f1[a]", "f1[b]", "f1[c]")
    assert task_metric_names(None, None, None) == ("pearson", "spearman", "corr")
    assert minority_label(["ham", "spam"], ["ham"] * 5 + ["spam"] * 2) == "spam"
    assert minority_label(["ham", "spam"], ["ham"] * 2 + ["spam"] * 5) == "ham"
    assert minority_label(["neg", "pos"], ["neg", "pos"]) == "pos"  # a tie: the second in sorted order


def _write_custom(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "dev"):
        lines = ["text,label"] + [f"{text},{label}" for text, label in rows]
        (folder / f"{split}.csv").write_text("\n".join(lines) + "\n")
    return folder


def _custom_task(folder, **extra):
    from mudkd.recipe.schema import TaskConfig

    return TaskConfig(
        name="custom",
        train_file=str(folder / "train.csv"),
        validation_file=str(folder / "dev.csv"),
        text_columns=["text"],
        **extra,
    )


def test_custom_binary_task_names_the_minority_class_and_keeps_accuracy_as_default(tmp_path):
    from mudkd.core.data import load_raw

    folder = _write_custom(tmp_path, [("hi", "ham")] * 5 + [("win cash", "spam")] * 2)
    _, labels, metrics, selection, _ = load_raw(_custom_task(folder))
    assert labels == ["ham", "spam"]
    assert metrics == ("accuracy", "f1[spam]", "macro_f1")
    assert selection == "accuracy"  # unchanged default
    _, _, metrics, selection, _ = load_raw(_custom_task(folder, positive_label="ham", metric="f1[ham]"))
    assert metrics == ("accuracy", "f1[ham]", "macro_f1") and selection == "f1[ham]"


def test_task_metric_must_be_one_the_task_reports(tmp_path):
    from mudkd.core.data import check_task_metric, load_raw
    from mudkd.errors import RecipeError
    from mudkd.recipe.schema import TaskConfig

    folder = _write_custom(tmp_path, [("a", "x"), ("b", "y"), ("c", "z")])
    assert load_raw(_custom_task(folder, metric="f1[y]"))[3] == "f1[y]"
    with pytest.raises(RecipeError) as error:
        load_raw(_custom_task(folder, metric="f1[spam]"))
    assert "accuracy, macro_f1, f1[x], f1[y], f1[z]" in error.value.message
    with pytest.raises(RecipeError, match="positive_label"):
        load_raw(_custom_task(folder, positive_label="x"))  # three classes: no positive class
    with pytest.raises(RecipeError, match=r"f1\[spam\]' is not a metric of task 'custom'"):
        check_task_metric(_custom_task(folder, metric="f1[spam]"))  # a plan reads a custom task's labels
    check_task_metric(TaskConfig(name="cola", metric="mcc"))
    with pytest.raises(RecipeError, match=r"'mcc' is not a metric of task 'sst-2' \(it reports: accuracy, macro_f1\)"):
        check_task_metric(TaskConfig(name="sst-2", metric="mcc"))


def test_selection_by_task_metric_changes_the_kept_checkpoint(tmp_path):
    """The transformers Trainer, set up by mudkd's training_arguments with the selection metric the task's data
    gives, keeps checkpoint 1 (better accuracy) by default and checkpoint 2 (better spam F1) with
    task.metric = "f1[spam]"."""
    from datasets import Dataset
    from transformers import Trainer
    from transformers.trainer_utils import EvalPrediction

    from mudkd.core.data import load_raw
    from mudkd.core.training import compute_metrics_fn, training_arguments
    from mudkd.recipe.schema import FinetuneConfig, TrainingConfig
    from tests.helpers import make_tiny_bert

    folder = _write_custom(tmp_path / "data", [("hi", "ham")] * 8 + [("win cash", "spam")] * 2)
    gold = np.array([0] * 8 + [1] * 2)
    checkpoints = {
        1: np.array([0] * 10),  # accuracy 0.8, f1[spam] 0
        2: np.array([0] * 5 + [1] * 3 + [1, 1]),  # accuracy 0.7, f1[spam] 2*2 / (2*2 + 3 + 0) = 4/7
    }
    kept = {}
    for metric in (None, "f1[spam]"):
        _, labels, names, selection, _ = load_raw(_custom_task(folder, metric=metric))
        compute = compute_metrics_fn(names, labels)
        arguments = training_arguments(
            FinetuneConfig(), TrainingConfig(device="cpu"), tmp_path / str(metric), selection=selection
        )
        dev = Dataset.from_dict({"input_ids": [[2, 3]], "labels": [0]})
        trainer = Trainer(model=make_tiny_bert(), args=arguments, eval_dataset=dev)
        for step, predicted in checkpoints.items():
            metrics = compute(EvalPrediction(predictions=np.eye(2)[predicted], label_ids=gold))
            trainer.state.global_step = step
            trainer._determine_best_metric({f"eval_{k}": v for k, v in metrics.items()}, trial=None)
        kept[selection] = trainer.state.best_global_step
    assert kept == {"accuracy": 1, "f1[spam]": 2}


def test_the_pruned_students_health_check_reports_a_named_class_f1():
    """mudkd prune's health figures use the task's metrics, f1[LABEL] included."""
    import torch

    from mudkd.core.health import health_record

    predicted = np.array([0, 0, 1, 1, 0])
    gold = np.array([0, 1, 1, 0, 0])  # spam: TP 1, FP 1, FN 1 -> F1 1/2
    record = health_record(
        np.eye(2)[predicted],
        gold,
        torch.randn(5, 4),
        metric_names=("accuracy", "f1[spam]", "macro_f1"),
        selection="f1[spam]",
        label_names=["ham", "spam"],
    )
    assert record["metric"] == "f1[spam]" and record["value"] == pytest.approx(0.5)
