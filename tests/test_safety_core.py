"""Safety of the core's inputs and results (issue 10): safetensors-only loading, finite training, readable data
files, self-consistent stores, finite scores and an export that never replaces a file mudkd did not write.

Each case runs where a user meets it (the CLI, exit code, one ``Error:`` line naming the file, no traceback,
nothing written) or, for functions other stages call, against the function itself. Models are tiny BERTs; data is
written per test.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mudkd.cli.app import app
from mudkd.errors import DataError, RunError, StoreError
from tests.helpers import make_tiny_bert, save_tiny_tokenizer
from tests.helpers import snapshot as snapshot_all

runner = CliRunner()

POSITIVE = ["a good movie", "great fun", "the best film", "i love it"]
NEGATIVE = ["a bad movie", "awful plot", "the worst film", "i hate it"]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MUDKD_CACHE", str(tmp_path / "cache"))


def write_sst2(directory: Path, rows: int = 8, labels: tuple[int, ...] = (1, 0)) -> Path:
    """A GLUE SST-2 directory (``sentence<TAB>label``): ``rows`` training and 4 dev examples."""
    directory.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", rows), ("dev", 4)):
        lines = ["sentence\tlabel"]
        for index in range(count):
            label = labels[index % len(labels)]
            pool = POSITIVE if label == 1 else NEGATIVE
            lines.append(f"{pool[index % len(pool)]}\t{label}")
        (directory / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


def snapshot(root: Path) -> dict[str, tuple[int, int] | None]:
    """:func:`tests.helpers.snapshot` without mudkd's own tokenised-data cache (which a run may write)."""
    return snapshot_all(root, ignore=("cache",))


def refused(result, code: int, *phrases: str) -> str:
    """Assert exit ``code``, exactly one ``Error:`` line holding every phrase, and no traceback; return the line."""
    output = result.stdout + result.stderr
    assert result.exit_code == code, output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    for phrase in phrases:
        assert phrase in errors[0], result.stderr
    assert "Traceback" not in output
    return errors[0]


def invoke(*args: object):
    return runner.invoke(app, [str(arg) for arg in args])


# --------------------------------------------------------------------------------------------------------------------
# Loading: weights only from safetensors


@pytest.fixture
def pickle_only_model(tmp_path, tiny_bert_dir):
    """A model directory whose weights are only a pickle (``pytorch_model.bin``)."""
    directory = tmp_path / "pickled"
    shutil.copytree(tiny_bert_dir, directory)
    model = make_tiny_bert()
    (directory / "model.safetensors").unlink()
    torch.save(model.state_dict(), directory / "pytorch_model.bin")
    return directory


def test_pickle_only_model_is_refused_with_a_resave_hint(pickle_only_model, tmp_path):
    before = snapshot(tmp_path)
    result = invoke("report", "--model-path", pickle_only_model)
    refused(result, 2, str(pickle_only_model), "pytorch_model.bin", "safetensors")
    assert "save_pretrained" in result.stderr and "weights_only" not in result.stderr
    assert snapshot(tmp_path) == before


def test_pickle_only_teacher_is_refused_by_finetune(pickle_only_model, tmp_path):
    data = write_sst2(tmp_path / "SST-2")
    before = snapshot(tmp_path)
    result = invoke(
        "finetune", "--model-name-or-path", pickle_only_model, "--task-name", "sst-2", "--data-dir", data,
        "--max-seq-length", 16, "-o", tmp_path / "out",
    )  # fmt: skip
    refused(result, 2, str(pickle_only_model), "only pickle weights")
    assert not (tmp_path / "out").exists() and snapshot(tmp_path) == before


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_damaged_safetensors_is_exit_2_naming_the_file(damage, tiny_bert_dir, tmp_path):
    directory = tmp_path / "damaged"
    shutil.copytree(tiny_bert_dir, directory)
    weights = directory / "model.safetensors"
    content = weights.read_bytes()
    weights.write_bytes({"truncated": content[:-100], "garbage": b"\x00not safetensors", "empty": b""}[damage])
    result = invoke("report", "--model-path", directory)
    refused(result, 2, str(weights), "not a readable safetensors file")


