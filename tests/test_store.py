"""The teacher-free knowledge store: round trips, crash-safe resume, refusals, bounded RSS, fingerprints."""

from __future__ import annotations

import gc
import json
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mudkd.core.store import (
    MANIFEST_NAME,
    Field,
    HskStore,
    StoreWriter,
    as_torch,
    fingerprint_files,
    fingerprint_value,
    store_nbytes,
)
from mudkd.errors import StoreError
from tests.helpers import REPO_ROOT

FIELDS = {
    "logits": ("float32", (3,)),
    "token_index": ("int16", (1, 4)),
    "values": ("float16", (2, 5)),
    "positions": ("int16", (2, 5)),
    "label": ("int64", ()),
}
FINGERPRINT = {"teacher_weights": "a" * 64, "tokenizer": "b" * 64, "task": "sst-2", "max_seq_length": "64"}
NUM_EXAMPLES = 23
CHUNK_SIZE = 5  # 4 full chunks and a short last one of 3


def make_data(num_examples: int = NUM_EXAMPLES, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "logits": rng.standard_normal((num_examples, 3)).astype(np.float32),
        "token_index": rng.integers(0, 64, (num_examples, 1, 4)).astype(np.int16),
        "values": rng.standard_normal((num_examples, 2, 5)).astype(np.float16),
        "positions": rng.integers(-32768, 32767, (num_examples, 2, 5)).astype(np.int16),
        "label": rng.integers(0, 2**40, num_examples),
    }


def rows(data: dict[str, np.ndarray], start: int, stop: int) -> dict[str, np.ndarray]:
    return {name: array[start:stop] for name, array in data.items()}


def build(directory: Path, data: dict[str, np.ndarray], *, batches=(7, 1, 0, 15), **kwargs) -> Path:
    kwargs = {
        "fields": FIELDS,
        "num_examples": NUM_EXAMPLES,
        "fingerprint": FINGERPRINT,
        "chunk_size": CHUNK_SIZE,
        **kwargs,
    }
    with StoreWriter.create(directory, meta={"budget": {"layers": 1, "tokens": 4}}, **kwargs) as writer:
        start = 0
        for size in batches:
            writer.append(rows(data, start, start + size))
            start += size
    return directory


def assert_one_line_error(error: pytest.ExceptionInfo[StoreError], *fragments: str) -> None:
    message = error.value.message
    assert "\n" not in message and error.value.hint and "\n" not in error.value.hint
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def chunk_files(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.glob("chunk-*.bin"))}


@pytest.fixture
def data() -> dict[str, np.ndarray]:
    return make_data()


@pytest.fixture
def store_dir(tmp_path, data) -> Path:
    return build(tmp_path / "store", data)


# --------------------------------------------------------------------------------------------------------------------
# Round trip


def test_round_trip_is_exact(store_dir, data):
    store = HskStore.open(store_dir, expect_fingerprint=FINGERPRINT)
    assert len(store) == NUM_EXAMPLES
    assert store.fields["values"] == Field(np.dtype("float16"), (2, 5))
    assert store.meta == {"budget": {"layers": 1, "tokens": 4}}
    assert store.fingerprint == FINGERPRINT
    assert store.bytes_per_example == 12 + 8 + 20 + 20 + 8
    assert store_nbytes(store_dir) == store.nbytes == NUM_EXAMPLES * store.bytes_per_example
    assert len(list(store_dir.glob("chunk-*.bin"))) == 5 * len(FIELDS)

    manifest = json.loads((store_dir / MANIFEST_NAME).read_text())
    assert manifest["format"] == "mudkd-hsk-store" and manifest["version"] == 1 and manifest["complete"]
    assert manifest["committed"] == NUM_EXAMPLES and manifest["bytes_per_example"] == store.bytes_per_example
    assert [chunk["count"] for chunk in manifest["chunks"]] == [5, 5, 5, 5, 3]
    assert manifest["fields"]["positions"] == {"dtype": "int16", "shape": [2, 5]}

    rng = np.random.default_rng(1)
    # Few rows per chunk take the scalar-copy path, many (the repeats) the fancy-index path.
    many = np.repeat(np.arange(NUM_EXAMPLES), 3)[::-1]
    for indices in (rng.integers(0, NUM_EXAMPLES, 40), [22, 0, 22, 3, 3, 21], many, [-1]):
        batch = store.get(indices)
        expected = np.asarray(indices) % NUM_EXAMPLES
        for name, array in data.items():
            assert batch[name].dtype == array.dtype and batch[name].shape == (len(expected), *array.shape[1:])
            np.testing.assert_array_equal(batch[name], array[expected])
    one = store[7]
    for name, array in data.items():
        np.testing.assert_array_equal(one[name], array[7])
    np.testing.assert_array_equal(store[20:23]["values"], data["values"][20:23])
    assert store.get([])["values"].shape == (0, 2, 5)

    tensors = as_torch(store.get([4, 2]))
    assert str(tensors["values"].dtype) == "torch.float16" and tuple(tensors["positions"].shape) == (2, 2, 5)

    with pytest.raises(IndexError):
        store.get([NUM_EXAMPLES])
    with pytest.raises(TypeError):
        store.get([[1, 2]])


