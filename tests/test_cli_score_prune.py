"""`mudkd score` and `mudkd prune` as a user meets them: files written, JSON, tables, errors and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from mudkd.cli.app import app
from tests.helpers import make_tiny_bert

runner = CliRunner()
BUDGET = ["--keep-heads", "2", "--num-layers", "2", "--ffn-hidden-dim", "32", "--emb-hidden-dim", "16"]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MUDKD_CACHE", str(tmp_path / "cache"))


def score_args(teacher, glue_dir, out, *extra):
    return [
        "score",
        "--teacher-model",
        str(teacher),
        "--task-name",
        "sst-2",
        "--data-dir",
        str(glue_dir / "SST-2"),
        "--max-train-samples",
        "48",
        "--max-seq-length",
        "16",
        "--train-batch-size",
        "8",
        "-o",
        str(out),
        *extra,
    ]


def prune_args(teacher, scores, out, *extra):
    return ["prune", "--teacher-model", str(teacher), "--scores", str(scores), *BUDGET, "-o", str(out), *extra]


def invoke_json(args):
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, glue_dir):
    """A 3-layer tiny teacher, its scores, a pruned student, and the scores of another tiny BERT of the same shape."""
    root = tmp_path_factory.mktemp("score_prune")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MUDKD_CACHE", str(root / "cache"))
        make_tiny_bert(root / "teacher", layers=3, heads=4, hidden=32, intermediate=64)
        make_tiny_bert(root / "other", layers=3, heads=4, hidden=32, intermediate=64, seed=1)
        score = invoke_json(score_args(root / "teacher", glue_dir, root / "scores"))
        invoke_json(score_args(root / "other", glue_dir, root / "other_scores", "--num-train-epochs", "0.2"))
        prune = invoke_json(prune_args(root / "teacher", root / "scores", root / "student"))
    return {"root": root, "score": score, "prune": prune}


def test_score_writes_scores_and_one_json_document(pipeline):
    root, document = pipeline["root"], pipeline["score"]
    assert set(document) == {"output_dir", "num_batches", "num_examples", "layers", "untrained_weights", "warnings"}
    assert document["output_dir"] == str(root / "scores")
    assert (document["num_batches"], document["num_examples"]) == (6, 48)
    assert {"importance.safetensors", "summary.json", "recipe.resolved.toml", "run_info.json"} <= {
        p.name for p in (root / "scores").iterdir()
    }
    assert not (root / "scores.partial").exists()
    assert [layer["layer"] for layer in document["layers"]] == [0, 1, 2]
    for layer in document["layers"]:
        heads, ffn = layer["heads"], layer["ffn"]
        assert 0 < heads["min"] <= heads["mean"] <= heads["max"] and heads["ratio"] == pytest.approx(
            heads["max"] / heads["min"]
        )
        assert sorted(layer["top_heads"]) == [0, 1, 2, 3] and 0 < ffn["min"] <= ffn["mean"] <= ffn["max"]
    summary = json.loads((root / "scores" / "summary.json").read_text())
    assert [layer["top_heads"] for layer in summary["layers"]] == [layer["top_heads"] for layer in document["layers"]]


def test_score_table_and_fractional_epochs(pipeline, glue_dir, tmp_path):
    out = tmp_path / "half"
    result = runner.invoke(app, score_args(pipeline["root"] / "teacher", glue_dir, out, "--num-train-epochs", "0.5"))
    assert result.exit_code == 0, result.output
    assert "3 batches, 24 examples" in result.stdout and "top heads" in result.stdout and "FFN min" in result.stdout
    assert "score step" in result.stderr  # progress goes to stderr, never stdout
    assert json.loads((out / "summary.json").read_text())["num_batches"] == 3


def test_pruned_student_loads_and_params_match(pipeline):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from mudkd.core.pruning import count_parameters

    root, document = pipeline["root"], pipeline["prune"]
    assert set(document) == {
        "output_dir",
        "params",
        "components",
        "compression",
        "student_before_training",
        "warnings",
    }
    assert document["student_before_training"] is None  # no dev data given: no health check
    student_dir = root / "student"
    assert {
        "config.json",
        "model.safetensors",
        "modeling_pruned_bert.py",
        "tokenizer.json",
        "recipe.resolved.toml",
        "run_info.json",
    } <= {p.name for p in student_dir.iterdir()}
    student = AutoModelForSequenceClassification.from_pretrained(student_dir).eval()
    teacher = AutoModelForSequenceClassification.from_pretrained(root / "teacher")
    assert type(student).__name__ == "PrunedBertForSequenceClassification"
    assert student.config.num_hidden_layers == 2 and student.config.emb_hidden_dim == 16
    before, after = count_parameters(teacher), count_parameters(student)
    assert document["params"] == {"teacher": before["total"], "student": after["total"]}
    components = ("embeddings", "encoder", "pooler", "classifier")
    assert document["components"] == {name: {"teacher": before[name], "student": after[name]} for name in components}
    assert document["compression"] == pytest.approx(before["total"] / after["total"]) and document["compression"] > 1
    tokenizer = AutoTokenizer.from_pretrained(student_dir)
    batch = tokenizer(["a good movie", "a bad film"], return_tensors="pt", padding=True)
    with torch.no_grad():
        assert student(**batch).logits.shape == (2, 2)


def test_prune_table_explicit_layers_and_default_scores_dir(pipeline, tmp_path):
    root, out = pipeline["root"], tmp_path / "student"
    result = runner.invoke(
        app,
        [
            "prune",
            "--model-path",
            str(root / "teacher"),
            "--set",
            f"score.output_dir={root / 'scores'}",
            "--keep-heads",
            "1",
            "--layers",
            "0,2",
            "--ffn-hidden-dim",
            "16",
            "--emb-hidden-dim",
            "-1",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "encoder" in result.stdout and "total" in result.stdout and "compression" in result.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["num_heads_per_layer"] == [1, 1] and config["intermediate_sizes"] == [16, 16]
    assert config["emb_hidden_dim"] == -1


def test_finetune_trains_the_pruned_student(pipeline, glue_dir, tmp_path):
    out = tmp_path / "no_kd"
    document = invoke_json(
        [
            "finetune",
            "--model-name-or-path",
            str(pipeline["root"] / "student"),
            "--task-name",
            "sst-2",
            "--data-dir",
            str(glue_dir / "SST-2"),
            "--max-train-samples",
            "16",
            "--max-eval-samples",
            "8",
            "--max-seq-length",
            "16",
            "--train-batch-size",
            "8",
            "--max-steps",
            "2",
            "--eval-step",
            "2",
            "-o",
            str(out),
        ]
    )
    assert document["steps"] == 2 and "accuracy" in document["metrics"]
    assert json.loads((out / "config.json").read_text())["model_type"] == "pruned_bert"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--keep-heads", "5"], "keep_heads=5 is outside 1..4"),
        (["--ffn-hidden-dim", "65"], "ffn_hidden_dim=65 is outside 1..64"),
        (["--num-layers", "4"], "num_layers=4 is outside 1..3"),
        (["--layers", "0,3"], "give either num_layers or layers"),
        (["--emb-hidden-dim", "33"], "emb_hidden_dim=33"),
        (["--scores", "OTHER"], "computed for another model"),
        (["--scores", "MISSING"], "does not exist"),
        (["--model-path", "EMPTY"], "is not a model directory"),
    ],
)
def test_prune_bad_input_is_one_line_exit_2(pipeline, tmp_path, extra, message):
    root = pipeline["root"]
    (tmp_path / "empty").mkdir()
    paths = {"OTHER": root / "other_scores", "MISSING": tmp_path / "missing", "EMPTY": tmp_path / "empty"}
    extra = [str(paths.get(value, value)) for value in extra]
    out = tmp_path / "o"
    for dry_run in ([], ["--dry-run"]):
        result = runner.invoke(app, [*prune_args(root / "teacher", root / "scores", out, *extra), *dry_run])
        if dry_run and message == "computed for another model":
            assert result.exit_code == 0  # same shape: only the weights' fingerprint (checked by a real run) differs
            continue
        assert result.exit_code == 2, result.output
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and message in errors[0], result.stderr
        assert "Traceback" not in result.output and result.stdout == "" and not out.exists()


def test_score_bad_teacher_path(glue_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, score_args(tmp_path / "empty", glue_dir, tmp_path / "o"))
    assert result.exit_code == 2 and "is not a model directory" in result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "o").exists()


def test_dry_run_writes_nothing(pipeline, glue_dir, tmp_path):
    root = pipeline["root"]
    plan = invoke_json([*score_args(root / "teacher", glue_dir, tmp_path / "s"), "--dry-run"])
    assert plan["dry_run"] is True and plan["stage"] == "score" and plan["train_batch_size"] == 8
    plan = invoke_json([*prune_args(root / "teacher", root / "scores", tmp_path / "p"), "--dry-run"])
    assert plan["dry_run"] is True and plan["layers"] == [0, 1] and plan["keep_heads"] == 2
    assert not (tmp_path / "s").exists() and not (tmp_path / "p").exists()


def test_help_shows_flags_and_examples():
    expected = {"score": ["--teacher-model", "--num-train-epochs"], "prune": ["--teacher-model", "--keep-heads"]}
    for command, flags in expected.items():
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0 and f"$ mudkd {command}" in result.stdout
        assert all(flag in result.stdout for flag in flags)
        # the old spellings (score --model-name-or-path, prune --model-path) still work but are not advertised
        assert "--model-name-or-path" not in result.stdout and "--model-path" not in result.stdout


def test_pruned_model_loads_once_mudkd_is_imported_without_importing_torch(pipeline):
    code = (
        "import sys, mudkd\n"
        "print('torch' in sys.modules)\n"
        "from transformers import AutoModelForSequenceClassification\n"
        f"model = AutoModelForSequenceClassification.from_pretrained({str(pipeline['root'] / 'student')!r})\n"
        "print(type(model).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "PrunedBertForSequenceClassification"]


def test_score_then_prune_of_a_checkpoint_without_a_trained_head(glue_dir, tmp_path):
    """A BERT saved without its classification head (as the raw MiniLM is): score initialises a random head, so
    the model fingerprint must cover only what the checkpoint held, or prune refuses scores of the same checkpoint
    ("computed for another model"); score says the head is untrained."""
    from transformers import BertModel

    from mudkd.core.models import load_classifier
    from mudkd.core.pruning import model_fingerprint

    bare = tmp_path / "bare"
    BertModel(make_tiny_bert(tmp_path / "with_head", layers=3, seed=4).config).save_pretrained(bare)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json"):
        if (tmp_path / "with_head" / name).exists():
            (bare / name).write_bytes((tmp_path / "with_head" / name).read_bytes())
    assert model_fingerprint(load_classifier(str(bare))) == model_fingerprint(load_classifier(str(bare)))

    scored = runner.invoke(app, [*score_args(bare, glue_dir, tmp_path / "scores"), "--json"])
    assert scored.exit_code == 0, scored.output
    document = json.loads(scored.stdout)
    assert document["untrained_weights"] == ["classifier.bias", "classifier.weight"]
    warning = [line for line in scored.stderr.splitlines() if line.startswith("Warning:")]
    assert len(warning) == 1 and "no trained classification head" in warning[0], scored.stderr

    pruned = runner.invoke(app, prune_args(bare, tmp_path / "scores", tmp_path / "student"))
    assert pruned.exit_code == 0, pruned.output
    assert (tmp_path / "student" / "model.safetensors").is_file()


def test_a_trained_heads_score_has_no_untrained_warning(pipeline):
    assert pipeline["score"]["untrained_weights"] == [] and pipeline["score"]["warnings"] == []
