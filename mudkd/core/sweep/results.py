"""Sweep results: the files a sweep directory holds, its finished points' records, CSV/JSON, and merging shards.

Layout of a sweep's ``output_dir``::

    sweep.json                   the sweep, its points (in order) and stores
    store[-group]/               the teacher-free store(s), reused when the sweep is rerun
    store[-group].json           beside each store: its build's seconds and bytes
    points/<id>/hsk/             the HSK-distilled student of the point
    points/<id>/pred/            its final student (prediction distillation)
    points/<id>/result.json      written atomically when the point finishes; its presence means "done"
    results.csv, results.json    one row/record per finished run (a point × a seed): its seed, dev metric, the
                                 update of the checkpoint selected and on which set, its updates
    summary.csv                  one row per point: mean ± std and n of the dev metric over its seeds, and its
                                 difference to each baseline with a 95 % CI (paired over shared seeds)
    marginal_utility.png         dev metric against the HSK fraction (log x): means with std error bars, the
                                 no-HSK and full-HSK baselines as bands, the untrained student as a dashed line

Shards write the same layout, and :func:`merge` combines their directories.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mudkd.core.outputs import (
    canonical_output,
    check_folder,
    check_no_overlap,
    mark_folder,
    output_lock,
    read_marker,
    write_json_atomic,
    write_text_atomic,
)
from mudkd.core.ownership import register_layout
from mudkd.core.sweep.plot import write_plots
from mudkd.core.sweep.summary import record_group, summarize, summary_csv
from mudkd.errors import RecipeError
from mudkd.knowledge.budget import BUDGET_AXIS_COLUMNS, BUDGET_SCHEME_COLUMNS, BUDGET_SIZE_COLUMNS

RESULT_FILE = "result.json"
SWEEP_FILE = "sweep.json"
SUMMARY_FILE = "summary.csv"
SWEEP_COMMANDS = ("sweep", "sweep-merge")
"""The commands whose folders a sweep (or a merge) may write into: recognised by the marker, never by sweep.json."""

# What a sweep folder may hold besides mudkd outputs with their own markers (stores, point models): the layout
# above. A point's hsk/pred folders are listed too, so a point interrupted before its model's first file is fine.
for _command in SWEEP_COMMANDS:
    register_layout(
        _command,
        files=(
            SWEEP_FILE,
            "results.csv",
            "results.json",
            SUMMARY_FILE,
            "*.png",
            "store*.json",
            f"points/*/{RESULT_FILE}",
        ),
        folders=("points", "points/*", "points/*/hsk", "points/*/pred"),
    )


@dataclass
class SweepResult:
    """What a sweep (or a merge) returns: every finished point's record, and the files written."""

    output_dir: str
    records: list[dict[str, Any]]
    plots: list[str]
    results_csv: str
    results_json: str
    summary_csv: str | None = None
    stores: list[dict[str, Any]] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    shard: str | None = None
    notes: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)

    @property
    def summary(self) -> list[dict[str, Any]]:
        """One row per point: mean ± std and n over its seeds (see :func:`mudkd.core.sweep.summary.summarize`)."""
        return summarize(self.records)

    def to_dict(self) -> dict[str, Any]:
        return {
            "output_dir": self.output_dir,
            "points": self.records,
            "summary": self.summary,
            "plots": self.plots,
            "results_csv": self.results_csv,
            "results_json": self.results_json,
            "summary_csv": self.summary_csv,
            "stores": self.stores,
            "ran": self.ran,
            "skipped": self.skipped,
            "pending": self.pending,
            "shard": self.shard,
            "notes": self.notes,
            "stale": self.stale,
        }


def check_sweep_dir(directory: Path, *, inputs: Mapping[str, str | None] | None = None) -> None:
    """A sweep writes into a new directory or its own earlier one (to resume or merge), never into anything else.

    Raises:
        RecipeError: A symlink, a file, a non-empty folder that holds no sweep, or one that overlaps an input.
    """
    if directory.is_symlink():
        raise RecipeError(f"{directory}: output_dir is a symbolic link", hint="pass the real directory")
    if directory.exists() and not directory.is_dir():
        raise RecipeError(f"{directory}: exists and is not a directory", hint="choose another output_dir")
    check_folder(directory, commands=SWEEP_COMMANDS, what="output_dir", kind="sweep", error=RecipeError)
    check_no_overlap(directory, inputs or {}, what="sweep directory")


