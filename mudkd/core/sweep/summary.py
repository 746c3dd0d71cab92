"""Per-point statistics of a sweep: the runs (seeds) of each point reduced to mean ± std and n.

A sweep with ``seeds`` runs each point once per seed (ids ``<point>-s<seed>``); tables, ``summary.csv``, the plot
and the terminal chart all read :func:`summarize`, which groups the finished runs by point. ``std`` is the sample
standard deviation over the seeds (n − 1 in the denominator), None for a single run.

Every point also gets its difference to each baseline of the sweep (``vs_no_hsk``, ``vs_full_hsk``) with a 95 %
confidence interval and a two-sided p (:mod:`mudkd.core.stats`): paired over the seeds when both sides ran the same
two or more seeds (a sweep's points do), else Welch's test. These are per-comparison numbers, not a verdict: a
report that makes several claims corrects them together (Holm), as ``benchmarks/findings_claims.py`` does.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from mudkd.core import stats
from mudkd.knowledge.budget import BUDGET_AXIS_COLUMNS, budget_columns
from mudkd.recipe.sweep import group_id

#: Baselines in the order tables and plots list them; ``untrained`` is the student before any training.
BASELINE_KINDS = ("untrained", "no_hsk", "full_hsk")

#: The budget columns of a run without HSK (what a record lacking them stands for).
NO_BUDGET = budget_columns(None)

SUMMARY_COLUMNS = (
    "point",
    "kind",
    "series",
    "hsk_fraction",
    *BUDGET_AXIS_COLUMNS,
    "metric",
    "n",
    "mean",
    "std",
    "min",
    "max",
    "seeds",
    "updates",
    "seconds",
    "budget",
    *(f"vs_{base}{suffix}" for base in ("no_hsk", "full_hsk") for suffix in ("", "_low", "_high", "_p", "_test")),
)

#: The baselines every point is compared with in ``summary.csv``.
COMPARED_WITH = ("no_hsk", "full_hsk")


def record_group(record: Mapping[str, Any]) -> str:
    """The point a finished run belongs to (records of older sweeps carry no ``point``: derived from the id)."""
    return str(
        record.get("point") or group_id(str(record["id"]), str(record.get("kind")), record.get("settings") or {})
    )


def _value(record: Mapping[str, Any]) -> float | None:
    value = record.get("dev_metric")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def summarize(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per point, in the order its first run appears: mean, std (None for n = 1), min, max and n of the
    dev metric over the point's finished runs, the seeds, updates and mean seconds per run.

    Runs without a dev metric are left out; a point with none has ``n = 0`` and no mean.
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        groups.setdefault(record_group(record), []).append(record)
    rows = []
    for point, runs in groups.items():
        first = runs[0]
        values = [v for v in map(_value, runs) if v is not None]
        seconds = [float(r["seconds"]) for r in runs if r.get("seconds") is not None]
        updates = {r.get("updates") for r in runs}
        rows.append(
            {
                "point": point,
                "kind": first.get("kind"),
                "series": first.get("series") or "",
                "hsk_fraction": first.get("hsk_fraction", 0.0),
                **{name: first.get(name, NO_BUDGET[name]) for name in BUDGET_AXIS_COLUMNS},
                "metric": first.get("metric"),
                "n": len(values),
                "mean": statistics.fmean(values) if values else None,
                "std": statistics.stdev(values) if len(values) > 1 else None,
                "min": min(values) if values else None,
                "max": max(values) if values else None,
                "seeds": [r.get("seed") for r in runs if r.get("seed") is not None],
                "updates": updates.pop() if len(updates) == 1 else None,
                "seconds": statistics.fmean(seconds) if seconds else None,
                "budget": first.get("budget"),
                "runs": [r["id"] for r in runs],
                "per_seed": {r.get("seed"): v for r, v in zip(runs, map(_value, runs), strict=True) if v is not None},
            }
        )
    for row in rows:
        row.update(_comparisons(row, rows))
    return rows


def _testable(row: Mapping[str, Any]) -> bool:
    """Two or more values give a noise estimate; one is a known constant only for the untrained student (no
    training, no seed), never for a trained point whose one seed could have landed anywhere."""
    return len(row["per_seed"]) >= 2 or (len(row["per_seed"]) == 1 and row.get("kind") == "untrained")


def _comparisons(row: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The point's difference to each baseline of the sweep, its 95 % CI, p and test (empty for the baseline
    itself, or a side without a noise estimate)."""
    cells: dict[str, Any] = {}
    for kind in COMPARED_WITH:
        base = next((r for r in rows if r.get("kind") == kind), None)
        if base is None or base is row or not (_testable(row) and _testable(base)):
            continue
        ours, theirs = row["per_seed"], base["per_seed"]
        shared = sorted(set(ours) & set(theirs), key=str)
        if len(shared) >= 2 and len(shared) == len(ours) == len(theirs):
            difference = stats.paired([ours[s] for s in shared], [theirs[s] for s in shared])
        else:
            difference = stats.welch_values(list(ours.values()), list(theirs.values()))
        prefix = f"vs_{kind}"
        cells |= {
            prefix: difference.difference,
            f"{prefix}_low": difference.low,
            f"{prefix}_high": difference.high,
            f"{prefix}_p": difference.p,
            f"{prefix}_test": difference.test,
        }
    return cells


def summary_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """The per-point rows as CSV (``seeds`` joined by spaces; an unknown value is an empty cell)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SUMMARY_COLUMNS)
    for row in rows:
        cells = []
        for column in SUMMARY_COLUMNS:
            value = row.get(column)
            if column == "seeds":
                value = " ".join(str(seed) for seed in value or [])
            cells.append("" if value is None else value)
        writer.writerow(cells)
    return buffer.getvalue()


def format_mean_std(row: Mapping[str, Any], digits: int = 4) -> str:
    """``0.7450 ± 0.0031`` (``0.7450`` for one run, ``-`` for none)."""
    if row.get("mean") is None:
        return "-"
    text = f"{row['mean']:.{digits}f}"
    return text if row.get("std") is None else f"{text} ± {row['std']:.{digits}f}"
