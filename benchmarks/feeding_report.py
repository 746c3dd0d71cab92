"""Merge ``student_quality.py`` runs into one results file, test them, and plot them (docs/findings.md, "Feeding
the student", is written from this script's output).

Reads one or more JSON documents printed by ``benchmarks/student_quality.py --json`` (each may hold some tasks and
some variants; a task's teacher must be the same in every document) and prints a Markdown table per task: each
variant's dev metric (mean ± sample std over the seeds, and per seed), the share of the teacher's dev metric it
keeps (mean, with the 95 % t-interval of that mean over the seeds), its CPU time per run, and its difference
from (a), today's recipe, **paired over the seeds** both ran, with the 95 % interval and Holm-adjusted p over
every comparison of the report (``mudkd.core.stats``). A target (``--target TASK=SHARE``) is **met** only when the
mean share reaches it; the table also says whether the interval's lower end does, i.e. whether the seeds show it.

``--write DIR`` also writes ``DIR/student_quality.json`` (the merged runs, per seed) and
``DIR/student_quality.png`` (one panel per task: each seed's share of its teacher, the mean, the target).

Usage::

    python benchmarks/feeding_report.py runs/sq-*.json
    python benchmarks/feeding_report.py runs/sq-*.json --write docs/findings
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mudkd.core import stats  # noqa: E402  (pure Python until a test runs)

#: The issue's targets: the share of the teacher's dev accuracy the student keeps, mean of the seeds.
TARGETS = {"sst2": 0.97, "rt": 0.98}
LABELS = {"sst2": "SST-2 (2,000-example slice)", "rte": "RTE", "rt": "rt-snippets"}


def merge(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """One document: every task's teacher and variants, the settings of the runs that made them."""
    tasks: dict[str, Any] = {}
    settings = set()
    for document in documents:
        if document.get("tiny"):
            raise SystemExit("a --tiny document: its numbers mean nothing")
        settings.add(document.get("selection_split"))
        for task, result in document["results"].items():
            merged = tasks.setdefault(task, {"teacher": result["teacher"], "variants": {}})
            if not math.isclose(merged["teacher"], result["teacher"]):
                raise SystemExit(f"{task}: two teachers ({merged['teacher']} and {result['teacher']})")
            for name, variant in result["variants"].items():
                merged["variants"][name] = _join(merged["variants"].get(name), variant, f"{task} ({name})")
    if len(settings) != 1:
        raise SystemExit(f"runs under different checkpoint selections: {sorted(map(str, settings))}")
    return {"selection_split": settings.pop(), "results": tasks}


def _join(old: dict[str, Any] | None, new: dict[str, Any], where: str) -> dict[str, Any]:
    """One variant's runs from two documents (seeds split between two processes), its CPU time their mean."""
    if old is None:
        return new
    seeds = {run["seed"] for run in old["runs"]} & {run["seed"] for run in new["runs"]}
    if seeds:
        raise SystemExit(f"{where}: seed(s) {sorted(seeds)} in two documents")
    runs = sorted(old["runs"] + new["runs"], key=lambda run: run["seed"])
    joined = {**old, **{key: value for key, value in new.items() if key == "speed"}, "runs": runs}
    joined["cpu_seconds"] = statistics.mean(run["cpu_seconds"] for run in runs)
    return joined


def _share(values: list[float], teacher: float) -> tuple[float, float, float]:
    """Mean share of the teacher, and the 95 % t-interval of that mean over the seeds."""
    shares = [value / teacher for value in values]
    mean = statistics.mean(shares)
    if len(shares) < 2:
        return mean, mean, mean
    from scipy.stats import t

    half = float(t.ppf(0.975, len(shares) - 1)) * statistics.stdev(shares) / math.sqrt(len(shares))
    return mean, mean - half, mean + half


