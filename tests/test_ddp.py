"""Two-process CPU DDP (``torchrun --nproc-per-node 2``, gloo) of finetune, of teacher-free HSK distillation and of
the store build (``distill cache``: every array equal to the one-process store, see its test).

Each DDP run must exit 0, leave exactly one output directory (rank 0 alone writes and commits it: no
``.partial`` left, ``metrics.jsonl`` written once) and train like the single-process run with the same global
batch (2 ranks x 4 = 1 rank x 8; 64 examples -> 8 steps = one epoch in both). Bit-exact equality is not possible:
``DistributedSampler`` shuffles with its own permutation and the dropout masks differ, so the runs see the same
examples in a different order. The tolerances are therefore on quantities that do not depend on that order:

* finetune: the dev loss of the same 32 dev examples at every evaluation (steps 2, 4, 6, 8) and of the kept model
  within 0.01 absolute (observed <= 0.0005 at losses ~0.70), the mean training loss over the 8 steps within 0.01
  (observed ~0.001) and the first step's loss (same weights, a different 8 of the same 64 examples) within 0.02;
* HSK from a store: per-step losses of different batches differ by ~0.05, so the trained students are compared on
  the HSK loss over all 64 stored examples at once (eval mode): both must be below the initial student's, and the
  two must agree within 25 % of the improvement (observed: initial 0.253, one process 0.171, DDP 0.172).

Regressions these bounds catch: every rank writing and committing the output (the second commit crashed), the
Trainer scaling loss and gradients by the world size (dev loss 1.39 instead of 0.70), or each rank training on
the whole batch (16 steps per epoch).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from mudkd.cli.app import app
from tests.helpers import argv, make_teacher_and_student

pytestmark = pytest.mark.slow

runner = CliRunner()
TIMEOUT = 240  # seconds for one torchrun (normally ~35 s here; a hang in a collective must not stall CI)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("ddp")


@pytest.fixture(scope="module", autouse=True)
def one_thread_and_cache(work):
    """One torch thread for the in-process reference runs (as each rank gets via OMP_NUM_THREADS=1: tiny ops on a
    busy 2-core machine run many times faster) and a tokenisation cache shared with the ranks."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MUDKD_CACHE", str(work / "cache"))
        yield
    torch.set_num_threads(threads)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Torchrun:
    """``python -m torch.distributed.run --nproc-per-node 2 -m mudkd ARGS`` on 127.0.0.1 (gloo on CPU, offline),
    started in the background so both DDP runs and the single-process references share the two cores."""

    def __init__(self, args: list, cwd: Path, cache: Path) -> None:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"}
        }
        env.update(
            OMP_NUM_THREADS="1",
            HF_HUB_OFFLINE="1",
            HF_DATASETS_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            TOKENIZERS_PARALLELISM="false",
            MUDKD_CACHE=str(cache),
            CUDA_VISIBLE_DEVICES="",
        )
        launcher = "-m torch.distributed.run --nproc-per-node 2 --nnodes 1 --master-addr 127.0.0.1 --master-port"
        command = argv([sys.executable], launcher, free_port(), "-m mudkd", args)
        self.stdout, self.stderr = cwd / "torchrun.out", cwd / "torchrun.err"
        with self.stdout.open("w") as out, self.stderr.open("w") as err:
            self.process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=err)

    def wait(self) -> tuple[int, str]:
        try:
            code = self.process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.stop()
            raise
        return code, self.stderr.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()  # torchrun's own process only (its id); its workers die with their parent
            self.process.wait()


def records(directory: Path) -> list[dict]:
    return [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines()]


def during_training(directory: Path) -> list[dict]:
    """The records logged while training (the final evaluation of the kept model comes after ``train_runtime``)."""
    found = []
    for record in records(directory):
        if "train_runtime" in record:
            return found
        found.append(record)
    raise AssertionError(f"{directory}/metrics.jsonl has no end-of-training record")


def train_losses(directory: Path) -> dict[int, float]:
    found = {}
    for record in during_training(directory):
        if "loss" in record and "grad_norm" in record:
            assert record["step"] not in found, "metrics.jsonl holds a step twice (written by every rank?)"
            found[record["step"]] = record["loss"]
    return found


def eval_losses(directory: Path) -> dict[int, float]:
    found = {}
    for record in during_training(directory):
        if "eval_loss" in record:
            assert record["step"] not in found, "metrics.jsonl holds an evaluation twice (written by every rank?)"
            found[record["step"]] = record["eval_loss"]
    return found


