"""The marginal-utility plot of a sweep: dev metric against the HSK fraction (log x), baselines as horizontal lines.

:func:`series_curves` reduces the records to one curve per series (the mean over replicates) and the baselines'
means; :func:`write_plots` draws them with matplotlib (imported only when a plot is written). The terminal chart
(:mod:`mudkd.cli.sweep_chart`) draws the same curves as text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mudkd.core.outputs import replaced_atomically

PLOT_FILE = "marginal_utility.png"


def series_curves(
    records: Sequence[Mapping[str, Any]],
) -> tuple[dict[str, list[tuple[float, float]]], dict[str, float]]:
    """Series name → [(fraction, mean metric)] sorted by fraction; baseline kind → mean metric."""
    series: dict[str, dict[float, list[float]]] = {}
    baselines: dict[str, list[float]] = {}
    for record in records:
        value = record.get("dev_metric")
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        if record["kind"] in ("no_hsk", "full_hsk"):
            baselines.setdefault(record["kind"], []).append(value)
        elif record.get("hsk_fraction", 0) > 0:
            series.setdefault(record.get("series") or "HSK", {}).setdefault(record["hsk_fraction"], []).append(value)
    means = {name: sorted((x, sum(v) / len(v)) for x, v in points.items()) for name, points in series.items()}
    return means, {kind: sum(v) / len(v) for kind, v in baselines.items()}


def metric_name(records: Sequence[Mapping[str, Any]]) -> str:
    """The dev metric the records were selected on (``accuracy``, ...), or ``dev metric`` when none says."""
    return next((str(r["metric"]) for r in records if r.get("metric")), "dev metric")


def write_plots(records: Sequence[Mapping[str, Any]], directory: str | Path) -> list[str]:
    """``marginal_utility.png``: dev metric against HSK fraction (log x), one line per series, baselines as lines.

    Returns:
        The written files (none when no point has finished).
    """
    curves, baselines = series_curves(records)
    if not curves and not baselines:
        return []
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import pyplot as plt

    metric = metric_name(records)
    figure, axes = plt.subplots(figsize=(7.0, 4.5), dpi=120)
    markers = "os^Dv<>pPX*h"
    for index, (name, points) in enumerate(curves.items()):
        xs, ys = zip(*points, strict=True)
        axes.plot(xs, ys, marker=markers[index % len(markers)], label=name)
    for record in records:  # replicates (seeds) as faint dots around the means
        if record["kind"] == "hsk" and record.get("dev_metric") is not None and record.get("hsk_fraction", 0) > 0:
            axes.scatter([record["hsk_fraction"]], [record["dev_metric"]], color="0.6", s=8, zorder=1)
    styles = {"full_hsk": ("tab:red", "--", "full HSK"), "no_hsk": ("0.35", ":", "no HSK")}
    for kind, value in baselines.items():
        color, style, label = styles[kind]
        axes.axhline(value, color=color, linestyle=style, label=f"{label} ({value:.4g})")
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axes.set_xscale("log")
    axes.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: format_percent(value)))
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.set_xlabel("amount of HSK: fraction of the student's full HSK (log scale)")
    axes.set_ylabel(f"dev {metric}")
    axes.set_title("Marginal utility of hidden-state knowledge")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    path = Path(directory) / PLOT_FILE
    with replaced_atomically(path) as temporary:
        figure.savefig(temporary, format="png", bbox_inches="tight")
    plt.close(figure)
    return [str(path)]


def format_percent(fraction: float) -> str:
    """An HSK fraction as an axis label: ``0.0052`` → ``0.52%``."""
    return f"{fraction * 100:.2g}%"