def test_small_chunk_budgets_still_read_correctly(store_dir, data):
    # Releasing pages after every get and keeping one map open exercise the RSS-bounding paths.
    store = HskStore.open(store_dir, verify=False, release_bytes=0, max_open_chunks=1)
    indices = np.random.default_rng(2).integers(0, NUM_EXAMPLES, 100)
    for name, array in store.get(indices).items():
        np.testing.assert_array_equal(array, data[name][indices])
    store.close()
    np.testing.assert_array_equal(store[3]["label"], data["label"][3])


def test_store_survives_pickling_and_forked_dataloader_workers(store_dir, data):
    import torch

    store = HskStore.open(store_dir)
    store.get([0, 12, 22])  # the parent has maps open before the workers fork

    clone = pickle.loads(pickle.dumps(store))
    np.testing.assert_array_equal(clone.get([5])["logits"], data["logits"][[5]])

    loader = torch.utils.data.DataLoader(
        _IndexDataset(store), batch_size=4, num_workers=2, collate_fn=lambda items: store.get(items)
    )
    labels = np.concatenate([batch["label"] for batch in loader])
    np.testing.assert_array_equal(labels, data["label"])


class _IndexDataset:
    def __init__(self, store: HskStore) -> None:
        self.store = store

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, index: int) -> int:
        return index


def test_append_casts_same_kind_values(tmp_path, data):
    widened = dict(data)
    widened["values"] = data["values"].astype(np.float64)
    widened["positions"] = data["positions"].astype(np.int64)
    build(tmp_path / "store", widened)
    store = HskStore.open(tmp_path / "store")
    np.testing.assert_array_equal(store.get(np.arange(NUM_EXAMPLES))["positions"], data["positions"])


# --------------------------------------------------------------------------------------------------------------------
# Resume after a kill


def test_resume_after_dropped_writer_equals_uninterrupted_build(tmp_path, data):
    reference = build(tmp_path / "reference", data)
    directory = tmp_path / "store"
    writer = StoreWriter.create(
        directory,
        fields=FIELDS,
        num_examples=NUM_EXAMPLES,
        fingerprint=FINGERPRINT,
        chunk_size=CHUNK_SIZE,
        meta={"budget": {"layers": 1, "tokens": 4}},
    )
    writer.append(rows(data, 0, 12))  # 2.4 chunks: 2 committed, 2 examples buffered
    assert writer.committed == 10 and writer.position == 12
    del writer  # "killed": never closed
    gc.collect()
    # What a kill mid-chunk can leave: a temp file, and a renamed chunk file the manifest never listed.
    (directory / "chunk-00002.values.bin.tmp").write_bytes(b"partial")
    (directory / "chunk-00002.logits.bin").write_bytes(b"\0" * 60)

    with pytest.raises(StoreError) as error:
        HskStore.open(directory)
    assert_one_line_error(error, "incomplete", "10 of 23", "interrupted")
    assert "resume" in error.value.hint

    writer = StoreWriter.resume(directory, fingerprint=FINGERPRINT, fields=FIELDS)
    assert writer.committed == 10
    assert not list(directory.glob("*.tmp")) and not (directory / "chunk-00002.logits.bin").exists()
    writer.append(rows(data, writer.committed, NUM_EXAMPLES))
    writer.close()

    assert chunk_files(directory) == chunk_files(reference)
    assert json.loads((directory / MANIFEST_NAME).read_text()) == json.loads((reference / MANIFEST_NAME).read_text())
    store = HskStore.open(directory, expect_fingerprint=FINGERPRINT)
    for name, array in store.get(np.arange(NUM_EXAMPLES)).items():
        np.testing.assert_array_equal(array, data[name])


