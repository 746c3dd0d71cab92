"""``mudkd sweep`` and ``mudkd sweep-merge``: a grid of knowledge budgets, one results table, one curve."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from mudkd.cli import common as c
from mudkd.cli import options as o
from mudkd.knowledge.summary import format_bytes
from mudkd.recipe.sweep import Sweep, make_recipe_builder, parse_shard, read_sweep

EPILOG = """Examples:

  $ mudkd sweep recipes/sweep_sst2_minilm.toml --dry-run

  $ mudkd sweep recipes/sweep_sst2_minilm.toml --shard 1/2 -o outputs/sweep_a

  $ mudkd sweep recipes/sweep_sst2_minilm.toml --set hsk.max_steps=50 --json > results.json
"""
MERGE_EPILOG = """Examples:

  $ mudkd sweep-merge outputs/sweep_a outputs/sweep_b -o outputs/sweep

  $ mudkd sweep-merge outputs/sweep_* -o outputs/sweep --json
"""

SweepDirOpt = o.output_dir("output_dir", schema=Sweep, note="From -o: relative to the working directory.")
ShardOpt = Annotated[
    str | None,
    typer.Option(
        "--shard",
        help="Run only shard i of n (1-based, round-robin over the grid), e.g. 1/4.",
        metavar="I/N",
        show_default=False,
    ),
]


def sweep_cli(
    sweep_file: Annotated[
        Path, typer.Argument(help="Sweep recipe (TOML): a base recipe plus a grid.", show_default=False)
    ],
    shard: ShardOpt = None,
    output_dir: SweepDirOpt = None,
    task_name: o.TaskOpt = None,
    data_dir: o.DataDirOpt = None,
    train_file: o.TrainFileOpt = None,
    validation_file: o.ValidationFileOpt = None,
    text_columns: o.TextColumnsOpt = None,
    label_column: o.LabelColumnOpt = None,
    max_train_samples: o.MaxTrainOpt = None,
    set_: o.SetOpt = None,
    dry_run: o.DryRunOpt = False,
    json_: o.JsonOpt = False,
) -> None:
    """Distil one student per knowledge budget of a grid and plot the marginal utility of HSK.

    The teacher runs once, into a store that serves every point; each point then trains teacher-free (HSK, then
    prediction distillation). Finished points are skipped on rerun, so an interrupted sweep just continues.
    --set takes sweep keys (output_dir=..., grid.keep_tokens=[...]) and base-recipe keys (hsk.max_steps=50).
    """
    flags = o.overrides(sweep_cli, locals())  # -o sets the sweep; the data flags set its base recipe
    sweep = read_sweep(sweep_file, sets=set_, flags=flags)
    sweep.output_dir = sweep.output_dir or str(Path("outputs", sweep_file.stem))  # default: ./outputs/<file name>
    builder = make_recipe_builder(sweep, set_, flags)
    shard_range = parse_shard(shard) if shard else None
    from mudkd.core import sweep as core

    if dry_run:
        render_plan(core.plan(sweep, builder, shard=shard_range).to_dict(), json_)
        return
    c.quiet_libraries()
    with SweepDisplay(json_) as events:
        result = core.run(sweep, builder, shard=shard_range, events=events)
    render_result(result, json_)


def sweep_merge_cli(
    directories: Annotated[list[Path], typer.Argument(help="Output directories of sweep shards.", show_default=False)],
    output_dir: Annotated[
        Path, typer.Option(*o.OUTPUT_DIR, help="Directory of the merged results.", show_default=False)
    ],
    json_: o.JsonOpt = False,
) -> None:
    """Combine the results of sweep shards (run with --shard i/n) into one table, curve and plot.

    Each point's result.json is copied into OUTPUT_DIR/points/<id>/; the trained models stay where they are.
    """
    from mudkd.core import sweep as core

    render_result(core.merge(directories, into=output_dir), json_)


# ---------------------------------------------------------------------------------------------------------------
# Rendering


def _fraction(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.3g}%"


def _metric(record: dict[str, Any]) -> str:
    value = record.get("dev_metric")
    return "-" if value is None else f"{value:.4f}"


def _budget(row: dict[str, Any]) -> str:
    """The budget in a table cell: ``K=1 k=10 ρ=0.1`` (schemes are in the series column)."""
    if not row.get("keep_layers"):
        return "-"
    return f"K={row['keep_layers']} k={row['keep_tokens']} ρ={row['keep_hidden']:g}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def _updates(row: dict[str, Any]) -> str:
    """A point's training in a table cell: ``126 (63+63)`` (HSK + prediction), ``126 pred``, ``0 (eval)``."""
    if row.get("kind") == "untrained":
        return "0 (eval)"
    total = row.get("updates")
    if total is None:
        return "-"
    hsk = row.get("hsk_updates") or 0
    return f"{total} ({hsk}+{row.get('pred_updates')})" if hsk else f"{total} pred"