def test_hub_names_still_load_through_from_pretrained_with_safetensors_only(monkeypatch):
    from transformers import AutoModelForSequenceClassification

    from mudkd.core.models import load_classifier

    calls = []

    def fake(name, **options):
        calls.append((name, options))
        return SimpleNamespace(), {"missing_keys": {"classifier.weight"}, "mismatched_keys": set()}

    monkeypatch.setattr(AutoModelForSequenceClassification, "from_pretrained", fake)
    model = load_classifier("someone/some-bert", num_labels=3)
    options = {"trust_remote_code": False, "use_safetensors": True, "num_labels": 3, "output_loading_info": True}
    assert calls == [("someone/some-bert", options)]
    assert model.mudkd_untrained == {"classifier.weight"}  # what the checkpoint lacked, left out of fingerprints


# --------------------------------------------------------------------------------------------------------------------
# Non-finite training: stop with exit 1, commit nothing


@pytest.fixture
def nan_teacher(tmp_path):
    """A tiny BERT whose classifier holds one nan weight: its training loss is nan from the first step."""
    model = make_tiny_bert()
    with torch.no_grad():
        model.classifier.weight[0, 0] = float("nan")
    directory = tmp_path / "nan-bert"
    model.save_pretrained(directory)
    save_tiny_tokenizer(directory)
    return directory


def test_finetune_whose_loss_becomes_nan_exits_1_and_commits_nothing(nan_teacher, tmp_path):
    data = write_sst2(tmp_path / "SST-2")
    out = tmp_path / "out"
    result = invoke(
        "finetune", "--model-name-or-path", nan_teacher, "--task-name", "sst-2", "--data-dir", data,
        "--max-seq-length", 16, "--train-batch-size", 4, "--num-train-epochs", 1, "--set", "training.logging_steps=1",
        "-o", out,
    )  # fmt: skip
    refused(result, 1, "finetune: training loss became nan at step 1; nothing was committed")
    assert "Hint: lower the learning rate" in result.stderr
    assert not out.exists()


class _FakeTrainer:
    def __init__(self) -> None:
        self.args = SimpleNamespace(logging_nan_inf_filter=True)
        self.callbacks: list = []

    def remove_callback(self, callback) -> None:
        pass

    def add_callback(self, callback) -> None:
        self.callbacks.append(callback)


def _guard(stage: str = "distill hsk"):
    from mudkd.core.events import RunEvents
    from mudkd.core.training import JsonlWriter, attach_events

    trainer = _FakeTrainer()
    attach_events(trainer, RunEvents(), stage, JsonlWriter(Path("unused.jsonl")))
    assert trainer.args.logging_nan_inf_filter is False  # the Trainer must not hide a nan step loss from the logs
    (guard,) = [c for c in trainer.callbacks if type(c).__name__ == "FiniteLossGuard"]
    return guard


@pytest.mark.parametrize(
    ("logs", "phrase"),
    [
        ({"loss": float("inf"), "learning_rate": 1e-3}, "distill hsk: training loss became inf at step 7"),
        ({"hsk_loss": float("nan")}, "distill hsk: training loss (hsk_loss) became nan at step 7"),
        ({"eval_loss": float("nan"), "eval_accuracy": 0.5}, "distill hsk: dev loss became nan at step 7"),
    ],
)
def test_a_logged_non_finite_loss_term_stops_the_run(logs, phrase):
    state = SimpleNamespace(global_step=7, log_history=[])
    with pytest.raises(RunError, match=r"nothing was committed") as caught:
        _guard().on_log(None, state, None, logs={"epoch": 1.0, **logs})
    assert phrase in caught.value.message and caught.value.exit_code == 1


