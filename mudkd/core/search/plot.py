"""The search's plot: every measured point against its HSK fraction (log x), the full-HSK reference and the
tolerance band below it, the prediction-only baseline, and the chosen budget (matplotlib, imported when drawn)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mudkd.core.outputs import replaced_atomically
from mudkd.core.sweep.plot import format_percent

# matplotlib (~0.8 s at import) is imported inside write_plot: only a search that writes its plot pays for it.

PLOT_FILE = "search.png"


def write_plot(
    rows: Sequence[Mapping[str, Any]], outcome: Any, tolerance: float, metric: str, path: Path
) -> str | None:
    """Draw ``search.png``; returns its path, or None when no point was measured yet."""
    measured = [r for r in rows if r["runs"]]
    if not measured:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    figure, axes = plt.subplots(figsize=(7.0, 4.5), dpi=120)
    rungs = [r for r in measured if r["kind"] == "hsk"]
    for row in rungs:
        axes.scatter([row["hsk_fraction"]] * len(row["values"]), row["values"], color="0.65", s=10, zorder=1)
    if rungs:
        axes.errorbar(
            [r["hsk_fraction"] for r in rungs],
            [r["mean"] for r in rungs],
            yerr=[r["std"] or 0.0 for r in rungs],
            fmt="o",
            color="tab:blue",
            capsize=3,
            label="measured budgets (mean ± std)",
            zorder=3,
        )
    reference = outcome.reference
    if reference is not None:
        axes.axhline(reference, color="tab:red", linestyle="--", label=f"full HSK ({reference:.4g})")
        axes.axhspan(
            reference - tolerance / 100, reference, color="tab:red", alpha=0.12, label=f"tolerance ({tolerance:g} pt)"
        )
    baseline = next((r for r in measured if r["kind"] == "no_hsk"), None)
    if baseline is not None:
        axes.axhline(baseline["mean"], color="0.35", linestyle=":", label=f"no HSK ({baseline['mean']:.4g})")
    chosen = next((r for r in rows if r["decision"].startswith("chosen") and r["kind"] == "hsk"), None)
    if chosen is not None:
        axes.scatter(
            [chosen["hsk_fraction"]], [chosen["mean"]], marker="*", s=220, color="tab:green", zorder=4,
            label=f"chosen: {chosen['point']}",
        )  # fmt: skip
    axes.set_xscale("log")
    axes.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: format_percent(value)))
    axes.xaxis.set_minor_formatter(NullFormatter())
    if rungs:
        fractions = [r["hsk_fraction"] for r in rungs]
        axes.set_xlim(min(fractions) / 2, max(max(fractions) * 2, 1.0))
    else:
        axes.set_xlim(1e-4, 1.0)
    axes.set_xlabel("amount of HSK: fraction of the student's full HSK (log scale)")
    axes.set_ylabel(f"dev {metric}")
    axes.set_title("Minimum knowledge search")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    with replaced_atomically(path) as temporary:
        figure.savefig(temporary, format="png", bbox_inches="tight")
    plt.close(figure)
    return str(path)
