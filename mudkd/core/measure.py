"""Speed ratios a user can believe: paired, interleaved measurements summarised by their median and spread.

A ratio measured once on a shared machine is noise (five quickstart runs under load once reported a store
"speed-up" from 0.86 to 2.96). Every ratio mudkd prints (the pipeline summary, ``mudkd report`` and the scripts in
``benchmarks/``) is therefore the median of several pairs measured back to back (:func:`interleaved`), shown with
the range of the pairs and the machine's load average (:func:`describe`), and called a measurement only when every
pair agrees on which side of 1.0 it lies (:func:`paired_ratios`).

The rule, one for every ratio mudkd prints (the pipeline summary, ``mudkd report``, the benchmarks):

* fewer than :data:`MIN_PAIRS` pairs, or pairs on both sides of 1.0: **not measurable** (the median is shown, as
  noise);
* every pair on one side of 1.0 and the range no wider than the effect (``high - low <= |median - 1|``):
  **measured**, printed as the median with its range (``2.38× [2.21, 2.52]``);
* every pair on one side of 1.0 but the range wider than the effect: still a measurement, of a **bound**: every
  pair is at least its lowest ratio, so it is printed ``≥ 2.70×`` (below 1.0: ``≤ 0.80×``), with the median and
  range beside it.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

#: Fewer pairs than this cannot show that a ratio is on one side of 1.0.
MIN_PAIRS = 3
#: The verdict of a ratio whose pairs agree; any other verdict says why the ratio is not a measurement.
MEASURED = "measured"
NOT_MEASURABLE = "not measurable on this machine now"


def paired_ratios(
    numerators: Sequence[float], denominators: Sequence[float], *, load: float | None = None
) -> dict[str, Any]:
    """Summarise the ratios ``numerators[i] / denominators[i]`` of pairs timed back to back.

    The interval is the range (min–max) of the pairs' ratios. It is a measurement (``verdict`` "measured") with at
    least :data:`MIN_PAIRS` pairs and the whole range on one side of 1.0; otherwise ``verdict`` is
    :data:`NOT_MEASURABLE` and ``reason`` says which test failed. A measurement whose range is wider than the
    effect (``high - low > |median - 1|``) is a bound (``bound``): the module docstring states the rule.

    Args:
        numerators: One time (or amount) per pair.
        denominators: The other member of each pair; pairs with a denominator ≤ 0 are dropped.
        load: The machine's 1-minute load average while timing (default: read now).

    Returns:
        ``median``, ``low``, ``high``, ``n`` (pairs), ``load``, ``verdict``, ``reason`` and ``bound`` (None, or
        ``("≥", low)``/``("≤", high)`` when the range is wider than the effect); the older names ``pairs``,
        ``measurable`` and ``load_average`` carry the same values.
    """
    ratios = sorted(a / b for a, b in zip(numerators, denominators, strict=True) if b > 0)
    load = machine_load() if load is None else load
    if not ratios:
        return _summary(None, None, None, 0, load, "no pairs were timed")
    low, high, median = ratios[0], ratios[-1], statistics.median(ratios)
    reason = None
    if len(ratios) < MIN_PAIRS:
        reason = f"fewer than {MIN_PAIRS} pairs"
    elif low <= 1.0 <= high:
        reason = "the pairs straddle 1.0"
    summary = _summary(median, low, high, len(ratios), load, reason)
    if reason is None and high - low > abs(median - 1.0):  # one side of 1.0, a wide range: a bound, not a value
        summary["bound"] = ("≥", low) if low > 1.0 else ("≤", high)
    return summary


def _summary(
    median: float | None, low: float | None, high: float | None, n: int, load: float | None, reason: str | None
) -> dict[str, Any]:
    verdict = MEASURED if reason is None else NOT_MEASURABLE
    return {
        "median": median,
        "low": low,
        "high": high,
        "n": n,
        "load": load,
        "verdict": verdict,
        "reason": reason,
        "bound": None,
        "pairs": n,
        "measurable": reason is None,
        "load_average": load,
    }


def describe(spread: dict[str, Any] | None) -> str:
    """``2.38× [2.21, 2.52] over 3 interleaved pairs, load 1.9``, prefixed with why it is not a measurement.

    The one renderer of a ratio: the pipeline summary, ``mudkd report`` and the benchmarks all print this.
    """
    if not spread or spread.get("median") is None:
        return "-"
    n = spread.get("n", spread.get("pairs"))
    text = (
        f"{spread['median']:.2f}× [{spread['low']:.2f}, {spread['high']:.2f}] over {n} interleaved "
        f"pair{'s' if n != 1 else ''}"
    )
    load = spread.get("load", spread.get("load_average"))
    if load is not None:
        text += f", load {load:.1f}"
    if spread.get("verdict", MEASURED if spread.get("measurable") else NOT_MEASURABLE) == MEASURED:
        if spread.get("bound"):
            sign, value = spread["bound"]
            return f"{sign} {value:.2f}× (median {text}; the range is wider than the effect)"
        return text
    reason = f" ({spread['reason']})" if spread.get("reason") else ""
    return f"{NOT_MEASURABLE}{reason}: {text}"


def interleaved(
    variants: Mapping[str, Callable[[], Any]],
    *,
    repeats: int,
    warmup: int = 0,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    """Seconds per call of each variant, the variants run back to back in every repetition.

    The order rotates by one every repetition (two variants: A B, B A, A B, ...), so a drift in the machine's
    load, and the cache one call leaves warm for the next, hit every variant alike. ``warmup`` untimed
    repetitions run first. Entry ``i`` of every list belongs to repetition ``i``: pair them with
    :func:`paired_ratios`.
    """
    names = list(variants)
    for _ in range(warmup):
        for name in names:
            variants[name]()
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(repeats):
        shift = repeat % len(names) if names else 0
        for name in names[shift:] + names[:shift]:
            started = clock()
            variants[name]()
            seconds[name].append(clock() - started)
    return seconds


def machine_load() -> float | None:
    """The 1-minute load average (None where the platform has none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None
