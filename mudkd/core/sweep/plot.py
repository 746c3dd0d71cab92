"""The marginal-utility plot of a sweep: dev metric against the HSK fraction (log x), with the baselines.

:func:`curve_stats` reduces the records to one curve per series (each point's mean ± std over its seeds, see
:mod:`mudkd.core.sweep.summary`) and the baselines' statistics; :func:`plot_figure` draws them with matplotlib
(imported only when a plot is drawn): means with std error bars, the no-HSK and full-HSK baselines as a line with a
mean ± std band, and the untrained student as a dashed line labelled "pruned, untrained" (a floor, not a
distillation result). The terminal chart (:mod:`mudkd.cli.sweep_chart`) draws the same means as text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mudkd.core.outputs import replaced_atomically
from mudkd.core.sweep.summary import BASELINE_KINDS, summarize

# matplotlib (~0.8 s at import) is imported inside the plotting functions: only a sweep that draws pays for it.

PLOT_FILE = "marginal_utility.png"
#: Legend label of the untrained student's level.
UNTRAINED_LABEL = "pruned, untrained"
_BASELINE_STYLE = {"full_hsk": ("tab:red", "--", "full HSK"), "no_hsk": ("0.35", ":", "no HSK (prediction only)")}


def curve_stats(
    records: Sequence[Mapping[str, Any]],
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, dict[str, Any]]]:
    """Series name → its points' summary rows (mean, std, n...) sorted by HSK fraction; baseline kind → its row.

    Only points with at least one finished dev metric count; HSK points need a fraction above 0 (log x).
    """
    series: dict[str, list[dict[str, Any]]] = {}
    baselines: dict[str, dict[str, Any]] = {}
    for row in summarize(records):
        if row["mean"] is None:
            continue
        if row["kind"] in BASELINE_KINDS:
            baselines[row["kind"]] = row
        elif (row.get("hsk_fraction") or 0) > 0:
            series.setdefault(row["series"] or "HSK", []).append(row)
    for rows in series.values():
        rows.sort(key=lambda row: row["hsk_fraction"])
    ordered = {kind: baselines[kind] for kind in BASELINE_KINDS if kind in baselines}
    return series, ordered


def metric_name(records: Sequence[Mapping[str, Any]]) -> str:
    """The dev metric the records were selected on (``accuracy``, ...), or ``dev metric`` when none says."""
    return next((str(r["metric"]) for r in records if r.get("metric")), "dev metric")


def _spread(row: Mapping[str, Any]) -> str:
    """``0.745 ± 0.003, n=3`` (``0.745`` for one run)."""
    text = f"{row['mean']:.4g}"
    return text if row.get("std") is None else f"{text} ± {row['std']:.2g}, n={row['n']}"


def _trained_range(
    records: Sequence[Mapping[str, Any]],
    curves: Mapping[str, list[dict[str, Any]]],
    baselines: Mapping[str, Mapping[str, Any]],
) -> tuple[float, float] | None:
    """The lowest and highest value the trained runs put on the plot (means ± std and single runs)."""
    rows = [row for rows in curves.values() for row in rows]
    rows += [row for kind, row in baselines.items() if kind != "untrained"]
    values = [row["mean"] + sign * (row.get("std") or 0.0) for row in rows for sign in (-1, 1)]
    values += [float(r["dev_metric"]) for r in records if r.get("kind") == "hsk" and r.get("dev_metric") is not None]
    return (min(values), max(values)) if values else None


def plot_figure(records: Sequence[Mapping[str, Any]]) -> Any:
    """The marginal-utility figure (a matplotlib ``Figure``), or None when no point has finished.

    One line per series through the points' means, with std error bars (over seeds) and every run as a faint dot;
    no-HSK and full-HSK as a horizontal line at the mean with a mean ± std band; the untrained student as a dashed
    line. When the untrained level lies far below the trained runs it gets a narrow panel of its own under a
    broken y axis, so the curve keeps its resolution. The first axes hold the curves and the legend; the caller
    closes the figure.
    """
    curves, baselines = curve_stats(records)
    if not curves and not baselines:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    metric = metric_name(records)
    trained = _trained_range(records, curves, baselines)
    untrained = baselines.get("untrained")
    span = (trained[1] - trained[0]) if trained else 0.0
    margin = max(span * 0.15, 0.005)
    broken = untrained is not None and trained is not None and trained[0] - untrained["mean"] > 2 * margin + span
    if broken:
        figure, (axes, lower) = plt.subplots(
            2, 1, sharex=True, figsize=(7.0, 5.0), dpi=120, gridspec_kw={"height_ratios": [6, 1], "hspace": 0.06}
        )
    else:
        figure, axes = plt.subplots(figsize=(7.0, 4.5), dpi=120)
        lower = axes
    markers = "os^Dv<>pPX*h"
    for index, (name, rows) in enumerate(curves.items()):
        xs = [row["hsk_fraction"] for row in rows]
        means = [row["mean"] for row in rows]
        stds = [row["std"] or 0.0 for row in rows]
        replicated = max(row["n"] for row in rows) > 1
        axes.errorbar(
            xs,
            means,
            yerr=stds if replicated else None,
            marker=markers[index % len(markers)],
            capsize=3 if replicated else 0,
            label=f"{name} (mean ± std)" if replicated else name,
        )
    for record in records:  # replicates (seeds) as faint dots around the means
        if record["kind"] == "hsk" and record.get("dev_metric") is not None and record.get("hsk_fraction", 0) > 0:
            axes.scatter([record["hsk_fraction"]], [record["dev_metric"]], color="0.6", s=8, zorder=1)
    for kind, row in baselines.items():
        if kind == "untrained":
            lower.axhline(row["mean"], color="0.2", linestyle="--", label=f"{UNTRAINED_LABEL} ({row['mean']:.4g})")
            continue
        color, style, label = _BASELINE_STYLE[kind]
        axes.axhline(row["mean"], color=color, linestyle=style, label=f"{label} ({_spread(row)})")
        if row.get("std"):
            axes.axhspan(row["mean"] - row["std"], row["mean"] + row["std"], color=color, alpha=0.12, linewidth=0)
    if curves:
        axes.set_xscale("log")
        axes.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: format_percent(value)))
        axes.xaxis.set_minor_formatter(NullFormatter())
    if broken:
        assert trained is not None and untrained is not None
        axes.set_ylim(trained[0] - margin, trained[1] + margin)
        lower.set_ylim(untrained["mean"] - margin, untrained["mean"] + margin)
        lower.set_yticks([untrained["mean"]])
        axes.spines["bottom"].set_visible(False)
        lower.spines["top"].set_visible(False)
        axes.tick_params(axis="x", which="both", bottom=False, labelbottom=False)
        marks = {"marker": [(-1, -0.5), (1, 0.5)], "markersize": 10, "linestyle": "none", "color": "k", "mec": "k"}
        axes.plot([0, 1], [0, 0], transform=axes.transAxes, clip_on=False, **marks)  # the break in the y axis
        lower.plot([0, 1], [1, 1], transform=lower.transAxes, clip_on=False, **marks)
        lower.grid(True, which="both", alpha=0.3)
    lower.set_xlabel("amount of HSK: fraction of the student's full HSK (log scale)")
    axes.set_ylabel(f"dev {metric}")
    axes.set_title("Marginal utility of hidden-state knowledge")
    axes.grid(True, which="both", alpha=0.3)
    handles, labels = axes.get_legend_handles_labels()
    if broken:
        extra = lower.get_legend_handles_labels()
        handles, labels = handles + extra[0], labels + extra[1]
    axes.legend(handles, labels, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return figure


def write_plots(records: Sequence[Mapping[str, Any]], directory: str | Path) -> list[str]:
    """``marginal_utility.png`` (see :func:`plot_figure`).

    Returns:
        The written files (none when no point has finished).
    """
    figure = plot_figure(records)
    if figure is None:
        return []
    from matplotlib import pyplot as plt

    path = Path(directory) / PLOT_FILE
    with replaced_atomically(path) as temporary:
        figure.savefig(temporary, format="png", bbox_inches="tight")
    plt.close(figure)
    return [str(path)]


def format_percent(fraction: float) -> str:
    """An HSK fraction as an axis label: ``0.0052`` → ``0.52%``."""
    return f"{fraction * 100:.2g}%"
