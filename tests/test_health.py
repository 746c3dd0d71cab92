"""Student health (issue 11): a pruned student checked on dev before training, flat learning curves flagged.

The figures are checked against hand-derived values; the CLI tests prune a tiny teacher whose kept top layer
outputs one constant vector (a LayerNorm with zero gain), so the student predicts one class from a constant [CLS]
— the state a mean-pooling teacher (all-MiniLM-L6-v2) hands a student that keeps its bottom layers.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mudkd.cli.app import app
from mudkd.core.health import (
    cls_spread,
    eval_history,
    flat_curve,
    flat_curve_warning,
    health_record,
    suggest_layers,
)
from tests.helpers import make_tiny_bert

runner = CliRunner()
BUDGET = ["--keep-heads", "2", "--num-layers", "2", "--ffn-hidden-dim", "32", "--emb-hidden-dim", "16"]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MUDKD_CACHE", str(tmp_path / "cache"))


# ---------------------------------------------------------------------------------------------------------------
# The [CLS] spread


def test_cls_spread_by_hand():
    # dims: (1, 3) -> population std 1, (0, 0) -> 0; mean std 0.5. Norms 1 and 3 -> mean 2, over sqrt(2) = 1.41421
    states = torch.tensor([[1.0, 0.0], [3.0, 0.0]])
    assert cls_spread(states) == pytest.approx(0.5 / (2 / 2**0.5))
    assert cls_spread(states * 10) == pytest.approx(0.353553, abs=1e-6)  # scale-free
    assert cls_spread(torch.tensor([[0.5, -2.0, 1.0]] * 4)) == 0.0  # the same vector on every example
    assert cls_spread(torch.zeros(3, 4)) == 0.0
    assert cls_spread(torch.ones(1, 4)) is None  # one example has no spread


def test_health_record_collapsed_student_with_constant_cls_is_degenerate():
    labels = np.array([1, 1, 0, 1])
    logits = np.array([[0.0, 1.0]] * 4)  # class 1 everywhere
    record = health_record(logits, labels, torch.ones(4, 8), metric_names=("accuracy",), selection="accuracy")
    assert record["metric"] == "accuracy" and record["value"] == 0.75 and record["examples"] == 4
    assert record["majority_rate"] == 0.75 and record["top_class_share"] == 1.0 and record["cls_spread"] == 0.0
    assert record["degenerate"] is True


def test_health_record_needs_both_collapse_and_constant_cls():
    labels = np.array([1, 1, 0, 0])
    varied = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.5]])
    one_class = np.array([[0.0, 1.0]] * 4)
    # one class for every example, but the [CLS] varies: the classifier is at fault, not the layers
    record = health_record(one_class, labels, varied, metric_names=("accuracy",), selection="accuracy")
    assert record["top_class_share"] == 1.0 and record["degenerate"] is False
    # a constant [CLS] but predictions that follow the labels (accuracy 1.0, far from the majority rate 0.5)
    right = np.array([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    record = health_record(right, labels, torch.ones(4, 2), metric_names=("accuracy",), selection="accuracy")
    assert record["top_class_share"] == 0.5 and record["degenerate"] is False


def test_health_record_regression():
    labels = np.array([0.0, 1.0, 2.0, 3.0])
    flat = np.full((4, 1), 1.5)
    record = health_record(flat, labels, torch.ones(4, 2), metric_names=("pearson", "corr"), selection="corr")
    assert record["majority_rate"] is None and record["prediction_std"] == 0.0 and record["degenerate"] is True


@pytest.mark.parametrize(
    ("teacher_layers", "kept", "expected"),
    [(6, [0, 1, 2], [0, 4, 5]), (6, [0, 4, 5], None), (12, list(range(6)), [0, 7, 8, 9, 10, 11]), (6, [0], [5])],
)
def test_suggested_layers_keep_the_bottom_and_the_top(teacher_layers, kept, expected):
    assert suggest_layers(teacher_layers, kept) == expected


# ---------------------------------------------------------------------------------------------------------------
# Flat learning curves


def test_flat_curve_on_hand_built_histories():
    log_history = [
        {"step": 10, "loss": 0.7},
        {"step": 20, "eval_accuracy": 0.509, "eval_loss": 0.69},
        {"step": 30, "loss": 0.69},
        {"step": 40, "eval_accuracy": 0.509, "eval_loss": 0.69},
        {"step": 60, "eval_accuracy": 0.509, "eval_loss": 0.68},
    ]
    history = eval_history(log_history, "accuracy")
    assert history == [(20, 0.509), (40, 0.509), (60, 0.509)]
    curve = flat_curve(history, "accuracy")
    expected = {"metric": "accuracy", "first": 0.509, "min": 0.509, "max": 0.509, "evaluations": 3}
    assert curve == {**expected, "steps": [20, 40, 60]}
    warning = flat_curve_warning("distill pred", curve)
    assert warning.startswith("distill pred: the dev accuracy never moved (0.509 at every evaluation)")
    assert "may be degenerate" in warning
    # within noise (0.002), the best at the first evaluation: flagged, with the range
    noisy = flat_curve([(20, 0.5092), (40, 0.5080), (60, 0.5085)], "accuracy")
    assert noisy is not None and "0.508-0.509 over 3 evaluations" in flat_curve_warning("finetune", noisy)


@pytest.mark.parametrize(
    "history",
    [
        [(20, 0.50), (40, 0.52)],  # improved: the best is not the first
        [(20, 0.52), (40, 0.50)],  # best first, but it moved beyond noise
        [(20, 0.509), (40, 0.509 + 0.0021)],  # a rise just beyond the tolerance
        [(20, 0.509)],  # one evaluation says nothing about a curve
        [],
    ],
)
def test_moving_or_short_curves_are_not_flagged(history):
    assert flat_curve(history, "accuracy") is None


# ---------------------------------------------------------------------------------------------------------------
# End to end: mudkd prune and a training stage


def _random_scores(directory, teacher_dir):
    from transformers import AutoModelForSequenceClassification

    from mudkd.core.pruning import TaylorScores, model_fingerprint, save_scores

    teacher = AutoModelForSequenceClassification.from_pretrained(teacher_dir)
    generator = torch.Generator().manual_seed(0)
    scores = TaylorScores(
        [torch.rand(4, generator=generator) for _ in range(3)],
        [torch.rand(64, generator=generator) for _ in range(3)],
        num_batches=1,
        num_examples=1,
        head_size=8,
        hidden_size=32,
    )
    save_scores(scores, directory, model_fingerprint=model_fingerprint(teacher))


def _lively_teacher(directory):
    """A tiny 3-layer BERT whose [CLS] carries the sentence: the default N(0, 0.02) weights of a random BERT leave
    its [CLS] near the [CLS] embedding (spread ~0.003), so its linear layers are redrawn with std 0.3 (~0.45)."""
    from transformers import AutoTokenizer

    model = make_tiny_bert(directory, layers=3, seed=1)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * 0.3)
    model.save_pretrained(directory)
    AutoTokenizer.from_pretrained(directory).save_pretrained(directory)


def _degenerate_teacher(directory):
    """A tiny 3-layer BERT whose layer 1 outputs one constant vector: zero LayerNorm gain, a fixed bias."""
    from transformers import AutoTokenizer

    model = make_tiny_bert(directory, layers=3, seed=2)
    norm = model.bert.encoder.layer[1].output.LayerNorm
    with torch.no_grad():
        norm.weight.zero_()
        norm.bias.copy_(torch.linspace(-1.0, 1.0, norm.bias.numel()))
    model.save_pretrained(directory)
    AutoTokenizer.from_pretrained(directory).save_pretrained(directory)


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    root = tmp_path_factory.mktemp("health")
    _lively_teacher(root / "healthy")
    _degenerate_teacher(root / "degenerate")
    for name in ("healthy", "degenerate"):
        _random_scores(root / f"{name}_scores", root / name)
    return root


def prune(teachers, name, out, glue_dir, *extra):
    data = ["--task-name", "sst-2", "--data-dir", str(glue_dir / "SST-2"), "--max-seq-length", "16"]
    args = ["prune", "--teacher-model", teachers / name, "--scores", teachers / f"{name}_scores", *BUDGET, *data]
    return runner.invoke(app, [str(a) for a in [*args, "-o", out, *extra]])


def test_prune_flags_a_degenerate_student_with_the_fix(teachers, glue_dir, tmp_path):
    result = prune(teachers, "degenerate", tmp_path / "student", glue_dir, "--json")
    assert result.exit_code == 0, result.output
    health = json.loads(result.stdout)["student_before_training"]
    # 32 fixture dev rows, 16 of each class: one class for all gives accuracy 0.5 = the majority-class rate
    assert health["examples"] == 32 and health["majority_rate"] == 0.5
    assert health["metric"] == "accuracy" and health["value"] == 0.5 and health["top_class_share"] == 1.0
    assert health["cls_spread"] < 1e-6 and health["degenerate"] is True
    assert "Warning: prune: the pruned student is degenerate before training" in result.stderr
    assert "--layers 0,2" in result.stderr  # the bottom layer and the top one of the 3-layer teacher
    saved = json.loads((tmp_path / "student" / "student_health.json").read_text())
    assert saved == health


def test_prune_reports_a_healthy_student_without_warning(teachers, glue_dir, tmp_path):
    result = prune(teachers, "healthy", tmp_path / "student", glue_dir, "--max-eval-samples", "20")
    assert result.exit_code == 0, result.output
    assert "student before training (dev set)" in result.stdout and "[CLS] spread (top layer)" in result.stdout
    assert "Warning" not in result.stderr
    health = json.loads((tmp_path / "student" / "student_health.json").read_text())
    assert health["examples"] == 20 and health["degenerate"] is False and health["cls_spread"] > 0.05


def test_prune_without_dev_data_skips_the_check(teachers, tmp_path):
    args = ["prune", "--teacher-model", teachers / "degenerate", "--scores", teachers / "degenerate_scores", *BUDGET]
    result = runner.invoke(app, [str(a) for a in [*args, "-o", tmp_path / "s", "--json"]])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["student_before_training"] is None
    assert "health check skipped" in result.stderr and not (tmp_path / "s" / "student_health.json").exists()


def test_a_training_stage_whose_dev_metric_never_moves_is_flagged(teachers, glue_dir, tmp_path):
    # the degenerate model predicts one class from a constant [CLS]; a tiny learning rate cannot change that
    args = ["finetune", "--model-name-or-path", teachers / "degenerate", "--task-name", "sst-2"]
    args += ["--data-dir", glue_dir / "SST-2", "--max-seq-length", "16", "--max-train-samples", "8"]
    args += ["--train-batch-size", "4", "--max-steps", "2", "--eval-step", "1", "--learning-rate", "1e-7"]
    result = runner.invoke(app, [str(a) for a in [*args, "-o", tmp_path / "ft", "--json"]])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    curve = document["flat_curve"]
    assert curve["metric"] == "accuracy" and curve["steps"] == [1, 2] and curve["first"] == curve["max"] == 0.5
    assert document["warnings"] == [flat_curve_warning("finetune", curve)]
    assert "Warning: finetune: the dev accuracy never moved (0.500 at every evaluation)" in result.stderr


def test_pipeline_table_shows_the_student_before_training(capsys):
    from mudkd.cli.pipeline import render_summary

    health = {"metric": "accuracy", "value": 0.509, "majority_rate": 0.509, "cls_spread": 0.0012, "degenerate": True}
    summary = {
        "teacher": {"metrics": {"accuracy": 0.9}, "params": 1000},
        "student": {"metrics": {"accuracy": 0.509}, "params": 100},
        "param_ratio": 10.0,
        "flop_ratio": 10.0,
        "latency_spread": None,
        "hsk_fraction": None,
        "stage_seconds": {},
        "student_before_training": health,
    }
    render_summary(summary)
    lines = capsys.readouterr().out.splitlines()
    row = next(line for line in lines if "student before training" in line)
    assert "accuracy 0.509 DEGENERATE" in row
    assert any("dev majority-class rate" in line and "0.509" in line for line in lines)
    assert any("student [CLS] spread before training" in line and "0.0012" in line for line in lines)


def test_the_flat_curve_warning_names_the_split_it_was_seen_on():
    from mudkd.core.health import flat_curve_warning

    curve = {"metric": "accuracy", "first": 0.509, "min": 0.509, "max": 0.509, "evaluations": 4}
    assert flat_curve_warning("distill pred", curve).startswith("distill pred: the dev accuracy never moved (0.509 ")
    assert "the selection accuracy never moved" in flat_curve_warning("distill pred", curve, "selection")