def test_resume_after_sigkill(tmp_path, data):
    directory = tmp_path / "store"
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(REPO_ROOT)!r})
        from tests.test_store import FIELDS, FINGERPRINT, NUM_EXAMPLES, CHUNK_SIZE, make_data, rows
        from mudkd.core.store import StoreWriter
        writer = StoreWriter.create({str(directory)!r}, fields=FIELDS, num_examples=NUM_EXAMPLES,
                                    fingerprint=FINGERPRINT, chunk_size=CHUNK_SIZE)
        writer.append(rows(make_data(), 0, 13))
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, timeout=60)
    assert result.returncode == -9, result.stderr.decode()

    writer = StoreWriter.resume(directory, fingerprint=FINGERPRINT)  # the dead process's lock is gone
    assert writer.committed == 10
    writer.append(rows(data, 10, NUM_EXAMPLES))
    writer.close()
    store = HskStore.open(directory)
    for name, array in store.get(np.arange(NUM_EXAMPLES)).items():
        np.testing.assert_array_equal(array, data[name])


def test_resume_refusals(tmp_path, data):
    directory = tmp_path / "store"
    writer = StoreWriter.create(
        directory, fields=FIELDS, num_examples=NUM_EXAMPLES, fingerprint=FINGERPRINT, chunk_size=CHUNK_SIZE
    )
    writer.append(rows(data, 0, 6))
    with pytest.raises(StoreError) as error:
        StoreWriter.resume(directory, fingerprint=FINGERPRINT)
    assert_one_line_error(error, "another writer")
    del writer
    gc.collect()

    with pytest.raises(StoreError) as error:
        StoreWriter.resume(directory, fingerprint={**FINGERPRINT, "max_seq_length": "128"})
    assert_one_line_error(error, "max_seq_length (store 64, run 128)")
    with pytest.raises(StoreError) as error:
        StoreWriter.resume(directory, fingerprint=FINGERPRINT, fields={**FIELDS, "values": ("float16", (2, 6))})
    assert_one_line_error(error, "different fields")
    with pytest.raises(StoreError) as error:
        StoreWriter.resume(tmp_path / "nowhere", fingerprint=FINGERPRINT)
    assert_one_line_error(error, "not found")

    finished = build(tmp_path / "finished", data)
    writer = StoreWriter.resume(finished, fingerprint=FINGERPRINT)
    assert writer.committed == NUM_EXAMPLES and writer.complete
    writer.close()  # nothing to do


# --------------------------------------------------------------------------------------------------------------------
# Refusals


