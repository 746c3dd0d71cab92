"""How much of its teacher the student keeps when it is fed (issue 19): four schedules per task, several seeds.

Per task, the student's dev metric after

* ``a``: today's recipe (the quickstart's: HSK 2 + prediction 2 epochs from the store, the labelled examples);
* ``b``: + long HSK from the store (the reference's HSK-stage length, ``--long-hsk-epochs``, default per task:
  method.md §15 — SST-2 10, RTE 20, others 10);
* ``c``: + augmentation (TinyBERT, GloVe neighbours; ``--aug-n`` draws per example, default 4), on d's schedule;
* ``d``: + the task's unlabelled transfer text, where it has some (rt-snippets: the training snippets beyond the
  2,000 trained on; the SST-2 slice: the ``--unlabeled-count`` training sentences after it, default 20,000;
  labels ignored), ``--fed-hsk-epochs`` + ``--fed-pred-epochs``;

every run choosing its checkpoints on ``--selection-split`` (default 0.2: the training file's tail, never dev);

each as one ``mudkd pipeline`` subprocess (the teacher and the pruned student given, so it runs [augment,] cache,
hsk and pred), whose own CPU time (user + sys, ``wait4``) is measured. Per (task, variant): mean ± sample std over
the seeds, the retained share of the teacher's dev metric, and the mean CPU time. For ``c`` the same HSK updates
also run with the teacher online and from the store (the store build included), one after the other in this run:
their CPU-time ratio is the teacher-free speed-up over the augmented set.

Tasks: ``sst2`` (the 2,000-example slice of ``--glue-dir``/SST-2 with the quickstart's teacher and student, as
the findings sweep), ``rte`` (``--glue-dir``/RTE; its teacher and student are fine-tuned and pruned by the first
run unless ``--models rte=TEACHER,STUDENT``), ``rt`` (rt-snippets, the quickstart's). Models default to
``--quickstart``'s ``teacher``/``student``.

CPU is scarce: ``--tiny`` runs every code path on a few dozen examples with tiny step counts (a smoke test, the
numbers mean nothing). Usage::

    python benchmarks/student_quality.py --tasks rt --variants a,d --seeds 42 --quickstart /work/qs/outputs/quickstart
    python benchmarks/student_quality.py --tasks sst2,rte,rt --seeds 42,43,44 --json > quality.json
    python benchmarks/student_quality.py --tiny --tasks rt --variants a,b,c,d --seeds 1,2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mudkd.recipe.schema import reference_hsk_epochs  # noqa: E402  (pure Python: no torch)

QUICKSTART = ROOT / "recipes" / "quickstart.toml"
TASKS = {
    "sst2": {"name": "sst-2", "glue": "SST-2", "max_seq_length": 64, "unlabeled": True},
    "rte": {"name": "rte", "glue": "RTE", "max_seq_length": 128, "unlabeled": False},
    "rt": {"name": "rt-snippets", "glue": None, "max_seq_length": 48, "unlabeled": True},
}
VARIANTS = {
    "a": "today's recipe",
    "b": "+ long HSK from the store",
    "c": "+ augmentation",
    "d": "+ unlabelled transfer text",
}


def mudkd(args: list[str], work: Path, threads: int) -> dict[str, Any]:
    """Run ``python -m mudkd ARGS --json`` in ``work``; its parsed JSON and own CPU seconds (``wait4``)."""
    work.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MUDKD_CACHE": str(work.parent / "cache"),
        "OMP_NUM_THREADS": str(threads),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    stdout, stderr = work / "stdout.json", work / "stderr.txt"
    with stdout.open("w") as out, stderr.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "mudkd", *args, "--json"], cwd=work, env=env, stdout=out, stderr=err
        )
        _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        tail = stderr.read_text().strip().splitlines()[-3:]
        raise SystemExit(f"mudkd {' '.join(args[:2])} failed in {work}: {' | '.join(tail)}")
    return {"result": json.loads(stdout.read_text()), "cpu_seconds": usage.ru_utime + usage.ru_stime}


def task_sets(task: str, glue_dir: Path, tiny: bool) -> list[str]:
    """The ``--set`` overrides of a task: its data, length and training-set size."""
    spec = TASKS[task]
    sets = [f"task.name={spec['name']}", f"task.max_seq_length={spec['max_seq_length']}"]
    if spec["glue"]:
        sets.append(f"task.data_dir={glue_dir / spec['glue']}")
    train = 48 if tiny else (2000 if task in ("sst2", "rt") else None)
    sets.append(f"task.max_train_samples={train}" if train else "task.max_train_samples=1000000")
    if tiny:
        sets += ["task.max_eval_samples=64", "task.max_seq_length=32"]
    return sets


def variant_sets(task: str, variant: str, options: argparse.Namespace) -> list[str] | None:
    """The ``--set`` overrides of a variant over the quickstart recipe, or None when the task has no such variant."""
    scale = (lambda epochs: min(epochs, 1.0)) if options.tiny else (lambda epochs: epochs)
    long_hsk = options.long_hsk_epochs or reference_hsk_epochs(TASKS[task]["name"])
    sets = ["pipeline.speed_check_steps=0", "pipeline.latency_repeats=1"]
    # checkpoints are selected on the training file's tail, never on the dev set every variant reports
    sets.append(f"training.selection_split={options.selection_split}")
    if options.tiny:  # a handful of updates per stage: the code paths, not the numbers
        sets += ["hsk.max_steps=3", "pred.max_steps=3", "pred.eval_step=3"]
    if variant == "a":
        return sets
    if variant == "b":
        return [*sets, f"hsk.num_train_epochs={scale(long_hsk)}"]
    if variant == "c":  # the same schedule as d, over augmented instead of unlabelled text
        return [
            *sets,
            "augment.enabled=true",
            f"augment.num_per_example={2 if options.tiny else options.aug_n}",
            f"hsk.num_train_epochs={scale(options.aug_hsk_epochs or options.fed_hsk_epochs)}",
            f"pred.num_train_epochs={scale(options.fed_pred_epochs)}",
        ]
    if not TASKS[task]["unlabeled"]:
        return None
    # the smoke test's unlabelled text is a small file; SST-2's is a slice of the training sentences after the
    # 2,000 trained on (--unlabeled-count of them: all 65 k would cost an hour a run); rt-snippets' is the rest
    if options.tiny:
        unlabeled = f"augment.unlabeled_file={options.tiny_unlabeled}"
    elif task == "sst2":
        unlabeled = f"augment.unlabeled_file={options.sst2_unlabeled}"
    else:
        unlabeled = "augment.unlabeled_rest=true"
    return [
        *sets,
        "augment.enabled=true",
        unlabeled,
        "augment.num_per_example=0",
        f"hsk.num_train_epochs={scale(options.fed_hsk_epochs)}",
        f"pred.num_train_epochs={scale(options.fed_pred_epochs)}",
    ]


def write_sst2_unlabeled(glue_dir: Path, count: int, path: Path) -> Path:
    """SST-2 training sentences 2,000 .. 2,000 + ``count`` (after the slice trained on; the selection split is
    the file's tail, far beyond), one per line, labels dropped, read as every SST-2 run reads them."""
    from mudkd.core.data import load_raw
    from mudkd.recipe.schema import TaskConfig

    sentences = load_raw(TaskConfig(name="sst-2", data_dir=str(glue_dir / "SST-2")))[0]["train"]["text_a"]
    path.write_text("".join(f"{sentence}\n" for sentence in sentences[2000 : 2000 + count]), encoding="utf-8")
    return path


def as_sets(pairs: list[str]) -> list[str]:
    return [part for pair in pairs for part in ("--set", pair)]


def teacher_metric(task: str, teacher: str, options: argparse.Namespace, scratch: Path) -> float:
    """The teacher's dev metric on the task (``mudkd evaluate``)."""
    sets = task_sets(task, options.glue_dir, options.tiny)
    run = mudkd(["evaluate", teacher, *as_sets(sets)], scratch / f"{task}-teacher-eval", options.threads)
    split = run["result"]["splits"]["dev"]
    return float(split["metrics"][run["result"]["metric"]])


def speed_pair(task: str, models: tuple[str, str], run_dir: Path, options: argparse.Namespace, scratch: Path) -> dict:
    """For a finished ``c`` run: its HSK updates with the teacher online vs store build + HSK from the store."""
    teacher, student = models
    summary = json.loads((run_dir / "out" / "hsk" / "stage.json").read_text())["result"]
    steps = int(summary["steps"])
    transfer = f"augment.transfer_set={run_dir / 'out' / 'augment'}"
    common = [str(QUICKSTART), *as_sets([*task_sets(task, options.glue_dir, options.tiny), transfer])]
    models_args = ["--teacher-model", teacher, "--student-model", student]
    where = scratch / f"{task}-speed"
    threads = options.threads
    store = mudkd(["distill", "cache", *common, *models_args, "-o", str(where / "store")], where / "cache", threads)
    hsk = ["distill", "hsk", *common, "--student-model", student, "--max-steps", str(steps)]
    offline = mudkd(
        [*hsk, "--hsk-store", str(where / "store"), "-o", str(where / "h-store")], where / "store-run", threads
    )
    online = mudkd([*hsk, "--teacher-model", teacher, "-o", str(where / "h-online")], where / "online-run", threads)
    total_store = store["cpu_seconds"] + offline["cpu_seconds"]
    return {
        "updates": steps,
        "online_cpu_seconds": online["cpu_seconds"],
        "store_build_cpu_seconds": store["cpu_seconds"],
        "store_train_cpu_seconds": offline["cpu_seconds"],
        "speedup_with_build": online["cpu_seconds"] / total_store,
        "speedup_training_only": online["cpu_seconds"] / offline["cpu_seconds"],
    }


def run_task(task: str, options: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    """Every variant and seed of one task; the teacher's metric; the online-vs-store pair of variant ``c``."""
    given = dict(item.split("=", 1) for item in options.models)
    sets = task_sets(task, options.glue_dir, options.tiny)
    if task in given:
        teacher, student = given[task].split(",", 1)
    elif task == "rte":  # no RTE teacher ships: fine-tune, score and prune it once (its CPU time is reported apart)
        first = mudkd(
            [
                "pipeline",
                str(QUICKSTART),
                *as_sets([*sets, *variant_sets(task, "a", options)]),
                "-o",
                str(scratch / "rte-models" / "out"),
            ],
            scratch / "rte-models",
            options.threads,
        )
        teacher, student = (str(scratch / "rte-models" / "out" / name) for name in ("teacher", "student"))
        options.model_cpu_seconds[task] = first["cpu_seconds"]
    else:
        teacher, student = str(options.quickstart / "teacher"), str(options.quickstart / "student")
    teacher_value = teacher_metric(task, teacher, options, scratch)
    rows: dict[str, Any] = {"teacher": teacher_value, "variants": {}}
    for variant in options.variants:
        extra = variant_sets(task, variant, options)
        if extra is None:
            continue
        runs = []
        for seed in options.seeds:
            run_dir = scratch / f"{task}-{variant}-s{seed}"
            flags = [f"teacher.model={teacher}", f"student.model={student}", f"training.seed={seed}", *sets, *extra]
            run = mudkd(
                ["pipeline", str(QUICKSTART), *as_sets(flags), "-o", str(run_dir / "out")], run_dir, options.threads
            )
            metric = run["result"]["summary"]["student"]["metrics"]
            runs.append(
                {"seed": seed, "metric": metric.get("accuracy"), "cpu_seconds": run["cpu_seconds"], "dir": str(run_dir)}
            )
        values = [r["metric"] for r in runs]
        row = {
            "label": VARIANTS[variant],
            "runs": runs,
            "mean": statistics.mean(values),
            "std": statistics.stdev(values) if len(values) > 1 else None,
            "retained": statistics.mean(values) / teacher_value,
            "cpu_seconds": statistics.mean(r["cpu_seconds"] for r in runs),
        }
        if variant == "c" and not options.no_speed:
            row["speed"] = speed_pair(task, (teacher, student), Path(runs[0]["dir"]), options, scratch)
        rows["variants"][variant] = row
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="sst2,rte,rt", help="comma-separated: sst2, rte, rt")
    parser.add_argument("--variants", default="a,b,c,d", help="comma-separated: a, b, c, d")
    parser.add_argument("--seeds", default="42,43,44", help="comma-separated seeds (3 or more for a std)")
    parser.add_argument("--glue-dir", type=Path, default=ROOT.parent / "shared" / "data" / "glue")
    parser.add_argument("--quickstart", type=Path, default=ROOT / "outputs" / "quickstart", help="its teacher/student")
    parser.add_argument("--models", action="append", default=[], help="TASK=TEACHER,STUDENT (repeatable)")
    parser.add_argument("--long-hsk-epochs", type=float, default=None, help="b, c: default the reference's per task")
    parser.add_argument("--aug-n", type=int, default=4, help="c: augmentation draws per example (TinyBERT: 20)")
    parser.add_argument("--aug-hsk-epochs", type=float, default=None, help="c: HSK epochs (default d's)")
    parser.add_argument("--unlabeled-count", type=int, default=20000, help="d on sst2: unlabelled sentences")
    parser.add_argument(
        "--selection-split", type=float, default=0.2, help="training.selection_split of every run (0: select on dev)"
    )
    parser.add_argument("--fed-hsk-epochs", type=float, default=6.0, help="d: HSK epochs over the enlarged set")
    parser.add_argument("--fed-pred-epochs", type=float, default=4.0, help="d: prediction epochs")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (runs are sequential)")
    parser.add_argument("--no-speed", action="store_true", help="skip c's online-vs-store timing")
    parser.add_argument("--tiny", action="store_true", help="smoke test: a few dozen examples, numbers mean nothing")
    parser.add_argument("--scratch", type=Path, default=None, help="keep the runs here (default: a temp dir)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    options = parser.parse_args()
    options.tasks = options.tasks.split(",")
    options.variants = options.variants.split(",")
    options.seeds = [int(seed) for seed in options.seeds.split(",")]
    options.model_cpu_seconds = {}
    scratch = options.scratch or Path(tempfile.mkdtemp(prefix="student-quality-"))
    scratch.mkdir(parents=True, exist_ok=True)
    options.tiny_unlabeled = scratch / "unlabeled.txt"
    if "sst2" in options.tasks and not options.tiny:
        options.sst2_unlabeled = write_sst2_unlabeled(
            options.glue_dir, options.unlabeled_count, scratch / "sst2-unlabeled.txt"
        )
    options.tiny_unlabeled.write_text("".join(f"an unlabelled review number {i} of a film\n" for i in range(20)))
    results = {task: run_task(task, options, scratch) for task in options.tasks}
    document = {
        "seeds": options.seeds,
        "selection_split": options.selection_split,
        "aug_n": options.aug_n,
        "unlabeled_count": options.unlabeled_count,
        "tiny": options.tiny,
        "results": results,
        "model_cpu_seconds": options.model_cpu_seconds,
    }
    if options.json:
        print(json.dumps(document, indent=2))
        return
    for task, rows in results.items():
        print(f"{task}: teacher {rows['teacher']:.4f}")
        for variant, row in rows["variants"].items():
            spread = f" ± {row['std']:.4f}" if row["std"] is not None else ""
            print(
                f"  {variant} {row['label']:<28} {row['mean']:.4f}{spread}  retained {row['retained']:.1%}  "
                f"CPU {row['cpu_seconds'] / 60:.1f} min  (n={len(row['runs'])})"
            )
            if "speed" in row:
                speed = row["speed"]
                print(
                    f"    same {speed['updates']} HSK updates: online {speed['online_cpu_seconds']:.0f} s CPU vs store "
                    f"{speed['store_build_cpu_seconds']:.0f} s build + {speed['store_train_cpu_seconds']:.0f} s train: "
                    f"{speed['speedup_with_build']:.2f}x with the build, "
                    f"{speed['speedup_training_only']:.2f}x training only"
                )
    print(f"runs kept in {scratch}")


if __name__ == "__main__":
    main()
