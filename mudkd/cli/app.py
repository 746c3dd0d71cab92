"""The ``mudkd`` command: one Typer app, one module per command."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from mudkd import __version__
from mudkd.cli import common
from mudkd.cli.augment import EPILOG as AUGMENT_EPILOG
from mudkd.cli.augment import augment_cli
from mudkd.cli.distill import distill_app
from mudkd.cli.env import EPILOG as ENV_EPILOG
from mudkd.cli.env import env_cli
from mudkd.cli.evaluate import EVALUATE_EPILOG, PREDICT_EPILOG, evaluate_cli, predict_cli
from mudkd.cli.export import EXPORT_EPILOG, REPORT_EPILOG, export_cli, report_cli
from mudkd.cli.finetune import EPILOG as FINETUNE_EPILOG
from mudkd.cli.finetune import finetune_cli
from mudkd.cli.outputs import outputs_app
from mudkd.cli.pipeline import EPILOG as PIPELINE_EPILOG
from mudkd.cli.pipeline import pipeline_cli
from mudkd.cli.prune import EPILOG as PRUNE_EPILOG
from mudkd.cli.prune import prune_cli
from mudkd.cli.push import EPILOG as PUSH_EPILOG
from mudkd.cli.push import push_cli
from mudkd.cli.recipe import recipe_app
from mudkd.cli.score import EPILOG as SCORE_EPILOG
from mudkd.cli.score import score_cli
from mudkd.cli.search import EPILOG as SEARCH_EPILOG
from mudkd.cli.search import search_cli
from mudkd.cli.sweep import EPILOG as SWEEP_EPILOG
from mudkd.cli.sweep import MERGE_EPILOG as SWEEP_MERGE_EPILOG
from mudkd.cli.sweep import sweep_cli, sweep_merge_cli
from mudkd.cli.wizard import EPILOG as WIZARD_EPILOG
from mudkd.cli.wizard import wizard_cli

try:  # typer >= 0.20 ships its own copy of click
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover
    from click import exceptions as click_exceptions

PROG = "mudkd"


class MudkdGroup(TyperGroup):
    """The root command, where every error becomes ``Error:``/``Hint:`` lines on stderr and an exit code, once.

    mudkd's own errors give exit 2 (bad input) or 1 (a failed run), Ctrl-C 130; usage errors (unknown flag or
    command, bad or missing value) become the same two lines, ``Error: …`` and ``Hint: run 'mudkd CMD --help'``,
    exit code 2.

    Click's standalone mode would print them in a rich box; here the command runs in non-standalone mode and this
    method does the exiting, so the console script, ``python -m mudkd`` and a test's ``CliRunner`` all behave alike.
    """

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        words = list(sys.argv[1:] if args is None else args)
        try:
            code = super().main(words, prog_name or PROG, complete_var, standalone_mode=False, **extra)
        except click_exceptions.ClickException as error:
            sys.exit(_report_click_error(self, error, words))
        except typer.Abort as error:
            if isinstance(error.__cause__, KeyboardInterrupt):  # click turns Ctrl-C into Abort
                sys.exit(common.report_error(error.__cause__))
            common.stderr_console().print("Aborted.", highlight=False, markup=False)
            sys.exit(1)
        except (typer.Exit, SystemExit):
            raise
        except (Exception, KeyboardInterrupt) as error:  # every command's errors, mapped here once
            if common.debugging() and not isinstance(error, KeyboardInterrupt):
                raise
            sys.exit(common.report_error(error))
        # without standalone mode an exit (typer.Exit, --help, Ctrl-C → 130) comes back as its code
        sys.exit(code if isinstance(code, int) and not isinstance(code, bool) else 0)


def _command_path(group: Any, words: list[str]) -> str:
    """``mudkd distill hsk``: the command the words name (for the hint when click gives no context)."""
    path, command = [PROG], group
    for word in words:
        commands = getattr(command, "commands", None)
        if word.startswith("-") or not commands or word not in commands:
            break
        path.append(word)
        command = commands[word]
    return " ".join(path)


def _report_click_error(group: Any, error: Any, words: list[str]) -> int:
    """Print a click usage error as ``Error:`` and ``Hint:`` lines; return its exit code."""
    if type(error).__name__ == "NoArgsIsHelpError":  # the help was shown already (a group without a command)
        return int(error.exit_code)
    message = " ".join(error.format_message().split()).replace("Value error, ", "")
    cause = error.__cause__  # typer's value coercion: a pydantic error holding the value given
    if hasattr(cause, "errors") and "(got " not in message:
        try:
            given = repr(cause.errors()[0]["input"])
        except (IndexError, KeyError, TypeError):
            given = None
        if given is not None and given not in message:  # a choice error names the value already
            message += f" (got {given})"
    ctx = getattr(error, "ctx", None)
    path = ctx.command_path if ctx is not None else _command_path(group, words)
    console = common.stderr_console()
    console.print(f"Error: {message}", highlight=False, markup=False)
    console.print(f"Hint: run '{path} --help'", highlight=False, markup=False)
    return int(error.exit_code)


app = typer.Typer(
    cls=MudkdGroup,
    name="mudkd",
    help="Small, fast BERTs: prune a fine-tuned teacher and distil its compressed hidden-state knowledge.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_show_locals=False,
    rich_markup_mode="rich",
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, PowerShell)
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mudkd {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", metavar="", help="Show library logs and progress bars.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", metavar="", help="Only results and errors.")] = False,
    debug: Annotated[bool, typer.Option("--debug", metavar="", help="Show tracebacks (or set MUDKD_DEBUG=1).")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, metavar="", help="Print the version.")
    ] = False,
) -> None:
    """mudkd: fine-tune, score, prune and distil BERTs with a knowledge budget (ACL 2021, "Marginal Utility
    Diminishes")."""
    common.set_global_options(verbose=verbose, quiet=quiet, debug=debug)


app.command("finetune", epilog=FINETUNE_EPILOG)(finetune_cli)
app.command("score", epilog=SCORE_EPILOG)(score_cli)
app.command("prune", epilog=PRUNE_EPILOG)(prune_cli)
app.command("evaluate", epilog=EVALUATE_EPILOG)(evaluate_cli)
app.command("predict", epilog=PREDICT_EPILOG)(predict_cli)
app.command("export", epilog=EXPORT_EPILOG)(export_cli)
app.command("report", epilog=REPORT_EPILOG)(report_cli)
app.command("push", epilog=PUSH_EPILOG)(push_cli)
app.command("augment", epilog=AUGMENT_EPILOG)(augment_cli)
app.add_typer(distill_app, name="distill")
app.command("pipeline", epilog=PIPELINE_EPILOG)(pipeline_cli)
app.command("sweep", epilog=SWEEP_EPILOG)(sweep_cli)
app.command("sweep-merge", epilog=SWEEP_MERGE_EPILOG)(sweep_merge_cli)
app.command("search", epilog=SEARCH_EPILOG)(search_cli)

app.command("wizard", epilog=WIZARD_EPILOG)(wizard_cli)
app.add_typer(recipe_app, name="recipe")
app.add_typer(outputs_app, name="outputs")
app.command("env", epilog=ENV_EPILOG)(env_cli)


def main() -> None:
    """Console-script entry point (also ``python -m mudkd``)."""
    app(prog_name=PROG)
