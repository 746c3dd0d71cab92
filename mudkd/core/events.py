"""What a stage reports while it runs (:class:`RunEvents`), plans (:class:`StagePlan`), returns (:class:`StageResult`).

The core never prints: long stages call a :class:`RunEvents` the CLI supplies (a rich progress display or plain
lines). Pure Python, so the CLI can subclass it without importing torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar


class RunEvents:
    """Receives progress from long-running stages. The default does nothing; the CLI overrides it."""

    def on_start(self, stage: str, total_steps: int) -> None:
        """A stage starts; ``total_steps`` is its number of updates (or batches)."""

    def on_step(self, step: int, logs: dict[str, float]) -> None:
        """Training logged at update ``step`` (loss terms, learning rate, epoch)."""

    def on_eval(self, step: int, metrics: dict[str, float], split: str = "dev") -> None:
        """Metrics at update ``step`` (plain GLUE names) on ``split``: ``dev``, or ``selection`` while a run with
        ``training.selection_split`` trains (its checkpoints are chosen there; dev is scored once, at the end)."""

    def on_save(self, step: int, path: str) -> None:
        """A checkpoint was written."""

    def on_end(self, stage: str) -> None:
        """The stage finished."""

    def on_message(self, text: str) -> None:
        """An informational line (device, resume point, ...)."""


@dataclass(frozen=True)
class StagePlan:
    """What a stage's ``plan(recipe, *, resume)`` returns: everything ``run`` would do, checked, nothing written.

    Each stage subclasses it with its own fields (``FinetunePlan``, ``ScorePlan``, ``PrunePlan``); ``stage`` names
    the stage and leads the ``--dry-run --json`` document.
    """

    stage: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        """The ``--dry-run`` document: ``stage``, then the fields in declaration order."""
        return {"stage": self.stage, **asdict(self)}


@dataclass
class StageResult:
    """What a stage returns to the CLI.

    Attributes:
        output_dir: The directory the stage wrote.
        metrics: Final dev metrics (plain names), empty for stages without evaluation.
        details: Stage-specific extras (parameter counts, budget, timings) that the CLI renders.
    """

    output_dir: str
    metrics: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"output_dir": self.output_dir, "metrics": self.metrics, **self.details}