def test_a_finite_log_passes_and_the_end_of_training_checks_the_whole_history():
    guard = _guard("finetune")
    state = SimpleNamespace(global_step=12, log_history=[{"loss": 0.7, "step": 10}])
    guard.on_log(None, state, None, logs={"loss": 0.7, "grad_norm": float("nan")})  # only loss terms count
    guard.on_train_end(None, state, None)
    # A run shorter than logging_steps logs no loss, only the final train_loss: checked at the end.
    state.log_history.append({"train_loss": float("nan"), "step": 12})
    with pytest.raises(RunError, match=r"^finetune: training loss became nan at step 12; nothing was committed$"):
        guard.on_train_end(None, state, None)


def test_check_finite_model():
    from mudkd.core.training import check_finite_model

    model = make_tiny_bert()
    check_finite_model(model, "prune")
    with torch.no_grad():
        model.bert.encoder.layer[1].output.dense.bias[3] = float("-inf")
    with pytest.raises(RunError, match=r"^prune: the model's weights became inf \(bert\.encoder\.layer\.1\.") as caught:
        check_finite_model(model, "prune")
    assert caught.value.exit_code == 1 and "nothing was committed" in caught.value.message


# --------------------------------------------------------------------------------------------------------------------
# Data files: UTF-8 only (file and line named), at least 2 labels


def test_non_utf8_glue_file_names_the_file_and_line(tiny_bert_dir, tmp_path):
    data = write_sst2(tmp_path / "SST-2")
    train = data / "train.tsv"
    lines = train.read_bytes().splitlines(keepends=True)
    lines[2] = "caf\u00e9 noir\t1\n".encode("latin-1")  # line 3 of the file
    train.write_bytes(b"".join(lines))
    before = snapshot(tmp_path)
    result = invoke(
        "finetune", "--model-name-or-path", tiny_bert_dir, "--task-name", "sst-2", "--data-dir", data,
        "--max-seq-length", 16, "-o", tmp_path / "out",
    )  # fmt: skip
    refused(result, 2, f"{train}: not UTF-8 text (byte 0xe9 on line 3)")
    assert "Hint:" in result.stderr
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_non_utf8_custom_file_names_the_file_and_line(suffix, tmp_path):
    from transformers import AutoTokenizer

    from mudkd.core.data import load_task
    from mudkd.recipe.schema import TaskConfig

    save_tiny_tokenizer(tmp_path / "tok")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "tok")
    good = tmp_path / f"train{suffix}"
    bad = tmp_path / f"dev{suffix}"
    if suffix == ".jsonl":
        rows = [json.dumps({"sentence": text, "label": label}) for text, label in (("good", 1), ("bad", 0))]
        good.write_text("\n".join(rows) + "\n", encoding="utf-8")
        bad.write_bytes(b'{"sentence": "good", "label": 1}\n{"sentence": "na\xefve", "label": 0}\n')
        line = 2
    else:
        sep = "," if suffix == ".csv" else "\t"
        good.write_text(f"sentence{sep}label\ngood{sep}1\nbad{sep}0\n", encoding="utf-8")
        bad.write_bytes(f"sentence{sep}label\ngood{sep}1\nbad{sep}0\n".encode() + f"ol\xe9{sep}1\n".encode("cp1252"))
        line = 4
    config = TaskConfig(name="custom", train_file=str(good), validation_file=str(bad), text_columns=["sentence"])
    with pytest.raises(DataError, match=rf"^{bad}: not UTF-8 text \(byte 0x.. on line {line}\)$"):
        load_task(config, tokenizer)


def test_utf8_check_streams_across_blocks(tmp_path):
    from mudkd.core.data import check_utf8

    path = tmp_path / "big.tsv"
    block = 1 << 20
    head = b"x" * (block - 1) + "\u00e9".encode() + b"\n"  # a 2-byte character cut by the 1 MiB block boundary
    path.write_bytes(head + b"fine\n" * 3 + b"bad \xff here\n")
    with pytest.raises(DataError, match=r"byte 0xff on line 5\)"):
        check_utf8(path)
    path.write_bytes(head + b"fine\n")
    check_utf8(path)
    path.write_bytes(head + b"ends inside \xc3")
    with pytest.raises(DataError, match=r"ends inside a character, on line 2"):
        check_utf8(path)


