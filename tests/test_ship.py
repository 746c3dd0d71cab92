"""Shipping a student: int8 (ONNX Runtime and PyTorch) checked on dev, model cards, `mudkd push`, env, completion."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mudkd.cli.app import app
from mudkd.core import quantize as q
from mudkd.core.card import read_card
from mudkd.core.models import load_classifier
from mudkd.core.outputs import MARKER
from mudkd.core.stages.export import MADE_BY, export_onnx
from tests.helpers import REPO_ROOT

runner = CliRunner()


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MUDKD_CACHE", str(tmp_path / "cache"))


def _data(glue_dir):
    return ["--task-name", "sst-2", "--data-dir", str(glue_dir / "SST-2")]


def _task(glue_dir):
    from mudkd.recipe import build_recipe

    return build_recipe(None, flags={"task.name": "sst-2", "task.data_dir": str(glue_dir / "SST-2")}).task


def _run(*args, env=None):
    """``python -m mudkd ARGS`` in a subprocess (huggingface_hub reads HF_HUB_OFFLINE when it is imported)."""
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
    environment = {key: value for key, value in environment.items() if value is not None}
    return subprocess.run(
        [sys.executable, "-m", "mudkd", *args], capture_output=True, text=True, env=environment, timeout=300
    )


# ---------------------------------------------------------------------------------------------------------------
# Int8


def test_onnx_int8_is_checked_on_dev_and_written_with_mudkd_mark(tiny_bert_dir, glue_dir, tmp_path):
    import onnx

    fp32 = export_onnx(str(tiny_bert_dir), tmp_path / "fp32.onnx")
    result = export_onnx(str(tiny_bert_dir), tmp_path / "int8.onnx", quantize="dynamic", task=_task(glue_dir))
    quantization = result["quantization"]
    check = quantization["check"]
    assert check["passed"] and check["metric"] == "accuracy" and check["examples"] > 0
    assert check["agreement"] >= 0.9 and check["max_logit_diff"] < 0.1
    assert quantization["fp32_bytes"] == fp32["bytes"] > result["bytes"] == (tmp_path / "int8.onnx").stat().st_size
    assert "SkipLayerNormalization" in quantization["fused"]  # ORT's BERT optimiser ran before quantization
    graph = onnx.load(str(tmp_path / "int8.onnx"))
    assert any(node.op_type == "DynamicQuantizeLinear" for node in graph.graph.node)
    assert MADE_BY in {(entry.key, entry.value) for entry in graph.metadata_props}  # --overwrite may replace it
    assert sorted(path.name for path in tmp_path.iterdir()) == ["fp32.onnx", "int8.onnx"]  # no temporary left
    # the int8 file's dev logits are the ones the check compared
    dev = q.load_dev_set(_task(glue_dir), str(tiny_bert_dir))
    int8_logits = q.dev_logits(q.onnx_forward(tmp_path / "int8.onnx"), dev)
    fp32_logits = q.dev_logits(q.onnx_forward(tmp_path / "fp32.onnx"), dev)
    assert np.abs(int8_logits - fp32_logits).max() == pytest.approx(check["max_logit_diff"], rel=1e-5)


def test_torch_int8_folder_reloads_to_the_checked_model(tiny_bert_dir, glue_dir, tmp_path):
    out = tmp_path / "pt"
    result = runner.invoke(app, [
        "export", "--student-model", str(tiny_bert_dir), *_data(glue_dir), "--format", "torch",
        "--quantize", "dynamic", "--output-dir", str(out), "--json",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["backend"] == "torch" and document["quantization"]["check"]["passed"]
    assert (out / q.TORCH_INT8_WEIGHTS).is_file() and (out / "config.json").is_file() and (out / MARKER).is_file()
    assert not any(path.suffix == ".safetensors" for path in out.iterdir())  # the fp32 weights are not shipped
    model = q.load_quantized(out)
    kinds = {f"{type(module).__module__}.{type(module).__name__}" for module in model.modules()}
    assert "torch.ao.nn.quantized.dynamic.modules.linear.Linear" in kinds
    fresh = q.quantize_torch(load_classifier(str(tiny_bert_dir)))
    inputs = {"input_ids": torch.randint(5, 90, (3, 11)), "attention_mask": torch.ones(3, 11, dtype=torch.long)}
    with torch.inference_mode():
        assert torch.equal(model(**inputs).logits, fresh(**inputs).logits)
    card = read_card(out)
    int8_metrics = json.loads((out / q.QUANTIZATION_FILE).read_text())["check"]["metrics_int8"]
    card_metrics = {result.metric_type: result.metric_value for result in card.data.eval_results}
    assert card_metrics == int8_metrics  # the folder holds the int8 model: its card shows the int8 dev metrics
    assert "load_quantized" in card.text


@pytest.mark.parametrize("mode", ["file", "folder"])
def test_an_int8_model_that_loses_too_much_is_refused_and_nothing_is_written(mode, tiny_bert_dir, glue_dir, tmp_path):
    target = ["-o", str(tmp_path / "int8.onnx")] if mode == "file" else ["--output-dir", str(tmp_path / "int8")]
    result = runner.invoke(app, [
        "export", "--student-model", str(tiny_bert_dir), *_data(glue_dir), "--quantize", "dynamic",
        "--max-metric-drop", "-100", *target,  # a "drop" of -100 points (a gain of 100) is never met: forced refusal
    ])  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "the int8 model loses" in result.stderr and "nothing was written" in result.stderr
    assert "accuracy fp32" in result.stderr and "labels agree on" in result.stderr  # the numbers
    assert not any(path.name.startswith("int8") for path in tmp_path.iterdir())  # no file, folder or .partial


def test_quantize_needs_dev_data(tiny_bert_dir, tmp_path):
    result = runner.invoke(app, [
        "export", "--student-model", str(tiny_bert_dir), "--quantize", "dynamic", "-o", str(tmp_path / "x.onnx"),
    ])  # fmt: skip
    assert result.exit_code == 2 and "no data was given" in result.stderr and "--task-name" in result.stderr
    assert not (tmp_path / "x.onnx").exists()


def test_torch_format_without_quantize_is_refused(tiny_bert_dir, tmp_path):
    result = runner.invoke(app, [
        "export", "--student-model", str(tiny_bert_dir), "--format", "torch", "--output-dir", str(tmp_path / "pt"),
    ])  # fmt: skip
    assert result.exit_code == 2 and "--quantize dynamic" in result.stderr and not (tmp_path / "pt").exists()


# ---------------------------------------------------------------------------------------------------------------
# Model cards


def test_pipeline_card_numbers_equal_summary(tiny_bert_dir, glue_dir, tmp_path):
    from tests.test_pipeline import write_recipe

    out = tmp_path / "run"
    recipe = write_recipe(tmp_path / "recipe.toml", tiny_bert_dir, glue_dir, out)
    result = runner.invoke(app, ["pipeline", str(recipe), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    card = read_card(out / "final")
    assert card.data.pipeline_tag == "text-classification" and card.data.tags == ["distillation", "pruning", "mudkd"]
    assert card.data.datasets == ["sst-2"]
    card_metrics = {entry.metric_type: entry.metric_value for entry in card.data.eval_results}
    student = {key: value for key, value in summary["student"]["metrics"].items() if not key.endswith("loss")}
    assert card_metrics == student
    assert f"{summary['param_ratio']:.2f}×" in card.text and f"{summary['flop_ratio']:.2f}×" in card.text
    assert f"HSK fraction {summary['hsk_fraction']}" in card.text
    for value in summary["teacher"]["metrics"].values():
        assert f"{value:.4f}" in card.text
    budget = json.loads((out / "hsk" / "knowledge_budget.json").read_text())
    assert f"{budget['keep_tokens']} token(s)" in card.text
    steps = [json.loads(line) for line in (out / "final" / "metrics.jsonl").read_text().splitlines()]
    assert f"- updates: {[r for r in steps if r.get('final')][-1]['step']}" in card.text
    from mudkd.core.outputs import read_marker

    assert f"Recipe hash `{read_marker(out / 'final')['recipe_hash']}`" in card.text
    # the card rewritten after final/ was committed is in its ownership record: still provably mudkd's, pushable
    pushed = runner.invoke(app, ["push", str(out / "final"), "me/tiny-student", "--dry-run", "--json"])
    assert pushed.exit_code == 0, pushed.output
    assert json.loads(pushed.stdout)["card"] == (out / "final" / "README.md").read_text()
    teacher_card = read_card(out / "teacher")  # finetune writes one too, from its own records
    teacher_metrics = json.loads((out / "teacher" / "metrics.json").read_text())
    assert {e.metric_type: e.metric_value for e in teacher_card.data.eval_results} == {
        key: value for key, value in teacher_metrics.items() if not key.endswith("loss")
    }


# ---------------------------------------------------------------------------------------------------------------
# push


@pytest.fixture(scope="module")
def shipped(tiny_bert_dir, tmp_path_factory):
    """A folder mudkd made: an fp32 ONNX export with its card."""
    out = tmp_path_factory.mktemp("ship") / "folder"
    result = runner.invoke(app, ["export", "--student-model", str(tiny_bert_dir), "--output-dir", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_push_dry_run_lists_the_files_bytes_and_card(shipped):
    result = runner.invoke(app, ["push", str(shipped), "me/tiny-student", "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    expected = sorted(path.name for path in shipped.iterdir() if not path.name.startswith("."))
    assert [entry["path"] for entry in document["files"]] == expected and "model.onnx" in expected
    assert document["bytes"] == sum((shipped / name).stat().st_size for name in expected)
    assert document["card"] == (shipped / "README.md").read_text() and document["sent"] is False
    table = runner.invoke(app, ["push", str(shipped), "me/tiny-student", "--dry-run"])
    assert "would send" in table.stdout and "model card (README.md)" in table.stdout


def test_push_offline_is_huggingface_hubs_own_error(shipped):
    result = _run("push", str(shipped), "me/tiny-student", env={"HF_HUB_OFFLINE": "1", "HF_TOKEN": "hf_not_real"})
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("Error: cannot push: the Hugging Face Hub is in offline mode")
    assert "Hint:" in result.stderr and "Traceback" not in result.stderr


def test_push_without_a_token(shipped, tmp_path):
    result = _run("push", str(shipped), "me/tiny-student", env={"HF_TOKEN": None, "HF_HOME": str(tmp_path / "hf")})
    assert result.returncode == 2 and "no Hugging Face token" in result.stderr and "hf auth login" in result.stderr


@pytest.mark.parametrize("repo_id", ["me/tiny..student", "me/tiny student", "tiny-student", "a/b/c"])
def test_push_refuses_a_repo_id_with_a_typo(shipped, repo_id):
    result = runner.invoke(app, ["push", str(shipped), repo_id, "--dry-run"])
    assert result.exit_code == 2 and f"repository id '{repo_id}' is not valid" in result.stderr


def test_push_refuses_a_folder_mudkd_did_not_make(tiny_bert_dir):
    result = runner.invoke(app, ["push", str(tiny_bert_dir), "me/tiny-student", "--dry-run"])
    assert result.exit_code == 2 and "was not made by mudkd" in result.stderr


def test_push_refuses_non_finite_weights(tiny_bert_dir, tmp_path):
    from mudkd.core.outputs import write_marker
    from mudkd.core.ownership import new_owner, record_files

    folder = tmp_path / "broken"
    model = load_classifier(str(tiny_bert_dir))
    with torch.no_grad():
        model.classifier.weight[0, 0] = float("nan")
    model.save_pretrained(folder)
    write_marker(folder, command="finetune", complete=True, owner=new_owner(folder, files=record_files(folder)))
    result = runner.invoke(app, ["push", str(folder), "me/tiny-student", "--dry-run"])
    assert result.exit_code == 1 and "nan" in result.stderr and "classifier.weight" in result.stderr


# ---------------------------------------------------------------------------------------------------------------
# Conventions


def test_show_completion_bash():
    result = _run("--show-completion", "bash")
    assert result.returncode == 0, result.stderr
    assert "_mudkd_completion" in result.stdout and "complete -o default -F _mudkd_completion mudkd" in result.stdout


def test_version_and_env_json():
    import mudkd

    assert runner.invoke(app, ["--version"]).stdout.strip() == f"mudkd {mudkd.__version__}"
    result = runner.invoke(app, ["env", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["mudkd"] == mudkd.__version__ and info["torch"] == torch.__version__
    assert info["device"] in {"cpu", "cuda", "mps"} and info["torch_threads"] == torch.get_num_threads()
    assert {"python", "transformers", "cpu_count", "onnxruntime"} <= set(info)


def test_help_shows_defaults_of_the_new_options():
    result = runner.invoke(app, ["export", "--help"], terminal_width=200)
    for default in ("[default: none]", "[default: 1.0]", "[default: onnx]"):
        assert default in result.stdout
    assert "--model-path" not in result.stdout  # the student is --student-model (the old spelling is hidden)


def test_report_int8_columns_side_by_side(tiny_bert_dir, glue_dir):
    result = runner.invoke(app, [
        "report", "--student-model", str(tiny_bert_dir), "--teacher-model", str(tiny_bert_dir), *_data(glue_dir),
        "--int8", "--examples", "6", "--repeats", "3", "--threads", "1", "--json",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    int8 = json.loads(result.stdout)["int8"]
    columns = int8["columns"]
    assert list(columns) == ["teacher", "student", "student_int8"] and int8["metric"] == "accuracy"
    assert columns["student_int8"]["size_bytes"] < columns["student"]["size_bytes"] == columns["teacher"]["size_bytes"]
    for column in columns.values():
        assert set(column["latency_ms"]) == {"1", "32"} and 0.0 <= column["metric"] <= 1.0
    assert columns["student"]["metric"] == columns["teacher"]["metric"]  # the same weights
    assert columns["student_int8"]["metric"] == int8["check"]["int8"]
    for size in ("1", "32"):  # every ratio through core/measure's paired ratios
        assert set(int8["ratios"][size]) == {"student/student_int8", "teacher/student", "teacher/student_int8"}
        assert all(spread["n"] == 3 for spread in int8["ratios"][size].values())
    table = runner.invoke(app, [
        "report", "--student-model", str(tiny_bert_dir), *_data(glue_dir), "--int8", "--examples", "4",
        "--repeats", "3",
    ])  # fmt: skip
    assert "student int8" in table.stdout and "latency batch 32" in table.stdout
    refused = runner.invoke(app, ["report", "--student-model", str(tiny_bert_dir), "--int8"])
    assert refused.exit_code == 2 and "--task-name" in refused.stderr


def test_saved_weights_get_the_permissions_of_the_other_files(tiny_bert_dir, tmp_path):
    """transformers writes model.safetensors 0600; mudkd's outputs give it the umask's mode like every other file."""
    import stat

    from mudkd.core.training import write_run_files
    from mudkd.recipe import build_recipe

    model = load_classifier(str(tiny_bert_dir))
    model.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").chmod(0o600)  # what save_pretrained leaves (a private temporary file)
    write_run_files(tmp_path, build_recipe(None), metrics=None, device="cpu")
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in tmp_path.iterdir()}
    assert modes["model.safetensors"] == modes["config.json"] == modes["run_info.json"]


def test_dry_run_plans_the_store_with_the_custom_tasks_own_label_count(tiny_bert_dir, tmp_path):
    """TREC-like data with 3 classes: the planned store counts 3 logits per example, not the 2 once assumed;
    and reading the data prints no "Generating train split" bar."""
    rows = ["text,label"] + [f"question number {i} here,{['ABBR', 'DESC', 'NUM'][i % 3]}" for i in range(30)]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    args = [
        "pipeline", "--train-file", str(tmp_path / "train.csv"), "--validation-file", str(tmp_path / "train.csv"),
        "--text-columns", "text", "--set", f"teacher.pretrained={tiny_bert_dir}", "-o", str(tmp_path / "run"),
        "--set", "hsk.config_3d=1l_4t_0.5h", "--dry-run", "--json",
    ]  # fmt: skip
    result = _run(*args, env={"MUDKD_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr
    budget = json.loads(result.stdout)["budget"]
    assert budget["num_labels"] == 3
    assert "Generating" not in result.stderr and not (tmp_path / "run").exists()


def test_summary_warns_of_an_unpredicted_class_and_a_one_class_student(tiny_bert_dir, glue_dir, tmp_path):
    from mudkd.core.models import load_tokenizer
    from mudkd.core.stages.pipeline import final_warnings
    from mudkd.recipe import build_recipe

    model = load_classifier(str(tiny_bert_dir))
    with torch.no_grad():
        model.classifier.bias.copy_(torch.tensor([50.0, -50.0]))  # class 0 for every example
    model.save_pretrained(tmp_path / "final")
    load_tokenizer(str(tiny_bert_dir)).save_pretrained(tmp_path / "final")
    recipe = build_recipe(None, flags={
        "task.name": "sst-2", "task.data_dir": str(glue_dir / "SST-2"), "pred.output_dir": str(tmp_path / "final"),
    })  # fmt: skip
    teacher = {"accuracy": 0.9, "f1[ABBR]": 0.0, "f1[DESC]": 0.8}
    student = {"accuracy": 0.5, "f1[ABBR]": 0.0, "f1[DESC]": 0.0}
    warnings = final_warnings(recipe, teacher, student)
    assert warnings[0].startswith("class ABBR: F1 0 for teacher and student") and len(warnings) == 2  # not DESC
    assert warnings[1].startswith("the student predicts one class for 100% of the dev examples: its accuracy")
    predicted = final_warnings(recipe, teacher, {**student, "f1[ABBR]": 0.3})  # the student predicts ABBR sometimes
    assert not any(text.startswith("class ") for text in predicted)


def test_evaluate_metric_f1_on_a_custom_binary_task_is_the_positive_class_f1(tiny_bert_dir, tmp_path):
    rows = ["text,label"] + [f"message number {i},{'spam' if i % 3 == 0 else 'ham'}" for i in range(24)]
    (tmp_path / "dev.csv").write_text("\n".join(rows) + "\n")
    data = ["--task-name", "custom", "--validation-file", str(tmp_path / "dev.csv"), "--text-columns", "text"]
    result = runner.invoke(app, ["evaluate", str(tiny_bert_dir), *data, "--metric", "f1", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["metric"] == "f1[spam]"  # the minority class is the positive one
    refused = runner.invoke(app, ["evaluate", str(tiny_bert_dir), *data, "--metric", "f1[eggs]"])
    assert refused.exit_code == 2 and "--metric NAME" in refused.stderr
