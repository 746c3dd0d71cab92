"""The search's decisions: which (budget, seed) to train next, and when the smallest good budget is found.

Pure and deterministic (no I/O, no randomness): :func:`next_step` replays the whole search from the runs finished
so far and returns the next run to train, or the outcome. Resuming after a kill is therefore just calling it again
with the recorded results; a run already recorded is never asked for twice.

The search, on a ladder of budgets ordered by HSK fraction (index 0 the smallest), every point with every seed:

1. the full-HSK reference ``R`` (index ``n``, the ladder length), then the prediction-only baseline (no HSK, index
   −1), then the smallest rung (index 0);
2. a point is **within** tolerance ``m`` when its difference to the reference passes the lower test of TOST at
   α = 0.05 (:func:`mudkd.core.stats.tost`): the 90 % interval of ``point − R`` lies above ``−m``, so the
   reference's own noise counts as much as the point's. The upper test of TOST is left out on purpose: a budget
   better than full HSK by more than ``m`` is within tolerance of it too. The test is paired (the i-th seed of
   every point is the same seed), which removes the seed's shared effect. A point is **short** when the 90 %
   interval lies below ``−m``, and **not resolved** otherwise;
3. if rung 0 is not within, bisection between rung 0 (``lo``) and the reference (``hi``): the middle rung is
   measured and becomes ``hi`` when within, else ``lo``, until they are neighbours;
4. the answer is the smallest evaluated point that is within **and** above which no evaluated rung fails
   (is short or not resolved). Rule, not fit: a monotone (isotonic) fit over a handful of noisy means would
   smooth a dip away, while the rule only ever answers with a budget whose own test passed and that no larger
   evaluated budget contradicts. Rung 0 is measured before bisecting because at CPU scale the curve is flat from
   the smallest budget on (docs/findings.md): bisection alone would step over it whenever a middle rung dips, and
   answer with a larger budget (a non-monotone curve). Prediction-only within but rung 0 not is contradictory
   evidence, so prediction-only is then not the answer.

Every point gets every seed: adding seeds only where a decision looks close and testing again (the old rule) is
optional stopping, which inflates the error rate, and equal seeds keep the paired test possible.

The outcome carries explicit caveats (``caveats``, joined in ``caveat``) when: the run cap stopped the search
(the answer is then an upper bound), a point was decided on one seed (no noise estimate: no test at all), a
decision is not resolved with every seed spent, or full HSK is not better than prediction-only (then "within
tolerance of full HSK" says nothing about what HSK adds). It lists every evaluated budget that beats
prediction-only (paired test, Holm-adjusted over the budgets compared, p < 0.05), and its ``reason`` names what
was compared ("prediction-only is within 1.5 points of full HSK", never "no HSK needed" alone).

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

from mudkd.core import stats

#: Slack of the "reaches the threshold" comparison: a mean equal to the threshold up to float rounding reaches it.
EPSILON = 1e-9

#: Ladder index of the prediction-only baseline (no HSK); the full-HSK reference is index ``n`` (the ladder length).
NO_HSK = -1

#: Decisions a measured point can get (besides "reference").
WITHIN, SHORT, NOT_RESOLVED = "within", "short", "not resolved"


@dataclass(frozen=True)
class Run:
    """Train ladder point ``index`` (``-1`` no HSK, ``n`` full HSK) with its ``seed_index``-th seed."""

    index: int
    seed_index: int


@dataclass
class Status:
    """What is known about one point: its values (seed order), mean, std and the decision taken.

    ``difference`` is the point minus the reference (its 90 % interval in ``low``/``high``, the interval TOST at
    α = 0.05 reads) and ``p`` the one-sided p of "short by the tolerance or more" (None when untested: one seed).
    """

    index: int
    values: list[float]
    mean: float | None = None
    std: float | None = None
    decision: str = ""  # "reference", "within", "short", "not resolved", "" (not measured)
    difference: float | None = None
    low: float | None = None
    high: float | None = None
    p: float | None = None
    test: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "runs": len(self.values),
            "values": list(self.values),
            "mean": self.mean,
            "std": self.std,
            "decision": self.decision,
            "difference": self.difference,
            "interval_90": None if self.low is None else [self.low, self.high],
            "p": self.p,
            "test": self.test,
        }


@dataclass
class Outcome:
    """The search's answer so far.

    Attributes:
        chosen: Ladder index of the smallest budget within tolerance (``-1``: prediction-only is; ``n``: no rung
            of the ladder, only full HSK); None when not even the reference was measured.
        converged: The search finished (False: stopped by the run cap; ``chosen`` is then an upper bound).
        threshold: ``R − tolerance``, the mean a point is compared with (its test also counts the noise).
        reference: ``R``, the full-HSK mean.
        noise: The pooled std of every point measured with two or more seeds (for the record).
        runs: Runs the search used (recorded ones replayed included).
        reason: One line on what was compared and why the search stopped.
        caveats: Every reason to distrust the answer (empty when there is none).
        flags: The same, a few words each, for the decision column of a table ("run cap", "one seed", ...).
        beats_prediction_only: Evaluated budgets (and full HSK) that beat prediction-only, with the difference,
            its 95 % interval and Holm-adjusted p.
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
    caveats: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    beats_prediction_only: list[dict[str, Any]] = field(default_factory=list)

    @property
    def caveat(self) -> str:
        """The caveats as one line (empty when there is none)."""
        return "; ".join(self.caveats)

    def to_dict(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen,
            "unresolved": list(self.unresolved),
            "caveat": self.caveat,
            "caveats": list(self.caveats),
            "flags": list(self.flags),
            "beats_prediction_only": list(self.beats_prediction_only),
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
        self.capped = False

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

    def measure(self, index: int) -> Status:
        """Measure ``index`` with every seed (fewer when the cap comes first and one is known)."""
        for seed_index in range(self.seeds):
            try:
                self.value(index, seed_index)
            except _Capped:
                if seed_index == 0:
                    raise
                self.capped = True  # decide on what is known, and say so
                break
        values = self.values(index)
        status = Status(index, values, _mean(values), _std(values))
        self.statuses[index] = status
        return status

    def decide(self, index: int, reference: Status, margin: float) -> bool:
        """Measure ``index`` and test it against the reference; True when it is within ``margin``."""
        status = self.measure(index)
        assert status.mean is not None and reference.mean is not None
        status.difference = status.mean - reference.mean
        if min(len(status.values), len(reference.values)) < 2:
            status.test = "untested"
            if self.seeds >= 2:  # the cap left one value: no test was possible
                status.decision = NOT_RESOLVED
                return False
            # --seeds 1: no noise estimate, so no test; the means decide, and a caveat says so
            status.decision = WITHIN if status.difference >= -margin - EPSILON else SHORT
            return status.decision == WITHIN
        difference = stats.compare(status.values, reference.values, shared_seeds=True)
        equivalence = stats.tost(difference, margin)
        status.low, status.high, status.p, status.test = (
            equivalence.low,
            equivalence.high,
            equivalence.p_lower,
            difference.test,
        )
        if equivalence.non_inferior():
            status.decision = WITHIN
        elif equivalence.high < -margin:
            status.decision = SHORT
        else:
            status.decision = NOT_RESOLVED
        return status.decision == WITHIN


def _answer(statuses: Mapping[int, Status], rungs: int) -> int:
    """The smallest evaluated point that is within and above which no evaluated rung is not (``rungs`` if none)."""
    answer = rungs
    for index in sorted((i for i in statuses if i < rungs), reverse=True):
        if statuses[index].decision != WITHIN:
            break
        answer = index
    return answer


def _name(index: int, rungs: int, labels: Mapping[int, str]) -> str:
    if index == NO_HSK:
        return "prediction-only"
    if index >= rungs:
        return "full HSK"
    return labels.get(index, f"rung {index}")


def next_step(
    observations: Mapping[int, Sequence[float]],
    *,
    rungs: int,
    tolerance: float,
    seeds: int,
    max_runs: int,
    labels: Mapping[int, str] | None = None,
) -> Step:
    """The next run to train, or the outcome, from the values recorded so far.

    Args:
        observations: Ladder index → dev metric per seed, in seed order (``-1`` no HSK, ``rungs`` full HSK).
        rungs: The ladder's length n (its indices are 0..n-1, ordered by HSK fraction).
        tolerance: Points (metric × 100) a budget may fall short of full HSK (the TOST margin).
        seeds: Seeds per point (the i-th seed is the same for every point).
        max_runs: The most runs in all (recorded runs count).
        labels: Names of the rungs for the outcome's sentences (default ``rung i``).

    Returns:
        ``Step(run, outcome)``: ``run`` is None when the search is over (finished, or the cap is reached).
    """
    if rungs < 0 or seeds < 1 or max_runs < 1 or tolerance < 0:
        raise ValueError("rungs >= 0, seeds >= 1, max_runs >= 1 and tolerance >= 0 are required")
    names = dict(labels or {})
    margin = tolerance / 100
    walk = _Walk(observations, seeds, max_runs)
    state: dict[str, Any] = {"reference": None, "lo": None}

    def outcome(finished: bool) -> Outcome:
        return _outcome(walk, state, rungs=rungs, tolerance=tolerance, seeds=seeds, finished=finished, names=names)

    try:
        reference = walk.measure(rungs)
        reference.decision = "reference"
        state["reference"] = reference
        walk.decide(NO_HSK, reference, margin)
        if rungs and not walk.decide(0, reference, margin):
            lo, hi = 0, rungs
            while hi - lo > 1:
                middle = (lo + hi) // 2
                if walk.decide(middle, reference, margin):
                    hi = middle
                else:
                    lo = middle
            state["lo"] = lo
    except _NeedRun as need:
        return Step(need.run, outcome(False))
    except _Capped:
        walk.capped = True
    return Step(None, outcome(True))


def _outcome(
    walk: _Walk,
    state: Mapping[str, Any],
    *,
    rungs: int,
    tolerance: float,
    seeds: int,
    finished: bool,
    names: Mapping[int, str],
) -> Outcome:
    """The outcome of the walk so far: the answer by the rule, what was compared, the caveats."""
    reference: Status | None = state["reference"]
    if reference is None or reference.mean is None:
        reason = f"stopped at the run cap ({walk.max_runs} runs) before full HSK was measured"
        return Outcome(None, False, None, None, 0.0, walk.runs, reason if finished else "searching", walk.statuses)
    statuses = {i: s for i, s in walk.statuses.items() if s.decision and i != rungs}
    chosen = _answer(statuses, rungs)
    within = f"within {tolerance:g} point{'' if tolerance == 1 else 's'} of full HSK"
    caveats: list[str] = []
    flags: list[str] = []
    unresolved = [i for i, s in statuses.items() if s.decision == NOT_RESOLVED]
    if not finished:
        reason = "searching"
    elif walk.capped:
        reason = f"stopped at the run cap ({walk.max_runs} runs)"
        flags.append("run cap")
        caveats.append(
            f"run cap: the search stopped after {walk.runs} runs before it finished; "
            f"{_name(chosen, rungs, names)} is an upper bound, smaller budgets were not all tested "
            "(rerun with a larger --max-runs)"
        )
    elif chosen == NO_HSK:
        reason = f"prediction-only is {within}{_p(statuses[NO_HSK])}"
    elif chosen == rungs:
        reason = f"no budget of the ladder is shown {within}: only full HSK is"
    else:
        below = state["lo"] if state["lo"] is not None else NO_HSK
        reason = (
            f"{_name(chosen, rungs, names)} is {within}{_p(statuses[chosen])}; "
            f"{_name(below, rungs, names)} is {statuses[below].decision if below in statuses else 'not measured'}"
        )
    if seeds < 2 and statuses:
        flags.append("one seed")
        caveats.append(
            "one seed per point: no noise estimate, so no decision was tested (the means alone decided); "
            "rerun with --seeds 3 or more"
        )
    if unresolved:
        flags.append("not resolved")
        listed = ", ".join(_name(i, rungs, names) for i in unresolved)
        caveats.append(
            f"not resolved: {listed} (the difference to full HSK cannot be told from -{tolerance:g} points with "
            "the seeds measured); rerun with more seeds or a tolerance wider than the noise"
        )
    beats = _beats(walk, reference, rungs, names)
    baseline = walk.statuses.get(NO_HSK)
    if baseline is not None and baseline.mean is not None:
        reference_caveat = _reference_caveat(reference, baseline)
        flags += ["full HSK not better than prediction-only"] if reference_caveat else []
        caveats += reference_caveat
    if finished and beats:
        reason += "; " + "; ".join(
            f"{b['point']} beats prediction-only by {stats.points(b['difference'])} points "
            f"(95 % CI [{stats.points(b['low'])}, {stats.points(b['high'])}], Holm p = {b['p']:.2g})"
            for b in beats
        )
    return Outcome(
        chosen,
        finished and not walk.capped,
        reference.mean - tolerance / 100,
        reference.mean,
        walk.noise(),
        walk.runs,
        reason,
        walk.statuses,
        unresolved,
        caveats if finished else [],
        flags if finished else [],
        beats,
    )


def _p(status: Status) -> str:
    return "" if status.p is None else f" (one-sided p = {status.p:.2g}, {status.test})"


def _beats(walk: _Walk, reference: Status, rungs: int, names: Mapping[int, str]) -> list[dict[str, Any]]:
    """Evaluated budgets (full HSK included) better than prediction-only: paired tests, Holm over them."""
    baseline = walk.values(NO_HSK)
    if len(baseline) < 2:
        return []
    tested = []
    for index, status in sorted(walk.statuses.items()):
        if index == NO_HSK or len(status.values) < 2:
            continue
        tested.append((index, stats.compare(status.values, baseline, shared_seeds=True)))
    adjusted = stats.holm([d.p for _, d in tested])
    return [
        {
            "index": index,
            "point": _name(index, rungs, names),
            "difference": d.difference,
            "low": d.low,
            "high": d.high,
            "p": p,
            "test": d.test,
        }
        for (index, d), p in zip(tested, adjusted, strict=True)
        if d.difference > 0 and p < stats.ALPHA
    ]


def _reference_caveat(reference: Status, baseline: Status) -> list[str]:
    """A caveat when full HSK is not shown better than prediction-only (then "within tolerance" is empty)."""
    assert reference.mean is not None and baseline.mean is not None
    if min(len(reference.values), len(baseline.values)) < 2:
        if reference.mean > baseline.mean:
            return []
        return [
            f"full HSK ({reference.mean:.4f}) is not better than prediction-only ({baseline.mean:.4f}): being "
            "within tolerance of it does not show what HSK adds"
        ]
    difference = stats.compare(reference.values, baseline.values, shared_seeds=True)
    if difference.difference > 0 and difference.p < stats.ALPHA:
        return []
    return [
        f"full HSK is not better than prediction-only here ({stats.points(difference.difference)} points, 95 % CI "
        f"{stats.interval(difference)}, p = {difference.p:.2g}): being within tolerance of it does not show "
        "what HSK adds"
    ]


def max_runs_needed(rungs: int, seeds: int) -> int:
    """The most runs the search can take: the reference, prediction-only and rung 0, then ⌈log2 n⌉ rungs of the
    bisection between rung 0 and the reference, each with every seed."""
    points = 2 + (1 + math.ceil(math.log2(rungs)) if rungs else 0)
    return points * seeds


def grid_runs(rungs: int, seeds: int) -> int:
    """The runs of the full grid the search replaces: every rung and both baselines, every seed."""
    return (rungs + 2) * seeds
