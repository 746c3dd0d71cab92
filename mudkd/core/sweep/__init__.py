"""Budget sweeps: many HSK budgets, one teacher pass, one results table and the marginal-utility curve.

The package splits a sweep into its jobs, importing one way (``plan`` ← ``stores`` ← ``run``; ``plot`` ←
``results``):

- :mod:`~mudkd.core.sweep.plan`: the grid → planned points (recipe, budget) and the store(s) that serve them;
- :mod:`~mudkd.core.sweep.stores`: a planned store built, resumed or reused (also ``mudkd search``'s store);
- :mod:`~mudkd.core.sweep.run`: the stores ensured, points trained or skipped (resume, shards);
- :mod:`~mudkd.core.sweep.results`: the directory layout, records, ``results.csv``/``results.json``, merge;
- :mod:`~mudkd.core.sweep.summary`: each point's runs (seeds) reduced to mean ± std and n, ``summary.csv``;
- :mod:`~mudkd.core.sweep.plot`: the matplotlib marginal-utility plot.

The no-HSK baseline follows the fair-baseline protocol (:func:`~mudkd.core.sweep.plan.fair_baseline_overrides`):
as many prediction updates as an HSK point's HSK + prediction stages, with a 10 % warm-up.

The terminal chart lives in the CLI (:mod:`mudkd.cli.sweep_chart`).
"""

from mudkd.core.sweep.plan import (
    FAIR_WARMUP_PROPORTION,
    PlannedPoint,
    PlannedStore,
    RecipeBuilder,
    SweepPlan,
    describe_budget,
    equal_evaluations,
    fair_baseline_overrides,
    plan,
    stage_updates,
)
from mudkd.core.sweep.plot import PLOT_FILE, plot_figure, write_plots
from mudkd.core.sweep.results import (
    CSV_COLUMNS,
    RESULT_FILE,
    SUMMARY_FILE,
    SWEEP_FILE,
    SweepResult,
    check_sweep_dir,
    collect_records,
    merge,
    results_csv,
    write_results,
)
from mudkd.core.sweep.run import SweepEvents, base_inputs, run
from mudkd.core.sweep.stores import ensure_store, store_state
from mudkd.core.sweep.summary import summarize

__all__ = [
    "CSV_COLUMNS",
    "FAIR_WARMUP_PROPORTION",
    "PLOT_FILE",
    "RESULT_FILE",
    "SUMMARY_FILE",
    "SWEEP_FILE",
    "PlannedPoint",
    "PlannedStore",
    "RecipeBuilder",
    "SweepEvents",
    "SweepPlan",
    "SweepResult",
    "base_inputs",
    "check_sweep_dir",
    "collect_records",
    "describe_budget",
    "ensure_store",
    "equal_evaluations",
    "fair_baseline_overrides",
    "merge",
    "plan",
    "plot_figure",
    "results_csv",
    "run",
    "stage_updates",
    "store_state",
    "summarize",
    "write_plots",
    "write_results",
]
