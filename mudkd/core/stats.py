"""Statistics a reader can check: differences with confidence intervals, equivalence, and Holm's correction.

Every verdict mudkd prints about "A beats B" or "A is as good as B" goes through this module: the findings
(``benchmarks/findings_claims.py``), the sweep's ``summary.csv`` (each point's difference to the sweep's
reference) and ``mudkd search`` (is a budget within tolerance of full HSK?).

- :func:`welch` (from mean, sample std and n) and :func:`welch_values`: the unpaired difference ``A − B`` with
  Welch's standard error and the Welch–Satterthwaite degrees of freedom; :func:`paired` for runs that share seeds
  (the i-th value of A and of B trained with the same seed), where the seed's own effect cancels;
- :func:`tost`: two one-sided tests of ``|A − B| < margin`` (equivalence needs both; the lower one alone is
  non-inferiority, "A is not worse than B by ``margin`` or more");
- :func:`holm`: Holm's step-down adjustment of a report's p-values, so that "reproduces" over 15 comparisons
  keeps a 5 % family-wise error instead of 15 chances of a fluke;
- :func:`verdict`: the words a report may use. "reproduces" only at a Holm-adjusted p < 0.05 in the claimed
  direction ("reversed" in the other), "equivalent within ±m" only by TOST, otherwise "not resolved (n = …,
  CI […])".

A side with one value (the untrained student, evaluated once, deterministic) counts as a known constant: its
variance term is 0 and the degrees of freedom come from the other side. Two sides without any variance give an
exact comparison (p 0 or 1). Statistics are in the metric's units (accuracy 0.742); reports print points
(× 100). Numbers from scipy.stats' t distribution; the tests pin them on hand-computed examples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

# scipy (~1.3 s at import) is imported inside _t: sweep-merge and search summaries without a t quantile stay cheap.

#: The significance level of every test (two-sided for differences, each one-sided test of TOST).
ALPHA = 0.05


@dataclass(frozen=True)
class Difference:
    """``A − B`` with its standard error, degrees of freedom, two-sided p (H0: no difference) and 95 % CI.

    Attributes:
        test: "welch" (unpaired), "paired" (shared seeds) or "exact" (no variance on either side).
        difference: ``mean(A) − mean(B)``.
        se: Its standard error.
        df: Degrees of freedom of the t distribution (Welch–Satterthwaite for unpaired; inf when exact).
        p: Two-sided p-value of "no difference".
        low: Lower end of the confidence interval.
        high: Upper end.
        n_a: Values on side A.
        n_b: Values on side B.
        confidence: The interval's level (0.95).
    """

    test: str
    difference: float
    se: float
    df: float
    p: float
    low: float
    high: float
    n_a: int
    n_b: int
    confidence: float = 0.95

    @property
    def n(self) -> int:
        """The seeds behind the comparison (what "n = 3" in a verdict means): the smaller side's count, a side
        with one value (a known constant) left out."""
        sampled = [count for count in (self.n_a, self.n_b) if count > 1]
        return min(sampled) if sampled else min(self.n_a, self.n_b)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Equivalence:
    """TOST of ``−margin < A − B < margin``.

    Attributes:
        margin: The equivalence margin, in the metric's units.
        p_lower: One-sided p of H0 ``A − B ≤ −margin`` (small: A is not worse by the margin: non-inferiority).
        p_upper: One-sided p of H0 ``A − B ≥ +margin`` (small: A is not better by the margin).
        low: Lower end of the ``1 − 2α`` (90 %) interval that TOST at α is equivalent to.
        high: Its upper end.
    """

    margin: float
    p_lower: float
    p_upper: float
    low: float
    high: float

    @property
    def p(self) -> float:
        """TOST's p-value: the larger of the two one-sided ones."""
        return max(self.p_lower, self.p_upper)

    def equivalent(self, alpha: float = ALPHA) -> bool:
        return self.p < alpha

    def non_inferior(self, alpha: float = ALPHA) -> bool:
        return self.p_lower < alpha

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "p": self.p}


def _t():
    from scipy import stats  # imported when a test is run: the CLI's start-up does not pay for scipy

    return stats.t


def _finish(test: str, difference: float, se: float, df: float, n_a: int, n_b: int, confidence: float) -> Difference:
    if se == 0.0:
        # no variance on either side: the difference is known exactly
        p = 1.0 if difference == 0.0 else 0.0
        return Difference("exact", difference, 0.0, math.inf, p, difference, difference, n_a, n_b, confidence)
    t = _t()
    p = float(2 * t.sf(abs(difference) / se, df))
    half = float(t.ppf(0.5 + confidence / 2, df)) * se
    return Difference(test, difference, se, df, p, difference - half, difference + half, n_a, n_b, confidence)


