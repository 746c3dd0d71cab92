"""`mudkd export` and `mudkd report`: ONNX agreement on dynamic shapes, the CLI contract, hand-counted FLOPs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mudkd.cli.app import app
from mudkd.core.modeling_pruned_bert import PrunedBertConfig
from mudkd.core.models import load_classifier
from mudkd.core.pruning import TaylorScores, count_parameters, prune_bert, save_pruned
from mudkd.core.stages import export
from mudkd.core.stages.export import export_onnx, flops_per_example
from tests.helpers import make_tiny_bert

runner = CliRunner()
HEADS, HEAD_SIZE, FFN, HIDDEN = 4, 8, 64, 32


@pytest.fixture(scope="module")
def pruned_dir(tmp_path_factory):
    """A pruned student (2 layers, 2 heads of 8, FFN 16, embedding rank 8) of a tiny BERT with large weights."""
    teacher = make_tiny_bert(layers=2, hidden=HIDDEN, heads=HEADS, intermediate=FFN, num_labels=3)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, parameter in teacher.named_parameters():
            if "LayerNorm" not in name:  # weights of this size make the logits differ across inputs and heads
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    scores = TaylorScores(
        head_scores=[torch.rand(HEADS, generator=generator, dtype=torch.float64) for _ in range(2)],
        ffn_scores=[torch.rand(FFN, generator=generator, dtype=torch.float64) for _ in range(2)],
        num_batches=1,
        num_examples=4,
        head_size=HEAD_SIZE,
        hidden_size=HIDDEN,
    )
    student = prune_bert(teacher, scores, keep_heads=2, num_layers=2, ffn_hidden_dim=16, emb_hidden_dim=8)
    return save_pruned(student, None, tmp_path_factory.mktemp("pruned"))


def _random_inputs(vocab: int, batch: int, seq: int, seed: int) -> dict[str, np.ndarray]:
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, vocab, (batch, seq), generator=generator)
    attention_mask = torch.ones(batch, seq, dtype=torch.long)
    attention_mask[-1, seq // 3 :] = 0
    token_type_ids = torch.zeros(batch, seq, dtype=torch.long)
    token_type_ids[:, seq // 2 :] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}


@pytest.mark.parametrize("kind", ["bert", "pruned"])
def test_onnx_matches_pytorch_on_dynamic_shapes(kind, tiny_bert_dir, pruned_dir, tmp_path):
    import onnx
    import onnxruntime

    path = tiny_bert_dir if kind == "bert" else pruned_dir
    out = tmp_path / "model.onnx"
    result = export_onnx(str(path), out, max_seq_length=12)
    assert result["max_abs_diff"] <= 1e-4 and result["opset"] == 17 and result["bytes"] == out.stat().st_size
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # no temporary file left behind

    graph = onnx.load(str(out))
    assert [i.name for i in graph.graph.input] == ["input_ids", "attention_mask", "token_type_ids"]
    batch_dim, seq_dim = graph.graph.input[0].type.tensor_type.shape.dim
    assert batch_dim.dim_param and seq_dim.dim_param  # symbolic, not the traced 2 x 12

    model = load_classifier(str(path)).eval()
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for batch, seq in [(1, 5), (4, 23), (2, 64)]:  # none is the traced shape or one of export's own checks
        inputs = _random_inputs(model.config.vocab_size, batch, seq, seed=seq)
        with torch.inference_mode():
            expected = model(**inputs).logits.numpy()
        (actual,) = session.run(["logits"], {k: v.numpy() for k, v in inputs.items()})
        assert actual.shape == (batch, model.config.num_labels)
        assert np.abs(actual - expected).max() <= 1e-4
        assert np.abs(expected).max() > 1e-2  # the comparison is not between two near-zero outputs


def test_failed_check_writes_nothing(tiny_bert_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(export, "TOLERANCE", -1.0)
    result = runner.invoke(app, ["export", "--model-path", str(tiny_bert_dir), "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code == 1 and "disagree" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_cli_export_json(pruned_dir, tmp_path):
    out = tmp_path / "sub" / "student.onnx"
    result = runner.invoke(app, ["export", "--model-path", str(pruned_dir), "--output", str(out), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert set(document) == {"output", "bytes", "max_abs_diff", "opset", "check_shapes", "model_type", "quantization"}
    assert document["quantization"] is None  # fp32 unless --quantize dynamic
    assert document["output"] == str(out) and document["bytes"] == out.stat().st_size > 0
    assert document["opset"] == 17 and document["model_type"] == "pruned_bert"
    assert 0.0 <= document["max_abs_diff"] <= 1e-4 and document["check_shapes"] == [[3, 17], [1, 40]]


def test_cli_refuses_existing_file_without_overwrite(tiny_bert_dir, tmp_path):
    out = tmp_path / "taken.onnx"
    out.write_bytes(b"precious")
    args = ["export", "--model-path", str(tiny_bert_dir), "-o", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "exists" in errors[0] and "--overwrite" in result.stderr
    assert out.read_bytes() == b"precious"

    result = runner.invoke(app, [*args, "--overwrite"])  # a file mudkd did not write is never replaced
    assert result.exit_code == 2 and "was not written by mudkd" in result.stderr
    assert out.read_bytes() == b"precious"

    out.unlink()
    assert runner.invoke(app, args).exit_code == 0  # mudkd's own export ...
    result = runner.invoke(app, [*args, "--overwrite", "--opset", "18", "--json"])  # ... is replaced
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["opset"] == 18


@pytest.mark.parametrize("command", ["export", "report"])
def test_model_path_that_is_not_a_model(command, tmp_path):
    not_a_model = tmp_path / "empty"
    not_a_model.mkdir()
    extra = ["-o", str(tmp_path / "m.onnx")] if command == "export" else []
    result = runner.invoke(app, [command, "--model-path", str(not_a_model), *extra])
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "is not a model directory" in errors[0]
    assert "Traceback" not in result.output and not (tmp_path / "m.onnx").exists()


def test_unsupported_opset_is_exit_2(tiny_bert_dir, tmp_path):
    result = runner.invoke(
        app, ["export", "--model-path", str(tiny_bert_dir), "-o", str(tmp_path / "m.onnx"), "--opset", "11"]
    )
    assert result.exit_code == 2 and "--opset 11 is not supported" in result.stderr


def test_flops_of_a_tiny_bert_by_hand():
    """2 layers, hidden 32, 4 heads of 8, FFN 64, 2 labels, 16 tokens; a multiply-add is 2 FLOPs."""
    from transformers import BertConfig

    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
    qkv = 3 * (2 * 16 * 32 * 32)  # 98,304: three [16, 32] x [32, 32] products
    scores = 4 * (2 * 16 * 16 * 8)  # 16,384: per head [16, 8] x [8, 16]
    weighted = 4 * (2 * 16 * 16 * 8)  # 16,384: per head [16, 16] x [16, 8]
    attention_output = 2 * 16 * 32 * 32  # 32,768
    ffn = 2 * (2 * 16 * 32 * 64)  # 131,072: in and out
    pooler, classifier = 2 * 32 * 32, 2 * 32 * 2
    expected = 2 * (qkv + scores + weighted + attention_output + ffn) + pooler + classifier
    assert expected == 592_000
    counts = flops_per_example(config, 16)
    assert counts["total"] == expected and counts["embeddings"] == 0
    assert counts["ffn"] == 2 * ffn and counts["pooler"] == pooler and counts["classifier"] == classifier


def test_flops_of_a_pruned_config_by_hand():
    """Layer heads [2, 1] of size 8, FFN [16, 48], embedding rank 8, hidden 32, 3 labels, 10 tokens."""
    config = PrunedBertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        attention_head_size=8,
        num_heads_per_layer=[2, 1],
        intermediate_sizes=[16, 48],
        emb_hidden_dim=8,
        num_labels=3,
    )
    embeddings = 2 * 10 * 8 * 32  # 5,120: rank-8 codes projected to 32
    layer0 = 3 * 2 * 10 * 32 * 16 + 2 * 2 * 10 * 10 * 16 + 2 * 10 * 16 * 32 + 2 * 2 * 10 * 32 * 16  # A = 16
    layer1 = 3 * 2 * 10 * 32 * 8 + 2 * 2 * 10 * 10 * 8 + 2 * 10 * 8 * 32 + 2 * 2 * 10 * 32 * 48  # A = 8
    assert (layer0, layer1) == (67_840, 85_120)
    expected = embeddings + layer0 + layer1 + 2 * 32 * 32 + 2 * 32 * 3
    counts = flops_per_example(config, 10)
    assert counts["embeddings"] == embeddings and counts["total"] == expected == 160_320


def test_report_json_with_teacher(pruned_dir, tiny_bert_dir):
    threads_before = torch.get_num_threads()
    result = runner.invoke(app, [
        "report", "--model-path", str(pruned_dir), "--teacher-model", str(tiny_bert_dir),
        "--seq-length", "16", "--batch-size", "2", "--repeats", "3", "--threads", "1", "--json",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    student = load_classifier(str(pruned_dir))
    assert document["params"] == count_parameters(student)
    assert document["size_bytes"] == (pruned_dir / "model.safetensors").stat().st_size
    assert document["flops"] == flops_per_example(student.config, 16) and document["seq_length"] == 16
    assert document["teacher"]["params"]["total"] > document["params"]["total"]
    assert document["param_ratio"] > 1 and document["flop_ratio"] > 1 and document["size_ratio"] > 1
    assert document["latency_ratio"] > 0
    latency = document["latency"]
    assert latency["repeats"] == 3 and latency["batch_size"] == 2 and latency["interleaved"] is True
    assert latency["threads"] == 1 and torch.get_num_threads() == threads_before  # restored after timing
    # the ratio is the median of the per-pass ratios of the interleaved pairs, with their range and a verdict
    ratios = sorted(t / s for t, s in zip(latency["teacher_ms"], latency["student_ms"], strict=True))
    spread = document["latency_spread"]
    assert len(ratios) == 3 and spread["n"] == 3
    assert document["latency_ratio"] == pytest.approx(ratios[1]) == pytest.approx(spread["median"])
    assert spread["low"] == pytest.approx(ratios[0]) and spread["high"] == pytest.approx(ratios[2])
    assert isinstance(spread["load"], float) and spread["load"] >= 0
    straddles = ratios[0] <= 1.0 <= ratios[2]  # one side of 1.0 is a measurement (a bound if the range is wide)
    assert spread["verdict"] == ("not measurable on this machine now" if straddles else "measured")
    wide = not straddles and ratios[2] - ratios[0] > abs(ratios[1] - 1.0)
    assert (spread["bound"] is not None) == wide
    assert document["input"] == "synthetic 16 tokens" and document["mean_length"] is None
    assert latency["tokens"] == 2 * 16 and latency["batches"] == 1


def test_report_table_names_the_ratio_and_its_range(pruned_dir, tiny_bert_dir):
    result = runner.invoke(app, [
        "report", "--model-path", str(pruned_dir), "--teacher-model", str(tiny_bert_dir),
        "--seq-length", "8", "--batch-size", "2", "--repeats", "3", "--threads", "1",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())  # the caption wraps
    assert "input: synthetic 8 tokens" in text and "over 3 interleaved pairs, load" in text


#: Dev sentences of in-vocabulary words only (tests/helpers.py tiny_vocab): each is its words + [CLS] and [SEP].
DEV_ROWS = (
    ("good", 3),
    ("the movie was good", 6),
    ("a film", 4),
    ("very bad", 4),
    ("the plot is really very boring", 8),
    ("good " * 20, 22),  # the sixth row: beyond --examples 5, never timed
)


def test_report_with_data_times_dev_batches_padded_per_batch(pruned_dir, tiny_bert_dir, tmp_path):
    data = tmp_path / "SST-2"
    data.mkdir()
    rows = "".join(f"{text}\t{index % 2}\n" for index, (text, _) in enumerate(DEV_ROWS))
    (data / "train.tsv").write_text("sentence\tlabel\n" + rows)
    (data / "dev.tsv").write_text("sentence\tlabel\n" + rows)
    result = runner.invoke(app, [
        "report", "--model-path", str(pruned_dir), "--teacher-model", str(tiny_bert_dir),
        "--task-name", "sst-2", "--data-dir", str(data), "--examples", "5", "--batch-size", "2",
        "--repeats", "3", "--threads", "1", "--json",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    latency = document["latency"]
    # batches of lengths (3, 6), (4, 4), (8): padded to 2*6 + 2*4 + 1*8 = 28 tokens; real 3+6+4+4+8 = 25, mean 5
    assert latency["examples"] == 5 and latency["batches"] == 3 and latency["tokens"] == 28
    assert latency["seq_length"] == 8  # the longest batch, not max_seq_length (128)
    assert document["mean_length"] == pytest.approx(5.0) and document["seq_length"] == 5
    assert document["flops"] == flops_per_example(load_classifier(str(pruned_dir)).config, 5)
    assert "5 examples" in document["input"] and "28 tokens per pass" in document["input"]
    assert set(document["latency_spread"]) >= {"median", "low", "high", "n", "load", "verdict"}


def test_report_table_without_teacher(pruned_dir):
    result = runner.invoke(app, ["report", "--model-path", str(pruned_dir), "--seq-length", "16"])
    assert result.exit_code == 0, result.output
    assert "params total" in result.stdout and "FLOPs total" in result.stdout and "latency" not in result.stdout
    document = json.loads(runner.invoke(app, ["report", "--model-path", str(pruned_dir), "--json"]).stdout)
    assert document["teacher"] is None and document["latency_ratio"] is None and document["seq_length"] == 64
    assert document["input"] == "synthetic 64 tokens"


def test_report_rejects_too_long_sequences(pruned_dir):
    result = runner.invoke(app, ["report", "--model-path", str(pruned_dir), "--seq-length", "4096"])
    assert result.exit_code == 2 and "exceeds the student's 128 positions" in result.stderr


@pytest.mark.parametrize("flag", [[], ["--trust-remote-code"]])
def test_trust_remote_code_is_opt_in(flag, monkeypatch, tmp_path):
    calls = {}

    def fake(name):
        def record(*args, **kwargs):
            calls[name] = kwargs
            if name == "export":
                return {"output": "x", "bytes": 1, "max_abs_diff": 0.0, "opset": 17, "check_shapes": []}
            return {"teacher": None}

        return record

    monkeypatch.setattr(export, "export_onnx", fake("export"))
    monkeypatch.setattr(export, "report", fake("report"))
    assert runner.invoke(app, ["export", "--model-path", "m", "-o", "x.onnx", "--json", *flag]).exit_code == 0
    assert runner.invoke(app, ["report", "--model-path", "m", "--json", *flag]).exit_code == 0
    assert calls["export"]["trust_remote_code"] is calls["report"]["trust_remote_code"] is bool(flag)
