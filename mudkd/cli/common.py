"""What every command shares for output: the consoles, tables, the knowledge-budget table, progress, errors.

stdout carries results only (a table, or one JSON document with ``--json``); progress, messages and errors go to
stderr. Options live in :mod:`mudkd.cli.options`, the shared command body in :mod:`mudkd.cli.stage`.
"""

from __future__ import annotations

import functools
import json
import math
import numbers
import os
import sys
import time
from typing import Any

from mudkd.errors import DataError, MudkdError, RecipeError

# ---------------------------------------------------------------------------------------------------------------
# Consoles (created lazily: importing the CLI must stay cheap and side-effect free)

_STATE: dict[str, Any] = {"verbose": False, "quiet": False, "debug": bool(os.environ.get("MUDKD_DEBUG"))}


@functools.cache
def stdout_console() -> Any:
    from rich.console import Console

    return Console(soft_wrap=False)


@functools.cache
def stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


def set_global_options(*, verbose: bool, quiet: bool, debug: bool) -> None:
    _STATE.update(verbose=verbose, quiet=quiet, debug=debug or _STATE["debug"])


def is_verbose() -> bool:
    return bool(_STATE["verbose"])


def is_quiet() -> bool:
    """``-q``: only results and errors."""
    return bool(_STATE["quiet"])


def info(text: str) -> None:
    """An informational line on stderr (suppressed by -q, and on every process but rank 0 under torchrun)."""
    if not _STATE["quiet"] and os.environ.get("RANK", "0") == "0":
        stderr_console().print(text, highlight=False, markup=False)


def warn(text: str) -> None:
    """A ``Warning:`` line on stderr (suppressed by -q, and on every process but rank 0 under torchrun)."""
    info(f"Warning: {text}")


def print_warnings(document: dict[str, Any]) -> None:
    """Print a stage result's ``warnings`` (flat learning curve, degenerate student), one line each, on stderr."""
    for text in document.get("warnings") or ():
        warn(text)


