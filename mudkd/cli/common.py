"""What every command shares: option types, the output sink, progress display and error reporting.

Options are declared once here with ``Annotated`` so every command spells a flag the same way. stdout carries
results only (a table, or one JSON document with ``--json``); progress, messages and errors go to stderr.
"""

from __future__ import annotations

import functools
import json
import math
import numbers
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from mudkd.errors import MudkdError, RecipeError

# ---------------------------------------------------------------------------------------------------------------
# Option types

RecipeArg = Annotated[
    Path | None, typer.Argument(help="TOML recipe (optional: flags alone are enough).", show_default=False)
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set", "-s", help="Override any recipe key: --set hsk.keep_tokens=10 (repeatable).", metavar="KEY=VALUE"
    ),
]
OutputDirOpt = Annotated[str | None, typer.Option("--output-dir", "-o", help="Output directory.", show_default=False)]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Validate and print the plan; write nothing.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print exactly one JSON document on stdout.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output directory.")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue an interrupted run from its last checkpoint.")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Random seed.", show_default=False)]
DeviceOpt = Annotated[str | None, typer.Option("--device", help="auto, cpu, cuda or mps.", show_default=False)]
TaskOpt = Annotated[
    str | None, typer.Option("--task-name", help="GLUE task (sst-2, cola, ...) or 'custom'.", show_default=False)
]
DataDirOpt = Annotated[
    str | None, typer.Option("--data-dir", help="GLUE task directory (TSV files).", show_default=False)
]
MaxSeqOpt = Annotated[int | None, typer.Option("--max-seq-length", help="Tokens per example.", show_default=False)]
MaxTrainOpt = Annotated[
    int | None, typer.Option("--max-train-samples", help="Use the first N training examples.", show_default=False)
]
MaxEvalOpt = Annotated[
    int | None, typer.Option("--max-eval-samples", help="Use the first N dev examples.", show_default=False)
]
BatchOpt = Annotated[
    int | None, typer.Option("--train-batch-size", help="Training batch size per device.", show_default=False)
]
LrOpt = Annotated[float | None, typer.Option("--learning-rate", help="Peak learning rate.", show_default=False)]
EpochsOpt = Annotated[float | None, typer.Option("--num-train-epochs", help="Training epochs.", show_default=False)]
MaxStepsOpt = Annotated[int | None, typer.Option("--max-steps", help="Stop after N updates.", show_default=False)]
EvalStepOpt = Annotated[
    int | None, typer.Option("--eval-step", help="Evaluate/checkpoint every N updates.", show_default=False)
]
WarmupOpt = Annotated[
    float | None, typer.Option("--warmup-proportion", help="Fraction of updates with warm-up.", show_default=False)
]
TeacherOpt = Annotated[
    str | None, typer.Option("--teacher-model", help="Fine-tuned teacher directory.", show_default=False)
]
StudentOpt = Annotated[str | None, typer.Option("--student-model", help="Student directory.", show_default=False)]


def data_flags(
    task_name: str | None,
    data_dir: str | None,
    max_seq_length: int | None,
    max_train_samples: int | None,
    max_eval_samples: int | None,
) -> dict[str, Any]:
    """Dotted recipe keys for the data flags every training command takes."""
    return {
        "task.name": task_name,
        "task.data_dir": data_dir,
        "task.max_seq_length": max_seq_length,
        "task.max_train_samples": max_train_samples,
        "task.max_eval_samples": max_eval_samples,
    }


def training_flags(stage: str, **values: Any) -> dict[str, Any]:
    """Dotted recipe keys ``<stage>.<name>`` for a stage's training flags (None = flag not given)."""
    return {f"{stage}.{name}": value for name, value in values.items()}


def run_flags(seed: int | None, device: str | None, overwrite: bool) -> dict[str, Any]:
    return {"training.seed": seed, "training.device": device, "output.overwrite": overwrite or None}


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


