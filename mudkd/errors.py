"""Errors raised by mudkd's core and recipe layers.

The core never prints or exits: it raises one of these, and the CLI turns it into an ``Error:`` line, an optional
``Hint:`` line and an exit code (2 for bad input, 1 for a run that failed).
"""

from __future__ import annotations


class MudkdError(Exception):
    """Base class of every error mudkd reports to the user without a traceback.

    Args:
        message: What is wrong and where, in one line.
        hint: How to fix it, in one line (optional).
    """

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class RecipeError(MudkdError):
    """A recipe or command-line setting is invalid. ``problems`` lists every problem found."""

    def __init__(self, message: str, hint: str | None = None, problems: list[str] | None = None) -> None:
        super().__init__(message, hint)
        self.problems = problems or [message]


class DataError(MudkdError):
    """A data directory or file is missing or malformed. ``problems`` lists every problem found."""

    def __init__(self, message: str, hint: str | None = None, problems: list[str] | None = None) -> None:
        super().__init__(message, hint)
        self.problems = problems or [message]


class CheckpointError(MudkdError):
    """A model, checkpoint, score file or output directory cannot be used."""


class BudgetError(MudkdError):
    """A knowledge budget does not fit the teacher and student. ``problems`` lists every problem found."""

    def __init__(self, message: str, hint: str | None = None, problems: list[str] | None = None) -> None:
        super().__init__(message, hint)
        self.problems = problems or [message]


class StoreError(MudkdError):
    """A stored HSK/logits directory is missing, corrupted or does not match the run."""


class RunError(MudkdError):
    """A run failed for a reason other than bad input."""

    exit_code = 1


class HubError(MudkdError):
    """The Hugging Face Hub cannot be reached or refused a request (offline, no token, no access)."""