def _write_manifest(directory: Path, edit) -> None:
    path = directory / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("damage", "fragments"),
    [
        (lambda d: shutil.rmtree(d), ["not found"]),
        (lambda d: (d / MANIFEST_NAME).unlink(), ["no manifest.json"]),
        (lambda d: (d / MANIFEST_NAME).write_text('{"format": "mudkd-hsk-store",'), ["not valid JSON"]),
        (lambda d: _write_manifest(d, lambda m: m.update(format="something-else")), ["format 'something-else'"]),
        (lambda d: _write_manifest(d, lambda m: m.update(version=7)), ["version 7"]),
        (lambda d: _write_manifest(d, lambda m: m.update(committed=-3)), ["malformed", "committed"]),
        (lambda d: _write_manifest(d, lambda m: m["chunks"].pop()), ["malformed"]),
        (lambda d: (d / "chunk-00001.values.bin").unlink(), ["chunk-00001.values.bin is missing"]),
        (
            lambda d: (d / "chunk-00004.positions.bin").write_bytes(
                (d / "chunk-00004.positions.bin").read_bytes()[:-7]
            ),
            ["chunk-00004.positions.bin is truncated", "53 bytes, expected 60"],
        ),
        (lambda d: _flip_byte(d / "chunk-00002.logits.bin", 17), ["chunk-00002.logits.bin is corrupted", "checksum"]),
    ],
    ids=[
        "missing-dir",
        "no-manifest",
        "bad-json",
        "wrong-format",
        "wrong-version",
        "bad-committed",
        "bad-chunks",
        "missing-chunk",
        "truncated",
        "flipped-byte",
    ],
)
def test_open_refuses_damaged_stores(store_dir, damage, fragments):
    damage(store_dir)
    with pytest.raises(StoreError) as error:
        HskStore.open(store_dir, expect_fingerprint=FINGERPRINT)
    assert_one_line_error(error, str(store_dir), *fragments)


def _flip_byte(path: Path, offset: int) -> None:
    content = bytearray(path.read_bytes())
    content[offset] ^= 0x01
    path.write_bytes(bytes(content))


def test_flipped_byte_passes_without_verify(store_dir):
    _flip_byte(store_dir / "chunk-00002.logits.bin", 17)
    assert len(HskStore.open(store_dir, verify=False)) == NUM_EXAMPLES


def test_open_refuses_a_different_run(store_dir):
    run = {**FINGERPRINT, "teacher_weights": "c" * 64, "max_seq_length": "128"}
    with pytest.raises(StoreError) as error:
        HskStore.open(store_dir, expect_fingerprint=run)
    assert_one_line_error(error, "does not match this run", "teacher_weights", "max_seq_length (store 64, run 128)")
    assert "task" not in error.value.message and "tokenizer" not in error.value.message


@pytest.mark.parametrize(
    ("edit", "fragments"),
    [
        (lambda b: b.update(logit=b.pop("logits")), ["unknown fields ['logit']", "missing fields ['logits']"]),
        (lambda b: b.update(values=np.zeros((3, 2, 6), np.float16)), ["'values'", "(3, 2, 6)", "expected (n, 2, 5)"]),
        (lambda b: b.update(values=np.zeros((3, 10), np.float16)), ["'values'", "expected (n, 2, 5)"]),
        (lambda b: b.update(label=np.zeros(2, np.int64)), ["different batch sizes"]),
        (lambda b: b.update(positions=np.zeros((3, 2, 5), np.float32)), ["'positions'", "float32", "int16"]),
        (lambda b: b.update(positions=np.full((3, 2, 5), 40000)), ["'positions'", "outside the int16 range"]),
        (lambda b: b.update(values=np.full((3, 2, 5), 1e6)), ["'values'", "outside the float16 range"]),
    ],
    ids=["name", "shape", "rank", "batch-size", "dtype", "int-overflow", "float-overflow"],
)
def test_append_refuses_mismatched_batches(tmp_path, data, edit, fragments):
    writer = StoreWriter.create(
        tmp_path / "store", fields=FIELDS, num_examples=NUM_EXAMPLES, fingerprint=FINGERPRINT, chunk_size=CHUNK_SIZE
    )
    batch = rows(data, 0, 3)
    edit(batch)
    with pytest.raises(StoreError) as error:
        writer.append(batch)
    assert_one_line_error(error, *fragments)
    assert writer.position == 0  # a refused batch appends nothing


