"""`mudkd distill hsk | pred | cache` end to end on tiny models and real SST-2 rows.

The key properties: a store-trained student sees exactly the knowledge an online teacher gives (fp32 stores give
the same per-step losses), the teacher is never needed in store mode, and bad budgets or stores are refused.
"""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from mudkd.cli.app import app
from tests.helpers import make_teacher_and_student, make_tiny_bert

runner = CliRunner()


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MUDKD_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny teacher (3 layers, hidden 32) and its ROSITA-style pruned student (2 layers, 2 heads)."""
    return make_teacher_and_student(tmp_path_factory.mktemp("models"))


def data_args(glue_dir, samples=48):
    return [
        "--task-name",
        "sst-2",
        "--data-dir",
        str(glue_dir / "SST-2"),
        "--max-train-samples",
        str(samples),
        "--max-seq-length",
        "24",
    ]


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result


def run_json(*args):
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def hsk_online(models, glue_dir, out, budget):
    return run_json(
        "distill",
        "hsk",
        "--teacher-model",
        models / "teacher",
        "--student-model",
        models / "student",
        *data_args(glue_dir),
        *budget,
        "--max-steps",
        4,
        "--train-batch-size",
        8,
        "--seed",
        7,
        "-o",
        out,
    )


def build_store(models, glue_dir, out, budget, dtype="float32"):
    return run_json(
        "distill",
        "cache",
        "--teacher-model",
        models / "teacher",
        "--student-model",
        models / "student",
        *data_args(glue_dir),
        *budget,
        "--dtype",
        dtype,
        "--batch-size",
        16,
        "-o",
        out,
    )


def hsk_from_store(models, glue_dir, store, out, budget):
    return run_json(
        "distill",
        "hsk",
        "--hsk-store",
        store,
        "--student-model",
        models / "student",
        *data_args(glue_dir),
        *budget,
        "--max-steps",
        4,
        "--train-batch-size",
        8,
        "--seed",
        7,
        "-o",
        out,
    )


@pytest.mark.parametrize(
    "budget",
    [
        ["--config-3d", "1l_10t_0.1h"],
        [],
        [
            "--keep-tokens",
            "8",
            "--token-scheme",
            "left_first",
            "--keep-hidden",
            "0.5",
            "--hidden-scheme",
            "uniform_mask",
        ],
    ],
    ids=["3d", "full-hsk", "left-uniform"],
)
def test_fp32_store_gives_the_online_losses(models, glue_dir, tmp_path, budget):
    online = hsk_online(models, glue_dir, tmp_path / "online", budget)
    store = build_store(models, glue_dir, tmp_path / "store", budget)
    assert store["num_examples"] == 48
    offline = hsk_from_store(models, glue_dir, tmp_path / "store", tmp_path / "offline", budget)
    assert offline["teacher_free"] is True and online["teacher_free"] is False
    assert len(online["step_losses"]) == 4
    assert offline["step_losses"] == pytest.approx(online["step_losses"], rel=1e-5)


def test_store_built_with_static_padding_serves_grouped_batches(models, glue_dir, tmp_path):
    """Issue 12: the store's batching (static padding, plain order, batch 5) does not change what it serves."""
    budget = ["--config-3d", "1l_10t_0.1h"]
    online = hsk_online(models, glue_dir, tmp_path / "online", budget)
    static = ["--set", "training.padding=max_length", "--set", "training.group_by_length=false"]
    run_json(
        "distill", "cache", "--teacher-model", models / "teacher", "--student-model", models / "student",
        *data_args(glue_dir), *budget, *static, "--dtype", "float32", "--batch-size", 5, "-o", tmp_path / "store",
    )  # fmt: skip
    offline = hsk_from_store(models, glue_dir, tmp_path / "store", tmp_path / "offline", budget)
    assert offline["step_losses"] == pytest.approx(online["step_losses"], rel=1e-5)


def test_fp16_store_stays_close(models, glue_dir, tmp_path):
    """fp16 keeps ~3 significant digits of each value (relative rounding error ≤ 2^-11 ≈ 4.9e-4); the MSE against
    those targets moves by a similar relative amount, so 1e-2 relative per step is a safe, meaningful bound."""
    budget = ["--config-3d", "2l_12t_0.5h"]
    online = hsk_online(models, glue_dir, tmp_path / "online", budget)
    build_store(models, glue_dir, tmp_path / "store", budget, dtype="float16")
    offline = hsk_from_store(models, glue_dir, tmp_path / "store", tmp_path / "offline", budget)
    assert offline["step_losses"] == pytest.approx(online["step_losses"], rel=1e-2)
    assert offline["step_losses"] != online["step_losses"]  # it really is the fp16 store


