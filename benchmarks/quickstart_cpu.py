"""The whole quickstart's CPU time, today's batching against static padding (or another checkout), side by side.

Two ``mudkd pipeline recipes/quickstart.toml`` runs start together, each on one torch thread in its own
subprocess with its own empty cache and output folder, so both meet the same machine; each one's CPU time
(user + sys, from ``wait4``: stable under load, unlike wall time) and its dev accuracies are read when it ends.
With ``--threads N`` (N > 1, e.g. torch's default of one per core) they run one after the other instead, old
first, since two multi-threaded runs at once would spend CPU time waiting for each other's cores.

* ``new``: this checkout as shipped (batches padded to their longest example, length-grouped training batches,
  dev sets evaluated longest-first);
* ``old``: by default the same code with ``training.padding = "max_length"`` and ``training.group_by_length =
  false`` (the static padding of the reference and of mudkd before issue 12); with ``--old-checkout DIR``, the
  quickstart of another mudkd checkout instead (e.g. ``git worktree add ../old 99f1908^``, the code the issue was
  filed against), run with that checkout's own recipe.

``--pairs`` such pairs run one after another (default 3); the ratio new / old of CPU time (the issue's target: at
most 0.5) is printed as the median and range of the pairs with a verdict (mudkd.core.measure), then each run's
CPU time, stage seconds and the dev accuracy of teacher and student, which should agree within seed noise (every
run trains with the same seed). ``--json`` prints one document.

Usage::

    python benchmarks/quickstart_cpu.py                       # 3 pairs, ~20 minutes on 2 cores
    python benchmarks/quickstart_cpu.py --pairs 1 --old-checkout ../old
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
STATIC = ["--set", "training.padding=max_length", "--set", "training.group_by_length=false"]


def start(checkout: Path, extra: list[str], work: Path, threads: int) -> subprocess.Popen:
    work.mkdir(parents=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(checkout),
        "MUDKD_CACHE": str(work / "cache"),
        "OMP_NUM_THREADS": str(threads),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    command = [sys.executable, "-m", "mudkd", "pipeline", str(checkout / "recipes" / "quickstart.toml")]
    command += [*extra, "-o", str(work / "out"), "--json"]
    with (work / "stdout.json").open("w") as out, (work / "stderr.txt").open("w") as err:
        return subprocess.Popen(command, cwd=work, env=env, stdout=out, stderr=err)


def finish(process: subprocess.Popen, work: Path) -> dict[str, Any]:
    """Wait for ``process``; its own CPU seconds (``wait4``) and the summary it printed."""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        tail = (work / "stderr.txt").read_text()[-3000:]
        raise SystemExit(f"the quickstart in {work} failed (exit {process.returncode}):\n{tail}")
    document = json.loads((work / "stdout.json").read_text())
    summary = document.get("summary", document)
    return {
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "teacher_accuracy": summary["teacher"]["metrics"]["accuracy"],
        "student_accuracy": summary["student"]["metrics"]["accuracy"],
        "stage_seconds": summary.get("stage_seconds"),
    }


def run_pair(old: tuple[Path, list[str]], threads: int, scratch: Path) -> dict[str, dict[str, Any]]:
    """One old and one new quickstart: started together at 1 thread; with more threads, old first, then new."""
    plans = {"old": old, "new": (ROOT, [])}
    results, running = {}, {}
    for name, (checkout, extra) in plans.items():
        work = scratch / name
        running[name] = (start(checkout, extra, work, threads), work)
        if threads > 1:  # one multi-threaded run at a time
            results[name] = finish(*running.pop(name))
    return results | {name: finish(process, work) for name, (process, work) in running.items()}


def main() -> None:
    from mudkd.core.measure import describe, paired_ratios

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old-checkout", type=Path, help="compare with this mudkd checkout's own quickstart")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (> 1: one run at a time)")
    parser.add_argument("--pairs", type=int, default=3, help="old/new pairs behind the ratio (3+ for a verdict)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    old_checkout = (args.old_checkout or ROOT).resolve()
    old = (old_checkout, [] if args.old_checkout else STATIC)
    pairs = []
    for pair in range(args.pairs):
        with tempfile.TemporaryDirectory(prefix=f"mudkd-quickstart-cpu-{pair}-") as scratch:
            pairs.append(run_pair(old, args.threads, Path(scratch)))
    spread = paired_ratios([p["new"]["cpu_seconds"] for p in pairs], [p["old"]["cpu_seconds"] for p in pairs])
    result = {
        "threads": args.threads,
        "old": "checkout " + str(old_checkout) if args.old_checkout else "static padding, no length grouping",
        "ratio": spread["median"],
        "spread": spread,
        "pairs": pairs,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    how = "1 thread each, run side by side" if args.threads == 1 else f"{args.threads} threads each, one at a time"
    print(f"quickstart CPU time (user+sys, {how}); old = {result['old']}")
    print(f"  new / old: {describe(spread)}  (target <= 0.50)")
    for index, pair in enumerate(pairs):
        for name in ("new", "old"):
            run = pair[name]
            stages = ", ".join(f"{stage} {seconds:.0f}" for stage, seconds in (run["stage_seconds"] or {}).items())
            print(
                f"  pair {index + 1} {name}: {run['cpu_seconds']:.1f} CPU s; dev accuracy teacher "
                f"{run['teacher_accuracy']:.3f}, student {run['student_accuracy']:.3f}; stage wall s: {stages}"
            )


if __name__ == "__main__":
    main()
