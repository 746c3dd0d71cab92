"""Training from a teacher-free store larger than 1 GiB keeps the trainer's resident memory flat.

The store is written directly with :class:`mudkd.core.store.StoreWriter` (random values, no teacher run), with
exactly the fields, fingerprint and meta ``mudkd distill cache`` writes for a full-HSK budget of a 2-layer, 32-wide
TinyBERT-style student of a 3-layer, 256-wide teacher on 23,000 SST-2-format examples at 32 tokens: 3 x 32 x 256 fp16
values + 2 fp32 logits = 49,160 bytes per example, 1.05 GiB in all. (A wide teacher and short sequences give many
bytes per example for little student compute, so reading half the store takes seconds, not minutes.)

``distill hsk --hsk-store`` then runs in a subprocess for 96 shuffled steps of 128 (53 % of the examples, 576 MiB
of rows) while this process samples its VmRSS and VmHWM every 0.1 s. The baseline is the RSS when the run writes
``knowledge_budget.json``: student, data and store are loaded and verified, and no row has been read yet. Peak
growth after it (optimizer state and activations included) must stay under 300 MiB. Measured here: ~190 MiB; with
the store's page release switched off (``release_bytes=None``) the same run grows by ~1.2 GiB, because every
random row read maps a whole 2 MiB page-cache folio.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import make_tiny_bert, write_sst2_slice

pytestmark = pytest.mark.slow

NUM_EXAMPLES = 23_000
MAX_SEQ_LENGTH = 32
TEACHER_HIDDEN = 256
BATCH_SIZE = 128
MAX_STEPS = 96  # 96 x 128 = 12,288 rows read, 53 % of the store
MIB = 1 << 20
GIB = 1 << 30
GROWTH_LIMIT = 300 * MIB


@pytest.fixture
def work(tmp_path):
    if shutil.disk_usage(tmp_path).free < 5 * GIB:
        pytest.skip("needs 5 GiB of free disk for a > 1 GiB store")
    write_sst2_slice(tmp_path / "SST-2", NUM_EXAMPLES, 32)  # the fixture rows, cycled: only the count matters
    yield tmp_path
    shutil.rmtree(tmp_path / "store", ignore_errors=True)  # do not leave 1 GiB in pytest's kept temp dirs
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)


def write_store(work: Path) -> tuple[Path, int]:
    """The store ``mudkd distill cache`` would write (full HSK, fp16), filled with random values."""
    from mudkd.core.data import load_task
    from mudkd.core.models import load_tokenizer
    from mudkd.core.stages.cache import run_fingerprint
    from mudkd.core.store import StoreWriter, fingerprint_value
    from mudkd.knowledge import budget_from_recipe
    from mudkd.recipe import build_recipe

    recipe = build_recipe(
        flags={
            "task.name": "sst-2",
            "task.data_dir": str(work / "SST-2"),
            "task.max_seq_length": MAX_SEQ_LENGTH,
            "task.max_train_samples": NUM_EXAMPLES,
            "student.model": str(work / "student"),
        }
    )
    tokenizer = load_tokenizer(str(work / "student"))
    data = load_task(recipe.task, tokenizer)  # also fills $MUDKD_CACHE, so the subprocess does not tokenize
    assert len(data.train) == NUM_EXAMPLES
    budget = budget_from_recipe(
        recipe, num_student_layers=2, num_teacher_layers=3, teacher_hidden=TEACHER_HIDDEN, num_labels=2
    )
    assert budget.hsk_fraction == 1.0
    fields = budget.store_fields("float16", with_logits=True)
    fingerprint = run_fingerprint(recipe, tokenizer=tokenizer, data=data, teacher_path=None)
    fingerprint["budget"] = fingerprint_value(budget.to_dict())
    fingerprint["dtype"] = "float16"
    meta = {"budget": budget.to_dict(), "teacher": None, "task": recipe.task.name}

    rng = np.random.default_rng(0)
    chunk = recipe.cache.chunk_size
    values = rng.standard_normal((chunk, *fields["values"][1]), dtype=np.float32).astype(np.float16)
    logits = rng.standard_normal((chunk, 2), dtype=np.float32)
    directory = work / "store"
    writer = StoreWriter.create(
        directory, fields=fields, num_examples=NUM_EXAMPLES, fingerprint=fingerprint, meta=meta, chunk_size=chunk
    )
    for start in range(0, NUM_EXAMPLES, chunk):
        rows = min(chunk, NUM_EXAMPLES - start)
        shift = start // chunk  # each chunk differs from the last
        writer.append({"values": np.roll(values[:rows], shift, axis=0), "logits": logits[:rows]})
    writer.close()
    from mudkd.core.store import store_nbytes

    return directory, store_nbytes(directory)


def rss(pid: int, key: str = "VmRSS") -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads VmRSS from /proc")
def test_training_from_a_store_larger_than_1_gib_keeps_rss_flat(work, monkeypatch):
    monkeypatch.setenv("MUDKD_CACHE", str(work / "cache"))
    make_tiny_bert(work / "student", layers=2, hidden=32, heads=4, intermediate=64, seed=5)
    store, nbytes = write_store(work)
    assert nbytes > GIB, nbytes

    out = work / "hsk"
    data = f"--task-name sst-2 --max-train-samples {NUM_EXAMPLES} --max-seq-length {MAX_SEQ_LENGTH}"
    training = f"--train-batch-size {BATCH_SIZE} --max-steps {MAX_STEPS} --eval-step 100000 --learning-rate 1e-4"
    paths = ["--hsk-store", str(store), "--student-model", str(work / "student")]
    paths += ["--data-dir", str(work / "SST-2"), "-o", str(out)]
    training += " --set training.logging_steps=1 --json"
    command = [sys.executable, "-m", "mudkd", "distill", "hsk", *paths, *data.split(), *training.split()]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    # Written after the student, the data and the store are loaded and checked, just before the Trainer starts:
    # nothing has been read from the store's rows yet (a read maps a 2 MiB folio around each row).
    ready = out.with_name(out.name + ".partial") / "knowledge_budget.json"
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    baseline, peak, samples = None, 0, 0
    deadline = time.monotonic() + 300
    try:
        while process.poll() is None and time.monotonic() < deadline:
            current, high_water = rss(process.pid), rss(process.pid, "VmHWM")
            if current is not None and high_water is not None:
                if baseline is None and ready.is_file():
                    baseline = current
                elif baseline is not None:
                    peak, samples = max(peak, current, high_water), samples + 1
            time.sleep(0.1)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr[-3000:]
    result = json.loads(stdout)
    assert baseline is not None and samples >= 5, f"too few RSS samples ({samples}) to judge"

    growth = max(peak - baseline, 0)
    read = result["steps"] * BATCH_SIZE
    print(
        f"store {nbytes / GIB:.2f} GiB; read {read} of {NUM_EXAMPLES} examples ({read / NUM_EXAMPLES:.0%}, "
        f"{read * nbytes / NUM_EXAMPLES / MIB:.0f} MiB of rows); RSS before training {baseline / MIB:.0f} MiB, "
        f"peak {peak / MIB:.0f} MiB, growth {growth / MIB:.0f} MiB ({samples} samples)"
    )
    assert result["teacher_free"] is True and result["steps"] == MAX_STEPS
    assert read > 0.5 * NUM_EXAMPLES
    assert growth < GROWTH_LIMIT, f"RSS grew by {growth / MIB:.0f} MiB while training from the store"
