"""The ``mudkd`` command: one Typer app, one module per command."""

from __future__ import annotations

from typing import Annotated

import typer

from mudkd import __version__
from mudkd.cli import common
from mudkd.cli.distill import distill_app
from mudkd.cli.export import EXPORT_EPILOG, REPORT_EPILOG, export_cli, report_cli
from mudkd.cli.finetune import EPILOG as FINETUNE_EPILOG
from mudkd.cli.finetune import finetune_cli
from mudkd.cli.pipeline import EPILOG as PIPELINE_EPILOG
from mudkd.cli.pipeline import pipeline_cli
from mudkd.cli.prune import EPILOG as PRUNE_EPILOG
from mudkd.cli.prune import prune_cli
from mudkd.cli.recipe import recipe_app
from mudkd.cli.score import EPILOG as SCORE_EPILOG
from mudkd.cli.score import score_cli
from mudkd.cli.sweep import EPILOG as SWEEP_EPILOG
from mudkd.cli.sweep import MERGE_EPILOG as SWEEP_MERGE_EPILOG
from mudkd.cli.sweep import sweep_cli, sweep_merge_cli
from mudkd.cli.wizard import EPILOG as WIZARD_EPILOG
from mudkd.cli.wizard import wizard_cli

app = typer.Typer(
    name="mudkd",
    help="Small, fast BERTs: prune a fine-tuned teacher and distil its compressed hidden-state knowledge.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_show_locals=False,
    rich_markup_mode="rich",
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mudkd {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show library logs and progress bars.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only results and errors.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks (or set MUDKD_DEBUG=1).")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """mudkd: fine-tune, score, prune and distil BERTs with a knowledge budget (ACL 2021, "Marginal Utility
    Diminishes")."""
    common.set_global_options(verbose=verbose, quiet=quiet, debug=debug)


app.command("finetune", epilog=FINETUNE_EPILOG)(finetune_cli)
app.command("score", epilog=SCORE_EPILOG)(score_cli)
app.command("prune", epilog=PRUNE_EPILOG)(prune_cli)
app.command("export", epilog=EXPORT_EPILOG)(export_cli)
app.command("report", epilog=REPORT_EPILOG)(report_cli)
app.add_typer(distill_app, name="distill")
app.command("pipeline", epilog=PIPELINE_EPILOG)(pipeline_cli)
app.command("sweep", epilog=SWEEP_EPILOG)(sweep_cli)
app.command("sweep-merge", epilog=SWEEP_MERGE_EPILOG)(sweep_merge_cli)

app.command("wizard", epilog=WIZARD_EPILOG)(wizard_cli)
app.add_typer(recipe_app, name="recipe")


def main() -> None:
    """Console-script entry point."""
    app()