def welch(
    mean_a: float,
    std_a: float | None,
    n_a: int,
    mean_b: float,
    std_b: float | None,
    n_b: int,
    *,
    confidence: float = 0.95,
) -> Difference:
    """Welch's unpaired comparison from summary statistics (exact: the t statistic only needs mean, std and n).

    Args:
        mean_a: Mean of side A.
        std_a: Its sample standard deviation (n − 1 denominator); None or 0 for one value.
        n_a: Its number of values (≥ 1).
        mean_b: Mean of side B.
        std_b: Its sample std.
        n_b: Its number of values.
        confidence: Level of the interval.

    Returns:
        The difference ``mean_a − mean_b``, ``se = sqrt(s_a²/n_a + s_b²/n_b)``, the Welch–Satterthwaite df
        ``(v_a + v_b)² / (v_a²/(n_a − 1) + v_b²/(n_b − 1))`` (a side with one value or no variance adds nothing).

    Raises:
        ValueError: A side with no values (n < 1).
    """
    if n_a < 1 or n_b < 1:
        raise ValueError("each side needs at least one value")
    var_a = (std_a or 0.0) ** 2 / n_a
    var_b = (std_b or 0.0) ** 2 / n_b
    freedom = sum(v * v / (n - 1) for v, n in ((var_a, n_a), (var_b, n_b)) if n > 1 and v > 0)
    df = (var_a + var_b) ** 2 / freedom if freedom else math.inf
    return _finish("welch", mean_a - mean_b, math.sqrt(var_a + var_b), df, n_a, n_b, confidence)


def _mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    mean = math.fsum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))


def welch_values(a: Sequence[float], b: Sequence[float], *, confidence: float = 0.95) -> Difference:
    """:func:`welch` on the values themselves."""
    if not a or not b:
        raise ValueError("each side needs at least one value")
    (mean_a, std_a), (mean_b, std_b) = _mean_std(a), _mean_std(b)
    return welch(mean_a, std_a, len(a), mean_b, std_b, len(b), confidence=confidence)


def paired(a: Sequence[float], b: Sequence[float], *, confidence: float = 0.95) -> Difference:
    """The paired comparison of runs that share seeds: a one-sample t-test of the per-seed differences ``a_i − b_i``
    (df n − 1). Use it only when ``a[i]`` and ``b[i]`` were trained with the same seed.

    Raises:
        ValueError: Sides of different lengths, or fewer than two pairs.
    """
    if len(a) != len(b) or len(a) < 2:
        raise ValueError("a paired test needs the same seeds on both sides, at least two")
    mean, std = _mean_std([x - y for x, y in zip(a, b, strict=True)])
    se = (std or 0.0) / math.sqrt(len(a))
    return _finish("paired", mean, se, len(a) - 1, len(a), len(b), confidence)


def compare(a: Sequence[float], b: Sequence[float], *, shared_seeds: bool = False) -> Difference:
    """The paired test when ``shared_seeds`` and both sides have the same two or more seeds, else Welch's."""
    if shared_seeds and len(a) == len(b) and len(a) >= 2:
        return paired(a, b)
    return welch_values(a, b)


def tost(difference: Difference, margin: float, *, alpha: float = ALPHA) -> Equivalence:
    """Two one-sided tests of ``|A − B| < margin`` on a difference's se and df.

    Equivalence at α holds exactly when the ``1 − 2α`` interval lies inside ``(−margin, +margin)``.

    Raises:
        ValueError: A negative margin.
    """
    if margin < 0:
        raise ValueError("the equivalence margin must be >= 0")
    d, se = difference.difference, difference.se
    if se == 0.0:
        return Equivalence(margin, 0.0 if d > -margin else 1.0, 0.0 if d < margin else 1.0, d, d)
    t = _t()
    p_lower = float(t.sf((d + margin) / se, difference.df))
    p_upper = float(t.cdf((d - margin) / se, difference.df))
    half = float(t.ppf(1 - alpha, difference.df)) * se
    return Equivalence(margin, p_lower, p_upper, d - half, d + half)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order: the i-th smallest (from 0) is multiplied by
    ``m − i``, then made non-decreasing in that order and capped at 1. Reject where the adjusted p < α."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def points(value: float) -> str:
    """A difference in points of the metric (× 100), signed: ``+2.1``."""
    return f"{100 * value:+.1f}"


def interval(difference: Difference) -> str:
    """``[+1.0, +3.2]`` points."""
    return f"[{points(difference.low)}, {points(difference.high)}]"


def not_resolved(difference: Difference) -> str:
    """The verdict of a comparison the data cannot decide, with what it rests on."""
    return f"not resolved (n = {difference.n}, CI {interval(difference)})"


def verdict(
    difference: Difference,
    adjusted_p: float,
    *,
    equivalence: Equivalence | None = None,
    adjusted_equivalence_p: float | None = None,
    alpha: float = ALPHA,
) -> str:
    """The words for the claim "A ≥ B" (or, with ``equivalence``, "A is as good as B").

    Args:
        difference: ``A − B``.
        adjusted_p: Its Holm-adjusted two-sided p.
        equivalence: The TOST of the same difference, for an "as good as" claim.
        adjusted_equivalence_p: Holm-adjusted TOST p (default: the raw TOST p).
        alpha: The level.

    Returns:
        "equivalent within ±m points" when TOST rejects (adjusted); "reproduces" when A > B and the adjusted p <
        α; "reversed" when A < B and it is; otherwise "not resolved (n = …, CI […])".
    """
    if equivalence is not None:
        p = equivalence.p if adjusted_equivalence_p is None else adjusted_equivalence_p
        if p < alpha:
            margin = 100 * equivalence.margin
            return f"equivalent within ±{margin:g} point{'' if margin == 1 else 's'}"
    if adjusted_p < alpha:
        return "reproduces" if difference.difference > 0 else "reversed"
    return not_resolved(difference)
