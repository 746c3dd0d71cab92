"""Benchmark the HSK store: write throughput vs. ``np.save``, random-batch reads vs. an in-RAM numpy gather.

The per-example layout is the paper's 1l_10t_0.1h budget stored in float16 (logits, 10 token indices, 768 values and
their flat positions: 3,100 bytes). Reads run on a warm page cache (the store was just written), as in training
after the first epoch; ``--examples`` sets the store size.

Every ratio is measured in interleaved pairs (``--pairs``: the write is repeated, the random reads are cut into
that many chunks; within a pair the two sides run back to back, their order alternating) and printed as median
[low, high] over the pairs with the load average (mudkd.core.measure), "not measurable on this machine now" when
the pairs straddle 1.0. Throughputs (MiB/s, us/batch) are medians, for context only.

Usage::

    python benchmarks/store_io.py                 # a table of timings and ratios
    python benchmarks/store_io.py --json          # one JSON document
    python benchmarks/store_io.py --examples 400000 --batch-size 64
    python benchmarks/store_io.py --examples 2000 --batches 300 --pairs 3     # quick
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mudkd.core.measure import describe, paired_ratios  # noqa: E402
from mudkd.core.store import HskStore, StoreWriter  # noqa: E402

FIELDS = {
    "logits": ("float32", (2,)),
    "token_index": ("int16", (1, 10)),
    "values": ("float16", (1, 768)),
    "positions": ("int16", (1, 768)),
}


def make_data(num_examples: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "logits": rng.standard_normal((num_examples, 2), dtype=np.float32),
        "token_index": rng.integers(0, 64, (num_examples, 1, 10), dtype=np.int16),
        "values": rng.standard_normal((num_examples, 1, 768), dtype=np.float32).astype(np.float16),
        "positions": rng.integers(0, 7680, (num_examples, 1, 768), dtype=np.int16),
    }


def rss_bytes() -> int:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def drop_from_page_cache(directory: Path) -> None:
    # np.save's files compete with the store for page cache; drop them so both reads start alike.
    for path in directory.iterdir():
        with open(path, "rb") as handle:
            os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def bench_write(data: dict[str, np.ndarray], work: Path, append_size: int, pairs: int) -> dict[str, list[float]]:
    """Seconds of ``np.save`` and of a store write of ``data``, ``pairs`` times each, back to back; the last store
    written stays in ``work / "store"``."""
    num_examples = len(data["logits"])
    seconds: dict[str, list[float]] = {"np_save_s": [], "store_write_s": []}

    def np_save() -> None:
        npy_dir = work / "npy"
        npy_dir.mkdir()
        start = time.perf_counter()
        for name, array in data.items():
            np.save(npy_dir / f"{name}.npy", array)
        seconds["np_save_s"].append(time.perf_counter() - start)
        drop_from_page_cache(npy_dir)
        shutil.rmtree(npy_dir)

    def store_write() -> None:
        shutil.rmtree(work / "store", ignore_errors=True)
        start = time.perf_counter()
        with StoreWriter.create(work / "store", fields=FIELDS, num_examples=num_examples, fingerprint={}) as writer:
            for offset in range(0, num_examples, append_size):
                writer.append({name: array[offset : offset + append_size] for name, array in data.items()})
        seconds["store_write_s"].append(time.perf_counter() - start)

    for pair in range(pairs):
        for step in (np_save, store_write) if pair % 2 == 0 else (store_write, np_save):
            step()
    return seconds


def bench_read(
    data: dict[str, np.ndarray], store: HskStore, batch_size: int, num_batches: int, pairs: int
) -> dict[str, object]:
    """Random reads cut into ``pairs`` chunks; each chunk is gathered in RAM and read from the store back to back."""
    rng = np.random.default_rng(1)
    batches = [rng.integers(0, len(store), batch_size) for _ in range(num_batches)]
    for indices in batches[:20]:  # warm-up: maps opened, folios cached
        store.get(indices)
    store.release_pages()
    size = max(1, len(batches) // pairs)
    chunks = [batches[first : first + size] for first in range(0, size * pairs, size)]
    seconds: dict[str, list[float]] = {"in_ram_s": [], "store_s": []}
    base = rss_bytes()
    peak = base

    def in_ram(chunk: list) -> None:
        start = time.perf_counter()
        for indices in chunk:
            _ = {name: array[indices] for name, array in data.items()}
        seconds["in_ram_s"].append(time.perf_counter() - start)

    def stored(chunk: list) -> None:
        nonlocal peak
        start = time.perf_counter()
        for number, indices in enumerate(chunk):
            store.get(indices)
            if number % 50 == 0:
                peak = max(peak, rss_bytes())
        seconds["store_s"].append(time.perf_counter() - start)

    for pair, chunk in enumerate(chunks):
        for step in (in_ram, stored) if pair % 2 == 0 else (stored, in_ram):
            step(chunk)
    return {**seconds, "batches": size * len(chunks), "rss_growth_mib": (max(peak, rss_bytes()) - base) / 2**20}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=200_000, help="examples in the store (default 200,000)")
    parser.add_argument("--batch-size", type=int, default=32, help="examples per random read (default 32)")
    parser.add_argument("--batches", type=int, default=3000, help="random reads timed (default 3000)")
    parser.add_argument("--append-size", type=int, default=256, help="examples per append (default 256)")
    parser.add_argument("--pairs", type=int, default=5, help="interleaved pairs per ratio (default 5)")
    parser.add_argument("--dir", type=Path, default=None, help="scratch directory (default: a temp dir)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    if args.pairs < 1 or args.batches < args.pairs:
        parser.error("--pairs must be at least 1 and at most --batches")

    data = make_data(args.examples)
    nbytes = sum(array.nbytes for array in data.values())
    work = Path(tempfile.mkdtemp(prefix="mudkd-store-bench-", dir=args.dir))
    try:
        write = bench_write(data, work, args.append_size, args.pairs)
        start = time.perf_counter()
        store = HskStore.open(work / "store", verify=True)
        open_verify_s = time.perf_counter() - start
        read = bench_read(data, store, args.batch_size, args.batches, args.pairs)
        unbounded = HskStore.open(work / "store", verify=False, release_bytes=None)
        read_unbounded = bench_read(data, unbounded, args.batch_size, args.batches, args.pairs)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    mib = nbytes / 2**20
    per_batch = 1e6 / read["batches"]
    spreads = {
        "store_over_np_save_time": paired_ratios(write["store_write_s"], write["np_save_s"]),
        "store_over_in_ram_time": paired_ratios(read["store_s"], read["in_ram_s"]),
        "unbounded_mmap_over_in_ram_time": paired_ratios(read_unbounded["store_s"], read_unbounded["in_ram_s"]),
    }
    median = statistics.median
    result = {
        "examples": args.examples,
        "bytes_per_example": nbytes // args.examples,
        "store_mib": round(mib, 1),
        "pairs": args.pairs,
        "write": {
            "np_save_mib_s": round(mib / median(write["np_save_s"]), 1),
            "store_mib_s": round(mib / median(write["store_write_s"]), 1),
            "store_over_np_save_time": round(spreads["store_over_np_save_time"]["median"], 2),
        },
        "open_verify_s": round(open_verify_s, 3),
        "read": {
            "batch_size": args.batch_size,
            "in_ram_us_per_batch": round(sum(read["in_ram_s"]) * per_batch, 1),
            "store_us_per_batch": round(sum(read["store_s"]) * per_batch, 1),
            "store_over_in_ram_time": round(spreads["store_over_in_ram_time"]["median"], 2),
            "store_rss_growth_mib": round(read["rss_growth_mib"], 1),
            "unbounded_mmap_us_per_batch": round(sum(read_unbounded["store_s"]) * per_batch, 1),
            "unbounded_mmap_over_in_ram_time": round(spreads["unbounded_mmap_over_in_ram_time"]["median"], 2),
            "unbounded_mmap_rss_growth_mib": round(read_unbounded["rss_growth_mib"], 1),
        },
        "ratios": spreads,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    write_result, read_result = result["write"], result["read"]
    print(f"store: {args.examples:,} examples x {result['bytes_per_example']} B = {mib:.0f} MiB")
    print(
        f"write: store {write_result['store_mib_s']} MiB/s (fsync + sha256), np.save {write_result['np_save_mib_s']} "
        f"MiB/s -> store/np.save time {describe(spreads['store_over_np_save_time'])}"
    )
    print(f"open with checksum verification: {result['open_verify_s']} s")
    print(
        f"random reads of {args.batch_size}: store {read_result['store_us_per_batch']} us/batch, in-RAM gather "
        f"{read_result['in_ram_us_per_batch']} us/batch -> store/in-RAM time "
        f"{describe(spreads['store_over_in_ram_time'])}; "
        f"RSS +{read_result['store_rss_growth_mib']} MiB"
    )
    print(
        f"  mmap without page release: {read_result['unbounded_mmap_us_per_batch']} us/batch -> store/in-RAM time "
        f"{describe(spreads['unbounded_mmap_over_in_ram_time'])}; "
        f"RSS +{read_result['unbounded_mmap_rss_growth_mib']} MiB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