def only_output(root: Path, name: str) -> None:
    """Exactly the committed output directory exists: no staging leftovers, no rank-suffixed copies."""
    siblings = sorted(p.name for p in root.iterdir() if p.name.startswith(name))
    assert siblings == [name], siblings
    assert not (root / name / "checkpoints").exists()


def data_args(glue_dir: Path) -> list[str]:
    return argv("--task-name sst-2 --data-dir", glue_dir / "SST-2", "--max-train-samples 64 --max-seq-length 16")


def build_models(root: Path) -> Path:
    """A tiny teacher (3 layers, hidden 32) and its ROSITA-style pruned student (2 layers, 2 heads)."""
    return make_teacher_and_student(root)


BUDGET = "--config-3d 2l_8t_0.5h"
TRAINING = "--max-steps 8 --learning-rate 1e-3 --seed 3 --set training.logging_steps=1 --json"


def finetune_args(model: Path, glue_dir: Path) -> list[str]:
    return argv(
        "finetune --model-name-or-path", model, data_args(glue_dir), "--max-eval-samples 32 --eval-step 2", TRAINING
    )


def hsk_args(models: Path, store: Path, glue_dir: Path) -> list[str]:
    return argv(
        "distill hsk --hsk-store",
        store,
        "--student-model",
        models / "student",
        data_args(glue_dir),
        BUDGET,
        "--eval-step 4",
        TRAINING,
    )


def invoke(args: list):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def models(work) -> Path:
    return build_models(work / "models")


@pytest.fixture(scope="module")
def launched(work, models, tiny_bert_dir, glue_dir):
    """Build the store in-process, then start both 2-rank runs in the background."""
    store = invoke(
        argv(
            "distill cache --teacher-model",
            models / "teacher",
            "--student-model",
            models / "student",
            data_args(glue_dir),
            BUDGET,
            "--batch-size 32 --json -o",
            work / "store",
        )
    )
    assert store.exit_code == 0, store.output
    runs = {}
    for name in ("finetune", "hsk"):
        (work / name).mkdir()
    runs["finetune"] = Torchrun(
        [*finetune_args(tiny_bert_dir, glue_dir), "--train-batch-size", 4, "-o", work / "finetune" / "ddp"],
        cwd=work / "finetune",
        cache=work / "cache",
    )
    runs["hsk"] = Torchrun(
        [*hsk_args(models, work / "store", glue_dir), "--train-batch-size", 4, "-o", work / "hsk" / "ddp"],
        cwd=work / "hsk",
        cache=work / "cache",
    )
    yield {"models": models, "store": work / "store", **runs}
    for run in runs.values():
        run.stop()


def test_finetune_ddp_matches_single_process(work, launched, tiny_bert_dir, glue_dir):
    root = work / "finetune"
    single = invoke([*finetune_args(tiny_bert_dir, glue_dir), "--train-batch-size", 8, "-o", root / "single"])
    assert single.exit_code == 0, single.output
    code, stderr = launched["finetune"].wait()
    assert code == 0, stderr[-3000:]
    assert "Traceback" not in stderr

    only_output(root, "ddp")
    assert len(records(root / "ddp")) == len(records(root / "single"))  # one writer, not one per rank
    saved = json.loads((root / "ddp" / "metrics.json").read_text())
    assert 0.0 <= saved["accuracy"] <= 1.0
    ddp_train, single_train = train_losses(root / "ddp"), train_losses(root / "single")
    assert sorted(ddp_train) == sorted(single_train) == list(range(1, 9))
    # the same global batch: 64 examples / (2 ranks x 4) = 8 steps = exactly one epoch, as 64 / 8 on one process
    last = [r for r in records(root / "ddp") if r.get("step") == 8 and "grad_norm" in r][0]
    assert last["epoch"] == pytest.approx(1.0)
    assert ddp_train[1] == pytest.approx(single_train[1], abs=0.02)
    mean = sum(ddp_train.values()) / 8
    assert mean == pytest.approx(sum(single_train.values()) / 8, abs=0.01)
    ddp_eval, single_eval = eval_losses(root / "ddp"), eval_losses(root / "single")
    assert sorted(ddp_eval) == [2, 4, 6, 8]
    for step, loss in ddp_eval.items():
        assert loss == pytest.approx(single_eval[step], abs=0.01), (step, ddp_eval, single_eval)
    assert saved["loss"] == pytest.approx(json.loads((root / "single" / "metrics.json").read_text())["loss"], abs=0.01)


