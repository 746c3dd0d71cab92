"""``mudkd prune``: cut the teacher down to a ROSITA-style student by its Taylor scores."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mudkd.cli import common as c
from mudkd.errors import RecipeError
from mudkd.recipe import build_recipe

EPILOG = """Examples:

  $ mudkd prune --model-path models/teacher --scores models/scores -o models/student

  $ mudkd prune --model-path models/teacher --scores models/scores --keep-heads 4 --layers 0,2,4,6 -o models/s4

  $ mudkd prune recipes/glue_rosita.toml --set prune.ffn_hidden_dim=512 --dry-run
"""


def _option(flag: str, help_text: str) -> Any:
    return typer.Option(flag, help=help_text, show_default=False)


@c.report_errors
def prune_cli(
    recipe: c.RecipeArg = None,
    model_path: Annotated[str | None, _option("--model-path", "Fine-tuned teacher directory.")] = None,
    scores: Annotated[
        str | None, _option("--scores", "Directory written by 'mudkd score' (default: score.output_dir).")
    ] = None,
    keep_heads: Annotated[int | None, _option("--keep-heads", "Attention heads kept per layer.")] = None,
    num_layers: Annotated[int | None, _option("--num-layers", "Keep the bottom N teacher layers.")] = None,
    layers: Annotated[
        str | None,
        typer.Option(
            "--layers",
            help="Explicit 0-based teacher layers to keep, e.g. 0,2,4.",
            metavar="I,J,...",
            show_default=False,
        ),
    ] = None,
    ffn_hidden_dim: Annotated[int | None, _option("--ffn-hidden-dim", "FFN neurons kept per layer.")] = None,
    emb_hidden_dim: Annotated[
        int | None, _option("--emb-hidden-dim", "Rank of the factorised word embedding (-1 = no factorisation).")
    ] = None,
    output_dir: c.OutputDirOpt = None,
    seed: c.SeedOpt = None,
    device: c.DeviceOpt = None,
    set_: c.SetOpt = None,
    dry_run: c.DryRunOpt = False,
    json_: c.JsonOpt = False,
    overwrite: c.OverwriteOpt = False,
) -> None:
    """Prune the fine-tuned teacher into a small student by its Taylor importance scores.

    Keeps the bottom layers (or --layers), the top heads and FFN neurons of each by score, and factorises the
    word embedding by SVD. The student is a save_pretrained directory that `mudkd distill` and `mudkd finetune`
    take, and that AutoModelForSequenceClassification loads once mudkd is imported.
    """
    flags = {
        "teacher.model": model_path,
        **c.training_flags(
            "prune",
            scores=scores,
            keep_heads=keep_heads,
            num_layers=num_layers,
            layers=_parse_layers(layers),
            ffn_hidden_dim=ffn_hidden_dim,
            emb_hidden_dim=emb_hidden_dim,
            output_dir=output_dir,
        ),
        **c.run_flags(seed, device, overwrite),
    }
    resolved = build_recipe(recipe, flags=flags, sets=set_)
    from mudkd.core import prune

    if dry_run:
        c.render_plan(prune.plan(resolved), json_)
        return
    c.quiet_libraries()
    render_sizes(prune.run(resolved, events=c.make_events(json_)), json_)


def _parse_layers(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise RecipeError(
            f"--layers: expected comma-separated integers (got {text!r})", hint="e.g. --layers 0,2,4"
        ) from None


def render_sizes(result: Any, json_mode: bool) -> None:
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
