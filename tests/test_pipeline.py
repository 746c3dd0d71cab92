"""`mudkd pipeline`: every stage from one recipe on a tiny model, stage skipping, and the summary."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mudkd.cli.app import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MUDKD_CACHE", str(tmp_path / "cache"))


def write_recipe(path, tiny_bert_dir, glue_dir, out, hsk_tokens=6):
    path.write_text(f"""
[task]
name = "sst-2"
data_dir = "{glue_dir / "SST-2"}"
max_seq_length = 16
max_train_samples = 32
max_eval_samples = 16

[teacher]
pretrained = "{tiny_bert_dir}"

[finetune]
max_steps = 2
train_batch_size = 8
eval_step = 2

[score]
num_train_epochs = 0.5
train_batch_size = 8

[prune]
keep_heads = 2
num_layers = 1
ffn_hidden_dim = 16
emb_hidden_dim = 8

[hsk]
keep_layers = 1
keep_tokens = {hsk_tokens}
keep_hidden = 0.5
max_steps = 2
train_batch_size = 8

[pred]
max_steps = 2
train_batch_size = 8
eval_step = 2

[pipeline]
speed_check_steps = 2
latency_repeats = 1

[output]
dir = "{out}"
""")
    return path


def test_pipeline_runs_every_stage_then_skips_them(tiny_bert_dir, glue_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    recipe = write_recipe(tmp_path / "recipe.toml", tiny_bert_dir, glue_dir, out)
    plan = json.loads(runner.invoke(app, ["pipeline", str(recipe), "--dry-run", "--json"]).stdout)
    assert [row["status"] for row in plan["stages"]] == ["to run"] * 6 and not out.exists()

    result = runner.invoke(app, ["pipeline", str(recipe), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)["summary"]
    for stage in ("teacher", "scores", "student", "store", "hsk", "final"):
        assert (out / stage / "stage.json").is_file(), stage
    assert (out / "summary.json").is_file()
    assert summary["student"]["params"] < summary["teacher"]["params"]
    assert summary["latency_ratio"] > 0 and summary["hsk_fraction"] == pytest.approx(1 * 6 * 16 / (2 * 16 * 32))
    assert summary["hsk_speed"]["speedup"] > 0
    speed = summary["hsk_speed"]["spread"]  # interleaved pairs, median within their range
    assert speed["pairs"] == len(summary["hsk_speed"]["online_seconds"]) >= 1
    assert speed["low"] <= speed["median"] <= speed["high"] and isinstance(speed["measurable"], bool)
    latency = summary["latency_spread"]
    assert latency["pairs"] >= 1 and latency["low"] <= latency["median"] <= latency["high"]
    assert latency["verdict"] == "not measurable on this machine now"  # 1 repeat is one pair: never a measurement
    assert summary["latency_input"].startswith("dev split of sst-2:")  # real lengths, padded per batch
    assert set(summary["student"]["metrics"]) >= {"accuracy"}
    before = summary["student_before_training"]  # the pruned student, checked on the dev set before any training
    assert before["metric"] == "accuracy" and before["examples"] == 16 and before["majority_rate"] is not None
    assert before == json.loads((out / "student" / "student_health.json").read_text())
    assert ("prune: the pruned student is degenerate" in " ".join(summary["warnings"])) == before["degenerate"]
    # prediction distillation starts from the HSK-distilled student, and both train from the store
    final = (out / "final" / "recipe.resolved.toml").read_text()
    assert f'model = "{out / "hsk"}"' in final and f'logits_store = "{out / "store"}"' in final

    # A second run finds every stage done and trains nothing.
    from mudkd.core.stages import finetune

    monkeypatch.setattr(finetune, "run", lambda *a, **k: pytest.fail("finetune re-ran"))
    again = runner.invoke(app, ["pipeline", str(recipe), "--dry-run", "--json"])
    assert [row["status"] for row in json.loads(again.stdout)["stages"]] == ["done"] * 6

    # Changing the budget makes the store and the two distillation stages stale: refused without --overwrite.
    changed = write_recipe(tmp_path / "recipe.toml", tiny_bert_dir, glue_dir, out, hsk_tokens=8)
    refused = runner.invoke(app, ["pipeline", str(changed)])
    assert refused.exit_code == 2 and "cache, hsk, pred" in refused.stderr and "--overwrite" in refused.stderr
    plan = json.loads(runner.invoke(app, ["pipeline", str(changed), "--dry-run", "--json", "--overwrite"]).stdout)
    assert [row["status"] for row in plan["stages"]] == ["done", "done", "done", "stale", "stale", "stale"]

    # Given models: the teacher is scored on this run's dev set (here 8 examples), never taken from its own
    # metrics.json (its fine-tuning's 16): teacher and student are compared on the same examples.
    assert summary["teacher"]["metrics_source"] == "fine-tuning (this pipeline)"
    given = tmp_path / "given.toml"
    text = write_recipe(given, tiny_bert_dir, glue_dir, tmp_path / "given").read_text()
    text = text.replace(
        f'pretrained = "{tiny_bert_dir}"', f'model = "{out / "teacher"}"\n[student]\nmodel = "{out / "student"}"'
    )
    given.write_text(
        text.replace("max_eval_samples = 16", "max_eval_samples = 8").replace(
            "speed_check_steps = 2", "speed_check_steps = 0"
        )
    )
    result = runner.invoke(app, ["pipeline", str(given), "--json"])
    assert result.exit_code == 0, result.output
    teacher = json.loads(result.stdout)["summary"]["teacher"]
    evaluated = json.loads(
        runner.invoke(app, ["evaluate", str(out / "teacher"), "--recipe", str(given), "--json"]).stdout
    )
    assert teacher["metrics_source"] == "evaluated on this run's dev set"
    assert teacher["metrics"] == evaluated["splits"]["dev"]["metrics"] and evaluated["splits"]["dev"]["examples"] == 8


def test_pipeline_needs_an_output_dir(tiny_bert_dir):
    result = runner.invoke(app, ["pipeline", "--set", f"teacher.pretrained={tiny_bert_dir}"])
    assert result.exit_code == 2 and "output.dir" in result.stderr


def test_a_budget_that_cannot_fit_fails_before_any_stage(tiny_bert_dir, glue_dir, tmp_path):
    recipe = write_recipe(tmp_path / "recipe.toml", tiny_bert_dir, glue_dir, tmp_path / "run")
    result = runner.invoke(app, ["pipeline", str(recipe), "--set", "hsk.keep_layers=3"])  # 1-layer student: K <= 2
    assert result.exit_code == 2 and "keep_layers" in result.stderr
    assert not (tmp_path / "run").exists()