def emit_json(document: Any) -> None:
    """Print exactly one JSON document on stdout (from the main process only, under torchrun/accelerate).

    Non-finite numbers (NaN, ±Infinity: a diverged loss, an empty metric) become ``null``, so the output is
    strict JSON that every parser reads; ``allow_nan=False`` guarantees it.
    """
    if os.environ.get("RANK", "0") != "0":
        return

    def finite(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: finite(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [finite(item) for item in value]
        if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
            return float(value) if math.isfinite(value) else None
        return value

    sys.stdout.write(json.dumps(finite(document), indent=2, default=str, allow_nan=False) + "\n")
    sys.stdout.flush()


def print_table(title: str, rows: list[tuple[str, Any]], columns: tuple[str, str] = ("key", "value")) -> None:
    """A two-column results table on stdout (from the main process only, under torchrun/accelerate)."""
    if os.environ.get("RANK", "0") != "0":
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column(columns[0], style="bold")
    table.add_column(columns[1], justify="right")
    for key, value in rows:  # escaped: a key such as "dev f1[spam]" is not rich markup
        table.add_row(escape(str(key)), escape(format_value(value)))
    stdout_console().print(table)


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


# ---------------------------------------------------------------------------------------------------------------
# Errors


def report_error(error: BaseException) -> int:
    """Print an error as ``Error:`` (one line per problem) and ``Hint:`` lines on stderr; return its exit code.

    mudkd's own errors are bad input (exit 2) or a failed run (exit 1, :class:`mudkd.errors.RunError`); anything
    else is an unexpected failure (exit 1). Ctrl-C exits 130. With ``--debug`` (or ``MUDKD_DEBUG=1``) the caller
    re-raises instead, for the traceback.
    """
    console = stderr_console()
    if isinstance(error, KeyboardInterrupt):
        console.print("Interrupted.", highlight=False)
        return 130
    if isinstance(error, MudkdError):
        problems = error.problems if isinstance(error, RecipeError | DataError) else [error.message]
        for problem in problems:
            console.print(f"Error: {problem}", highlight=False, markup=False)
        if error.hint:
            console.print(f"Hint: {error.hint}", highlight=False, markup=False)
        return error.exit_code
    first = str(error).splitlines()[0] if str(error) else ""
    console.print(f"Error: {type(error).__name__}: {first}", highlight=False, markup=False)
    console.print("Hint: rerun with --debug for a traceback", highlight=False, markup=False)
    return 1


def debugging() -> bool:
    return bool(_STATE["debug"])


# ---------------------------------------------------------------------------------------------------------------
# Progress


PLAIN_EVERY_SECONDS = 5.0


def progress_display(console: Any) -> Any:
    """The live progress line: stage, bar, step/total, rate and ETA keep their width at any terminal width (80
    columns included); the loss terms and last dev metric get what is left and are cut with an ellipsis."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Column

    return Progress(
        TextColumn("[bold]{task.description}", table_column=Column(no_wrap=True, min_width=12)),
        BarColumn(bar_width=16),
        MofNCompleteColumn(table_column=Column(no_wrap=True, min_width=11)),
        TextColumn("{task.fields[rate]}", table_column=Column(no_wrap=True, min_width=10)),
        TimeRemainingColumn(),
        # what the columns before it need at most (a 12-letter stage, step 99999/99999, rate, ETA, separators)
        TextColumn("{task.fields[status]}", table_column=Column(no_wrap=True, max_width=max(12, console.width - 66))),
        console=console,
        transient=False,
    )


def status_text(logs: dict[str, float], last_metric: str) -> str:
    """The loss, then the last dev metric, then the other loss terms, learning rate and epoch: on a narrow terminal
    the line is cut from the end, so what matters most comes first."""
    numbers = {k: v for k, v in logs.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    first = [f"loss={numbers['loss']:.4g}"] if "loss" in numbers else []
    rest = [
        f"{k}={v:.4g}" for k, v in numbers.items() if k != "loss" and ("loss" in k or k in ("learning_rate", "epoch"))
    ]
    return " ".join([*first, *([f"| {last_metric} |"] if last_metric else []), *rest])


class LiveDisplay:
    """Progress of a many-run command (sweep, search) on stderr: a live view re-drawn twice a second on a terminal,
    else plain lines (none with -q).

    A subclass sets ``events`` and gives :meth:`render`; ``with display as events:`` stops the live view on exit.
    """

    def __init__(self) -> None:
        self.quiet = is_quiet()  # -q: no live view either
        self.animate = sys.stderr.isatty() and os.environ.get("TERM") != "dumb" and not self.quiet
        self.started = time.monotonic()
        self.live: Any = None
        self.events: Any = None

    def __enter__(self) -> Any:
        return self.events

    def __exit__(self, *exc_info: Any) -> None:
        if self.live is not None:
            self.live.refresh()
            self.live.stop()
            self.live = None

    def start_live(self) -> bool:
        """Start the live view on a terminal (re-rendered on every refresh: the clock ticks); False elsewhere."""
        if not self.animate:
            return False
        from rich.live import Live

        self.live = Live(console=stderr_console(), refresh_per_second=2, transient=False, get_renderable=self.render)
        self.live.start()
        return True

    def render(self) -> Any:
        """What the live view shows."""
        raise NotImplementedError

    def message(self, text: str) -> None:
        if self.live is not None:
            self.live.console.print(text, highlight=False, markup=False)
        else:
            info(text)

    def refresh(self) -> None:
        if self.live is not None:
            self.live.refresh()


def make_events(json_mode: bool = False) -> Any:
    """The progress display for a long stage: animated on a terminal, plain lines otherwise."""
    from mudkd.core.events import RunEvents

    quiet = _STATE["quiet"] or os.environ.get("RANK", "0") != "0"  # under torchrun: rank 0 reports progress
    animate = sys.stderr.isatty() and os.environ.get("TERM") != "dumb" and not quiet

    class Events(RunEvents):
        def __init__(self) -> None:
            self.progress: Any = None
            self.task: Any = None
            self.total = 0
            self.started = time.monotonic()
            self.last_metric = ""
            self.last_plain = 0.0

        def on_message(self, text: str) -> None:
            info(text)

        def on_start(self, stage: str, total_steps: int) -> None:
            self.total, self.started, self.stage = total_steps, time.monotonic(), stage
            self.last_metric, self.last_plain = "", 0.0
            if animate:
                self.progress = progress_display(stderr_console())
                self.progress.start()
                self.task = self.progress.add_task(stage, total=total_steps or None, rate="", status="")
            elif not quiet:
                info(f"{stage}: {total_steps} steps")

        def _status(self, step: int, logs: dict[str, float]) -> tuple[str, str]:
            elapsed = max(time.monotonic() - self.started, 1e-9)
            rate = f"{step / elapsed:.2f} it/s"
            return rate, status_text(logs, self.last_metric)

        def on_step(self, step: int, logs: dict[str, float]) -> None:
            rate, status = self._status(step, logs)
            if self.progress is not None:
                from rich.markup import escape  # "dev f1[spam]=…" is not markup

                self.progress.update(self.task, completed=step, rate=rate, status=escape(status))
            elif not quiet and (step >= self.total or time.monotonic() - self.last_plain >= PLAIN_EVERY_SECONDS):
                # Plain lines (not a terminal): at most one every few seconds, and always the last step.
                self.last_plain = time.monotonic()
                eta = (self.total - step) / max(step, 1) * (time.monotonic() - self.started) if self.total else 0
                info(f"{self.stage} step {step}/{self.total} {rate} eta {eta:.0f}s {status}")

        def on_eval(self, step: int, metrics: dict[str, float], split: str = "dev") -> None:
            names = ("accuracy", "mcc", "f1", "corr", "pearson", "macro_f1")
            one_class = sum(k.startswith("f1[") for k in metrics) == 1  # a binary task's f1[POSITIVE], not per class
            shown = [k for k in metrics if k in names or (one_class and k.startswith("f1["))][:2]
            shown += ["loss"] if "loss" in metrics else []  # the task's first two metrics, then the dev loss
            self.last_metric = " ".join(f"{split} {k}={metrics[k]:.4f}" for k in shown)
            if self.progress is None and not quiet:
                info(f"{self.stage} step {step}: {self.last_metric}")

        def on_end(self, stage: str) -> None:
            if self.progress is not None:
                self.progress.update(self.task, completed=self.total)
                self.progress.stop()
                self.progress = None

    return Events()


# ---------------------------------------------------------------------------------------------------------------
# Rendering


def quiet_libraries() -> None:
    """Silence transformers/datasets unless -v was given (imports them: call only when running a stage)."""
    from mudkd.core.training import quiet_libraries as quiet

    quiet(verbose=is_verbose())


def render_plan(plan: dict[str, Any], json_mode: bool) -> None:
    """Print a ``--dry-run`` plan: the knowledge budget (when it has one) and a table, or one JSON document."""
    if json_mode:
        emit_json({"dry_run": True, **plan})
        return
    if plan.get("budget"):
        render_budget(plan["budget"])
    rows = [(key, value) for key, value in plan.items() if not isinstance(value, dict | list)]
    print_table("Plan (dry run: nothing written)", rows)


def render_result(stage: str, result: Any, json_mode: bool) -> None:
    """Print a stage's result: one JSON document, or a results table."""
    document = result.to_dict()
    print_warnings(document)
    if json_mode:
        emit_json(document)
        return
    rows: list[tuple[str, Any]] = [("output_dir", result.output_dir)]
    rows += [(f"dev {name}", value) for name, value in result.metrics.items()]
    rows += [(key, value) for key, value in result.details.items() if isinstance(value, int | float | str)]
    # step_losses is kept for --json (exactness checks); a table shows only scalars
    print_table(f"{stage}: done", rows)


def render_budget(budget: dict[str, Any]) -> None:
    """The knowledge-budget table (:func:`mudkd.knowledge.summary.summary_rows`: the same rows in every command)."""
    from mudkd.knowledge.summary import summary_rows

    print_table("Knowledge budget", summary_rows(budget))