def test_writer_refuses_too_many_or_too_few_examples(tmp_path, data):
    writer = StoreWriter.create(
        tmp_path / "store", fields=FIELDS, num_examples=NUM_EXAMPLES, fingerprint=FINGERPRINT, chunk_size=CHUNK_SIZE
    )
    writer.append(rows(data, 0, 20))
    with pytest.raises(StoreError) as error:
        writer.append(make_data(4))
    assert_one_line_error(error, "exceeds num_examples=23")
    with pytest.raises(StoreError) as error:
        writer.close()
    assert_one_line_error(error, "only 20 of 23")
    writer.append(rows(data, 20, NUM_EXAMPLES))
    writer.close()
    assert len(HskStore.open(tmp_path / "store")) == NUM_EXAMPLES


def test_create_refusals(tmp_path, store_dir):
    with pytest.raises(StoreError) as error:
        StoreWriter.create(store_dir, fields=FIELDS, num_examples=1, fingerprint=FINGERPRINT)
    assert_one_line_error(error, "already exists")
    for fields in ({"values": ("object", (2,))}, {"values": ("float16", (0,))}, {"bad/name": ("int8", (1,))}, {}):
        with pytest.raises(StoreError):
            StoreWriter.create(tmp_path / "new", fields=fields, num_examples=1, fingerprint=FINGERPRINT)
    with pytest.raises(StoreError) as error:
        StoreWriter.create(tmp_path / "new", fields=FIELDS, num_examples=1, fingerprint={"max_seq_length": 64})
    assert_one_line_error(error, "max_seq_length")


# --------------------------------------------------------------------------------------------------------------------
# Fingerprints


def test_fingerprint_files_tracks_content_only(tmp_path):
    data_dir = tmp_path / "glue" / "SST-2"
    (data_dir / "sub").mkdir(parents=True)
    (data_dir / "train.tsv").write_text("sentence\tlabel\ngood\t1\n")
    (data_dir / "sub" / "dev.tsv").write_text("sentence\tlabel\nbad\t0\n")
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"\x01" * 3000)

    first = fingerprint_files([data_dir, weights])
    assert first == fingerprint_files([data_dir, weights]) and len(first) == 64
    moved = tmp_path / "elsewhere"
    shutil.copytree(data_dir, moved / "SST-2")
    assert fingerprint_files([moved / "SST-2", weights]) == first

    (data_dir / "sub" / "dev.tsv").write_text("sentence\tlabel\nbad\t1\n")
    assert fingerprint_files([data_dir, weights]) != first
    (data_dir / "sub" / "dev.tsv").write_text("sentence\tlabel\nbad\t0\n")
    assert fingerprint_files([data_dir, weights]) == first
    (data_dir / "sub" / "dev.tsv").rename(data_dir / "sub" / "test.tsv")
    assert fingerprint_files([data_dir, weights]) != first

    with pytest.raises(StoreError):
        fingerprint_files([tmp_path / "missing"])

    assert fingerprint_value({"a": 1, "b": [1, 2]}) == fingerprint_value({"b": [1, 2], "a": 1})
    assert fingerprint_value({"a": 1}) != fingerprint_value({"a": 2})


# --------------------------------------------------------------------------------------------------------------------
# Bounded RSS on a store larger than 1 GiB

_RSS_PROBE = """
import json, sys
import numpy as np
from mudkd.core.store import HskStore

def status(key):
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024

def reset_peak():
    try:  # "5" resets VmHWM to the current RSS (Linux >= 4.0)
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False

directory, release = sys.argv[1], sys.argv[2]
order = np.random.default_rng(0).permutation(int(sys.argv[3]))
before = status("VmRSS")
reset_peak()
store = HskStore.open(directory, verify=True, release_bytes=None if release == "none" else int(release))
open_growth = max(status("VmHWM"), status("VmRSS")) - before
base = status("VmRSS")
reset_ok = reset_peak()
peak = base
for start in range(0, len(order), 64):
    indices = order[start : start + 64]
    batch = store.get(indices)
    assert np.array_equal(batch["index"], indices)
    peak = max(peak, status("VmRSS"))
if reset_ok:
    peak = max(peak, status("VmHWM"))
print(json.dumps({"open_growth": open_growth, "read_growth": peak - base, "examples": len(store)}))
"""


