"""Speed ratios a user can believe: paired, interleaved measurements summarised by their median and spread.

A ratio measured once on a shared machine is noise (five quickstart runs under load once reported a store
"speed-up" from 0.86 to 2.96). Every ratio mudkd prints is therefore the median of several pairs measured back to
back, shown with its range, and called measurable only when every pair agrees on which side of 1.0 it lies.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from typing import Any

#: Fewer pairs than this cannot show that a ratio is on one side of 1.0.
MIN_PAIRS = 3


def paired_ratios(numerators: Sequence[float], denominators: Sequence[float]) -> dict[str, Any]:
    """Summarise the ratios ``numerators[i] / denominators[i]`` of pairs timed back to back.

    Returns:
        ``median``, ``low`` and ``high`` of the ratios, ``pairs`` (how many), ``measurable`` (at least
        :data:`MIN_PAIRS` pairs, all above 1.0 or all below it) and the machine's ``load_average``.
    """
    ratios = sorted(a / b for a, b in zip(numerators, denominators, strict=True) if b > 0)
    if not ratios:
        return {"median": None, "low": None, "high": None, "pairs": 0, "measurable": False, "load_average": _load()}
    low, high = ratios[0], ratios[-1]
    return {
        "median": statistics.median(ratios),
        "low": low,
        "high": high,
        "pairs": len(ratios),
        "measurable": len(ratios) >= MIN_PAIRS and (low > 1.0 or high < 1.0),
        "load_average": _load(),
    }


def describe(spread: dict[str, Any] | None) -> str:
    """``2.38× (2.21–2.52, 3 pairs)``, or why the ratio is not a measurement."""
    if not spread or spread.get("median") is None:
        return "-"
    text = f"{spread['median']:.2f}× ({spread['low']:.2f}–{spread['high']:.2f}, {spread['pairs']} pairs)"
    if spread["measurable"]:
        return text
    return f"not measurable on this machine now: {text}"


def _load() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None