def test_custom_classification_with_one_label_is_refused(tiny_bert_dir, tmp_path):
    train = tmp_path / "train.csv"
    train.write_text("sentence,label\ngood,pos\ngreat,pos\nfun,pos\n", encoding="utf-8")
    dev = tmp_path / "dev.csv"
    dev.write_text("sentence,label\nbad,pos\ngood,pos\n", encoding="utf-8")
    result = invoke(
        "finetune", "--model-name-or-path", tiny_bert_dir, "-o", tmp_path / "out", "--set", "task.name=custom",
        "--set", f"task.train_file={train}", "--set", f"task.validation_file={dev}",
        "--set", 'task.text_columns=["sentence"]',
    )  # fmt: skip
    refused(result, 2, f"need at least 2 labels (found only 'pos' in {train})")
    assert not (tmp_path / "out").exists()


def test_glue_training_file_with_one_label_is_refused(tmp_path):
    from mudkd.core.data import load_raw
    from mudkd.recipe.schema import TaskConfig

    data = write_sst2(tmp_path / "SST-2", labels=(1,))
    with pytest.raises(DataError, match=rf"^need at least 2 labels \(found only '1' in {data / 'train.tsv'}\)$"):
        load_raw(TaskConfig(name="sst-2", data_dir=str(data)))
    write_sst2(tmp_path / "SST-2", labels=(1, 0))
    assert load_raw(TaskConfig(name="sst-2", data_dir=str(data)))[0]["train"]["label"][:2] == [1, 0]


# --------------------------------------------------------------------------------------------------------------------
# Stores: a manifest must agree with itself; dtype; the chunk memory guard

BUDGET = {"layers": [{"student": 1, "teacher": 2, "attention": 2}], "keep_tokens": 4, "keep_hidden": 0.5}


def build_store(directory: Path, *, dtype: str = "float16") -> Path:
    from mudkd.core.store import StoreWriter, fingerprint_value

    fields = {"values": (dtype, (1, 4, 8)), "token_index": ("int16", (1, 4)), "logits": ("float32", (2,))}
    fingerprint = {"task": "sst-2", "budget": fingerprint_value(BUDGET), "dtype": dtype, "max_seq_length": "16"}
    meta = {"budget": BUDGET, "teacher": "models/teacher", "task": "sst-2"}
    rng = np.random.default_rng(0)
    with StoreWriter.create(
        directory, fields=fields, num_examples=6, fingerprint=fingerprint, meta=meta, chunk_size=4
    ) as writer:
        writer.append(
            {
                "values": rng.standard_normal((6, 1, 4, 8)).astype(dtype),
                "token_index": rng.integers(0, 16, (6, 1, 4)).astype(np.int16),
                "logits": rng.standard_normal((6, 2)).astype(np.float32),
            }
        )
    return directory


def edit_manifest(directory: Path, change) -> None:
    path = directory / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("change", "phrase"),
    [
        (lambda m: m["meta"]["budget"].update(keep_tokens=8), "meta.budget does not match fingerprint.budget"),
        (lambda m: m["meta"].update(task="cola"), "meta.task is 'cola' but fingerprint.task is 'sst-2'"),
        (lambda m: m["fingerprint"].update(dtype="float32"), "the values field is float16 but fingerprint.dtype"),
    ],
)
def test_a_manifest_whose_meta_disagrees_with_its_fingerprint_is_refused(change, phrase, tmp_path):
    from mudkd.core.store import HskStore, StoreWriter

    store = build_store(tmp_path / "store")
    assert HskStore.open(store).meta["budget"] == BUDGET
    edit_manifest(store, change)
    with pytest.raises(StoreError, match="contradicts itself") as caught:
        HskStore.open(store)
    assert str(store) in caught.value.message and phrase in caught.value.message
    with pytest.raises(StoreError, match="contradicts itself"):
        StoreWriter.resume(store, fingerprint=json.loads((store / "manifest.json").read_text())["fingerprint"])


