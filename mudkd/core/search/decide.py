"""The search's decisions: which (budget, seed) to train next, and when the smallest good budget is found.

Pure and deterministic (no I/O, no randomness): :func:`next_step` replays the whole search from the runs finished
so far and returns the next run to train, or the outcome. Resuming after a kill is therefore just calling it again
with the recorded results; a run already recorded is never asked for twice.

The search, on a ladder of budgets ordered by HSK fraction (index 0 the smallest):

1. the full-HSK reference ``R`` is measured with every seed; the threshold is ``θ = R − tolerance / 100``
   (tolerance in points of the metric × 100; every GLUE metric is higher-is-better);
2. the prediction-only baseline (no HSK, index −1) is measured: if it already reaches ``θ``, no HSK is needed;
3. bisection between the largest budget known to fall short (``lo``, first the baseline) and the smallest known to
   reach ``θ`` (``hi``, first the full-HSK reference, index ``n``), assuming the metric grows with the budget up to
   noise: the middle rung is measured, and becomes the new ``hi`` or ``lo``, until they are neighbours. ``hi`` is
   the answer. ⌈log2(n + 1)⌉ rungs are trained instead of n.

Comparisons allow :data:`EPSILON` of float rounding (a mean of exactly ``θ`` reaches it).

Every measured point starts with one seed; while its mean ± std straddles ``θ`` (the decision is close), seeds are
added, up to ``seeds``. The std is pooled over every point measured so far (the reference's seeds give it from the
start), so a one-seed point has a noise estimate too. A point is "reached" when its mean is ≥ ``θ``.

A decision taken with every seed spent while the point's mean is still within one pooled std of ``θ`` is a coin
toss at this noise level: the outcome lists such points in ``unresolved`` and says so in ``caveat`` (the fix is
more seeds, or a tolerance wider than the seed noise), so a search never presents a decision the seeds cannot
support as a finding.

Why not a library: a 1-D threshold search over an ordered ladder is a bisection; Optuna's samplers and pruners
optimise a value (or prune by intermediate values) and would have to be bent into this shape, losing the
guarantee on the number of runs and the determinism a resume relies on. The function below is short, pure and
unit-tested on synthetic metric curves (tests/test_search.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Slack of the "reaches the threshold" comparison: a mean equal to the threshold up to float rounding reaches it.
EPSILON = 1e-9

#: Ladder index of the prediction-only baseline (no HSK); the full-HSK reference is index ``n`` (the ladder length).
NO_HSK = -1


@dataclass(frozen=True)
class Run:
    """Train ladder point ``index`` (``-1`` no HSK, ``n`` full HSK) with its ``seed_index``-th seed."""

    index: int
    seed_index: int


@dataclass
class Status:
    """What is known about one point: its values (seed order), mean, std and the decision taken."""

    index: int
    values: list[float]
    mean: float | None = None
    std: float | None = None
    decision: str = ""  # "reference", "reached", "short", "close: more seeds", "" (not measured)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "runs": len(self.values),
            "values": list(self.values),
            "mean": self.mean,
            "std": self.std,
            "decision": self.decision,
        }


@dataclass
class Outcome:
    """The search's answer so far.

    Attributes:
        chosen: Ladder index of the smallest budget within tolerance (``-1``: no HSK needed; ``n``: no rung of the
            ladder, only full HSK); None when not even the reference was measured.
        converged: The bisection finished (False: stopped by the run cap; ``chosen`` is then an upper bound).
        threshold: ``θ``, the least mean that counts as within tolerance.
        reference: ``R``, the full-HSK mean.
        noise: The pooled std used for "close" decisions.
        runs: Runs the search used (recorded ones replayed included).
        reason: One line on why the search stopped.
    """

    chosen: int | None
    converged: bool
    threshold: float | None
    reference: float | None
    noise: float
    runs: int
    reason: str
    statuses: dict[int, Status] = field(default_factory=dict)
    unresolved: list[int] = field(default_factory=list)

    @property
    def caveat(self) -> str:
        """One line when a decision is within the seed noise (empty otherwise)."""
        if not self.unresolved:
            return ""
        points = ", ".join("no HSK" if i == NO_HSK else f"rung {i}" for i in self.unresolved)
        return (
            f"not resolved: {points} decided within the seed noise (pooled std {100 * self.noise:.2f} points, "
            f"every seed spent); rerun with more seeds or a tolerance wider than the noise"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen,
            "unresolved": list(self.unresolved),
            "caveat": self.caveat,
            "converged": self.converged,
            "threshold": self.threshold,
            "reference": self.reference,
            "noise": self.noise,
            "runs": self.runs,
            "reason": self.reason,
            "points": [self.statuses[i].to_dict() for i in sorted(self.statuses)],
        }


@dataclass
class Step:
    """:func:`next_step`'s answer: the next run to train (``run``), or None when the search is over; the outcome
    (final, or so far) either way."""

    run: Run | None
    outcome: Outcome


class _NeedRun(Exception):
    def __init__(self, run: Run) -> None:
        self.run = run


class _Capped(Exception):
    pass


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _std(values: Sequence[float]) -> float | None:
    if len(values) < 2:
        return None
    mean = _mean(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def pooled_std(groups: Sequence[Sequence[float]]) -> float:
    """The pooled sample std of several groups (each with its own mean); 0.0 when no group has two values."""
    squares = sum(sum((v - _mean(g)) ** 2 for v in g) for g in groups if len(g) >= 2)
    freedom = sum(len(g) - 1 for g in groups if len(g) >= 2)
    return math.sqrt(squares / freedom) if freedom else 0.0


class _Walk:
    """One replay of the search over the recorded observations."""

    def __init__(self, observations: Mapping[int, Sequence[float]], seeds: int, max_runs: int) -> None:
        self.observations = {index: list(values) for index, values in observations.items()}
        self.seeds, self.max_runs = seeds, max_runs
        self.used: dict[int, int] = {}
        self.statuses: dict[int, Status] = {}
        self.unresolved: list[int] = []

    @property
    def runs(self) -> int:
        return sum(self.used.values())

    def value(self, index: int, seed_index: int) -> float:
        """The recorded value, or stop the walk: the run is needed (or the cap forbids it)."""
        recorded = self.observations.get(index, [])
        if seed_index < len(recorded):
            self.used[index] = max(self.used.get(index, 0), seed_index + 1)
            return recorded[seed_index]
        if self.runs >= self.max_runs:
            raise _Capped
        raise _NeedRun(Run(index, seed_index))

    def values(self, index: int) -> list[float]:
        return self.observations.get(index, [])[: self.used.get(index, 0)]

    def noise(self) -> float:
        return pooled_std([self.values(i) for i in self.used])

    def measure(self, index: int, count: int) -> Status:
        """Measure ``index`` with ``count`` seeds (fewer when the cap comes first and one is known)."""
        for seed_index in range(count):
            try:
                self.value(index, seed_index)
            except _Capped:
                if seed_index == 0:
                    raise
                break
        return self._status(index)

    def _status(self, index: int) -> Status:
        values = self.values(index)
        status = Status(index, values, _mean(values) if values else None, _std(values))
        self.statuses[index] = status
        return status

    def decide(self, index: int, threshold: float) -> bool:
        """Measure ``index`` (one seed, more while close) and return whether it reaches ``threshold``."""
        status = self.measure(index, 1)
        while True:
            assert status.mean is not None
            close = abs(status.mean - threshold) < self.noise()
            if not close or len(status.values) >= self.seeds:
                break
            status.decision = "close: more seeds"
            try:
                self.value(index, len(status.values))
            except _Capped:
                break  # decide on what is known
            status = self._status(index)
        assert status.mean is not None
        reached = status.mean >= threshold - EPSILON
        status.decision = "reached" if reached else "short"
        if abs(status.mean - threshold) < self.noise() and len(status.values) >= self.seeds:
            self.unresolved.append(index)  # every seed spent, still within the noise of the threshold
        return reached


def next_step(
    observations: Mapping[int, Sequence[float]],
    *,
    rungs: int,
    tolerance: float,
    seeds: int,
    max_runs: int,
) -> Step:
    """The next run to train, or the outcome, from the values recorded so far.

    Args:
        observations: Ladder index → dev metric per seed, in seed order (``-1`` no HSK, ``rungs`` full HSK).
        rungs: The ladder's length n (its indices are 0..n-1, ordered by HSK fraction).
        tolerance: Points (metric × 100) a budget may fall short of full HSK.
        seeds: The most seeds per point (the reference always gets all of them).
        max_runs: The most runs in all (recorded runs count).

    Returns:
        ``Step(run, outcome)``: ``run`` is None when the search is over (converged, or the cap is reached).
    """
    if rungs < 0 or seeds < 1 or max_runs < 1 or tolerance < 0:
        raise ValueError("rungs >= 0, seeds >= 1, max_runs >= 1 and tolerance >= 0 are required")
    walk = _Walk(observations, seeds, max_runs)
    state: dict[str, Any] = {"lo": None, "hi": rungs, "threshold": None, "reference": None}

    def outcome(converged: bool, reason: str) -> Outcome:
        chosen = state["hi"] if state["reference"] is not None else None
        return Outcome(
            chosen,
            converged,
            state["threshold"],
            state["reference"],
            walk.noise(),
            walk.runs,
            reason,
            walk.statuses,
            walk.unresolved,
        )

    try:
        reference = walk.measure(rungs, seeds)
        reference.decision = "reference"
        assert reference.mean is not None
        state["reference"], state["threshold"] = reference.mean, reference.mean - tolerance / 100
        if walk.decide(NO_HSK, state["threshold"]):
            state["hi"] = NO_HSK
            return Step(None, outcome(True, "prediction distillation alone is within tolerance: no HSK needed"))
        state["lo"] = NO_HSK
        while state["hi"] - state["lo"] > 1:
            middle = (state["lo"] + state["hi"]) // 2
            if walk.decide(middle, state["threshold"]):
                state["hi"] = middle
            else:
                state["lo"] = middle
    except _NeedRun as need:
        return Step(need.run, outcome(False, "searching"))
    except _Capped:
        return Step(None, outcome(False, f"stopped at the run cap ({max_runs} runs)"))
    if state["hi"] == rungs:
        return Step(None, outcome(True, "no budget of the ladder is within tolerance: only full HSK is"))
    return Step(None, outcome(True, "the smallest budget within tolerance, its next smaller rung falls short"))


def max_runs_needed(rungs: int, seeds: int) -> int:
    """The most runs the search can take: the reference's seeds, then ⌈log2(n + 1)⌉ rungs and the baseline, each
    with up to ``seeds`` seeds."""
    bisection = math.ceil(math.log2(rungs + 1)) if rungs else 0
    return seeds + (1 + bisection) * seeds


def grid_runs(rungs: int, seeds: int) -> int:
    """The runs of the full grid the search replaces: every rung and both baselines, every seed."""
    return (rungs + 2) * seeds
