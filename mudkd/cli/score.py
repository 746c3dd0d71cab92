"""``mudkd score``: first-order Taylor importance of every head and FFN neuron of the fine-tuned teacher."""

from __future__ import annotations

from typing import Any

from mudkd.cli import common as c
from mudkd.cli import options as o
from mudkd.cli.stage import build, run_stage

EPILOG = """Examples:

  $ mudkd score --teacher-model models/teacher --task-name sst-2 --data-dir glue/SST-2 -o models/scores

  $ mudkd score recipes/glue_rosita.toml --set score.num_train_epochs=0.5

  $ mudkd score recipes/quickstart.toml --dry-run --json
"""

ScoreEpochsOpt = o.keyed(float | None, "score.num_train_epochs", "--num-train-epochs", note="0.5 = half the batches.")


def score_cli(
    recipe: o.RecipeArg = None,
    teacher_model: o.TeacherOpt = None,
    model_name_or_path: o.TeacherAsModelNameOpt = None,
    task_name: o.TaskOpt = None,
    data_dir: o.DataDirOpt = None,
    train_file: o.TrainFileOpt = None,
    validation_file: o.ValidationFileOpt = None,
    text_columns: o.TextColumnsOpt = None,
    label_column: o.LabelColumnOpt = None,
    max_seq_length: o.MaxSeqOpt = None,
    max_train_samples: o.MaxTrainOpt = None,
    train_batch_size: o.BatchOpt = None,
    num_train_epochs: ScoreEpochsOpt = None,
    output_dir: o.OutputDirOpt = None,
    seed: o.SeedOpt = None,
    device: o.DeviceOpt = None,
    set_: o.SetOpt = None,
    dry_run: o.DryRunOpt = False,
    json_: o.JsonOpt = False,
    overwrite: o.OverwriteOpt = False,
) -> None:
    """Score every attention head and FFN neuron of the teacher by first-order Taylor importance.

    One pass over the training data in random order, dropout on, gold labels, no weight update (the paper's
    setting). Writes importance.safetensors and summary.json for `mudkd prune`, and prints how widely the
    head scores of each layer spread.
    """
    resolved = build(score_cli, locals(), stage="score")
    from mudkd.core.stages import score

    run_stage("score", resolved, locals(), plan=score.plan, run=score.run, render=render_scores)


def render_scores(stage: str, result: Any, json_mode: bool) -> None:
    """One JSON document, or a table of the per-layer score spread; warnings (an untrained head) on stderr."""
    c.print_warnings(result.details)
    if json_mode:
        c.emit_json({"output_dir": result.output_dir, **result.details})
        return
    from rich import box
    from rich.table import Table

    details = result.details
    title = f"score: {details['num_batches']:,} batches, {details['num_examples']:,} examples → {result.output_dir}"
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=0, show_edge=False)
    for name in ("layer", "heads min", "mean", "max", "max/min", "top heads", "FFN min", "mean", "max"):
        table.add_column(name, justify="left" if name == "top heads" else "right")
    for layer in details["layers"]:
        heads, ffn, top = layer["heads"], layer["ffn"], layer["top_heads"]
        table.add_row(
            str(layer["layer"]),
            *(_number(heads[key]) for key in ("min", "mean", "max", "ratio")),
            ",".join(str(head) for head in top[:4]) + ("…" if len(top) > 4 else ""),
            *(_number(ffn[key]) for key in ("min", "mean", "max")),
        )
    c.stdout_console().print(table)


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.3g}"
