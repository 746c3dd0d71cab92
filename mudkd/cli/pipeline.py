"""``mudkd pipeline``: every stage from one recipe, resumable, ending with a teacher-vs-student summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mudkd.cli import common as c
from mudkd.cli import options as o
from mudkd.cli.stage import build, run_stage
from mudkd.core.measure import describe

EPILOG = """Examples:

  $ mudkd pipeline recipes/quickstart.toml

  $ mudkd pipeline recipes/glue_rosita_3d.toml --set task.data_dir=../shared/data/glue/SST-2 -o outputs/sst2

  $ mudkd pipeline recipes/quickstart.toml --dry-run --json
"""


def render_summary(summary: dict[str, Any]) -> None:
    """The final table: teacher vs student side by side, and the teacher-free speed check."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="Teacher vs student", title_justify="left")
    table.add_column("", style="bold")
    table.add_column("teacher", justify="right")
    table.add_column("student", justify="right")
    teacher, student = summary["teacher"], summary["student"]
    # dev metrics first, then the selection split's (training.selection_split: where checkpoints were chosen)
    names = sorted(
        set(teacher["metrics"]) | set(student["metrics"]), key=lambda name: (name.startswith("selection_"), name)
    )
    for name in names:
        metric = name.removeprefix("selection_")
        if metric == "loss":
            continue
        table.add_row(
            escape(f"selection split {metric}" if name != metric else f"dev {name}"),
            c.format_value(teacher["metrics"].get(name, "")),
            c.format_value(student["metrics"].get(name, "")),
        )
    table.add_row("parameters", c.format_value(teacher["params"]), c.format_value(student["params"]))
    before = summary.get("student_before_training")
    if before:  # the pruned student on dev, before any training
        value = c.format_value(before["value"]) + (" DEGENERATE" if before["degenerate"] else "")
        table.add_row("student before training", "", f"{before['metric']} {value}")
    c.stdout_console().print(table)
    rows: list[tuple[str, Any]] = [
        ("parameter ratio (teacher/student)", summary["param_ratio"]),
        ("FLOP ratio (teacher/student)", summary["flop_ratio"]),
        ("CPU latency ratio teacher/student", describe(summary.get("latency_spread"))),
        ("latency input", summary.get("latency_input") or "-"),
        ("HSK fraction distilled", f"{summary['hsk_fraction']:.4%}" if summary.get("hsk_fraction") else "-"),
        ("store size (bytes)", summary.get("store_bytes") or "-"),
        *health_rows(summary.get("student_before_training")),
    ]
    speed = summary.get("hsk_speed")
    if speed:
        rows.append(
            (f"HSK training speed-up from the store ({speed['steps']} updates per run)", describe(speed.get("spread")))
        )
    selected = summary.get("selected_on") or {}
    rows += [(f"{stage} checkpoint selected on", where) for stage, where in selected.items() if where]
    rows += [(f"{stage} time (s)", seconds) for stage, seconds in summary["stage_seconds"].items()]
    c.print_table("Summary", rows)


def health_rows(health: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """The Summary rows of the pruned student's health before training: majority-class rate and [CLS] spread."""
    if not health:
        return []
    spread = health.get("cls_spread")
    rows: list[tuple[str, Any]] = []
    if health.get("majority_rate") is not None:
        rows.append(("dev majority-class rate", health["majority_rate"]))
    return [*rows, ("student [CLS] spread before training", "-" if spread is None else spread)]


RootOpt = o.output_dir("output.dir", note="A folder per stage.")


def pipeline_cli(
    recipe: o.RecipeArg = None,
    output_dir: RootOpt = None,
    task_name: o.TaskOpt = None,
    data_dir: o.DataDirOpt = None,
    train_file: o.TrainFileOpt = None,
    validation_file: o.ValidationFileOpt = None,
    text_columns: o.TextColumnsOpt = None,
    label_column: o.LabelColumnOpt = None,
    max_train_samples: o.MaxTrainOpt = None,
    max_seq_length: o.MaxSeqOpt = None,
    seed: o.SeedOpt = None,
    device: o.DeviceOpt = None,
    set_: o.SetOpt = None,
    dry_run: o.DryRunOpt = False,
    json_: o.JsonOpt = False,
    overwrite: o.OverwriteOpt = False,
    resume: o.ResumeOpt = False,
) -> None:
    """Run the whole pipeline from one recipe: finetune, score, prune, store, distill hsk, distill pred.

    Each stage writes a subdirectory of the output directory. Stages whose output exists and was made from the
    same settings are skipped, so rerunning an interrupted pipeline resumes it.
    """
    # a recipe that names no output directory writes to ./outputs/<recipe name>, like the quickstart
    default_dir = {"output.dir": str(Path("outputs", recipe.stem))} if recipe else None
    resolved = build(pipeline_cli, locals(), base=default_dir)
    from mudkd.core.stages import pipeline

    stage = {"plan": pipeline.plan, "run": pipeline.run, "render": render, "render_plan": render_plan}
    run_stage("pipeline", resolved, locals(), **stage)


def render_plan(plan: dict[str, Any], json_mode: bool) -> None:
    """The pipeline's dry run: each stage's status and folder, then the knowledge budget."""
    if json_mode:
        c.emit_json({"dry_run": True, **plan})
        return
    rows = [(row["stage"], f"{row['status']}: {row['output_dir']}") for row in plan["stages"]]
    c.print_table("Pipeline plan (dry run: nothing written)", rows)
    if plan.get("schedule"):
        render_schedule(plan["schedule"], plan.get("schedule_note", ""))
    if plan.get("budget"):
        c.render_budget(plan["budget"])


def render_schedule(schedule: list[dict[str, Any]], note: str) -> None:
    """Examples, updates, store size and estimated CPU time per stage."""
    from rich.table import Table

    total = sum(row.get("cpu_seconds") or 0 for row in schedule)
    caption = f"{note}; about {total / 60:,.0f} min in all" if note else None
    table = Table(title="Schedule", title_justify="left", caption=caption, caption_justify="left")
    for name in ("stage", "examples", "updates", "store", "CPU time (est.)"):
        table.add_column(name, justify="left" if name == "stage" else "right")
    for row in schedule:
        store = row.get("store_bytes")
        seconds = row.get("cpu_seconds")
        table.add_row(
            row["stage"],
            f"{row['examples']:,}" if row["examples"] else "-",
            f"{row['updates']:,}" if row["updates"] else "-",
            f"{store / 2**20:,.1f} MiB" if store else "-",
            "-" if seconds is None else f"{seconds / 60:,.1f} min",
        )
    c.stdout_console().print(table)


def render(stage: str, result: Any, json_mode: bool) -> None:
    """The teacher-vs-student summary, or the JSON document; the stages' warnings on stderr either way."""
    c.print_warnings(result.details["summary"])
    if json_mode:
        c.emit_json(result.to_dict())
        return
    render_summary(result.details["summary"])
    c.info(f"Student: {result.details['summary']['student']['model']}  (all outputs under {result.output_dir})")
