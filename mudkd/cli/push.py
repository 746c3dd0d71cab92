"""``mudkd push``: upload a folder mudkd made to the Hugging Face Hub, or list what would be sent."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mudkd.cli import common as c
from mudkd.cli import options as o
from mudkd.knowledge.summary import format_bytes

EPILOG = """Examples:

  $ mudkd push outputs/quickstart/final my-org/minilm-rt-student --dry-run

  $ mudkd push outputs/quickstart/final my-org/minilm-rt-student --private

  $ mudkd push ship/ my-org/minilm-rt-student-int8 --revision int8
"""


def push_cli(
    directory: Annotated[str, typer.Argument(help="A folder mudkd made (final/, an export --output-dir).")],
    repo_id: Annotated[str, typer.Argument(help="The model repository, OWNER/NAME (created if missing).")],
    private: Annotated[bool, typer.Option("--private", metavar="", help="Create the repository private.")] = False,
    revision: Annotated[
        str | None, typer.Option("--revision", help="Branch to push to (default: main).", show_default=False)
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", metavar="", help="List the files, bytes and card it would send; no network.")
    ] = False,
    json_: o.JsonOpt = False,
) -> None:
    """Upload a folder mudkd made to the Hugging Face Hub, with its model card.

    Refuses a folder mudkd did not make or whose weights are not finite, and a repository id with a typo, before
    anything is sent. The token comes from 'hf auth login' or HF_TOKEN. Hidden files (mudkd's marker) stay local.
    """
    from mudkd.core.push import push

    c.quiet_libraries()  # the finite-weights check loads the model: no "Loading weights" bar
    result = push(directory, repo_id, private=private, revision=revision, dry_run=dry_run).to_dict()
    if json_:
        c.emit_json(result)
        return
    _print(result)


def _print(result: dict[str, Any]) -> None:
    from rich.table import Table

    verb = "would send" if not result["sent"] else "sent"
    table = Table(
        title=f"push: {verb} {len(result['files'])} files, {format_bytes(result['bytes'])} to {result['repo_id']}",
        title_justify="left",
    )
    table.add_column("file")
    table.add_column("bytes", justify="right")
    for entry in result["files"]:
        table.add_row(entry["path"], f"{entry['bytes']:,}")
    console = c.stdout_console()
    console.print(table)
    if result["sent"]:
        console.print(f"commit: {result['url']}", highlight=False, markup=False)
    elif result["card"] is not None:
        console.print("\nmodel card (README.md):\n", highlight=False, markup=False)
        console.print(result["card"], highlight=False, markup=False)
    if result["card"] is None:
        c.warn("the folder has no README.md: the repository gets no model card")
