"""The one budget summary every command shows, and the one byte formatter.

:func:`budget_summary` is the document that ``distill hsk --dry-run``, ``distill cache --dry-run``,
``knowledge_budget.json``, the wizard's preview, the sweep's store rows and the pipeline's plan show (as JSON, or as
a table through :func:`summary_rows`): the budget's
:meth:`~mudkd.knowledge.budget.KnowledgeBudget.to_dict` plus what storing it costs, counted from the store layout
with the teacher's logits included — the same bytes whichever command asks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mudkd.knowledge.budget import KnowledgeBudget
from mudkd.knowledge.schemes import TokenScheme


def format_bytes(count: int | float) -> str:
    """``250880`` -> ``245 KiB``: binary units, three significant digits."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    text = f"{value:.0f}" if value >= 100 or unit == "B" else f"{value:.3g}"
    return f"{text} {unit}"


def budget_summary(budget: KnowledgeBudget, num_examples: int | None, value_dtype: str = "float16") -> dict[str, Any]:
    """The knowledge-budget document: ``budget.to_dict()`` plus the bytes of storing it.

    Args:
        budget: The resolved budget (its ``num_labels`` sets the logits counted).
        num_examples: Training examples (None when unknown: no train-set size).
        value_dtype: Precision of the stored HSK values.

    Returns:
        ``to_dict()`` keys, plus ``storable``, ``value_dtype``, ``hsk_bytes_per_example``,
        ``logits_bytes_per_example``, ``bytes_per_example`` (their sum: what one stored example takes),
        ``num_train_examples`` and ``train_set_bytes``.
    """
    per_example = budget.example_bytes(value_dtype)
    logits = budget.logits_bytes()
    return {
        **budget.to_dict(),
        "storable": budget.storable,
        "value_dtype": value_dtype,
        "hsk_bytes_per_example": per_example - logits,
        "logits_bytes_per_example": logits,
        "bytes_per_example": per_example,
        "num_train_examples": num_examples,
        "train_set_bytes": per_example * num_examples if num_examples else None,
    }


def _layer_name(index: int) -> str:
    return "embeddings" if index == 0 else f"layer {index}"


def summary_rows(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """:func:`budget_summary` as ``(label, value)`` rows for a two-column table (the same labels everywhere)."""
    tokens, length = summary["keep_tokens"], summary["max_seq_length"]
    ranked = tokens < length and summary["token_scheme"] != TokenScheme.LEFT_FIRST
    rows = [("layer scheme", str(summary["layer_scheme"]))]
    for layer in summary["layers"]:
        ranking = f" (tokens ranked by layer {layer['attention'] + 1}'s [CLS] attention)" if ranked else ""
        rows.append((f"student {_layer_name(layer['student'])}", f"teacher {_layer_name(layer['teacher'])}{ranking}"))
    rows.append(("tokens", f"{tokens} of {length}" + (f" ({summary['token_scheme']})" if tokens < length else "")))
    hidden, rho = summary["teacher_hidden"], summary["keep_hidden"]
    if rho >= 1:
        width = f"all {hidden} dims"
    elif summary["kept_width"] is None:
        width = f"Mag Mask: the largest {rho * 100:g}% of the values per {summary['mag_scope']}"
    else:
        width = f"{summary['kept_width']} of {hidden} dims ({summary['hidden_scheme']})"
    rows.append(("width", width))
    rows.append(("HSK elements per example", f"{summary['elements_per_example']:,}"))
    rows.append(("fraction of full HSK", f"{summary['hsk_fraction']:.3%}"))
    rows.append(
        (
            f"stored bytes per example ({summary['value_dtype']} HSK + indices + {summary['num_labels']} logits)",
            f"{format_bytes(summary['bytes_per_example'])} ({summary['bytes_per_example']:,} B)",
        )
    )
    if summary.get("train_set_bytes"):
        rows.append(
            (f"store for {summary['num_train_examples']:,} training examples", format_bytes(summary["train_set_bytes"]))
        )
    return rows
