"""Killed runs (``kill -9``) leave nothing half-written and resume to the uninterrupted result.

Each stage runs as a real ``python -m mudkd`` subprocess that is sent SIGKILL at a known point (a complete Trainer
checkpoint, or the first committed store chunk). The final output path must not exist afterwards; rerunning the
same command with ``--resume`` must finish with the same numbers as an uninterrupted run with the same seed. The
three subprocesses start together (they spend most of their time importing) while the uninterrupted reference
runs go in-process. Everything runs on one torch thread, in the subprocesses and here, so the arithmetic of the
killed, resumed and reference runs is the same.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mudkd.cli.app import app
from tests.helpers import argv, make_teacher_and_student, write_sst2_slice

runner = CliRunner()
KILL_TIMEOUT = 180  # seconds until the kill point must be reached (normally ~15 s: imports dominate)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("resume")


@pytest.fixture(scope="module", autouse=True)
def one_thread_and_cache(work):
    """One torch thread (as the subprocesses get via OMP_NUM_THREADS=1) and a cache shared by the module."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MUDKD_CACHE", str(work / "cache"))
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def glue_dir(work):
    """An SST-2 folder with the fixture's rows cycled to 256 training rows: the store build needs 16 chunks of 16."""
    write_sst2_slice(work / "glue" / "SST-2", CACHE_EXAMPLES, 32)
    return work / "glue"


def build_models(root: Path) -> Path:
    """A tiny teacher (3 layers, hidden 32) and its ROSITA-style pruned student (2 layers, 2 heads)."""
    return make_teacher_and_student(root)


def sst2(glue_dir: Path, examples: int = 64) -> list[str]:
    return argv(
        "--task-name sst-2 --data-dir", glue_dir / "SST-2", f"--max-train-samples {examples} --max-seq-length 16"
    )


TRAINING = "--train-batch-size 8 --eval-step 2 --max-steps 8 --learning-rate 1e-3 --seed 3 --json"


def finetune_args(model: Path, glue_dir: Path, out: Path) -> list[str]:
    return argv("finetune --model-name-or-path", model, sst2(glue_dir), "--max-eval-samples 32", TRAINING, "-o", out)


# 24 examples in batches of 8: 3 updates an epoch, so the first checkpoint (step 4) lies inside the second epoch,
# whose length-grouped order a resumed run must draw as the uninterrupted one did (issue 23)
HSK_EXAMPLES = 24
HSK_TRAINING = "--train-batch-size 8 --eval-step 4 --max-steps 8 --learning-rate 1e-3 --seed 3 --json"


def hsk_args(models: Path, glue_dir: Path, out: Path, store: Path | None = None) -> list[str]:
    teacher, student = models / "teacher", models / "student"
    return argv(
        "distill hsk --teacher-model",
        teacher,
        "--student-model",
        student,
        sst2(glue_dir, HSK_EXAMPLES),
        "--config-3d 2l_8t_0.5h",
        HSK_TRAINING,
        *(["--hsk-store", store] if store else []),
        "-o",
        out,
    )


CACHE_EXAMPLES = 256  # 16 chunks of 16: the build is still running when the first chunk is committed


def cache_args(models: Path, glue_dir: Path, out: Path, examples: int = CACHE_EXAMPLES) -> list[str]:
    teacher, student = models / "teacher", models / "student"
    return argv(
        "distill cache --teacher-model",
        teacher,
        "--student-model",
        student,
        sst2(glue_dir, examples),
        "--config-3d 2l_8t_0.5h --batch-size 8 --set cache.chunk_size=16 --json -o",
        out,
    )


def invoke(args: list):
    return runner.invoke(app, [str(a) for a in args])