def analyse(merged: dict[str, Any], targets: dict[str, float]) -> list[dict[str, Any]]:
    """One row per (task, variant), with its paired difference from (a) and the Holm-adjusted p."""
    rows = []
    for task, result in merged["results"].items():
        teacher, variants = result["teacher"], result["variants"]
        baseline = {run["seed"]: run["metric"] for run in variants.get("a", {}).get("runs", [])}
        for name, variant in sorted(variants.items()):
            values = {run["seed"]: run["metric"] for run in variant["runs"]}
            mean, low, high = _share(list(values.values()), teacher)
            row = {
                "task": task,
                "variant": name,
                "label": variant["label"],
                "teacher": teacher,
                "values": values,
                "mean": statistics.mean(values.values()),
                "std": statistics.stdev(values.values()) if len(values) > 1 else None,
                "share": mean,
                "share_low": low,
                "share_high": high,
                "cpu_minutes": variant["cpu_seconds"] / 60,
                "target": targets.get(task),
                "speed": variant.get("speed"),
            }
            shared = sorted(set(values) & set(baseline))
            if name != "a" and len(shared) >= 2:
                row["vs_a"] = stats.paired([values[s] for s in shared], [baseline[s] for s in shared])
            rows.append(row)
    tested = [row for row in rows if "vs_a" in row]
    for row, adjusted in zip(tested, stats.holm([row["vs_a"].p for row in tested]), strict=True):
        row["holm_p"] = adjusted
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = []
    for task in dict.fromkeys(row["task"] for row in rows):
        mine = [row for row in rows if row["task"] == task]
        lines += [
            f"**{LABELS.get(task, task)}** — teacher {mine[0]['teacher']:.4f}",
            "",
            "| variant | dev accuracy, mean ± std | per seed | kept of the teacher (95 % CI) | CPU per run "
            "| − (a), paired | Holm p |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in mine:
            seeds = ", ".join(f"{value:.4f}" for _, value in sorted(row["values"].items()))
            spread = f" ± {row['std']:.4f}" if row["std"] is not None else ""
            difference = row.get("vs_a")
            versus = f"{stats.points(difference.difference)} {stats.interval(difference)}" if difference else "—"
            holm = f"{row['holm_p']:.3f}" if "holm_p" in row else "—"
            lines.append(
                f"| ({row['variant']}) {row['label']} | {row['mean']:.4f}{spread} | {seeds} | "
                f"{100 * row['share']:.1f} % ({100 * row['share_low']:.1f}–{100 * row['share_high']:.1f} %) | "
                f"{row['cpu_minutes']:.1f} min | {versus} | {holm} |"
            )
        target = mine[0]["target"]
        if target:
            best = max(mine, key=lambda row: row["share"])
            where = (
                f"the best variant, ({best['variant']}), keeps {100 * best['share']:.1f} % on average "
                f"(95 % CI {100 * best['share_low']:.1f}–{100 * best['share_high']:.1f} %)"
            )
            if best["share"] < target:
                verdict = f"missed: {where}"
            elif best["share_low"] >= target:
                verdict = f"met, and shown by the seeds: {where}"
            else:
                verdict = f"met by the mean only, not shown by the seeds: {where}"
            lines.append(f"\nTarget {100 * target:.0f} %: {verdict}.")
        for row in mine:
            if row["speed"]:
                speed = row["speed"]
                minutes = {key: speed[f"{key}_cpu_seconds"] / 60 for key in ("online", "store_build", "store_train")}
                lines.append(
                    f"\n({row['variant']}), the same {speed['updates']:,} HSK updates one after the other: teacher "
                    f"online {minutes['online']:.1f} min of CPU, store {minutes['store_build']:.1f} min to build + "
                    f"{minutes['store_train']:.1f} min to train: {speed['speedup_with_build']:.2f}× with the build, "
                    f"{speed['speedup_training_only']:.2f}× training only."
                )
        lines.append("")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(row["task"] for row in rows))
    figure, axes = plt.subplots(1, len(tasks), figsize=(max(6.0, 4.2 * len(tasks)), 3.8), squeeze=False)
    for axis, task in zip(axes[0], tasks, strict=True):
        mine = [row for row in rows if row["task"] == task]
        for x, row in enumerate(mine):
            shares = [100 * value / row["teacher"] for value in row["values"].values()]
            axis.scatter([x] * len(shares), shares, color="tab:blue", alpha=0.6, s=18)
            axis.errorbar(
                x,
                100 * row["share"],
                yerr=[[100 * (row["share"] - row["share_low"])], [100 * (row["share_high"] - row["share"])]],
                fmt="_",
                color="black",
                markersize=16,
                capsize=4,
            )
        if mine[0]["target"]:
            axis.axhline(100 * mine[0]["target"], color="tab:red", linestyle="--", linewidth=1, label="target")
            axis.legend(loc="lower right", fontsize=8)
        axis.set_xticks(range(len(mine)), [f"({row['variant']})" for row in mine])
        axis.set_title(f"{LABELS.get(task, task)}\nteacher {mine[0]['teacher']:.3f}", fontsize=10)
        axis.set_ylabel("% of the teacher's dev accuracy")
        axis.grid(axis="y", alpha=0.3)
    figure.suptitle("Feeding the student: seeds (dots), mean and 95 % CI (bars)", fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("documents", nargs="+", type=Path, help="student_quality.py --json outputs")
    parser.add_argument("--target", action="append", default=[], help="TASK=SHARE (default sst2=0.97, rt=0.98)")
    parser.add_argument("--write", type=Path, default=None, help="write student_quality.json and .png here")
    args = parser.parse_args(argv)
    targets = {**TARGETS, **{key: float(value) for key, value in (item.split("=", 1) for item in args.target)}}
    merged = merge([json.loads(path.read_text(encoding="utf-8")) for path in args.documents])
    rows = analyse(merged, targets)
    print(f"checkpoints selected on: training.selection_split = {merged['selection_split']}\n")
    print(markdown(rows))
    if args.write:
        args.write.mkdir(parents=True, exist_ok=True)
        (args.write / "student_quality.json").write_text(json.dumps(merged, indent=2) + "\n", encoding="utf-8")
        plot(rows, args.write / "student_quality.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
