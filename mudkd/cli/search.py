"""``mudkd search``: the smallest knowledge budget within a tolerance of full HSK, found from one store."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from mudkd.cli import common as c
from mudkd.cli import options as o
from mudkd.knowledge.summary import format_bytes
from mudkd.recipe.search import SearchSettings, read_search

EPILOG = """Examples:

  $ mudkd search recipes/quickstart.toml --dry-run

  $ mudkd search recipes/quickstart.toml --tolerance 1 --seeds 2 --max-runs 12 -o outputs/qs-search

  $ mudkd search recipes/quickstart.toml --axes length --json --train-final
"""


ToleranceOpt = o.keyed(float | None, "search.tolerance", "--tolerance", schema=SearchSettings)
SeedsOpt = o.keyed(int | None, "search.seeds", "--seeds", schema=SearchSettings)
MaxRunsOpt = o.keyed(int | None, "search.max_runs", "--max-runs", schema=SearchSettings)
AxesOpt = o.keyed(str | None, "search.axes", "--axes", schema=SearchSettings, metavar="3d|depth|length|width")
SearchDirOpt = o.output_dir(
    "search.output_dir", schema=SearchSettings, note="From -o: relative to the working directory; resumed when rerun."
)
TrainFinalOpt = Annotated[
    bool, typer.Option("--train-final", metavar="", help="Distil the student at the chosen budget into OUT/final.")
]


def search_cli(
    recipe: Annotated[Path, typer.Argument(help="Recipe (TOML) of the student to distil.", show_default=False)],
    tolerance: ToleranceOpt = None,
    seeds: SeedsOpt = None,
    max_runs: MaxRunsOpt = None,
    axes: AxesOpt = None,
    output_dir: SearchDirOpt = None,
    train_final: TrainFinalOpt = False,
    set_: o.SetOpt = None,
    dry_run: o.DryRunOpt = False,
    json_: o.JsonOpt = False,
) -> None:
    """Find the smallest HSK budget whose dev metric is within --tolerance of full HSK, in far fewer runs than a grid.

    One teacher pass fills a store for the whole ladder of budgets; the full-HSK reference and the prediction-only
    baseline are measured, then the smallest rung and a bisection along the ladder (ordered by HSK fraction), every
    point with every seed. A budget is within tolerance when a paired one-sided test (non-inferiority) against full
    HSK says so; the answer is the smallest such rung with no failing rung above it, and every doubt (run cap, one
    seed, unresolved decisions) is printed as a caveat. Every finished run is recorded, so an interrupted search
    just continues.
    A \\[search] table in the recipe sets defaults (tolerance, seeds, max_runs, axes, ladder, output_dir).
    """
    base, settings = read_search(recipe, sets=set_, flags=o.overrides(search_cli, locals()))
    out = settings.output_dir or str(Path("outputs", f"{recipe.stem}-search"))
    from mudkd.core import search as core

    plan = core.plan(base, settings, recipe_path=str(recipe), output_dir=out)
    if dry_run:
        render_plan(core.estimate_plan(plan), json_)
        return
    c.quiet_libraries()
    with SearchDisplay(plan) as events:
        result = core.run(plan, events=events, train_final=train_final)
    render_result(result, json_)


# ---------------------------------------------------------------------------------------------------------------
# Rendering


def _fraction(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.3g}%"


def _mean_std(row: dict[str, Any]) -> str:
    if row.get("mean") is None:
        return "-"
    text = f"{row['mean']:.4f}"
    return text + (f" ± {row['std']:.4f}" if row.get("std") is not None else "")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def render_plan(document: dict[str, Any], json_mode: bool) -> None:
    """The ``--dry-run`` output: the ladder, the store, the run cap and the CPU estimate."""
    if json_mode:
        c.emit_json(document)
        return
    from rich import box
    from rich.table import Table

    console = c.stdout_console()
    table = Table(
        title=f"Search plan (dry run: nothing written) → {document['output_dir']}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for column in ("rung", "config_3d", "budget", "HSK"):
        table.add_column(column, justify="right" if column == "HSK" else "left", no_wrap=column != "budget")
    for index, rung in enumerate(document["ladder"]):
        table.add_row(str(index), rung["id"], rung["budget"], _fraction(rung["hsk_fraction"]))
    console.print(table)
    store = document["store"]
    size = format_bytes(store["bytes"]) if store.get("bytes") else "-"
    lines = [
        f"ladder: {len(document['ladder'])} budgets ({document['axes']}), tolerance {document['tolerance']:g} points, "
        f"seeds {', '.join(map(str, document['seeds']))}",
        f"store: {store['budget']}, {size}" + (" (given)" if store["given"] else f" → {store['path']}"),
        f"runs: at most {document['max_runs']} (the search can need {document['runs_needed_at_most']}; "
        f"the full grid is {document['grid_runs']}); {document['runs_recorded']} recorded already",
    ]
    estimate = document["estimate"]
    if estimate.get("source"):
        lines.append(
            f"CPU time: about {_duration(estimate['search_seconds_at_most'])} at most for the search, "
            f"{_duration(estimate['grid_seconds'])} for the full grid (from {estimate['source']})"
        )
        if estimate.get("store_seconds"):
            lines.append(f"store build: about {_duration(estimate['store_seconds'])} (one teacher pass)")
    lines += [f"Note: {note}" for note in document.get("notes", [])]
    for line in lines:
        console.print(line, highlight=False, markup=False)


def _table(rows: list[dict[str, Any]], title: str) -> Any:
    from rich import box
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("point", no_wrap=True)
    table.add_column("HSK", justify="right", no_wrap=True)
    table.add_column("runs", justify="right", no_wrap=True)
    table.add_column("mean ± std", justify="right", no_wrap=True)
    table.add_column("decision")
    for row in rows:
        if not row["runs"] and row["kind"] == "hsk":
            continue
        table.add_row(row["point"], _fraction(row["hsk_fraction"]), str(row["runs"]), _mean_std(row), row["decision"])
    return table


def render_result(result: Any, json_mode: bool) -> None:
    """The measured points, the chosen budget as a recipe snippet and flags, the compute, the files."""
    if json_mode:
        c.emit_json(result.to_dict())
        return
    from rich.markup import escape

    document = result.to_dict()
    console = c.stdout_console()
    title = f"Search ({document['metric']}) → {result.output_dir}"
    console.print(_table(result.points, escape(title)))  # a metric such as f1[spam] is not rich markup
    if document["reference"] is not None:
        console.print(
            f"full HSK {document['reference']:.4f}; within {document['tolerance']:g} points means ≥ "
            f"{document['threshold']:.4f}",
            highlight=False,
            markup=False,
        )
    console.print(document["reason"] + ("" if document["converged"] else " (not converged)"), highlight=False)
    for caveat in document.get("caveats") or ([document["caveat"]] if document.get("caveat") else []):
        console.print(f"Warning: {caveat}", highlight=False, markup=False)  # one line per caveat
    chosen = result.chosen
    if chosen is not None:
        console.print(
            f"chosen: {chosen['point']} (HSK {_fraction(chosen['hsk_fraction'])}, {_mean_std(chosen)})",
            highlight=False,
            markup=False,
        )
        console.print(chosen["snippet"], highlight=False, markup=False)
        console.print(f"$ {chosen['flags']}", highlight=False, markup=False)
    compute = result.compute
    console.print(
        f"compute: {compute['runs']} runs of the grid's {compute['grid_runs']}, "
        f"{_duration(compute['cpu_seconds'])} CPU vs about {_duration(compute['grid_cpu_seconds_estimate'])} "
        "for the grid (store build included in both)",
        highlight=False,
        markup=False,
    )
    if result.final:
        console.print(f"final student: {result.final['pred']}", highlight=False, markup=False)
    for path in (result.files.get("plot"), result.files["result"], result.files["runs"]):
        if path:
            console.print(f"wrote {path}", highlight=False, markup=False)


# ---------------------------------------------------------------------------------------------------------------
# Progress


class SearchDisplay(c.LiveDisplay):
    """Search progress on stderr: a live table of the measured points (terminal), else one line per run."""

    def __init__(self, plan: Any) -> None:
        from mudkd.core.search import SearchEvents

        super().__init__()
        self.rows: list[dict[str, Any]] = []
        self.status = ""
        display = self

        class Events(SearchEvents):
            def on_search_start(self, rows: list[dict[str, Any]], recorded: int) -> None:
                display.start(rows, recorded)

            def on_run_start(self, point: str, seed: int, run: int, max_runs: int) -> None:
                display.run_start(f"run {run}/{max_runs}: {point} seed {seed}")

            def on_point_start(self, point_id: str, stage: str) -> None:
                display.stage(stage)

            def on_start(self, stage: str, total_steps: int) -> None:
                display.total = total_steps

            def on_step(self, step: int, logs: dict[str, float]) -> None:
                display.step(step)

            def on_run_end(self, record: dict[str, Any], rows: list[dict[str, Any]]) -> None:
                display.run_end(record, rows)

            def on_message(self, text: str) -> None:
                display.message(text)

        self.events = Events()
        self.total = 0
        self.run_label = ""
        self.stage_name = ""

    def start(self, rows: list[dict[str, Any]], recorded: int) -> None:
        self.rows = rows
        if not self.start_live() and not self.quiet:
            c.info(f"search: {recorded} runs recorded earlier")

    def run_start(self, label: str) -> None:
        self.run_label, self.status = label, label
        if not self.animate and not self.quiet:
            c.info(label)
        self.refresh()

    def stage(self, stage: str) -> None:
        self.stage_name = stage
        self.status = f"{self.run_label}: distill {stage}"
        self.refresh()

    def step(self, step: int) -> None:
        self.status = f"{self.run_label}: distill {self.stage_name} step {step}/{self.total}"
        self.refresh()

    def run_end(self, record: dict[str, Any], rows: list[dict[str, Any]]) -> None:
        self.rows, self.status = rows, ""
        if not self.animate and not self.quiet:
            value = record.get("dev_metric")
            shown = "-" if value is None else f"{value:.4f}"
            c.info(f"  {record['point']} seed {record['seed']}: dev {record.get('metric')}={shown}")
        self.refresh()

    def render(self) -> Any:
        from rich.console import Group
        from rich.text import Text

        title = f"Search ({time.monotonic() - self.started:.0f}s)"
        return Group(_table(self.rows, title), Text(self.status))