def info(text: str) -> None:
    """An informational line on stderr (suppressed by -q, and on every process but rank 0 under torchrun)."""
    if not _STATE["quiet"] and os.environ.get("RANK", "0") == "0":
        stderr_console().print(text, highlight=False, markup=False)


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
    """A two-column results table on stdout."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column(columns[0], style="bold")
    table.add_column(columns[1], justify="right")
    for key, value in rows:
        table.add_row(str(key), format_value(value))
    stdout_console().print(table)


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


# ---------------------------------------------------------------------------------------------------------------
# Errors

F = TypeVar("F", bound=Callable[..., Any])


def report_errors(function: F) -> F:
    """Turn mudkd errors into ``Error:``/``Hint:`` lines and exit codes (2 bad input, 1 failed run, 130 Ctrl-C)."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except RecipeError as error:
            if _STATE["debug"]:
                raise
            for problem in error.problems:
                stderr_console().print(f"Error: {problem}", highlight=False, markup=False)
            if error.hint:
                stderr_console().print(f"Hint: {error.hint}", highlight=False, markup=False)
            raise typer.Exit(error.exit_code) from None
        except MudkdError as error:
            if _STATE["debug"]:
                raise
            stderr_console().print(f"Error: {error.message}", highlight=False, markup=False)
            if error.hint:
                stderr_console().print(f"Hint: {error.hint}", highlight=False, markup=False)
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            stderr_console().print("Interrupted.", highlight=False)
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as error:
            if _STATE["debug"]:
                raise
            first = str(error).splitlines()[0] if str(error) else ""
            stderr_console().print(f"Error: {type(error).__name__}: {first}", highlight=False, markup=False)
            stderr_console().print("Hint: rerun with --debug for a traceback", highlight=False, markup=False)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------------------------
# Progress


PLAIN_EVERY_SECONDS = 5.0


def make_events(json_mode: bool = False) -> Any:
    """The progress display for a long stage: animated on a terminal, plain lines otherwise."""
    from mudkd.core.training import RunEvents

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
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

                self.progress = Progress(
                    TextColumn("[bold]{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"),
                    TimeRemainingColumn(),
                    TextColumn("{task.fields[status]}"),
                    console=stderr_console(),
                    transient=False,
                )
                self.progress.start()
                self.task = self.progress.add_task(stage, total=total_steps or None, rate="", status="")
            elif not quiet:
                info(f"{stage}: {total_steps} steps")

        def _status(self, step: int, logs: dict[str, float]) -> tuple[str, str]:
            elapsed = max(time.monotonic() - self.started, 1e-9)
            rate = f"{step / elapsed:.2f} it/s"
            shown = {k: v for k, v in logs.items() if "loss" in k or k in {"learning_rate", "epoch"}}
            parts = [f"{k}={v:.4g}" for k, v in shown.items() if isinstance(v, int | float)]
            status = " ".join(parts) + (f" | {self.last_metric}" if self.last_metric else "")
            return rate, status

        def on_step(self, step: int, logs: dict[str, float]) -> None:
            rate, status = self._status(step, logs)
            if self.progress is not None:
                self.progress.update(self.task, completed=step, rate=rate, status=status)
            elif not quiet and (step >= self.total or time.monotonic() - self.last_plain >= PLAIN_EVERY_SECONDS):
                # Plain lines (not a terminal): at most one every few seconds, and always the last step.
                self.last_plain = time.monotonic()
                eta = (self.total - step) / max(step, 1) * (time.monotonic() - self.started) if self.total else 0
                info(f"{self.stage} step {step}/{self.total} {rate} eta {eta:.0f}s {status}")

        def on_eval(self, step: int, metrics: dict[str, float]) -> None:
            names = ("accuracy", "mcc", "f1", "corr", "pearson", "loss")
            picked = [f"dev {k}={v:.4f}" for k, v in metrics.items() if k in names]
            self.last_metric = " ".join(picked[:2])
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
    """Print a ``--dry-run`` plan: a table, or ``{"plan": ...}`` as JSON."""
    if json_mode:
        emit_json({"dry_run": True, **plan})
        return
    rows = [(key, value) for key, value in plan.items() if not isinstance(value, dict | list)]
    print_table("Plan (dry run: nothing written)", rows)


def render_result(stage: str, result: Any, json_mode: bool) -> None:
    """Print a stage's result: one JSON document, or a results table."""
    document = result.to_dict()
    if json_mode:
        emit_json(document)
        return
    rows: list[tuple[str, Any]] = [("output_dir", result.output_dir)]
    rows += [(f"dev {name}", value) for name, value in result.metrics.items()]
    rows += [(key, value) for key, value in result.details.items() if isinstance(value, int | float | str)]
    # step_losses is kept for --json (exactness checks); a table shows only scalars
    print_table(f"{stage}: done", rows)