def render_plan(plan: dict[str, Any], json_mode: bool) -> None:
    """The ``--dry-run`` output: the expanded grid with budgets and HSK fractions, and the store(s)."""
    if json_mode:
        c.emit_json({"dry_run": True, **plan})
        return
    from rich import box
    from rich.table import Table

    title = f"Sweep plan (dry run: nothing written) → {plan['output_dir']}"
    if plan.get("shard"):
        title += f", shard {plan['shard']}"
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("point", no_wrap=True)
    table.add_column("series", min_width=10, overflow="fold")
    table.add_column("budget", no_wrap=True)
    table.add_column("HSK", justify="right", no_wrap=True)
    table.add_column("updates", justify="right", no_wrap=True)
    table.add_column("HSK from")
    table.add_column("done", no_wrap=True)
    for row in plan["points"]:
        source = row["store"] or ("teacher" if row["kind"] == "full_hsk" else "-")
        table.add_row(
            row["id"],
            row["series"],
            _budget(row),
            _fraction(row["hsk_fraction"]),
            _updates(row),
            source,
            "yes" if row["done"] else "",
        )
    c.stdout_console().print(table)
    if plan["stores"]:
        stores = Table(
            title="Teacher-free store(s): the teacher runs once per store", title_justify="left", box=box.SIMPLE_HEAD
        )
        for column in ("store", "budget", "bytes/example", "size", "serves"):
            stores.add_column(column, no_wrap=column not in {"store", "budget"})
        for store in plan["stores"]:
            size = format_bytes(store["bytes"]) if store.get("bytes") else "-"
            stores.add_row(
                store["name"],
                store["budget"],
                c.format_value(store["bytes_per_example"]),
                size,
                f"{len(store['points'])} points" + (" (given)" if store["given"] else ""),
            )
        c.stdout_console().print(stores)
    for store in plan["stores"]:
        c.stdout_console().print(f"{store['name']}: {store['path']}", highlight=False, markup=False)
    for note in plan.get("notes", []):
        c.stdout_console().print(f"Note: {note}", highlight=False, markup=False)