def test_store_mode_never_needs_the_teacher(models, glue_dir, tmp_path, monkeypatch):
    budget = ["--config-3d", "1l_10t_0.1h"]
    teacher_copy = tmp_path / "teacher"
    shutil.copytree(models / "teacher", teacher_copy)
    run_json(
        "distill",
        "cache",
        "--teacher-model",
        teacher_copy,
        "--student-model",
        models / "student",
        *data_args(glue_dir),
        *budget,
        "-o",
        tmp_path / "store",
    )
    shutil.rmtree(teacher_copy)  # the teacher is gone: store mode must not even look for it
    from transformers import BertForSequenceClassification

    built = []
    original = BertForSequenceClassification.__init__
    monkeypatch.setattr(
        BertForSequenceClassification, "__init__", lambda self, *a, **k: (built.append(1), original(self, *a, **k))[1]
    )
    hsk = hsk_from_store(models, glue_dir, tmp_path / "store", tmp_path / "hsk", budget)
    pred = run_json(
        "distill",
        "pred",
        "--logits-store",
        tmp_path / "store",
        "--student-model",
        hsk["output_dir"],
        *data_args(glue_dir),
        "--max-eval-samples",
        16,
        "--max-steps",
        2,
        "--eval-step",
        1,
        "--train-batch-size",
        8,
        "-o",
        tmp_path / "pred",
    )
    assert built == [], "a BERT teacher was constructed in store mode"
    assert pred["teacher_free"] is True and 0.0 <= pred["metrics"]["accuracy"] <= 1.0


def test_pred_from_store_equals_online(models, glue_dir, tmp_path):
    build_store(models, glue_dir, tmp_path / "store", ["--config-3d", "1l_10t_0.1h"])
    common = [
        *data_args(glue_dir),
        "--max-eval-samples",
        16,
        "--max-steps",
        3,
        "--eval-step",
        3,
        "--train-batch-size",
        8,
        "--temperature",
        2.0,
    ]
    online = run_json(
        "distill",
        "pred",
        "--teacher-model",
        models / "teacher",
        "--student-model",
        models / "student",
        *common,
        "-o",
        tmp_path / "online",
    )
    offline = run_json(
        "distill",
        "pred",
        "--logits-store",
        tmp_path / "store",
        "--student-model",
        models / "student",
        *common,
        "-o",
        tmp_path / "offline",
    )
    assert offline["step_losses"] == pytest.approx(online["step_losses"], rel=1e-6)
    files = {p.name for p in (tmp_path / "offline").iterdir()}
    assert {"config.json", "model.safetensors", "metrics.json", "metrics.jsonl"} <= files


def test_dry_run_json_budget(models, glue_dir, tmp_path):
    document = run_json(
        "distill",
        "hsk",
        "--teacher-model",
        models / "teacher",
        "--student-model",
        models / "student",
        *data_args(glue_dir),
        "--config-3d",
        "1l_10t_0.1h",
        "--layer-scheme",
        "t_top3",
        "--dry-run",
        "-o",
        tmp_path / "out",
    )
    budget = document["budget"]
    # Student 2 layers, teacher 3: g(l; 3) = round(l * 3 / 2) -> g(2) = 3; K = 1 keeps student layer 2.
    assert budget["layers"] == [{"student": 2, "teacher": 3, "attention": 2}]
    assert budget["keep_tokens"] == 10 and budget["max_seq_length"] == 24 and budget["keep_hidden"] == 0.1
    # n = floor(0.1 * 10 * 32) = 32 values of (2 + 1) * 24 * 32 = 2304 full-HSK elements
    assert budget["elements_per_example"] == 32
    assert budget["hsk_fraction"] == pytest.approx(32 / 2304)
    # What a store of this budget holds per example, as 'distill cache' counts it: fp16 values 64 B + int16 token
    # ids 20 B + int16 positions 64 B, plus the teacher's 2 float32 logits 8 B (tests/test_knowledge.py compares)
    assert budget["hsk_bytes_per_example"] == 64 + 20 + 64 and budget["logits_bytes_per_example"] == 2 * 4
    assert budget["bytes_per_example"] == 64 + 20 + 64 + 2 * 4
    assert not (tmp_path / "out").exists()


def test_hsk_writes_budget_and_reloadable_student(models, glue_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification

    result = hsk_online(models, glue_dir, tmp_path / "hsk", ["--config-3d", "1l_10t_0.1h"])
    saved = json.loads((tmp_path / "hsk" / "knowledge_budget.json").read_text())
    assert saved["layers"] == result["budget"]["layers"]
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "hsk")
    assert model.config.model_type == "pruned_bert"
    assert not (tmp_path / "hsk" / "hsk_projection.safetensors").exists()  # same width: no projection


