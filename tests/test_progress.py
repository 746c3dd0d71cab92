"""The live progress line at 80 and at 160 columns: step/total, bar, rate and ETA always fit; the loss terms get what
is left, the loss and the last dev metric first."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from mudkd.cli.common import progress_display, status_text

LOGS = {"loss": 0.9176, "loss_layer_3": 0.9176, "hsk_loss": 0.9176, "learning_rate": 0.0005, "epoch": 0.1587}


def render(width: int, status: str) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=True, color_system=None)
    progress = progress_display(console)
    task = progress.add_task("distill hsk", total=63, rate="0.59 it/s", status=status)
    progress.update(task, completed=12)
    console.print(progress.make_tasks_table(progress.tasks))
    return buffer.getvalue().rstrip("\n")


@pytest.mark.parametrize("width", [80, 160])
def test_the_essentials_always_fit(width):
    line = render(width, status_text(LOGS, "dev accuracy=0.7606"))
    assert "\n" not in line and len(line) <= width
    for essential in ("distill hsk", "12/63", "0.59 it/s", "-:--:--", "loss=0.9176"):
        assert essential in line, line


def test_at_80_columns_the_extra_terms_are_cut_not_the_step():
    line = render(80, status_text(LOGS, "dev accuracy=0.7606"))
    assert line.endswith("…") and "epoch=" not in line
    wide = render(160, status_text(LOGS, "dev accuracy=0.7606"))
    assert "dev accuracy=0.7606" in wide and "hsk_loss=0.9176" in wide


def test_status_puts_the_loss_and_the_dev_metric_first():
    assert status_text(LOGS, "dev accuracy=0.7606").startswith("loss=0.9176 | dev accuracy=0.7606 | loss_layer_3=")
    assert status_text({"loss": 1.0, "grad_norm": 3.0}, "") == "loss=1"