def run_json(args: list) -> dict:
    result = invoke(args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


KILLPOINT = Path(__file__).with_name("killpoint.py")


class KilledRun:
    """``python tests/killpoint.py POINT ARGS``: mudkd in a subprocess that SIGKILLs itself at ``POINT``.

    The kill comes from inside, right after the first complete checkpoint or committed chunk, so it cannot miss
    the window between that point and the end of a short run (a watcher polling the disk did, on a loaded machine).
    """

    def __init__(self, args: list, point: str, cwd: Path) -> None:
        env = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(KILLPOINT.parent.parent), os.environ.get("PYTHONPATH")])),
        }
        self.stderr = cwd / f"killed-{len(list(cwd.glob('killed-*')))}.err"
        with self.stderr.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, str(KILLPOINT), point, *map(str, args)],
                cwd=cwd,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )

    def wait(self) -> None:
        try:
            self.process.wait(timeout=KILL_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        assert self.process.returncode == -signal.SIGKILL, (
            f"the run was not killed mid-way (exit {self.process.returncode}):\n{self.stderr.read_text()[-2000:]}"
        )


@pytest.fixture(scope="module")
def killed(work, tiny_bert_dir, glue_dir):
    """Start the three runs to be killed at once; each test waits for its own."""
    models = build_models(work / "models")
    hsk_store = work / "hsk-store"  # the store the store-served HSK run reads, built here before it starts
    run_json(cache_args(models, glue_dir, hsk_store, HSK_EXAMPLES))
    runs = {
        "finetune": KilledRun(finetune_args(tiny_bert_dir, glue_dir, work / "ft"), "checkpoint", work),
        "hsk": KilledRun(hsk_args(models, glue_dir, work / "hsk"), "checkpoint", work),
        "hsk_from_store": KilledRun(hsk_args(models, glue_dir, work / "hsk-fs", hsk_store), "checkpoint", work),
        "cache": KilledRun(cache_args(models, glue_dir, work / "store"), "chunk", work),
    }
    yield {"models": models, "hsk_store": hsk_store, **runs}
    for run in runs.values():
        if run.process.poll() is None:
            run.process.kill()


@pytest.fixture(scope="module")
def killed_finetune(work, killed):
    """The ``.partial`` directory the killed finetune left, kept pristine; ``restore()`` puts a copy in place."""
    killed["finetune"].wait()
    final, partial = work / "ft", work / "ft.partial"
    assert not final.exists(), "a killed run left a final output directory"
    assert partial.is_dir()
    pristine = work / "ft.pristine"
    shutil.copytree(partial, pristine)

    def restore() -> tuple[Path, Path]:
        shutil.rmtree(final, ignore_errors=True)
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(pristine, partial)  # same absolute path: trainer_state.json names its checkpoints by it
        return final, partial

    return restore


@pytest.fixture(scope="module")
def finetune_reference(work, tiny_bert_dir, glue_dir):
    out = work / "ft-reference"
    return run_json(finetune_args(tiny_bert_dir, glue_dir, out)), out


def weights(directory: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(directory / "model.safetensors")


def assert_same_weights(first: Path, second: Path, atol: float = 1e-6) -> None:
    a, b = weights(first), weights(second)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=atol, rtol=0, msg=name)


def resumed_from(stderr: str) -> int:
    lines = [line for line in stderr.splitlines() if line.startswith("resuming from")]
    assert len(lines) == 1, stderr
    return int(lines[0].rsplit("-", 1)[1])


def training_steps(directory: Path) -> list[int]:
    """The steps of the training-loss records in ``metrics.jsonl``."""
    lines = (directory / "metrics.jsonl").read_text().splitlines()
    return [record["step"] for record in map(json.loads, lines) if "loss" in record and "grad_norm" in record]


def test_finetune_resumes_after_kill_9(killed_finetune, finetune_reference, tiny_bert_dir, glue_dir):
    reference, reference_dir = finetune_reference
    final, _ = killed_finetune()
    result = invoke([*finetune_args(tiny_bert_dir, glue_dir, final), "--resume"])
    assert result.exit_code == 0, result.output
    assert resumed_from(result.stderr) in (2, 4, 6)
    resumed = json.loads(result.stdout)
    assert resumed["steps"] == 8
    assert resumed["metrics"]["accuracy"] == pytest.approx(reference["metrics"]["accuracy"], abs=0.005)
    assert resumed["metrics"]["loss"] == pytest.approx(reference["metrics"]["loss"], abs=1e-5)
    assert_same_weights(final, reference_dir)
    assert not final.with_name("ft.partial").exists() and not (final / "checkpoints").exists()


@pytest.mark.parametrize("cut", ["before_trainer_state", "inside_trainer_state"])
def test_resume_skips_a_half_written_checkpoint(killed_finetune, finetune_reference, tiny_bert_dir, glue_dir, cut):
    """A kill inside the Trainer's checkpoint save (not atomic: weights, optimizer, RNG, then trainer_state.json)
    leaves a newer, torn checkpoint; resuming must use the newest *complete* one (before the fix it crashed with
    FileNotFoundError or JSONDecodeError)."""
    reference, reference_dir = finetune_reference
    final, partial = killed_finetune()
    complete = sorted((partial / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    complete = [p for p in complete if (p / "trainer_state.json").is_file()][-1]
    step = int(complete.name.split("-")[1])
    torn = partial / "checkpoints" / f"checkpoint-{step + 2}"
    shutil.copytree(complete, torn)
    state = torn / "trainer_state.json"
    if cut == "before_trainer_state":
        state.unlink()
    else:
        state.write_text(state.read_text()[:40])
    result = invoke([*finetune_args(tiny_bert_dir, glue_dir, final), "--resume"])
    assert result.exit_code == 0, result.output
    assert resumed_from(result.stderr) == step
    resumed = json.loads(result.stdout)
    assert resumed["steps"] == 8
    assert resumed["metrics"]["loss"] == pytest.approx(reference["metrics"]["loss"], abs=1e-5)
    assert_same_weights(final, reference_dir)


def test_resume_into_a_changed_recipe_is_refused(killed_finetune, tiny_bert_dir, glue_dir):
    final, partial = killed_finetune()
    before = sorted(str(p.relative_to(partial)) for p in partial.rglob("*"))
    result = invoke([*finetune_args(tiny_bert_dir, glue_dir, final), "--resume", "--learning-rate", "5e-4"])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "finetune.learning_rate" in errors[0], result.stderr
    assert "Traceback" not in result.output
    assert not final.exists()
    assert sorted(str(p.relative_to(partial)) for p in partial.rglob("*")) == before  # the checkpoints are kept


def test_without_resume_a_stale_partial_is_discarded(killed_finetune, finetune_reference, tiny_bert_dir, glue_dir):
    reference, reference_dir = finetune_reference
    final, partial = killed_finetune()
    (partial / "stale.txt").write_text("left by the killed run")
    result = invoke(finetune_args(tiny_bert_dir, glue_dir, final))
    assert result.exit_code == 0, result.output
    assert "resuming from" not in result.stderr
    fresh = json.loads(result.stdout)
    assert fresh["steps"] == 8 and not partial.exists()
    assert not (final / "stale.txt").exists()
    assert training_steps(final) == training_steps(reference_dir)  # the killed run's records are gone
    assert fresh["metrics"] == pytest.approx(reference["metrics"], abs=1e-6)


def assert_identical_weights(first: Path, second: Path) -> None:
    """Bit for bit: every tensor of ``first/model.safetensors`` equals ``second``'s (``torch.equal``)."""
    a, b = weights(first), weights(second)
    assert a.keys() == b.keys()
    differ = {name: float((a[name] - b[name]).abs().max()) for name in a if not torch.equal(a[name], b[name])}
    assert not differ, f"resumed weights differ from the uninterrupted run's (max abs difference): {differ}"


@pytest.mark.parametrize("served", ["online", "from_store"])
@pytest.mark.parametrize("cut", ["complete", "torn"])
def test_hsk_resumes_after_kill_9_bit_identical(work, killed, glue_dir, served, cut):
    """HSK training killed at a checkpoint inside its second epoch resumes to exactly the uninterrupted weights,
    with the teacher online and from a store, also past a newer torn checkpoint (before the fix the resumed run
    drew another length-grouped order for that epoch and its weights differed by up to 1e-2)."""
    models, store = killed["models"], killed["hsk_store"] if served == "from_store" else None
    name = "hsk" if served == "online" else "hsk-fs"
    reference_dir = work / f"{name}-reference"
    reference_file = work / f"{name}-reference.json"
    if not reference_file.exists():
        reference_file.write_text(json.dumps(run_json(hsk_args(models, glue_dir, reference_dir, store))))
    reference = json.loads(reference_file.read_text())
    killed["hsk" if served == "online" else "hsk_from_store"].wait()
    final, partial = work / name, work / f"{name}.partial"
    pristine = work / f"{name}.pristine"
    if not pristine.exists():
        assert not final.exists(), "a killed run left a final output directory"
        shutil.copytree(partial, pristine)
    shutil.rmtree(final, ignore_errors=True)
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(pristine, partial)
    complete = partial / "checkpoints" / "checkpoint-4"
    assert (complete / "trainer_state.json").is_file()
    if cut == "torn":  # a kill inside the next save: everything but trainer_state.json
        shutil.copytree(complete, partial / "checkpoints" / "checkpoint-6")
        (partial / "checkpoints" / "checkpoint-6" / "trainer_state.json").unlink()
    result = invoke([*hsk_args(models, glue_dir, final, store), "--resume"])
    assert result.exit_code == 0, result.output
    assert resumed_from(result.stderr) == 4
    resumed = json.loads(result.stdout)
    assert resumed["steps"] == 8 and resumed["teacher_free"] is (store is not None)
    # the losses this process computed (those after the checkpoint) are exactly the uninterrupted run's
    assert resumed["step_losses"] == reference["step_losses"][4:]
    assert_identical_weights(final, reference_dir)
    assert (final / "knowledge_budget.json").is_file() and not partial.exists()


def test_store_build_resumes_after_kill_9(work, killed, glue_dir):
    from mudkd.core.store import HskStore
    from mudkd.errors import StoreError

    models = killed["models"]
    reference_dir = work / "store-reference"
    run_json(cache_args(models, glue_dir, reference_dir))
    killed["cache"].wait()
    store_dir, partial = work / "store", work / "store.partial"
    assert not store_dir.exists(), "a killed build left a final store"  # it is built in <store>.partial
    manifest = json.loads((partial / "manifest.json").read_text())
    assert not manifest["complete"] and 0 < manifest["committed"] < CACHE_EXAMPLES
    with pytest.raises(StoreError, match="incomplete"):
        HskStore.open(partial)  # nothing half-written is usable
    result = invoke([*cache_args(models, glue_dir, store_dir), "--resume"])
    assert result.exit_code == 0, result.output
    assert f"resuming the store at example {manifest['committed']}" in result.stderr

    resumed, reference = HskStore.open(store_dir), HskStore.open(reference_dir)
    assert len(resumed) == len(reference) == CACHE_EXAMPLES
    assert resumed.fields == reference.fields and resumed.fingerprint == reference.fingerprint
    assert resumed.meta == reference.meta
    got, expected = resumed.get(range(CACHE_EXAMPLES)), reference.get(range(CACHE_EXAMPLES))
    assert got.keys() == expected.keys()
    for name in got:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    assert not list(store_dir.glob("*.tmp")) and not partial.exists()
