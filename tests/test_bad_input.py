"""Bad input, command by command: exit code 2, one ``Error:`` line naming the problem, no traceback, nothing left.

Every case runs a real command (no core patched) against tiny models, a 64-row SST-2 slice, real Taylor scores and
a real teacher-free store, all built once per module. After each case the whole work directory (models, data,
store copies, pre-existing outputs) is compared with a snapshot taken before: a refused command must neither
create anything (no output, no ``<out>.partial``, no half store) nor touch what was already there.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from typer.testing import CliRunner

from mudkd.cli.app import app
from tests.helpers import argv, make_teacher_and_student, snapshot, write_sst2_slice

runner = CliRunner()


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    """Every input the cases point at, under one work directory ``w``."""
    w = tmp_path_factory.mktemp("bad_input")
    cache = tmp_path_factory.mktemp("bad_input_cache")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    patch = pytest.MonkeyPatch()
    patch.setenv("MUDKD_CACHE", str(cache))

    data = write_sst2_slice(w / "SST-2", 64, 32)
    no_dev = write_sst2_slice(w / "SST-2-no-dev", 64, None)
    more = write_sst2_slice(w / "SST-2-more", 80, 32)  # the store's 64 training rows, then 16 more

    make_teacher_and_student(w)  # teacher: 3 layers, 4 heads, hidden 32, FFN 64; student: 2 layers, 2 heads

    sst2 = ["--task-name", "sst-2", "--data-dir", data, "--max-seq-length", 16]
    for args in (
        ["score", "--model-name-or-path", w / "teacher", *sst2, "--train-batch-size", 16, "-o", w / "scores"],
        argv(
            "distill cache --teacher-model",
            w / "teacher",
            "--student-model",
            w / "student",
            sst2,
            "--config-3d 1l_8t_0.5h -o",
            w / "store",
        ),
    ):
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code == 0, result.output

    truncated = w / "store-truncated"
    shutil.copytree(w / "store", truncated)
    chunk = sorted(truncated.glob("chunk-*.values.bin"))[0]
    chunk.write_bytes(chunk.read_bytes()[:-10])
    bad_manifest = w / "store-bad-manifest"
    shutil.copytree(w / "store", bad_manifest)
    (bad_manifest / "manifest.json").write_text('{"format": "mudkd-hsk-store", ')

    no_weights = w / "no-weights"
    no_weights.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        shutil.copy(w / "teacher" / name, no_weights / name)
    bad_config = w / "bad-config"
    bad_config.mkdir()
    (bad_config / "config.json").write_text("{")

    (w / "malformed.toml").write_text("[finetune\n")
    (w / "unknown-key.toml").write_text("[hsk]\nkeep_tokenz = 3\n")
    (w / "wrong-type.toml").write_text('[finetune]\nlearning_rate = "fast"\n')
    (w / "newer.toml").write_text("schema_version = 99\n")
    (w / "no-label.csv").write_text("sentence,target\ngood,1\nbad,0\n")
    (w / "base.toml").write_text('[task]\nname = "sst-2"\n')
    (w / "sweep.toml").write_text(
        f'schema_version = 1\nbase = "base.toml"\noutput_dir = "{w / "out"}"\n[[grid]]\nkeep_tokens = [4, 8]\n'
    )
    (w / "sweep-unknown-key.toml").write_text(
        f'schema_version = 1\nbase = "base.toml"\noutput_dir = "{w / "out"}"\n[[grid]]\nkeep_tokenz = [4]\n'
    )
    (w / "existing").mkdir()
    (w / "existing" / "keep.txt").write_text("precious")
    (w / "existing.onnx").write_text("precious")
    (w / "existing.toml").write_text("# precious\n")
    (w / "link").symlink_to(w / "existing")
    _broken_inputs(w)

    yield SimpleNamespace(
        w=w,
        out=w / "out",
        data=data,
        no_dev=no_dev,
        teacher=w / "teacher",
        student=w / "student",
        scores=w / "scores",
        store=w / "store",
        more=more,
        truncated=truncated,
        bad_manifest=bad_manifest,
        no_weights=no_weights,
        bad_config=bad_config,
        sst2=sst2,
    )
    patch.undo()
    torch.set_num_threads(threads)


def _broken_inputs(w: Path) -> None:
    """Issue 23's inputs: custom CSVs with an empty label cell or an unterminated quote, a student with a nan
    weight, and stores whose chunk files were overwritten (a flipped byte; nan values under a rewritten checksum)."""
    import hashlib
    import json

    import numpy as np
    from safetensors.torch import load_file, save_file

    (w / "good.csv").write_text("text,label\ngood film,pos\nbad plot,neg\n")
    (w / "empty-label.csv").write_text("text,label\ngood film,pos\nbad plot,\nfine,neg\n")
    (w / "open-quote.csv").write_text('text,label\ngood film,pos\n"bad plot,neg\nfine,neg\n')
    nan_model = w / "nan-model"
    shutil.copytree(w / "student", nan_model)
    weights = load_file(nan_model / "model.safetensors")
    name = sorted(key for key in weights if key.endswith("dense.weight"))[0]
    weights[name][0, 0] = float("nan")
    save_file(weights, nan_model / "model.safetensors", metadata={"format": "pt"})
    flipped = w / "store-flipped"
    shutil.copytree(w / "store", flipped)
    chunk = flipped / "chunk-00000.values.bin"
    data = bytearray(chunk.read_bytes())
    data[5] ^= 0x10
    chunk.write_bytes(bytes(data))
    nan_store = w / "store-nan"
    shutil.copytree(w / "store", nan_store)
    values = np.fromfile(nan_store / "chunk-00000.values.bin", dtype="<f2")
    values[1] = np.nan
    values.tofile(nan_store / "chunk-00000.values.bin")
    manifest = json.loads((nan_store / "manifest.json").read_text())
    digest = hashlib.sha256((nan_store / "chunk-00000.values.bin").read_bytes()).hexdigest()
    manifest["chunks"][0]["files"]["values"]["sha256"] = digest
    (nan_store / "manifest.json").write_text(json.dumps(manifest))


def custom(c, model, validation, *extra):
    return argv("evaluate", model, "--task-name custom --text-columns text --validation-file", validation, extra)


@dataclass(frozen=True)
class Case:
    args: Callable[[SimpleNamespace], list]
    phrase: str
    requires: str | None = None  # a module the command needs before it reaches the bad input
    stdin: bytes | None = None  # what the command reads on stdin


def finetune(c, *extra):
    return ["finetune", "--model-name-or-path", c.teacher, *c.sst2, "-o", c.out, *extra]


def score(c, *extra):
    return ["score", "--model-name-or-path", c.teacher, *c.sst2, "-o", c.out, *extra]


def prune(c, *extra, layers=("--num-layers", 2)):
    return argv(
        "prune --model-path",
        c.teacher,
        "--scores",
        c.scores,
        layers,
        "--keep-heads 2 --ffn-hidden-dim 32 --emb-hidden-dim 16 -o",
        c.out,
        extra,
    )


def hsk(c, *extra):
    return ["distill", "hsk", "--teacher-model", c.teacher, "--student-model", c.student, *c.sst2, "-o", c.out, *extra]


def hsk_store(c, store, *extra):
    return argv(
        "distill hsk --hsk-store",
        store,
        "--student-model",
        c.student,
        c.sst2,
        "--config-3d 1l_8t_0.5h -o",
        c.out,
        extra,
    )


def pred(c, *extra):
    return ["distill", "pred", "--teacher-model", c.teacher, "--student-model", c.student, *c.sst2, "-o", c.out, *extra]


def cache(c, *extra):
    return argv("distill cache --teacher-model", c.teacher, "--student-model", c.student, c.sst2, "-o", c.out, extra)


CASES = {
    # finetune: paths, data, numbers, recipes, --set
    "finetune-missing-model": Case(lambda c: [*finetune(c), "--model-name-or-path", c.w / "nope"], "does not exist"),
    "finetune-not-a-model-dir": Case(
        lambda c: [*finetune(c), "--model-name-or-path", c.data], "is not a model directory"
    ),
    "finetune-model-without-weights": Case(
        lambda c: [*finetune(c), "--model-name-or-path", c.no_weights], "could not load a model"
    ),
    "finetune-missing-data-dir": Case(lambda c: finetune(c, "--data-dir", c.w / "no-data"), "data directory not found"),
    "finetune-data-dir-without-dev": Case(lambda c: finetune(c, "--data-dir", c.no_dev), "dev.tsv"),
    "finetune-custom-data-without-label": Case(
        lambda c: argv(
            "finetune --model-name-or-path",
            c.teacher,
            "-o",
            c.out,
            "--set task.name=custom",
            ["--set", f"task.train_file={c.w / 'no-label.csv'}"],
            ["--set", f"task.validation_file={c.w / 'no-label.csv'}"],
            '--set task.text_columns=["sentence"]',
        ),
        "'label' not found",
    ),
    "finetune-existing-output-dir": Case(lambda c: [*finetune(c), "-o", c.w / "existing"], "was not made by mudkd"),
    "finetune-overwrite-users-folder": Case(
        lambda c: [*finetune(c), "-o", c.w / "existing", "--overwrite"], "was not made by mudkd"
    ),
    "finetune-output-is-the-model": Case(
        lambda c: [*finetune(c), "-o", c.teacher, "--overwrite"], "is an input of this run (--model-name-or-path"
    ),
    "finetune-output-inside-the-data": Case(lambda c: [*finetune(c), "-o", c.data / "out"], "is inside an input"),
    "finetune-output-contains-the-data": Case(lambda c: [*finetune(c), "-o", c.w], "contains an input"),
    "finetune-output-symlink": Case(lambda c: [*finetune(c), "-o", c.w / "link"], "symbolic link"),
    # issue 23: paths resolved and checked before anything runs (each was a bare OSError or got past the guard)
    "finetune-output-below-a-file": Case(
        lambda c: [*finetune(c), "-o", c.w / "existing.toml" / "out"], "existing.toml is a file, not a folder"
    ),
    "finetune-output-dot-dot": Case(lambda c: [*finetune(c), "-o", c.out / "new" / ".."], "names no folder of its own"),
    "finetune-output-named-partial": Case(lambda c: [*finetune(c), "-o", c.w / "run.partial"], "mudkd's working files"),
    "score-output-named-old": Case(lambda c: [*score(c), "-o", c.w / ".run.old-123"], "mudkd's working files"),
    "prune-output-named-lock": Case(
        lambda c: [
            "prune",
            "--model-path",
            c.teacher,
            "--scores",
            c.scores,
            "--num-layers",
            2,
            "--keep-heads",
            2,
            "--ffn-hidden-dim",
            32,
            "--emb-hidden-dim",
            16,
            "-o",
            c.w / ".run.lock",
        ],
        "mudkd's working files",
    ),  # fmt: skip
    # A folder nobody may write into. As root (as here) chmod does not stop writes, so this is /sys, where even root
    # cannot create a file: the guard's os.access check passes for root and the lock's creation is what refuses
    # (tests/test_safe_outputs.py covers the os.access branch a normal user meets).
    "finetune-output-in-an-unwritable-folder": Case(
        lambda c: [*finetune(c), "-o", Path("/sys/mudkd-out")], "/sys/mudkd-out"
    ),
    "score-output-is-the-teacher": Case(lambda c: [*score(c), "-o", c.teacher, "--overwrite"], "is an input"),
    "prune-output-is-the-scores": Case(lambda c: [*prune(c)[:-1], c.scores, "--overwrite"], "is an input"),
    "finetune-no-output-dir": Case(
        lambda c: ["finetune", "--model-name-or-path", c.teacher, *c.sst2], "no output directory given"
    ),
    "finetune-negative-batch": Case(lambda c: finetune(c, "--train-batch-size", -3), "finetune.train_batch_size"),
    "finetune-zero-epochs": Case(lambda c: finetune(c, "--num-train-epochs", 0), "finetune.num_train_epochs"),
    "finetune-zero-train-samples": Case(lambda c: finetune(c, "--max-train-samples", 0), "task.max_train_samples"),
    "finetune-warmup-above-1": Case(lambda c: finetune(c, "--warmup-proportion", 1.5), "finetune.warmup_proportion"),
    "finetune-unknown-device": Case(lambda c: finetune(c, "--device", "tpu"), "'--device': 'tpu' is not one of"),
    "finetune-unknown-task": Case(lambda c: finetune(c, "--task-name", "nope"), "unknown task 'nope'"),
    "finetune-length-below-8": Case(lambda c: finetune(c, "--max-seq-length", 4), "task.max_seq_length"),
    "finetune-length-beyond-positions": Case(
        lambda c: finetune(c, "--max-seq-length", 512), "task.max_seq_length: 512 is longer"
    ),
    "finetune-malformed-recipe": Case(lambda c: ["finetune", c.w / "malformed.toml"], "malformed TOML"),
    "finetune-recipe-unknown-key": Case(
        lambda c: ["finetune", c.w / "unknown-key.toml"], "hsk.keep_tokenz: unknown key (did you mean 'keep_tokens'?)"
    ),
    "finetune-recipe-wrong-type": Case(lambda c: ["finetune", c.w / "wrong-type.toml"], "finetune.learning_rate"),
    "finetune-missing-recipe": Case(lambda c: ["finetune", c.w / "nope.toml"], "recipe file not found"),
    "finetune-set-without-equals": Case(lambda c: finetune(c, "--set", "finetune"), "expected KEY=VALUE"),
    "finetune-set-empty-key": Case(lambda c: finetune(c, "--set", "=3"), "expected KEY=VALUE"),
    "finetune-set-misspelt-section": Case(
        lambda c: finetune(c, "--set", "finetun.learning_rate=3"), "did you mean 'finetune'"
    ),
    "finetune-set-wrong-type": Case(
        lambda c: finetune(c, "--set", "task.max_seq_length=[1,2]"),
        "task.max_seq_length: Input should be a valid integer",
    ),
    # score
    "score-not-a-model-dir": Case(lambda c: [*score(c), "--model-name-or-path", c.data], "is not a model directory"),
    "score-zero-epochs": Case(lambda c: score(c, "--num-train-epochs", 0), "score.num_train_epochs"),
    "score-missing-data-dir": Case(lambda c: score(c, "--data-dir", c.w / "no-data"), "data directory not found"),
    "score-length-beyond-positions": Case(lambda c: score(c, "--max-seq-length", 512), "512 is longer"),
    # prune: scores, --layers lists, sizes that do not fit the teacher
    "prune-missing-scores": Case(lambda c: [*prune(c), "--scores", c.w / "nope"], "does not exist"),
    "prune-scores-dir-without-scores": Case(lambda c: [*prune(c), "--scores", c.data], "has no importance.safetensors"),
    "prune-layers-not-integers": Case(
        lambda c: prune(c, layers=("--layers", "0,x")), "--layers: '0,x' is not a comma-separated list"
    ),
    "prune-layers-out-of-range": Case(lambda c: prune(c, layers=("--layers", "0,7")), "out of range"),
    "prune-layers-duplicated": Case(lambda c: prune(c, layers=("--layers", "0,0")), "duplicates"),
    "prune-layers-empty": Case(lambda c: prune(c, layers=("--layers", ",")), "layers is empty"),
    "prune-more-heads-than-teacher": Case(lambda c: prune(c, "--keep-heads", 9), "keep_heads=9"),
    "prune-ffn-wider-than-teacher": Case(lambda c: prune(c, "--ffn-hidden-dim", 1000), "ffn_hidden_dim=1000"),
    "prune-embedding-rank-too-large": Case(lambda c: prune(c, "--emb-hidden-dim", 99), "emb_hidden_dim=99"),
    "prune-zero-layers": Case(lambda c: prune(c, layers=("--num-layers", 0)), "prune.num_layers"),
    "prune-too-many-layers": Case(lambda c: prune(c, layers=("--num-layers", 5)), "num_layers=5"),
    # distill hsk: budgets that do not fit, bad schemes and layer lists, bad models
    "hsk-K-too-large": Case(lambda c: hsk(c, "--keep-layers", 4), "keep_layers"),
    "hsk-K-zero": Case(lambda c: hsk(c, "--keep-layers", 0), "hsk.keep_layers"),
    "hsk-k-beyond-length": Case(lambda c: hsk(c, "--keep-tokens", 17), "keep_tokens"),
    "hsk-rho-above-1": Case(lambda c: hsk(c, "--keep-hidden", 1.5), "keep_hidden"),
    "hsk-rho-negative": Case(lambda c: hsk(c, "--keep-hidden", -0.5), "hsk.keep_hidden"),
    "hsk-t-top-beyond-teacher": Case(lambda c: hsk(c, "--layer-scheme", "t_top9"), "t_top9"),
    "hsk-t-top-zero": Case(lambda c: hsk(c, "--layer-scheme", "t_top0"), "t_top0"),
    "hsk-t-top-malformed": Case(lambda c: hsk(c, "--layer-scheme", "top3"), "layer_scheme"),
    "hsk-config-3d-incomplete": Case(lambda c: hsk(c, "--config-3d", "1l_10t"), "config_3d"),
    "hsk-config-3d-rho-above-1": Case(lambda c: hsk(c, "--config-3d", "1l_8t_2h"), "keep_hidden"),
    "hsk-unknown-token-scheme": Case(lambda c: hsk(c, "--token-scheme", "random"), "'--token-scheme': 'random'"),
    "hsk-unknown-hidden-scheme": Case(lambda c: hsk(c, "--hidden-scheme", "magic"), "'--hidden-scheme': 'magic'"),
    "hsk-unknown-mag-scope": Case(lambda c: hsk(c, "--mag-scope", "galaxy"), "'--mag-scope': 'galaxy'"),
    "hsk-student-layers-not-integers": Case(lambda c: hsk(c, "--student-layers", "0,a"), "not a comma-separated list"),
    "hsk-layer-lists-of-different-lengths": Case(
        lambda c: hsk(c, "--student-layers", "0,1", "--teacher-layers", "0"), "1 teacher layer indices"
    ),
    "hsk-student-layer-out-of-range": Case(
        lambda c: hsk(c, "--student-layers", "0,5", "--teacher-layers", "0,1"), "between 0 and 2 (got 5)"
    ),
    "hsk-bad-att-ttop12": Case(lambda c: hsk(c, "--att-ttop12", "maybe"), "--att-ttop12: expected true or false"),
    "hsk-teacher-not-a-model-dir": Case(
        lambda c: [*hsk(c), "--teacher-model", c.data], "teacher is not a model directory"
    ),
    "hsk-student-malformed-config": Case(lambda c: [*hsk(c), "--student-model", c.bad_config], "malformed config.json"),
    "hsk-length-beyond-positions": Case(lambda c: hsk(c, "--max-seq-length", 256), "256 is longer"),
    # distill hsk from a store that does not match or is damaged
    "hsk-store-other-max-length": Case(lambda c: hsk_store(c, c.store, "--max-seq-length", 24), "max_seq_length"),
    # a store serves a prefix of its examples (--max-train-samples 31 trains), but not other data
    "hsk-store-other-data": Case(lambda c: hsk_store(c, c.store, "--data-dir", c.more), "data (store"),
    "hsk-store-cannot-serve-budget": Case(lambda c: hsk_store(c, c.store, "--config-3d", "2l_8t_0.5h"), "cannot serve"),
    "hsk-store-truncated-chunk": Case(lambda c: hsk_store(c, c.truncated), "is truncated"),
    "hsk-store-corrupted-manifest": Case(lambda c: hsk_store(c, c.bad_manifest), "manifest.json is not valid JSON"),
    "hsk-store-missing": Case(lambda c: hsk_store(c, c.w / "no-store"), "not found"),
    "hsk-store-not-a-store": Case(lambda c: hsk_store(c, c.data), "no manifest.json"),
    # distill pred
    "pred-zero-temperature": Case(lambda c: pred(c, "--temperature", 0), "pred.temperature"),
    "pred-missing-data-dir": Case(lambda c: pred(c, "--data-dir", c.w / "no-data"), "data directory not found"),
    "pred-logits-store-truncated": Case(
        lambda c: argv("distill pred --logits-store", c.truncated, "--student-model", c.student, c.sst2, "-o", c.out),
        "is truncated",
    ),
    "pred-length-beyond-positions": Case(lambda c: pred(c, "--max-seq-length", 256), "256 is longer"),
    # distill cache
    "cache-unknown-dtype": Case(lambda c: cache(c, "--dtype", "float8"), "'--dtype': 'float8' is not one of"),
    "cache-zero-batch": Case(lambda c: cache(c, "--batch-size", 0), "cache.batch_size"),
    "cache-zero-chunk": Case(lambda c: cache(c, "--set", "cache.chunk_size=0"), "cache.chunk_size"),
    "cache-batch-scope-mask": Case(
        lambda c: cache(c, "--keep-hidden", 0.5, "--set", "hsk.mag_scope=batch"), "cannot be stored"
    ),
    "cache-K-too-large": Case(lambda c: cache(c, "--keep-layers", 5), "keep_layers"),
    "cache-existing-store-dir": Case(
        lambda c: [*cache(c), "-o", c.w / "existing"], "store directory exists and was not made by mudkd"
    ),
    "cache-overwrite-users-folder": Case(
        lambda c: [*cache(c), "-o", c.w / "existing", "--overwrite"], "was not made by mudkd"
    ),
    "cache-output-is-the-teacher": Case(
        lambda c: [*cache(c), "-o", c.teacher, "--overwrite"], "is an input of this run (--teacher-model"
    ),
    "cache-output-is-the-current-directory": Case(lambda c: [*cache(c), "-o", "."], "the current directory"),
    "hsk-output-is-its-store": Case(
        lambda c: hsk_store(c, c.store, "-o", c.store, "--overwrite"), "is an input of this run (--hsk-store"
    ),
    "pred-output-is-the-student": Case(
        lambda c: [*pred(c), "-o", c.student, "--overwrite"], "is an input of this run (--student-model"
    ),
    "cache-length-beyond-positions": Case(lambda c: cache(c, "--max-seq-length", 256), "256 is longer"),
    # pipeline
    "pipeline-missing-recipe": Case(lambda c: ["pipeline", c.w / "nope.toml"], "recipe file not found"),
    "pipeline-newer-recipe": Case(
        lambda c: ["pipeline", c.w / "newer.toml", "-o", c.out], "schema_version 99 is newer"
    ),
    "pipeline-no-teacher": Case(lambda c: ["pipeline", "-o", c.out], "needs teacher.pretrained"),
    "pipeline-missing-data-dir": Case(
        lambda c: argv(
            "pipeline -o",
            c.out,
            ["--set", f"teacher.pretrained={c.teacher}"],
            ["--set", f"task.data_dir={c.w / 'no-data'}"],
        ),
        "data directory not found",
    ),
    "pipeline-set-without-equals": Case(
        lambda c: ["pipeline", "-o", c.out, "--set", "output.dir"], "expected KEY=VALUE"
    ),
    # recipe validate
    "recipe-validate-missing": Case(lambda c: ["recipe", "validate", c.w / "nope.toml"], "recipe file not found"),
    "recipe-validate-unknown-key": Case(
        lambda c: ["recipe", "validate", c.w / "unknown-key.toml"], "hsk.keep_tokenz: unknown key"
    ),
    "recipe-validate-malformed": Case(lambda c: ["recipe", "validate", c.w / "malformed.toml"], "malformed TOML"),
    # export and report
    "export-not-a-model-dir": Case(
        lambda c: ["export", "--model-path", c.data, "-o", c.w / "out.onnx"],
        "is not a model directory",
        requires="onnxruntime",
    ),
    "export-existing-file": Case(
        lambda c: ["export", "--model-path", c.student, "-o", c.w / "existing.onnx"], "file exists"
    ),
    "export-bad-opset": Case(
        lambda c: ["export", "--model-path", c.student, "-o", c.w / "out.onnx", "--opset", 3], "--opset 3"
    ),
    "export-length-below-2": Case(
        lambda c: ["export", "--model-path", c.student, "-o", c.w / "out.onnx", "--max-seq-length", 1],
        "max_seq_length must be at least 2",
    ),
    "report-zero-length": Case(
        lambda c: ["report", "--model-path", c.student, "--seq-length", 0], "seq_length must be at least 1"
    ),
    "report-length-beyond-positions": Case(
        lambda c: ["report", "--model-path", c.student, "--seq-length", 1000], "128 positions"
    ),
    "report-missing-teacher": Case(
        lambda c: ["report", "--model-path", c.student, "--teacher-model", c.w / "nope"], "does not exist"
    ),
    # wizard (CliRunner's stdin is not a terminal)
    "wizard-without-terminal": Case(lambda c: ["wizard", "-o", c.w / "new.toml"], "needs a terminal"),
    "wizard-unknown-task": Case(
        lambda c: ["wizard", "--defaults", "--set", "task.name=nope", "-o", c.w / "new.toml"], "task.name"
    ),
    "wizard-bad-config-3d": Case(
        lambda c: ["wizard", "--defaults", "--set", "hsk.config_3d=zzz", "-o", c.w / "new.toml"], "config_3d"
    ),
    "wizard-existing-file": Case(lambda c: ["wizard", "--defaults", "-o", c.w / "existing.toml"], "already exists"),
    # sweep
    "sweep-shard-beyond-n": Case(lambda c: ["sweep", c.w / "sweep.toml", "--shard", "3/2"], "--shard 3/2"),
    "sweep-shard-zero": Case(lambda c: ["sweep", c.w / "sweep.toml", "--shard", "0/2"], "--shard 0/2"),
    "sweep-shard-malformed": Case(lambda c: ["sweep", c.w / "sweep.toml", "--shard", "x"], "expected i/n"),
    "sweep-grid-unknown-key": Case(lambda c: ["sweep", c.w / "sweep-unknown-key.toml"], "grid.0.keep_tokenz"),
    "sweep-missing-file": Case(lambda c: ["sweep", c.w / "nope.toml"], "recipe file not found"),
    "sweep-merge-not-a-sweep-dir": Case(lambda c: ["sweep-merge", c.data, "-o", c.out], "not a sweep output"),
    # issue 23 (part B): bare errors, labels, nan models and corrupted stores
    "predict-binary-stdin": Case(
        lambda c: ["predict", c.student], "stdin: not UTF-8 text (byte 0xff on line 2)", stdin=b"good\n\xff\xfe\x00"
    ),
    "evaluate-unterminated-quote": Case(
        lambda c: custom(c, c.student, c.w / "open-quote.csv"),
        "open-quote.csv: line 3: a quoted cell opened here is never closed",
    ),
    "evaluate-empty-label-cell": Case(
        lambda c: custom(c, c.student, c.w / "good.csv", "--train-file", c.w / "empty-label.csv"),
        "empty-label.csv: line 3: the label cell (column 'label') is empty",
    ),
    "finetune-empty-label-cell": Case(
        lambda c: argv(
            "finetune --model-name-or-path",
            c.teacher,
            "--task-name custom --text-columns text --train-file",
            c.w / "empty-label.csv",
            "--validation-file",
            c.w / "good.csv",
            "--max-steps 1 -o",
            c.out,
        ),
        "empty-label.csv: line 3: the label cell (column 'label') is empty",
    ),
    "evaluate-nan-model": Case(
        lambda c: ["evaluate", c.w / "nan-model", *c.sst2], "the model's weights hold nan values (bert."
    ),
    "predict-nan-model": Case(
        lambda c: ["predict", c.w / "nan-model"], "the model's weights hold nan values (bert.", stdin=b"good\n"
    ),
    "export-nan-model": Case(
        lambda c: ["export", "--model-path", c.w / "nan-model", "-o", c.w / "out.onnx"],
        "the model's weights hold nan values (bert.",
    ),
    "hsk-dry-run-overwritten-store": Case(
        lambda c: hsk_store(c, c.w / "store-flipped", "--dry-run"),
        "chunk file chunk-00000.values.bin is corrupted (checksum mismatch)",
    ),
    "hsk-dry-run-nan-store": Case(
        lambda c: hsk_store(c, c.w / "store-nan", "--dry-run"), "chunk file chunk-00000.values.bin holds nan or inf"
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(ctx, name):
    case = CASES[name]
    if case.requires and importlib.util.find_spec(case.requires) is None:
        pytest.skip(f"needs {case.requires}")
    before = snapshot(ctx.w)
    result = runner.invoke(app, [str(a) for a in case.args(ctx)], input=case.stdin)
    output = result.stdout + result.stderr

    assert result.exit_code == 2, output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert case.phrase in errors[0], result.stderr
    assert "Traceback" not in output
    assert not ctx.out.exists() and not ctx.out.with_name(ctx.out.name + ".partial").exists()
    assert snapshot(ctx.w) == before, "a refused command created, changed or removed files"


def test_the_matrix_covers_every_command():
    paths = (
        "w",
        "out",
        "data",
        "no_dev",
        "more",
        "teacher",
        "student",
        "scores",
        "store",
        "truncated",
        "bad_manifest",
        "no_weights",
        "bad_config",
    )
    dummy = SimpleNamespace(**dict.fromkeys(paths, Path("x")), sst2=[])
    commands = set()
    for case in CASES.values():
        args = case.args(dummy)
        group = args[0]
        commands.add(f"{group} {args[1]}" if group in {"distill", "recipe"} else group)
    assert commands >= {
        "finetune",
        "score",
        "prune",
        "distill hsk",
        "distill pred",
        "distill cache",
        "pipeline",
        "recipe validate",
        "export",
        "report",
        "wizard",
        "sweep",
        "sweep-merge",
    }
    assert len(CASES) >= 30
