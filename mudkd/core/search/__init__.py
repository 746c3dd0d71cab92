"""Search for the minimum knowledge: the smallest budget within a tolerance of full HSK, from one store.

The package, importing one way (``decide``, ``ladder`` ← ``plan``, ``plot`` ← ``run``):

- :mod:`~mudkd.core.search.decide`: the pure, deterministic bisection over the ordered ladder (seeds added where
  a decision is close, a run cap), replayed from the recorded runs;
- :mod:`~mudkd.core.search.ladder`: the default ladders (3D, depth, length, width) for a student's shape;
- :mod:`~mudkd.core.search.plan`: the ladder resolved through the sweep planner, its one store, the run cap and
  the CPU estimate (dry run);
- :mod:`~mudkd.core.search.run`: the search itself (its store built, resumed or reused as a sweep's, by
  :func:`mudkd.core.sweep.ensure_store`), its records (``runs.jsonl``), result and final student;
- :mod:`~mudkd.core.search.plot`: ``search.png``.
"""

from mudkd.core.search.decide import NO_HSK, Outcome, Run, Step, max_runs_needed, next_step
from mudkd.core.search.ladder import build_ladder
from mudkd.core.search.plan import RESULT_FILE, RUNS_FILE, SEARCH_FILE, SearchPlan, plan
from mudkd.core.search.plot import PLOT_FILE
from mudkd.core.search.run import SearchEvents, SearchResult, estimate_plan, read_runs, run

__all__ = [
    "NO_HSK",
    "PLOT_FILE",
    "RESULT_FILE",
    "RUNS_FILE",
    "SEARCH_FILE",
    "Outcome",
    "Run",
    "SearchEvents",
    "SearchPlan",
    "SearchResult",
    "Step",
    "build_ladder",
    "estimate_plan",
    "max_runs_needed",
    "next_step",
    "plan",
    "read_runs",
    "run",
]