def full_hsk_loss(student: Path, store_dir: Path, glue_dir: Path) -> float:
    """The HSK loss of ``student`` over all 64 stored examples at once (eval mode: no dropout, no batch noise)."""
    from mudkd.core.batching import hsk_collator
    from mudkd.core.data import load_task
    from mudkd.core.models import load_classifier, load_tokenizer
    from mudkd.core.stages.distill import HskStudent, KnowledgeSource
    from mudkd.core.store import HskStore
    from mudkd.knowledge import KnowledgeBudget
    from mudkd.recipe import build_recipe

    recipe = build_recipe(
        flags={
            "task.name": "sst-2",
            "task.data_dir": str(glue_dir / "SST-2"),
            "task.max_train_samples": 64,
            "task.max_seq_length": 16,
        }
    )
    tokenizer = load_tokenizer(str(student))
    data = load_task(recipe.task, tokenizer)
    store = HskStore.open(store_dir)
    budget = KnowledgeBudget.from_dict(store.meta["budget"])
    model = HskStudent(load_classifier(str(student)), budget.teacher_hidden, budget.mask_mode).eval()
    inputs = hsk_collator(recipe, tokenizer)(list(data.train))  # every example, padded to the longest
    targets = KnowledgeSource(store=store, budget=budget, stored_budget=budget).hsk_targets(
        inputs, torch.arange(len(data.train))
    )
    with torch.no_grad():
        return float(model(inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"], targets)["loss"])


def test_store_hsk_ddp_matches_single_process(work, launched, glue_dir):
    root, models, store = work / "hsk", launched["models"], launched["store"]
    single = invoke([*hsk_args(models, store, glue_dir), "--train-batch-size", 8, "-o", root / "single"])
    assert single.exit_code == 0, single.output
    code, stderr = launched["hsk"].wait()
    assert code == 0, stderr[-3000:]
    assert "Traceback" not in stderr

    only_output(root, "ddp")
    assert len(records(root / "ddp")) == len(records(root / "single"))
    assert {"config.json", "model.safetensors", "knowledge_budget.json", "metrics.json"} <= {
        p.name for p in (root / "ddp").iterdir()
    }
    ddp_train, single_train = train_losses(root / "ddp"), train_losses(root / "single")
    assert sorted(ddp_train) == sorted(single_train) == list(range(1, 9))
    last = [r for r in records(root / "ddp") if r.get("step") == 8 and "grad_norm" in r][0]
    assert last["epoch"] == pytest.approx(1.0)
    initial = full_hsk_loss(models / "student", store, glue_dir)
    ddp, one = full_hsk_loss(root / "ddp", store, glue_dir), full_hsk_loss(root / "single", store, glue_dir)
    print(f"full-data HSK loss: initial {initial:.4f}, single process {one:.4f}, 2-rank DDP {ddp:.4f}")
    assert one < initial and ddp < initial  # both improve the same loss
    assert abs(ddp - one) <= 0.25 * (initial - one), (initial, one, ddp)


def cache_args(models: Path, glue_dir: Path) -> list[str]:
    """A store of 64 examples in chunks of 24 (windows of 3, 3 and 2 batches of 8: uneven shares per rank)."""
    return argv(
        "distill cache --teacher-model",
        models / "teacher",
        "--student-model",
        models / "student",
        data_args(glue_dir),
        BUDGET,
        "--batch-size 8 --set cache.chunk_size=24 --json",
    )


def test_store_cache_ddp_matches_single_process(work, models, glue_dir):
    """``distill cache`` on 2 ranks: one committed store, array for array equal to the one-process build.

    Exact equality holds (fp16 values included) because the ranks run the very same batches as one process (the
    window's length-sorted batches, dealt round-robin), so every example is padded and computed exactly alike.
    """
    import numpy as np

    from mudkd.core.store import HskStore

    root = work / "cache-ddp"
    root.mkdir()
    ddp = Torchrun([*cache_args(models, glue_dir), "-o", root / "ddp"], cwd=root, cache=work / "cache")
    single = invoke([*cache_args(models, glue_dir), "-o", root / "single"])
    assert single.exit_code == 0, single.output
    code, stderr = ddp.wait()
    assert code == 0, stderr[-3000:]
    assert "Traceback" not in stderr

    only_output(root, "ddp")
    assert not list(root.glob("*.partial")) and not list(root.glob(".ddp.old-*"))
    document = json.loads(ddp.stdout.read_text())  # exactly one JSON document: rank 0's
    assert Path(document["output_dir"]).name == "ddp" and document["num_examples"] == 64
    built, reference = HskStore.open(root / "ddp"), HskStore.open(root / "single")
    assert len(built) == len(reference) == 64
    got, want = built.get(range(64)), reference.get(range(64))
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name].dtype == want[name].dtype, name
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