def render_result(result: Any, json_mode: bool) -> None:
    """Results table, text curve and file paths on stdout; or one JSON document."""
    if json_mode:
        c.emit_json(result.to_dict())
        return
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    from mudkd.cli.sweep_chart import text_curve
    from mudkd.core.sweep.summary import format_mean_std

    records = result.records
    summary = result.summary
    metric = next((r["metric"] for r in records if r.get("metric")), "metric")
    table = Table(
        title=f"Sweep results ({len(summary)} points, {len(records)} runs; mean ± std over seeds, time per run) "
        f"→ {result.output_dir}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("point", no_wrap=True)
    table.add_column("series", min_width=10, overflow="fold")
    table.add_column("budget", no_wrap=True)
    for column in ("HSK", escape(f"dev {metric}"), "n", "time"):  # f1[spam] is not rich markup
        table.add_column(column, justify="right", no_wrap=True)
    for row in summary:  # the updates of every run are in results.csv and summary.csv (and the --dry-run table)
        table.add_row(
            row["point"],
            row["series"],
            _budget(row),
            "-" if row["kind"] == "untrained" else _fraction(row["hsk_fraction"]),
            format_mean_std(row),
            str(row["n"]),
            _seconds(row.get("seconds")),
        )
    console = c.stdout_console()
    console.print(table)
    for line in text_curve(records):
        console.print(line, highlight=False, markup=False)
    if any(row["kind"] == "untrained" for row in summary):
        console.print(
            "untrained: the student before any training (the level distillation starts from, not a result)",
            highlight=False,
            markup=False,
        )
    for path in [*result.plots, result.results_csv, result.results_json, *filter(None, [result.summary_csv])]:
        console.print(f"wrote {path}", highlight=False, markup=False)
    if result.stale:
        c.info(
            f"{len(result.stale)} finished runs in {result.output_dir}/points belong to an earlier version of the "
            f"sweep and are left out of the results: {', '.join(result.stale[:6])}"
            f"{' ...' if len(result.stale) > 6 else ''}"
        )
    if result.pending:
        c.info(
            f"{len(result.pending)} points are not finished in {result.output_dir} (other shards?): "
            f"{', '.join(result.pending[:6])}{' ...' if len(result.pending) > 6 else ''}"
        )
        c.info("Hint: combine shard directories with 'mudkd sweep-merge DIR... -o OUT'")


# ---------------------------------------------------------------------------------------------------------------
# Progress


class SweepDisplay(c.LiveDisplay):
    """Sweep progress on stderr: a live table filling in as points finish (terminal), else one line per event."""

    def __init__(self, json_mode: bool) -> None:
        from mudkd.core.sweep import SweepEvents

        super().__init__()
        display = self

        class Events(SweepEvents):
            def on_sweep_start(self, rows: list[dict[str, Any]], skipped: list[str]) -> None:
                display.start(rows, skipped)

            def on_point_start(self, point_id: str, stage: str) -> None:
                display.point_stage(point_id, stage)

            def on_start(self, stage: str, total_steps: int) -> None:
                display.stage_total = total_steps

            def on_step(self, step: int, logs: dict[str, float]) -> None:
                display.step(step)

            def on_point_end(self, record: dict[str, Any]) -> None:
                display.finish(record)

            def on_message(self, text: str) -> None:
                display.message(text)

        self.events = Events()
        self.rows: dict[str, dict[str, Any]] = {}
        self.status: dict[str, str] = {}
        self.current: str | None = None
        self.stage = ""
        self.order: list[str] = []
        self.stage_total = 0

    def start(self, rows: list[dict[str, Any]], skipped: list[str]) -> None:
        self.rows = {row["id"]: row for row in rows}
        self.status = {row["id"]: ("done earlier" if row["id"] in skipped else "waiting") for row in rows}
        self.order = [row["id"] for row in rows]
        if not self.start_live() and not self.quiet:
            c.info(f"sweep: {len(rows)} points, {len(skipped)} already done")

    def _position(self, point_id: str) -> str:
        return f"[{self.order.index(point_id) + 1}/{len(self.order)}]"

    def point_stage(self, point_id: str, stage: str) -> None:
        self.current, self.stage = point_id, stage
        self.status[point_id] = stage
        if not self.animate and not self.quiet:
            c.info(f"{self._position(point_id)} {point_id}: distill {stage}")
        self.refresh()

    def step(self, step: int) -> None:
        if self.current is not None and self.status.get(self.current) != "done":
            self.status[self.current] = f"{self.stage} step {step}/{self.stage_total}"
            self.refresh()

    def finish(self, record: dict[str, Any]) -> None:
        self.rows[record["id"]] = {**self.rows.get(record["id"], {}), **record}
        self.status[record["id"]] = "done"
        if not self.animate and not self.quiet:
            c.info(
                f"{self._position(record['id'])} {record['id']}: dev {record['metric']}={_metric(record)} "
                f"(HSK {_fraction(record['hsk_fraction'])}, {record['seconds']:.1f}s)"
            )
        self.refresh()

    def render(self) -> Any:
        from rich import box
        from rich.table import Table

        elapsed = time.monotonic() - self.started
        table = Table(title=f"Sweep ({elapsed:.0f}s)", title_justify="left", box=box.SIMPLE_HEAD)
        for column in ("point", "budget", "HSK", "dev metric", "time", "status"):
            right = column in {"HSK", "dev metric", "time"}
            table.add_column(column, justify="right" if right else "left", no_wrap=column != "status")
        for point_id in self.order:
            row = self.rows[point_id]
            seconds = row.get("seconds")
            table.add_row(
                point_id,
                _budget(row),
                _fraction(row.get("hsk_fraction")),
                _metric(row),
                "-" if seconds is None else f"{seconds:.1f}s",
                self.status.get(point_id, ""),
            )
        return table