def collect_records(output_dir: Path, order: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Every ``points/<id>/result.json`` under ``output_dir``, in ``order`` (ids not in it come last, sorted)."""
    records = {}
    for path in sorted((output_dir / "points").glob(f"*/{RESULT_FILE}")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # written atomically, so only a foreign file can be unreadable
        records[record.get("id", path.parent.name)] = record
    rank = {point_id: index for index, point_id in enumerate(order or [])}
    return sorted(records.values(), key=lambda r: (rank.get(r["id"], len(rank)), r["id"]))


def current_records(
    records: Sequence[dict[str, Any]], planned: Mapping[str, str | None]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Split records into the sweep's current runs (an id it plans, finished with the planned recipe hash) and the
    ids of stale ones (left on disk by an earlier version of the sweep file: other seeds, grid values, recipe).

    Stale records stay on disk but are never averaged into a point (e.g. an old unreplicated ``no_hsk``).
    """
    current = [r for r in records if r["id"] in planned and planned[r["id"]] == r.get("recipe_hash")]
    kept = {id(r) for r in current}
    return current, [r["id"] for r in records if id(r) not in kept]


CSV_COLUMNS = (
    "id",
    "point",
    "kind",
    "series",
    *BUDGET_SIZE_COLUMNS,
    *BUDGET_AXIS_COLUMNS,
    *BUDGET_SCHEME_COLUMNS,
    "seed",
    "updates",
    "hsk_updates",
    "pred_updates",
    "pred_warmup",
    "metric",
    "dev_metric",
    "selected_step",
    "selection_evaluations",
    "selected_on",
    "hsk_seconds",
    "pred_seconds",
    "teacher_free",
    "budget",
    "model_dir",
)


def results_csv(records: Sequence[Mapping[str, Any]]) -> str:
    """The records as CSV: fixed columns, then ``dev_<name>`` for every dev metric."""
    metric_names = sorted({name for r in records for name in r.get("dev_metrics", {})})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, *(f"dev_{name}" for name in metric_names)])
    for record in records:
        metrics = record.get("dev_metrics", {})
        record = {**record, "point": record_group(record)}
        writer.writerow(
            [_csv_value(record.get(column)) for column in CSV_COLUMNS]
            + [_csv_value(metrics.get(name)) for name in metric_names]
        )
    return buffer.getvalue()


def _csv_value(value: Any) -> Any:
    return "" if value is None else value


def write_results(output_dir: Path, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Write results.csv, results.json, summary.csv and the plot(s); returns their paths."""
    csv_path, json_path = output_dir / "results.csv", output_dir / "results.json"
    summary_path = output_dir / SUMMARY_FILE
    write_text_atomic(csv_path, results_csv(records))
    write_json_atomic(json_path, records)
    write_text_atomic(summary_path, summary_csv(summarize(records)))
    plots = write_plots(records, output_dir)
    return {
        "results_csv": str(csv_path),
        "results_json": str(json_path),
        "summary_csv": str(summary_path),
        "plots": plots,
    }


def merge(output_dirs: Sequence[str | Path], *, into: str | Path) -> SweepResult:
    """Combine the finished points of several shard directories into ``into`` (results, plots, sweep.json).

    Each point's ``result.json`` is copied into ``into/points/<id>/``; models stay where they were trained (the
    records keep their paths). ``into`` may be one of the inputs.

    Raises:
        RecipeError: A directory that is not a sweep output, or one point id finished with different recipes.
    """
    target = canonical_output(into)
    sources = [Path(d) for d in output_dirs]
    check_sweep_dir(target)  # before reading anything from it: a folder is a sweep's by its marker only
    ours = (read_marker(target) or {}).get("command") in SWEEP_COMMANDS
    if ours and (target / SWEEP_FILE).is_file() and target.resolve() not in {s.resolve() for s in sources}:
        sources.append(target)
    problems: list[str] = []
    order: list[str] = []
    records: dict[str, dict[str, Any]] = {}
    origins: dict[str, Path] = {}
    sweep_document = None
    for source in sources:
        if (read_marker(source) or {}).get("command") not in SWEEP_COMMANDS:
            problems.append(f"{source}: not a sweep output directory (no mudkd sweep marker)")
            continue
        found = collect_records(source)
        if (source / SWEEP_FILE).is_file():
            document = json.loads((source / SWEEP_FILE).read_text())
            sweep_document = sweep_document or document
            order += [p["id"] for p in document.get("points", []) if p["id"] not in order]
            # runs this source's own sweep no longer plans (an earlier version of its file) are not merged
            found = current_records(found, {p["id"]: p.get("recipe_hash") for p in document.get("points", [])})[0]
        for record in found:
            seen = records.get(record["id"])
            if seen is not None and seen.get("recipe_hash") != record.get("recipe_hash"):
                problems.append(
                    f"point {record['id']}: finished with different recipes in {origins[record['id']]} and {source}"
                )
                continue
            if seen is None:
                records[record["id"]] = record
                origins[record["id"]] = source
    if problems:
        raise RecipeError(problems[0], hint="merge only shards of the same sweep", problems=problems)
    check_sweep_dir(target, inputs={str(s): str(s) for s in sources if s.resolve() != target.resolve()})
    with output_lock(target):
        check_sweep_dir(target)  # again under the lock
        if read_marker(target) is None:
            target.mkdir(parents=True, exist_ok=True)
            mark_folder(target, command="sweep-merge")
        return _merge_locked(target, sources, records, origins, order, sweep_document)


def _merge_locked(
    target: Path,
    sources: list[Path],
    records: dict[str, dict[str, Any]],
    origins: dict[str, Path],
    order: list[str],
    sweep_document: dict[str, Any] | None,
) -> SweepResult:
    for point_id, record in records.items():
        destination = target / "points" / point_id
        destination.mkdir(parents=True, exist_ok=True)
        if not (destination / RESULT_FILE).is_file() or origins[point_id].resolve() != target.resolve():
            write_json_atomic(destination / RESULT_FILE, record)
    if sweep_document is not None:
        write_json_atomic(target / SWEEP_FILE, {**sweep_document, "merged_from": [str(s) for s in sources]})
    found = collect_records(target, order)
    merged = [record for record in found if record["id"] in records]
    stale = [record["id"] for record in found if record["id"] not in records]
    files = write_results(target, merged)
    return SweepResult(
        output_dir=str(target),
        records=merged,
        **files,
        pending=[point_id for point_id in order if point_id not in records],
        stale=stale,
    )