def test_tinybert_style_student_gets_a_projection_beside_the_model(models, glue_dir, tmp_path):
    narrow = tmp_path / "narrow"
    make_tiny_bert(narrow, layers=2, hidden=16, heads=2, intermediate=32, seed=3)
    result = run_json(
        "distill",
        "hsk",
        "--teacher-model",
        models / "teacher",
        "--student-model",
        narrow,
        *data_args(glue_dir),
        "--max-steps",
        2,
        "--train-batch-size",
        8,
        "-o",
        tmp_path / "hsk",
    )
    assert result["steps"] == 2
    from safetensors.torch import load_file

    projection = load_file(tmp_path / "hsk" / "hsk_projection.safetensors")
    assert projection["weight"].shape == (32, 16)
    from transformers import AutoModelForSequenceClassification

    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "hsk")
    assert reloaded.config.hidden_size == 16  # the projection is not part of the exported model


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--keep-layers", "4"], "keep_layers"),
        (["--keep-tokens", "25"], "keep_tokens"),
        (["--keep-hidden", "1.5"], "keep_hidden"),
        (["--keep-hidden", "0"], "keep_hidden"),
        (["--layer-scheme", "t_top4"], "t_top4"),
        (["--config-3d", "1l_10t"], "config_3d"),
        (["--token-scheme", "random"], "'--token-scheme': 'random' is not one of 'left_first'"),
        (["--hidden-scheme", "magic"], "'--hidden-scheme': 'magic' is not one of 'rand_mask'"),
    ],
)
def test_bad_budgets_are_one_line_errors(models, glue_dir, tmp_path, extra, message):
    result = invoke(
        "distill",
        "hsk",
        "--teacher-model",
        models / "teacher",
        "--student-model",
        models / "student",
        *data_args(glue_dir),
        *extra,
        "-o",
        tmp_path / "out",
    )
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_teacher_and_student_with_different_vocabularies(models, glue_dir, tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    other = tmp_path / "other"
    BertForSequenceClassification(
        BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64)
    ).save_pretrained(other)
    shutil.copy(models / "teacher" / "tokenizer.json", other / "tokenizer.json")
    shutil.copy(models / "teacher" / "tokenizer_config.json", other / "tokenizer_config.json")
    result = invoke(
        "distill",
        "hsk",
        "--teacher-model",
        models / "teacher",
        "--student-model",
        other,
        *data_args(glue_dir),
        "-o",
        tmp_path / "out",
    )
    assert result.exit_code == 2 and "different vocabularies" in result.stderr


def test_store_that_does_not_match_is_refused(models, glue_dir, tmp_path):
    budget = ["--config-3d", "1l_10t_0.1h"]
    build_store(models, glue_dir, tmp_path / "store", budget)
    base = ["distill", "hsk", "--hsk-store", tmp_path / "store", "--student-model", models / "student"]
    # another max length
    result = invoke(
        *base,
        "--task-name",
        "sst-2",
        "--data-dir",
        glue_dir / "SST-2",
        "--max-train-samples",
        48,
        "--max-seq-length",
        32,
        *budget,
        "-o",
        tmp_path / "o1",
    )
    assert result.exit_code == 2 and "max_seq_length" in result.stderr
    # a larger budget than stored
    result = invoke(*base, *data_args(glue_dir), "--config-3d", "2l_10t_0.1h", "-o", tmp_path / "o2")
    assert result.exit_code == 2 and "cannot serve" in result.stderr
    # a truncated chunk
    chunk = next((tmp_path / "store").glob("chunk-*.values.bin"))
    chunk.write_bytes(chunk.read_bytes()[:-10])
    result = invoke(*base, *data_args(glue_dir), *budget, "-o", tmp_path / "o3")
    assert result.exit_code == 2 and str(tmp_path / "store") in result.stderr
    assert not any((tmp_path / name).exists() for name in ("o1", "o2", "o3"))


def test_smaller_budget_served_from_a_larger_store(models, glue_dir, tmp_path):
    build_store(models, glue_dir, tmp_path / "store", ["--config-3d", "2l_12t_0.5h"])
    smaller = ["--config-3d", "1l_12t_0.25h"]
    online = hsk_online(models, glue_dir, tmp_path / "online", smaller)
    offline = hsk_from_store(models, glue_dir, tmp_path / "store", tmp_path / "offline", smaller)
    assert offline["step_losses"] == pytest.approx(online["step_losses"], rel=1e-5)
