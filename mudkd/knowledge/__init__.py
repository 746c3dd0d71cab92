"""The vocabulary of "which knowledge": schemes, budgets, store layout, model shapes and the budget summary.

Pure Python (no torch, numpy or transformers; nothing from mudkd but :mod:`mudkd.errors`), so the recipe layer,
the wizard and ``--dry-run`` plans can use it before anything heavy is imported. Every other module imports these
names from here instead of spelling a scheme, a budget string, a byte count or a label rule again.

Modules:
    schemes: the scheme enums (:class:`TokenScheme`, :class:`HiddenScheme`, :class:`MagScope`, :class:`MaskMode`,
        :class:`StoreDtype`) and the ``t_topN`` / ``{K}l_{k}t_{ρ}h`` parsers.
    arithmetic: exact depth mapping, kept counts and static width masks.
    budget: :class:`KnowledgeBudget`, the resolved budget and its amounts.
    resolve: :func:`resolve_budget` / :func:`budget_from_recipe` (all problems at once) and the recipe-level
        string checks.
    serving: :func:`can_serve` (which store serves which budget) and the covering budget of a sweep.
    layout: the store's fields, dtypes and bytes.
    shapes: model depth, width and label count from a config dict.
    tasks: the GLUE task table (files, columns, labels, metrics, sizes) and every task name a recipe may use.
    summary: :func:`budget_summary`, the one budget document, and :func:`format_bytes`.
"""

from __future__ import annotations

from mudkd.knowledge.arithmetic import kept_count, layer_mapping, rand_mask_dims, uniform_mask_dims
from mudkd.knowledge.budget import KnowledgeBudget
from mudkd.knowledge.layout import INT16_MAX, VALUE_DTYPE_BYTES
from mudkd.knowledge.resolve import BudgetSettings, budget_from_recipe, budget_string_problems, resolve_budget
from mudkd.knowledge.schemes import (
    HiddenScheme,
    MagScope,
    MaskMode,
    StoreDtype,
    TokenScheme,
    parse_config_3d,
    parse_layer_scheme,
)
from mudkd.knowledge.serving import can_serve, covering_overrides
from mudkd.knowledge.shapes import ModelShape, config_num_labels, model_shape, task_num_labels
from mudkd.knowledge.summary import budget_summary, format_bytes, summary_rows

__all__ = [
    "BudgetSettings",
    "INT16_MAX",
    "VALUE_DTYPE_BYTES",
    "HiddenScheme",
    "KnowledgeBudget",
    "MagScope",
    "MaskMode",
    "ModelShape",
    "StoreDtype",
    "TokenScheme",
    "budget_from_recipe",
    "budget_string_problems",
    "budget_summary",
    "can_serve",
    "config_num_labels",
    "covering_overrides",
    "format_bytes",
    "kept_count",
    "layer_mapping",
    "model_shape",
    "parse_config_3d",
    "parse_layer_scheme",
    "rand_mask_dims",
    "resolve_budget",
    "summary_rows",
    "task_num_labels",
    "uniform_mask_dims",
]
