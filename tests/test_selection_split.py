"""``training.selection_split``: the checkpoint is selected on examples carved from train, dev is scored once."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mudkd.cli.app import app
from mudkd.errors import RecipeError
from tests.test_cli_finetune import tiny_args

runner = CliRunner()


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MUDKD_CACHE", str(tmp_path / "cache"))


def test_the_carve_is_the_tail_of_the_training_file_and_seed_independent():
    from mudkd.core.data import selection_carve

    # SST-2 findings: 67,349 sentences, the first 2,000 trained on; 20 % of 2,000 = the last 400 of the file
    assert selection_carve(67_349, 2_000, 0.2) == (400, 2_000)  # training examples unchanged
    assert selection_carve(100, 100, 0.1) == (10, 90)  # the whole file trained on: the carve comes off it
    assert selection_carve(100, 95, 0.1) == (10, 90)  # 95 + 10 > 100: training keeps the 90 before the carve
    assert selection_carve(100, 100, 0.0) == (0, 100) and selection_carve(100, 100, None) == (0, 100)
    with pytest.raises(RecipeError, match="leaves none to train on"):
        selection_carve(1, 1, 0.5)


def test_with_selection_split_adds_the_carved_examples_and_cuts_train(glue_dir, tiny_bert_dir):
    from transformers import AutoTokenizer

    from mudkd.core.data import load_raw, load_task
    from mudkd.core.training import with_selection_split
    from mudkd.recipe.schema import TaskConfig

    config = TaskConfig(name="sst-2", data_dir=str(glue_dir / "SST-2"), max_seq_length=24)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    data = load_task(config, tokenizer)
    assert with_selection_split(data, config, tokenizer, 0) is data
    split = with_selection_split(data, config, tokenizer, 0.25)
    total = len(load_raw(config)[0]["train"]["text_a"])  # 64 fixture sentences, all trained on
    assert total == len(data.train) == 64
    assert len(split.dev["selection"]) == 16 and len(split.train) == 48 and list(split.dev)[0] == "dev"
    assert split.train["input_ids"] == data.train["input_ids"][:48]  # a prefix: store rows keep their index
    assert split.dev["selection"]["input_ids"] == data.train["input_ids"][48:]  # the last 16 of the file


def test_finetune_selects_on_the_split_and_scores_dev_once(tiny_bert_dir, glue_dir, tmp_path):
    out = tmp_path / "teacher"
    args = [*tiny_args(tiny_bert_dir, glue_dir, out), "--set", "training.selection_split=0.25", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    # 48 examples used: 12 carved from the end of the 64-sentence file (48 + 12 fit: training keeps all 48)
    metrics = document["metrics"]
    assert {"accuracy", "selection_accuracy"} <= set(metrics)
    details = document  # a stage result's details sit at the top of its JSON
    assert details["selected_on"] == "a selection split of 12 training examples; dev scored once, at the end"
    assert details["selection_evaluations"] == 2 and details["selected_step"] in (2, 4)  # steps 2 and 4
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    selections = [r for r in records if "eval_accuracy" in r and not r.get("final")]
    best = next(r for r in selections if r["step"] == details["selected_step"])
    # the selection metric is the one logged at the chosen step; dev is a separate, final pass
    assert metrics["selection_accuracy"] == pytest.approx(best["eval_accuracy"])
    assert len(selections) == 3  # steps 2 and 4 on the selection split, then dev once

    plain = runner.invoke(app, [*tiny_args(tiny_bert_dir, glue_dir, tmp_path / "plain"), "--json"])
    assert json.loads(plain.stdout)["selected_on"].startswith("dev, the set the metrics report")


def test_selection_metrics_are_the_best_checkpoints_even_when_it_is_the_last_step():
    """The best checkpoint is the last update (63): scoring dev then logs another record at step 63, which must not
    be reported as the selection split's metrics (the quickstart's teacher showed selection = dev exactly)."""
    from types import SimpleNamespace

    from mudkd.core.training import evaluate_all

    class Trainer:
        args = SimpleNamespace(load_best_model_at_end=True)
        state = SimpleNamespace(
            best_global_step=63,
            log_history=[
                {"step": 40, "eval_loss": 0.6, "eval_accuracy": 0.70},
                {"step": 63, "eval_loss": 0.5, "eval_accuracy": 0.75},  # the selection split, best and last
            ],
        )

        def evaluate(self, dataset, metric_key_prefix="eval"):
            record = {"step": 63, "eval_loss": 0.9, "eval_accuracy": 0.60}  # dev, scored once at the end
            self.state.log_history.append(record)
            return {key: value for key, value in record.items() if key != "step"}

    metrics = evaluate_all(Trainer(), {"dev": "dev rows", "selection": "carved rows"})
    assert metrics == {"loss": 0.9, "accuracy": 0.60, "selection_loss": 0.5, "selection_accuracy": 0.75}


def test_progress_names_the_split_each_evaluation_scores(tiny_bert_dir, glue_dir, tmp_path):
    """With a selection split, evaluations while training score it (named so); the last one, after training,
    scores dev."""
    args = [*tiny_args(tiny_bert_dir, glue_dir, tmp_path / "teacher"), "--set", "training.selection_split=0.25"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    evaluations = [line for line in result.stderr.splitlines() if "accuracy=" in line and " step " in line]
    assert evaluations and all(" selection accuracy=" in line for line in evaluations[:-1])
    assert " dev accuracy=" in evaluations[-1] and "selection" not in evaluations[-1]
