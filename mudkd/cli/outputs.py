"""``mudkd outputs check`` and ``adopt``: whether mudkd can prove a folder is its own output, and re-recording one.

mudkd replaces (``--overwrite``) only an output whose marker records the path it was committed to and every file it
wrote, unchanged and with nothing added (see README, "Safety"). A folder moved on purpose, or made by an earlier
mudkd, is refused until ``mudkd outputs adopt DIR`` records it as it is now.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from mudkd.cli import common as c
from mudkd.cli import options as o
from mudkd.errors import MudkdError

CHECK_EPILOG = """Examples:

  $ mudkd outputs check models/teacher

  $ mudkd outputs check stores/sst2 --deep --json
"""

ADOPT_EPILOG = """Examples:

  $ mudkd outputs adopt models/teacher          # shows what it will own, then asks

  $ mudkd outputs adopt outputs/sweep_sst2 --yes
"""

outputs_app = typer.Typer(
    help="Check and adopt mudkd's outputs (what --overwrite may replace).",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode="rich",
)

DirArg = Annotated[Path, typer.Argument(help="The output folder.", show_default=False)]
DeepOpt = Annotated[
    bool,
    typer.Option("--deep", metavar="", help="Re-hash every file (default: only files whose size or mtime changed)."),
]
YesOpt = Annotated[
    bool, typer.Option("--yes", "-y", metavar="", help="Adopt without asking (required without a terminal).")
]


def _size(count: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024  # type: ignore[assignment]
    return str(count)


def check_cli(directory: DirArg, deep: DeepOpt = False, json_: o.JsonOpt = False) -> None:
    """Check whether mudkd can prove DIR is its own output (exit 0) or not (exit 1); writes nothing.

    Proof: the marker's record names this path, every recorded file is there unchanged, and nothing else is (for a
    sweep, search or pipeline folder: every file is one its command writes, and every output in it is proved).
    """
    from mudkd.core.ownership import verify

    if not directory.is_dir():
        raise MudkdError(f"{directory}: no such directory", hint="pass an output folder")
    proof = verify(directory, deep=deep)
    if json_:
        c.emit_json(proof.to_dict())
    else:
        verdict = f"{directory}: {proof.describe()}" + (f" ({proof.command} output)" if proof.owned else "")
        c.stdout_console().print(verdict, highlight=False, markup=False)
    if not proof.owned:
        raise typer.Exit(1)


def adopt_cli(directory: DirArg, yes: YesOpt = False, json_: o.JsonOpt = False) -> None:
    """Record DIR, as it is now and where it is now, as mudkd's output (so --overwrite may replace it).

    For a folder mudkd made that was moved on purpose, changed by hand, or written by an earlier mudkd. Shows what it
    will own first; asks on a terminal, needs --yes otherwise. Every file in DIR becomes mudkd's to replace.
    """
    from mudkd.core.outputs import adopt, adoption

    summary = adoption(directory)
    if not json_:
        _print_adoption(summary)
    if not yes:
        _confirm(directory)
    adopt(directory)
    if json_:
        c.emit_json({**summary, "adopted": True})
    else:
        c.stdout_console().print(f"adopted {summary['directory']}", highlight=False, markup=False)


def _print_adoption(summary: dict[str, Any]) -> None:
    """What adopting will own, on stderr: the total, then one line per output in the folder."""
    console = c.stderr_console()
    total = f"mudkd will own {summary['files']} files ({_size(summary['bytes'])}) in {summary['directory']}:"
    console.print(total, highlight=False, markup=False)
    for row in summary["outputs"]:
        what = (
            "a folder written in place, proved by its layout"
            if row["in_place"]
            else (f"{row['files']} files, {_size(row['bytes'])}")
        )
        console.print(f"  {row['directory']}: {row['command']} ({what})", highlight=False, markup=False)


def _confirm(directory: Path) -> None:
    """Ask on a terminal; refuse without one (a script must say --yes)."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise MudkdError(
            "adopting needs a confirmation and there is no terminal",
            hint=f"pass --yes: mudkd outputs adopt {directory} --yes",
        )
    if not typer.confirm("Adopt? --overwrite may then replace all of it", default=False, err=True):
        raise typer.Exit(1)


outputs_app.command("check", epilog=CHECK_EPILOG)(check_cli)
outputs_app.command("adopt", epilog=ADOPT_EPILOG)(adopt_cli)
