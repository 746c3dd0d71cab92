"""``mudkd prune``: cut the teacher down to a ROSITA-style student by its Taylor scores."""

from __future__ import annotations

from typing import Any

from mudkd.cli import common as c
from mudkd.cli import options as o
from mudkd.cli.stage import build, run_stage

EPILOG = """Examples:

  $ mudkd prune --teacher-model models/teacher --scores models/scores -o models/student

  $ mudkd prune --teacher-model models/teacher --scores models/scores --task-name sst-2 --data-dir glue/SST-2 -o s

  $ mudkd prune --teacher-model models/teacher --scores models/scores --keep-heads 4 --layers 0,2,4,6 -o models/s4

  $ mudkd prune recipes/glue_rosita.toml --set prune.ffn_hidden_dim=512 --dry-run
"""


ScoresOpt = o.keyed(str | None, "prune.scores", "--scores")
KeepHeadsOpt = o.keyed(int | None, "prune.keep_heads", "--keep-heads")
NumLayersOpt = o.keyed(int | None, "prune.num_layers", "--num-layers")
LayersOpt = o.keyed(str | None, "prune.layers", "--layers", convert=o.int_list, metavar="I,J,...", note="E.g. 0,2,4.")
FfnOpt = o.keyed(int | None, "prune.ffn_hidden_dim", "--ffn-hidden-dim")
EmbOpt = o.keyed(int | None, "prune.emb_hidden_dim", "--emb-hidden-dim")


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
    task_name: o.TaskOpt = None,
    data_dir: o.DataDirOpt = None,
    max_seq_length: o.MaxSeqOpt = None,
    max_eval_samples: o.MaxEvalOpt = None,
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
    take, and that AutoModelForSequenceClassification loads once mudkd is imported. Given task data
    (--task-name, --data-dir), the student is evaluated on the dev set before any training, with a warning when it
    predicts one class from a near-constant [CLS].
    """
    resolved = build(prune_cli, locals(), stage="prune")
    from mudkd.core.stages import prune

    run_stage("prune", resolved, locals(), plan=prune.plan, run=prune.run, render=render_sizes)


def render_sizes(stage: str, result: Any, json_mode: bool) -> None:
    """One JSON document, or a table of parameters per component before and after pruning; then the student's
    health before training. Warnings go to stderr either way."""
    c.print_warnings(result.details)
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
    health = details.get("student_before_training")
    if health:
        c.print_table("student before training (dev set)", health_rows(health))


def health_rows(health: dict[str, Any]) -> list[tuple[str, Any]]:
    """The health figures of a student before training, as table rows."""
    rows: list[tuple[str, Any]] = [(f"dev {health['metric']}", health["value"])]
    if health.get("majority_rate") is not None:
        rows += [
            ("majority-class rate", health["majority_rate"]),
            ("predictions in its top class", f"{health['top_class_share']:.1%}"),
        ]
    spread = health.get("cls_spread")
    rows += [
        ("[CLS] spread (top layer)", "-" if spread is None else spread),
        ("degenerate", "yes" if health["degenerate"] else "no"),
        ("dev examples", health["examples"]),
    ]
    return rows
