"""Budget sweeps: many HSK budgets, one teacher pass, one results table and the marginal-utility curve.

The package splits a sweep into its jobs, importing one way (``plan`` ← ``run``; ``plot`` ← ``results``):

- :mod:`~mudkd.core.sweep.plan`: the grid → planned points (recipe, budget) and the store(s) that serve them;
- :mod:`~mudkd.core.sweep.run`: stores built or reused, points trained or skipped (resume, shards);
- :mod:`~mudkd.core.sweep.results`: the directory layout, records, ``results.csv``/``results.json``, merge;
- :mod:`~mudkd.core.sweep.plot`: the matplotlib marginal-utility plot.

The terminal chart lives in the CLI (:mod:`mudkd.cli.sweep_chart`).
"""

from mudkd.core.sweep.plan import (
    PlannedPoint,
    PlannedStore,
    RecipeBuilder,
    SweepPlan,
    describe_budget,
    plan,
)
from mudkd.core.sweep.plot import PLOT_FILE, write_plots
from mudkd.core.sweep.results import (
    CSV_COLUMNS,
    RESULT_FILE,
    SWEEP_FILE,
    SweepResult,
    check_sweep_dir,
    collect_records,
    merge,
    results_csv,
    write_results,
)
from mudkd.core.sweep.run import SweepEvents, run

__all__ = [
    "CSV_COLUMNS",
    "PLOT_FILE",
    "RESULT_FILE",
    "SWEEP_FILE",
    "PlannedPoint",
    "PlannedStore",
    "RecipeBuilder",
    "SweepEvents",
    "SweepPlan",
    "SweepResult",
    "check_sweep_dir",
    "collect_records",
    "describe_budget",
    "merge",
    "plan",
    "results_csv",
    "run",
    "write_plots",
    "write_results",
]
