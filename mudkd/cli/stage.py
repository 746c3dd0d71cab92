"""The body every stage command shares: recipe → plan (``--dry-run``) or run → render.

A command declares its options (:mod:`mudkd.cli.options`) and calls :func:`run_stage` with its core stage's
``plan`` and ``run``; this module does the rest, the same way for every stage. Errors are mapped to ``Error:`` and
``Hint:`` lines once, by the root command (:mod:`mudkd.cli.app`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mudkd.cli import common as c
from mudkd.cli.options import overrides


def build(command: Callable[..., Any], values: Mapping[str, Any], *, stage: str | None = None, base: Any = None) -> Any:
    """The validated recipe: the recipe file (if any) < the command's options < ``--set``."""
    from mudkd.recipe import build_recipe

    flags = overrides(command, values, stage=stage)
    return build_recipe(values.get("recipe"), flags=flags, sets=values.get("set_"), base=base)


def run_stage(
    name: str,
    recipe: Any,
    values: Mapping[str, Any],
    *,
    plan: Callable[..., Any],
    run: Callable[..., Any],
    render: Callable[[str, Any, bool], None] | None = None,
    render_plan: Callable[[dict[str, Any], bool], None] | None = None,
) -> None:
    """Plan the stage (everything checked, nothing written); print the plan for ``--dry-run``, else run it.

    Args:
        name: The command, as tables and progress name it (``distill hsk``).
        recipe: The validated recipe (:func:`build`).
        values: The command's parameters (``--dry-run``, ``--json``, ``--resume`` are read from them).
        plan: The core stage's ``plan(recipe, *, resume)``: a :class:`~mudkd.core.events.StagePlan` (or, for the
            stages that do not declare one yet, its document as a dict).
        run: The core stage's ``run(recipe, *, events, resume)``.
        render: Prints the result (default: a results table, or the JSON document).
        render_plan: Prints a plan (default: the knowledge budget when the plan has one, then a table).
    """
    json_mode, resume = bool(values.get("json_")), bool(values.get("resume"))
    c.quiet_libraries()  # before the plan: reading the data must not print datasets' "Generating train split" bars
    planned = plan(recipe, resume=resume)
    planned = planned if isinstance(planned, dict) else planned.to_dict()  # the document --dry-run prints
    show_plan = render_plan or c.render_plan
    if values.get("dry_run"):
        show_plan(planned, json_mode)
        return
    if not json_mode and planned.get("budget"):
        c.render_budget(planned["budget"])
    result = run(recipe, events=c.make_events(json_mode), resume=resume)
    (render or c.render_result)(name, result, json_mode)