@pytest.mark.slow
def test_random_reads_over_a_large_store_keep_rss_bounded(tmp_path):
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc to measure the RSS")
    free = shutil.disk_usage(tmp_path).free
    if free < 5 << 30:
        pytest.skip(f"needs 5 GiB free disk for a 1.1 GiB store, {free / 2**30:.1f} GiB free")
    fields = {"values": ("float16", (6, 1024)), "index": ("int64", ())}
    bytes_per_example = 6 * 1024 * 2 + 8
    num_examples = int(1.1 * 2**30) // bytes_per_example + 1
    directory = tmp_path / "big-store"
    try:
        block = np.random.default_rng(0).standard_normal((8192, 6, 1024)).astype(np.float16)
        with StoreWriter.create(directory, fields=fields, num_examples=num_examples, fingerprint={}) as writer:
            for start in range(0, num_examples, len(block)):
                stop = min(start + len(block), num_examples)
                writer.append({"values": block[: stop - start], "index": np.arange(start, stop)})
        del block
        assert store_nbytes(directory) > 2**30

        def probe(release: str) -> dict:
            result = subprocess.run(
                [sys.executable, "-c", _RSS_PROBE, str(directory), release, str(num_examples)],
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert result.returncode == 0, result.stderr
            return json.loads(result.stdout)

        bounded = probe("67108864")
        assert bounded["examples"] == num_examples
        assert bounded["open_growth"] < 100 << 20, bounded  # checksum verification streams, it does not map
        assert bounded["read_growth"] < 300 << 20, bounded
        # Without releasing pages the same reads map the whole store: the measurement can see the difference.
        unbounded = probe("none")
        assert unbounded["read_growth"] > 900 << 20, unbounded
        print(
            f"RSS growth over one epoch of random reads: {bounded['read_growth'] / 2**20:.0f} MiB bounded, "
            f"{unbounded['read_growth'] / 2**20:.0f} MiB without release; open {bounded['open_growth'] / 2**20:.0f} MiB"
        )
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# --------------------------------------------------------------------------------------------------------------------
# verify: what a dry run re-reads (issue 23: a corrupted store passed --dry-run, which checked sizes only)


def _rewrite_checksum(directory: Path, chunk: int, field: str) -> None:
    """Make the manifest agree with a hand-edited chunk file (damage a checksum alone cannot see)."""
    import hashlib

    manifest = json.loads((directory / MANIFEST_NAME).read_text())
    data = (directory / f"chunk-{chunk:05d}.{field}.bin").read_bytes()
    manifest["chunks"][chunk]["files"][field]["sha256"] = hashlib.sha256(data).hexdigest()
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest))


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_verify_refuses_nan_values_even_with_a_matching_checksum(store_dir, dtype):
    field = "values" if dtype == "float16" else "logits"
    path = store_dir / f"chunk-00003.{field}.bin"
    values = np.fromfile(path, dtype=f"<{dtype[0]}{int(dtype[5:]) // 8}")
    values[3] = np.inf if dtype == "float32" else np.nan
    values.tofile(path)
    _rewrite_checksum(store_dir, 3, field)
    store = HskStore.open(store_dir, verify=False)  # sizes and manifest are fine
    with pytest.raises(StoreError) as error:
        store.verify()
    assert_one_line_error(error, f"chunk-00003.{field}.bin holds nan or inf values")
    with pytest.raises(StoreError, match="nan or inf"):
        HskStore.open(store_dir)  # the run's own check refuses it too


def test_verify_reads_an_even_sample_of_a_large_store(store_dir):
    """Under a byte budget: the first and last chunks, evenly spread; a flipped byte there is found."""
    store = HskStore.open(store_dir, verify=False)
    per_chunk = store.nbytes // 5
    assert store.verify() == (5, 5)
    assert store.verify(max_bytes=1) == (2, 5)
    assert store.verify(max_bytes=3 * per_chunk) == (3, 5)
    _flip_byte(store_dir / "chunk-00004.positions.bin", 3)  # the last chunk: always in the sample
    with pytest.raises(StoreError, match="chunk-00004.positions.bin is corrupted"):
        store.verify(max_bytes=1)
