"""``mudkd prune``: cut the teacher down to a ROSITA-style student by its Taylor scores."""

from __future__ import annotations

from typing import Any

from mudkd.cli import common as c
from mudkd.cli import options as o
from mudkd.cli.stage import build, run_stage

EPILOG = """Examples:

  $ mudkd prune --teacher-model models/teacher --scores models/scores -o models/student

  $ mudkd prune --teacher-model models/teacher --scores models/scores --keep-heads 4 --layers 0,2,4,6 -o models/s4

  $ mudkd prune recipes/glue_rosita.toml --set prune.ffn_hidden_dim=512 --dry-run
"""


ScoresOpt = o.keyed(
    str | None, "prune.scores", "--scores", help="Directory written by 'mudkd score' (default: score.output_dir)."
)
KeepHeadsOpt = o.keyed(int | None, "prune.keep_heads", "--keep-heads", help="Attention heads kept per layer.")
NumLayersOpt = o.keyed(int | None, "prune.num_layers", "--num-layers", help="Keep the bottom N teacher layers.")
LayersOpt = o.keyed(
    str | None,
    "prune.layers",
    "--layers",
    convert=o.int_list,
    metavar="I,J,...",
    help="Explicit 0-based teacher layers to keep, e.g. 0,2,4.",
)
FfnOpt = o.keyed(int | None, "prune.ffn_hidden_dim", "--ffn-hidden-dim", help="FFN neurons kept per layer.")
EmbOpt = o.keyed(
    int | None,
    "prune.emb_hidden_dim",
    "--emb-hidden-dim",
    help="Rank of the factorised word embedding (-1 = no factorisation).",
)


def prune_cli(
    recipe: o.RecipeArg = None,
    teacher_model: o.TeacherOpt = None,
    model_path: o.TeacherAsModelPathOpt = None,
    scores: ScoresOpt = None,
    keep_heads: KeepHeadsOpt = None,
    num_layers: NumLayersOpt = None,
    layers: LayersOpt = None,
    ffn_hidden_dim: FfnOpt = None,
    emb_hidden_dim: EmbOpt = None,
    output_dir: o.OutputDirOpt = None,
    seed: o.SeedOpt = None,
    device: o.DeviceOpt = None,
    set_: o.SetOpt = None,
    dry_run: o.DryRunOpt = False,
    json_: o.JsonOpt = False,
    overwrite: o.OverwriteOpt = False,
) -> None:
    """Prune the fine-tuned teacher into a small student by its Taylor importance scores.

    Keeps the bottom layers (or --layers), the top heads and FFN neurons of each by score, and factorises the
    word embedding by SVD. The student is a save_pretrained directory that `mudkd distill` and `mudkd finetune`
    take, and that AutoModelForSequenceClassification loads once mudkd is imported.
    """
    resolved = build(prune_cli, locals(), stage="prune")
    from mudkd.core import prune

    run_stage("prune", resolved, locals(), plan=prune.plan, run=prune.run, render=render_sizes)


def render_sizes(stage: str, result: Any, json_mode: bool) -> None:
    """One JSON document, or a table of parameters per component before and after pruning."""
    if json_mode:
        c.emit_json({"output_dir": result.output_dir, **result.details})
        return
    from rich.table import Table

    details = result.details
    table = Table(
        title=f"prune: {result.output_dir}",
        title_justify="left",
        caption=f"compression: {details['compression']:.2f}× fewer parameters",
        caption_justify="left",
    )
    for name in ("component", "teacher", "student", "kept"):
        table.add_column(name, justify="left" if name == "component" else "right")
    rows = [*details["components"].items(), ("total", details["params"])]
    for name, counts in rows:
        kept = counts["student"] / counts["teacher"] if counts["teacher"] else 1.0
        table.add_row(
            name,
            f"{counts['teacher']:,}",
            f"{counts['student']:,}",
            f"{kept:.1%}",
            style="bold" if name == "total" else None,
        )
    c.stdout_console().print(table)
