"""``mudkd score``: first-order Taylor importance of every head and FFN neuron of the fine-tuned teacher."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mudkd.cli import common as c
from mudkd.recipe import build_recipe

EPILOG = """Examples:

  $ mudkd score --model-name-or-path models/teacher --task-name sst-2 --data-dir glue/SST-2 -o models/scores

  $ mudkd score recipes/glue_rosita.toml --set score.num_train_epochs=0.5

  $ mudkd score recipes/quickstart.toml --dry-run --json
"""


@c.report_errors
def score_cli(
    recipe: c.RecipeArg = None,
    model_name_or_path: Annotated[
        str | None,
        typer.Option("--model-name-or-path", help="Fine-tuned teacher directory (teacher.model).", show_default=False),
    ] = None,
    task_name: c.TaskOpt = None,
    data_dir: c.DataDirOpt = None,
    max_seq_length: c.MaxSeqOpt = None,
    max_train_samples: c.MaxTrainOpt = None,
    train_batch_size: c.BatchOpt = None,
    num_train_epochs: Annotated[
        float | None,
        typer.Option(
            "--num-train-epochs", help="Passes over the training data (0.5 = half the batches).", show_default=False
        ),
    ] = None,
    output_dir: c.OutputDirOpt = None,
    seed: c.SeedOpt = None,
    device: c.DeviceOpt = None,
    set_: c.SetOpt = None,
    dry_run: c.DryRunOpt = False,
    json_: c.JsonOpt = False,
    overwrite: c.OverwriteOpt = False,
) -> None:
    """Score every attention head and FFN neuron of the teacher by first-order Taylor importance.

    One pass over the training data in random order, dropout on, gold labels, no weight update (the paper's
    setting). Writes importance.safetensors and summary.json for `mudkd prune`, and prints how widely the
    head scores of each layer spread.
    """
    flags = {
        "teacher.model": model_name_or_path,
        **c.data_flags(task_name, data_dir, max_seq_length, max_train_samples, None),
        **c.training_flags(
            "score", train_batch_size=train_batch_size, num_train_epochs=num_train_epochs, output_dir=output_dir
        ),
        **c.run_flags(seed, device, overwrite),
    }
    resolved = build_recipe(recipe, flags=flags, sets=set_)
    from mudkd.core import score

    if dry_run:
        c.render_plan(score.plan(resolved), json_)
        return
    c.quiet_libraries()
    result = score.run(resolved, events=c.make_events(json_))
    render_scores(result, json_)


def render_scores(result: Any, json_mode: bool) -> None:
    """One JSON document, or a table of the per-layer score spread."""
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
