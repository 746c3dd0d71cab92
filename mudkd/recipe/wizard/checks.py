"""The wizard's rules over the answers: when a question applies, answer-dependent defaults, and answer validators.

Everything is a pure function of the answers given so far. Numbers and defaults come from the schema
(:mod:`mudkd.recipe.wizard.fields`); the budget strings are parsed by :mod:`mudkd.knowledge`.
"""

from __future__ import annotations

from typing import Any

from mudkd.errors import MudkdError
from mudkd.knowledge import parse_config_3d, parse_layer_scheme
from mudkd.recipe.schema import GLUE_TASKS
from mudkd.recipe.wizard.fields import Answers, schema_bounds, schema_default, within

DATA_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl")

#: The width check of ``hsk.keep_hidden`` (also the third part of a ``config_3d`` string).
keep_hidden_ok = within("hsk.keep_hidden", example=", e.g. 0.1 keeps 10% of the width")


def required(value: Any, answers: Answers) -> str | None:
    """A non-blank answer."""
    return None if str(value).strip() else "an answer is required"


def emb_rank_ok(value: Any, answers: Answers) -> str | None:
    """A word-embedding rank: at least 1, or the schema's lowest value (-1), which keeps the embedding whole."""
    keep_whole = schema_bounds("prune.emb_hidden_dim").low
    if value == keep_whole or value >= 1:
        return None
    return f"must be >= 1, or {keep_whole} to keep the embedding whole (got {value})"


def data_file_ok(value: Any, answers: Answers) -> str | None:
    """A custom data file with a suffix the data loader reads."""
    if not str(value).strip():
        return "an answer is required"
    return None if str(value).lower().endswith(DATA_SUFFIXES) else f"use a {', '.join(DATA_SUFFIXES)} file"


def columns_ok(value: Any, answers: Answers) -> str | None:
    """One text column, or two for sentence pairs."""
    return None if 1 <= len(value) <= 2 else "give one column, or two (comma-separated) for sentence pairs"


def max_tokens(answers: Answers) -> int:
    """``task.max_seq_length`` as answered (else its default); the schema's upper bound if it is not a number."""
    value = answers.get("task.max_seq_length", schema_default("task.max_seq_length"))
    return value if isinstance(value, int) else int(schema_bounds("task.max_seq_length").high or 0)


def student_depth(answers: Answers) -> int | None:
    """L_S when it follows from the answers (a pruned student), else None (read from the model later)."""
    if not is_pruned(answers):
        return None
    depth = answers.get("prune.num_layers", schema_default("prune.num_layers"))
    return depth if isinstance(depth, int) else None


def keep_layers_ok(value: Any, answers: Answers) -> str | None:
    """K between 1 and the student's layers + embeddings (when the answers fix the depth)."""
    depth = student_depth(answers)
    if value < 1 or (depth is not None and value > depth + 1):
        upper = f" and {depth + 1} (the student's {depth} layers + embeddings)" if depth is not None else ""
        return f"must be between 1{upper} (got {value})" if upper else f"must be >= 1 (got {value})"
    return None


def keep_tokens_ok(value: Any, answers: Answers) -> str | None:
    """k between 1 and ``task.max_seq_length``."""
    limit = max_tokens(answers)
    return None if 1 <= value <= limit else f"must be between 1 and task.max_seq_length = {limit} (got {value})"


def config_3d_ok(value: Any, answers: Answers) -> str | None:
    """A ``{K}l_{k}t_{rho}h`` string whose three parts pass the depth, length and width checks."""
    try:
        layers, tokens, hidden = parse_config_3d(value)
    except MudkdError as error:
        return f"{error.message}; {error.hint}" if error.hint else error.message
    return keep_layers_ok(layers, answers) or keep_tokens_ok(tokens, answers) or keep_hidden_ok(hidden, answers)


def layer_scheme_ok(value: Any, answers: Answers) -> str | None:
    """A ``t_topN`` string."""
    try:
        parse_layer_scheme(value)
    except MudkdError as error:
        return f"{error.message}; {error.hint}" if error.hint else error.message
    return None


def is_glue(answers: Answers) -> bool:
    """The task is a GLUE task (its data is a GLUE directory)."""
    return answers.get("task.name", schema_default("task.name")) in GLUE_TASKS


def is_custom(answers: Answers) -> bool:
    """The task is ``custom`` (its data is the user's files)."""
    return bool(answers.get("task.name") == "custom")


def is_pruned(answers: Answers) -> bool:
    """The student is pruned from the teacher (ROSITA-style), not an existing smaller BERT."""
    return bool(answers.get("student_kind", "pruned") == "pruned")


def budget_mode(answers: Answers) -> str:
    """``full``, ``3d`` or ``custom``: as answered, else as the preset budget keys imply."""
    return str(answers.get("budget_mode", budget_mode_default(answers)))


def budget_mode_default(answers: Answers) -> str:
    """'3d' when a config string was preset (``--set hsk.config_3d=...``), 'custom' for any other budget key."""
    if answers.get("hsk.config_3d"):
        return "3d"
    budget_keys = (
        "layer_scheme",
        "hsk.keep_layers",
        "hsk.keep_tokens",
        "hsk.keep_hidden",
        "hsk.token_scheme",
        "hsk.hidden_scheme",
    )
    return "custom" if any(answers.get(key) is not None for key in budget_keys) else "full"


def compresses_tokens(answers: Answers) -> bool:
    """The budget keeps fewer tokens than the sequence length (so the token scheme matters)."""
    if budget_mode(answers) == "3d":
        return True
    tokens = answers.get("hsk.keep_tokens")
    return budget_mode(answers) == "custom" and tokens is not None and tokens < max_tokens(answers)


def compresses_width(answers: Answers) -> bool:
    """The budget keeps part of the hidden width (so the hidden scheme matters)."""
    if budget_mode(answers) == "3d":
        return True
    return budget_mode(answers) == "custom" and answers.get("hsk.keep_hidden", schema_default("hsk.keep_hidden")) < 1.0


def default_output(answers: Answers) -> str:
    """``runs/<task>-<rosita|tinybert>``."""
    student = "rosita" if is_pruned(answers) else "tinybert"
    return f"runs/{answers.get('task.name', schema_default('task.name'))}-{student}"