def test_distill_hsk_refuses_a_real_store_whose_manifest_was_edited(tmp_path):
    from tests.helpers import make_teacher_and_student

    root = make_teacher_and_student(tmp_path)
    sst2 = ["--task-name", "sst-2", "--data-dir", write_sst2(tmp_path / "SST-2"), "--max-seq-length", 16]
    store = tmp_path / "store"
    result = invoke(
        "distill", "cache", "--teacher-model", root / "teacher", "--student-model", root / "student", *sst2,
        "--config-3d", "1l_8t_0.5h", "-o", store,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    hsk = ["distill", "hsk", "--hsk-store", store, "--student-model", root / "student", *sst2]
    edit_manifest(store, lambda m: m["meta"]["budget"].update(keep_tokens=4))  # the budget training would read
    before = snapshot(tmp_path)
    result = invoke(*hsk, "--config-3d", "1l_4t_0.5h", "-o", tmp_path / "hsk")
    refused(result, 2, str(store), "contradicts itself", "meta.budget")
    assert not (tmp_path / "hsk").exists() and snapshot(tmp_path) == before


def test_a_store_of_another_dtype_is_refused_with_a_hint(tmp_path):
    from mudkd.core.store import HskStore

    store = build_store(tmp_path / "store", dtype="float32")
    assert HskStore.open(store, expect_dtype="float32").value_dtype == "float32"
    with pytest.raises(StoreError, match=r"holds float32 values, but this run asks for float16") as caught:
        HskStore.open(store, expect_dtype="float16")
    assert str(store) in caught.value.message and caught.value.exit_code == 2
    assert "--set cache.dtype=float32" in caught.value.hint and "--dtype float16" in caught.value.hint


def test_a_chunk_that_would_not_fit_in_memory_is_refused_before_anything_is_written(tmp_path):
    from mudkd.core.store import MAX_CHUNK_BYTES, StoreWriter, check_chunk_bytes

    fields = {"values": ("float16", (2, 48, 1280)), "logits": ("float32", (2,))}  # 245 KiB per example
    per_example = 2 * 48 * 1280 * 2 + 2 * 4
    assert check_chunk_bytes(fields, 4096) == 4096 * per_example <= MAX_CHUNK_BYTES
    with pytest.raises(StoreError) as caught:
        check_chunk_bytes(fields, 1_000_000)
    assert caught.value.message.startswith("cache.chunk_size 1000000 × 240 KiB per example = 229 GiB per chunk")
    assert caught.value.hint == f"lower cache.chunk_size to {MAX_CHUNK_BYTES // per_example}"
    with pytest.raises(StoreError, match=r"lower|per chunk"):
        StoreWriter.create(tmp_path / "store", fields=fields, num_examples=10, fingerprint={}, chunk_size=1_000_000)
    assert not (tmp_path / "store").exists()
    with pytest.raises(StoreError, match=r"= 2\.34 MiB per chunk, more than the 1 MiB"):
        check_chunk_bytes(fields, 10, limit=1 << 20)


# --------------------------------------------------------------------------------------------------------------------
# Scores: nan/inf refused by prune


def test_prune_refuses_scores_with_non_finite_values(tmp_path):
    from mudkd.core.pruning import TaylorScores, model_fingerprint, save_scores

    teacher = make_tiny_bert(tmp_path / "teacher")
    generator = torch.Generator().manual_seed(0)
    heads = [torch.rand(4, generator=generator, dtype=torch.float64) for _ in range(2)]
    ffn = [torch.rand(64, generator=generator, dtype=torch.float64) for _ in range(2)]
    ffn[1][5] = float("nan")
    scores = TaylorScores(heads, ffn, num_batches=1, num_examples=4, head_size=8, hidden_size=32)
    path = save_scores(scores, tmp_path / "scores", model_fingerprint=model_fingerprint(teacher))
    before = snapshot(tmp_path)
    result = invoke(
        "prune", "--model-path", tmp_path / "teacher", "--scores", tmp_path / "scores", "--num-layers", 2,
        "--keep-heads", 2, "--ffn-hidden-dim", 32, "--emb-hidden-dim", 16, "-o", tmp_path / "out",
    )  # fmt: skip
    refused(result, 2, str(path), "layer.1.ffn", "non-finite")
    assert not (tmp_path / "out").exists() and snapshot(tmp_path) == before


# --------------------------------------------------------------------------------------------------------------------
# Export: a missing model is bad input; the output file rule


def test_export_of_a_missing_model_dir_is_exit_2_even_without_onnx(tmp_path, monkeypatch):
    from mudkd.core.stages import export

    def no_onnx():
        raise RunError("ONNX export needs onnx and onnxruntime (onnx is not installed)")

    monkeypatch.setattr(export, "_import_onnx", no_onnx)
    result = invoke("export", "--model-path", tmp_path / "models" / "final", "-o", tmp_path / "student.onnx")
    refused(result, 2, str(tmp_path / "models" / "final"), "does not exist")
    assert not (tmp_path / "student.onnx").exists()


def test_export_refuses_an_output_inside_the_model_dir(tiny_bert_dir, tmp_path):
    before = snapshot(tiny_bert_dir)
    result = invoke("export", "--model-path", tiny_bert_dir, "-o", tiny_bert_dir / "model.onnx")
    refused(result, 2, "is inside an input", "--student-model")  # the flag export --help names
    assert snapshot(tiny_bert_dir) == before


def test_export_refuses_a_symlinked_output(tiny_bert_dir, tmp_path):
    link = tmp_path / "student.onnx"
    link.symlink_to(tmp_path / "elsewhere.onnx")  # dangling: the export would create the target
    result = invoke("export", "--model-path", tiny_bert_dir, "-o", link, "--overwrite")
    refused(result, 2, str(link), "symbolic link")
    assert link.is_symlink() and not (tmp_path / "elsewhere.onnx").exists()


def test_overwrite_replaces_only_an_onnx_file_mudkd_exported(tiny_bert_dir, tmp_path):
    pytest.importorskip("onnxruntime")
    import onnx
    from onnx import TensorProto, helper

    from mudkd.core.stages.export import MADE_BY

    precious = tmp_path / "precious.onnx"
    precious.write_bytes(b"my thesis")
    result = invoke("export", "--model-path", tiny_bert_dir, "-o", precious, "--overwrite")
    refused(result, 2, str(precious), "was not written by mudkd")
    assert "Hint: choose another --output" in result.stderr and precious.read_bytes() == b"my thesis"

    # A valid ONNX file from another tool is not mudkd's either.
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "other",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    foreign = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph), str(foreign))
    content = foreign.read_bytes()
    refused(invoke("export", "--model-path", tiny_bert_dir, "-o", foreign, "--overwrite"), 2, "not written by mudkd")
    assert foreign.read_bytes() == content

    # mudkd's own export is marked, and replaced with --overwrite.
    ours = tmp_path / "student.onnx"
    assert invoke("export", "--model-path", tiny_bert_dir, "-o", ours).exit_code == 0
    marks = {(entry.key, entry.value) for entry in onnx.load(str(ours)).metadata_props}
    assert MADE_BY in marks
    result = invoke("export", "--model-path", tiny_bert_dir, "-o", ours, "--overwrite", "--opset", "18")
    assert result.exit_code == 0, result.output
    assert onnx.load(str(ours)).opset_import[0].version == 18


def test_export_refuses_pickle_only_weights(pickle_only_model, tmp_path):
    result = invoke("export", "--model-path", pickle_only_model, "-o", tmp_path / "m.onnx")
    refused(result, 2, str(pickle_only_model), "only pickle weights")
    assert not (tmp_path / "m.onnx").exists()
