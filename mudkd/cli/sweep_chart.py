"""The marginal-utility curve of a sweep as text lines for the terminal (the PNG is :mod:`mudkd.core.sweep.plot`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from mudkd.core.sweep.plot import UNTRAINED_LABEL, curve_stats, format_percent, metric_name


def text_curve(records: Sequence[Mapping[str, Any]], *, width: int = 50, height: int = 10) -> list[str]:
    """The marginal-utility curve as text lines for the terminal: each point's mean over its seeds, one letter per
    series, the no-HSK and full-HSK means as rules; the untrained level is named below the chart (it would squash
    the curve).

    Returns:
        Lines without trailing newlines; empty when nothing has finished.
    """
    stats, baseline_stats = curve_stats(records)
    curves = {name: [(row["hsk_fraction"], row["mean"]) for row in rows] for name, rows in stats.items()}
    baselines = {kind: row["mean"] for kind, row in baseline_stats.items() if kind != "untrained"}
    if not curves and not baselines:
        return []
    xs = [x for points in curves.values() for x, _ in points]
    ys = [y for points in curves.values() for _, y in points] + list(baselines.values())
    low_x, high_x = (math.log10(min(xs)), math.log10(max(xs))) if xs else (-2.0, 0.0)
    if high_x - low_x < 1e-9:
        low_x, high_x = low_x - 0.5, high_x + 0.5
    low_y, high_y = min(ys), max(ys)
    if high_y - low_y < 1e-9:
        low_y, high_y = low_y - 0.005, high_y + 0.005
    grid = [[" "] * width for _ in range(height)]

    def row_of(value: float) -> int:
        return height - 1 - round((value - low_y) / (high_y - low_y) * (height - 1))

    for kind, value in baselines.items():
        grid[row_of(value)] = ["─" if kind == "full_hsk" else "┄"] * width
    letters = "abcdefghijklmnopqrstuvwxyz"
    for index, points in enumerate(curves.values()):
        for x, y in points:
            column = round((math.log10(x) - low_x) / (high_x - low_x) * (width - 1))
            cell = grid[row_of(y)][column]
            grid[row_of(y)][column] = letters[index % 26] if cell in " ─┄" else "*"
    metric = metric_name(records)
    labels = {
        row_index: f"{high_y - row_index / (height - 1) * (high_y - low_y):.4g}"
        for row_index in (0, height // 2, height - 1)
    }
    label_width = max(map(len, labels.values()))
    lines = [f"dev {metric} vs HSK fraction (log scale; means over seeds)"]
    for row_index, row in enumerate(grid):
        lines.append(f"{labels.get(row_index, ''):>{label_width}} ┤" + "".join(row))
    lines.append(" " * label_width + " └" + "─" * width)
    left, right = format_percent(10**low_x), format_percent(10**high_x)
    middle = format_percent(10 ** ((low_x + high_x) / 2))
    gap = width - len(left) - len(middle) - len(right)
    axis = left + " " * (gap // 2) + middle + " " * (gap - gap // 2) + right
    lines.append(" " * (label_width + 2) + axis)
    legend = [f"{letters[i % 26]} = {name}" for i, name in enumerate(curves)]
    legend += [
        f"{'─' if kind == 'full_hsk' else '┄'} = {kind.replace('_', ' ')} ({value:.4g})"
        for kind, value in baselines.items()
    ]
    if "untrained" in baseline_stats:
        legend.append(f"{UNTRAINED_LABEL}: {baseline_stats['untrained']['mean']:.4g} (before any training; not drawn)")
    lines += ["  " + item for item in legend]
    return lines
