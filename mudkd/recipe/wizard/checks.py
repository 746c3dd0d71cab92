"""The wizard's rules over the answers: when a question applies, answer-dependent defaults, and answer validators.

Everything is a function of the answers given so far (and of the files they name: data files must exist, model
shapes are read from config.json by :mod:`mudkd.recipe.wizard.models`). Numbers are validated through the schema
(:mod:`mudkd.recipe.wizard.fields`); budgets are resolved against the teacher's and student's shapes by
:mod:`mudkd.knowledge`, so an answer that cannot work is refused when it is given, not 25 questions later.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mudkd.errors import MudkdError
from mudkd.knowledge import HiddenScheme, KnowledgeBudget, parse_config_3d, parse_layer_scheme, resolve_budget
from mudkd.knowledge.shapes import DEFAULT_NUM_LABELS, ModelShape
from mudkd.knowledge.tasks import GLUE_TASKS, TRAIN_SIZES
from mudkd.recipe.schema import HskConfig
from mudkd.recipe.wizard.fields import Answers, schema_bounds, schema_default, schema_problem, within
from mudkd.recipe.wizard.models import ASSUMED_TEACHER, ModelFacts, model_facts, model_problem, suggested_teacher

DATA_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl")

#: Teacher-free is the default only for a store up to this size: a storable full-HSK store of a large task is
#: tens of gigabytes (SST-2 on BERT-base: about 90 GB).
STORE_DEFAULT_LIMIT = 10 * 2**30

#: The width check of ``hsk.keep_hidden`` (also the third part of a ``config_3d`` string).
keep_hidden_ok = within("hsk.keep_hidden", example=", e.g. 0.1 keeps 10% of the width")


def _message(error: MudkdError) -> str:
    return f"{error.message}; {error.hint}" if error.hint else error.message


def required(value: Any, answers: Answers) -> str | None:
    """A non-blank answer."""
    return None if str(value).strip() else "an answer is required"


# -- files ---------------------------------------------------------------------------------------------------------


def _where() -> str:
    return f"relative paths are taken from {Path.cwd()}"


def data_dir_ok(value: Any, answers: Answers) -> str | None:
    """An existing GLUE task directory (it holds ``train.tsv``)."""
    if not str(value).strip():
        return "an answer is required"
    path = Path(os.path.expanduser(str(value).strip()))
    if not path.is_dir():
        return f"{value}: no such directory ({_where()})"
    if not (path / "train.tsv").is_file():
        return f"{value}: no train.tsv here (give the GLUE task directory, e.g. glue_data/SST-2)"
    return None


def data_file_ok(value: Any, answers: Answers) -> str | None:
    """An existing custom data file with a suffix the data loader reads."""
    if not str(value).strip():
        return "an answer is required"
    if not str(value).lower().endswith(DATA_SUFFIXES):
        return f"use a {', '.join(DATA_SUFFIXES)} file"
    if not Path(os.path.expanduser(str(value).strip())).is_file():
        return f"{value}: no such file ({_where()})"
    return None


def columns_ok(value: Any, answers: Answers) -> str | None:
    """One text column, or two for sentence pairs."""
    return None if 1 <= len(value) <= 2 else "give one column, or two (comma-separated) for sentence pairs"


# -- models --------------------------------------------------------------------------------------------------------


def teacher_reference(answers: Answers) -> str:
    """The teacher as answered, else the suggested one."""
    return str(answers.get("teacher.pretrained") or suggested_teacher())


def teacher_facts(answers: Answers) -> ModelFacts | None:
    """The teacher's shape when it can be read (local directory, ``package:``, known hub name), else None."""
    return model_facts(teacher_reference(answers))


def teacher_ok(value: Any, answers: Answers) -> str | None:
    """A teacher the recipe can point at: an installed ``package:``, a model directory, or a hub name."""
    return required(value, answers) or schema_problem("teacher.pretrained", value) or model_problem(str(value))


def student_model_ok(value: Any, answers: Answers) -> str | None:
    """A TinyBERT-style student: an installed ``package:``, a model directory with a config.json, or a hub name."""
    return required(value, answers) or schema_problem("student.model", value) or model_problem(str(value))


def _scaled(key: str, answers: Answers, value_of: Any) -> Any:
    """The teacher-scaled default of a prune key, or the schema default when the teacher cannot be read."""
    facts = teacher_facts(answers)
    value = value_of(facts) if facts is not None else None
    return max(1, value) if isinstance(value, int) else schema_default(key)


# The paper prunes BERT-base (12 layers, 12 heads, FFN 3072, width 768) to 6 layers, 2 heads, FFN 768 and embedding
# rank 128: the same fractions of any teacher. For all-MiniLM-L6-v2 they give the quickstart's 3 / 2 / 384 / 64.


def prune_layers_default(answers: Answers) -> int:
    """Half the teacher's layers."""
    return _scaled("prune.num_layers", answers, lambda facts: facts.layers // 2)


def prune_heads_default(answers: Answers) -> int:
    """The schema's heads (2), at most the teacher's."""
    default = schema_default("prune.keep_heads")
    return _scaled("prune.keep_heads", answers, lambda facts: min(default, facts.heads or default))


def prune_ffn_default(answers: Answers) -> int:
    """A quarter of the teacher's FFN neurons."""
    return _scaled("prune.ffn_hidden_dim", answers, lambda facts: facts.ffn // 4 if facts.ffn else None)


def prune_emb_default(answers: Answers) -> int:
    """A sixth of the teacher's width."""
    return _scaled("prune.emb_hidden_dim", answers, lambda facts: facts.hidden // 6)


def _at_most(key: str, limit: int | None, what: str, value: Any) -> str | None:
    problem = schema_problem(key, value)
    if problem is None and limit is not None and value > limit:
        problem = f"must be at most {limit}, the teacher's {what} (got {value})"
    return problem


def prune_layers_ok(value: Any, answers: Answers) -> str | None:
    """At least 1 and at most the teacher's layers."""
    facts = teacher_facts(answers)
    return _at_most("prune.num_layers", facts.layers if facts else None, "layers", value)


def prune_heads_ok(value: Any, answers: Answers) -> str | None:
    """At least 1 and at most the teacher's heads per layer."""
    facts = teacher_facts(answers)
    return _at_most("prune.keep_heads", facts.heads if facts else None, "heads per layer", value)


def prune_ffn_ok(value: Any, answers: Answers) -> str | None:
    """At least 1 and at most the teacher's FFN neurons."""
    facts = teacher_facts(answers)
    return _at_most("prune.ffn_hidden_dim", facts.ffn if facts else None, "FFN neurons per layer", value)


def emb_rank_ok(value: Any, answers: Answers) -> str | None:
    """A word-embedding rank: -1 (the embedding kept whole), or between 1 and the teacher's width."""
    keep_whole = schema_bounds("prune.emb_hidden_dim").low
    if value == keep_whole:
        return None
    if value < 1:
        return f"must be >= 1, or {keep_whole} to keep the embedding whole (got {value})"
    facts = teacher_facts(answers)
    return _at_most("prune.emb_hidden_dim", facts.hidden if facts else None, "width", value)


def student_depth(answers: Answers) -> int | None:
    """L_S: the pruned depth, or the TinyBERT-style student's from its config; None when it cannot be read."""
    if is_pruned(answers):
        depth = answers.get("prune.num_layers", prune_layers_default(answers))
        return depth if isinstance(depth, int) else None
    facts = model_facts(answers.get("student.model"))
    return facts.layers if facts else None


# -- knowledge budget ----------------------------------------------------------------------------------------------


def max_tokens(answers: Answers) -> int:
    """``task.max_seq_length`` as answered (else its default); the schema's upper bound if it is not a number."""
    value = answers.get("task.max_seq_length", schema_default("task.max_seq_length"))
    return value if isinstance(value, int) else int(schema_bounds("task.max_seq_length").high or 0)


def chosen_layer_scheme(answers: Answers) -> str | None:
    """The ``t_topN`` the answers choose; None for the standard mapping (t_top<teacher depth>) or a full budget."""
    if budget_mode(answers) == "full":
        return None
    scheme = answers.get("layer_scheme")
    if scheme == "other":
        scheme = answers.get("layer_scheme_other")
    return None if scheme in (None, "standard") else str(scheme)


def budget_settings(answers: Answers) -> dict[str, Any]:
    """The answered budget as ``[hsk]`` keys (unanswered keys: the schema's defaults)."""
    mode = budget_mode(answers)
    settings: dict[str, Any] = {}
    if mode == "full":
        return settings
    keys = ["token_scheme", "hidden_scheme", "mag_scope"]
    keys += ["config_3d"] if mode == "3d" else ["keep_layers", "keep_tokens", "keep_hidden"]
    for name in keys:
        if answers.get(f"hsk.{name}") is not None:
            settings[name] = answers[f"hsk.{name}"]
    if chosen_layer_scheme(answers):
        settings["layer_scheme"] = chosen_layer_scheme(answers)
    return settings


def _resolve(answers: Answers, teacher: ModelFacts, depth: int) -> KnowledgeBudget:
    # unvalidated on purpose: resolve_budget checks the raw answers and words every problem for the prompt
    settings = HskConfig.model_construct(**budget_settings(answers))
    shape = ModelShape(layers=teacher.layers, hidden=teacher.hidden, num_labels=DEFAULT_NUM_LABELS)
    return resolve_budget(settings, student_layers=depth, teacher=shape, max_seq_length=max_tokens(answers))


def budget_problem(answers: Answers) -> str | None:
    """Why the answered budget does not fit the teacher and student, or None (also when a shape is unknown)."""
    teacher, depth = teacher_facts(answers), student_depth(answers)
    if teacher is None or depth is None:
        return None
    try:
        _resolve(answers, teacher, depth)
    except MudkdError as error:
        return _message(error)
    return None


def _fits(key: str) -> Any:
    """A validator: the budget with ``key`` answered ``value`` fits the models."""

    def check(value: Any, answers: Answers) -> str | None:
        return budget_problem({**answers, key: value})

    return check


def keep_layers_ok(value: Any, answers: Answers) -> str | None:
    """K between 1 and the student's layers + embeddings (when the answers fix the depth)."""
    depth = student_depth(answers)
    if value < 1 or (depth is not None and value > depth + 1):
        upper = f" and {depth + 1} (the student's {depth} layers + embeddings)" if depth is not None else ""
        return f"must be between 1{upper} (got {value})" if upper else f"must be >= 1 (got {value})"
    return schema_problem("hsk.keep_layers", value)


def keep_tokens_ok(value: Any, answers: Answers) -> str | None:
    """k between 1 and ``task.max_seq_length``."""
    limit = max_tokens(answers)
    return None if 1 <= value <= limit else f"must be between 1 and task.max_seq_length = {limit} (got {value})"


def config_3d_ok(value: Any, answers: Answers) -> str | None:
    """A ``{K}l_{k}t_{rho}h`` string whose three parts pass the depth, length and width checks and fit the models."""
    try:
        layers, tokens, hidden = parse_config_3d(value)
    except MudkdError as error:
        return _message(error)
    return (
        keep_layers_ok(layers, answers)
        or keep_tokens_ok(tokens, answers)
        or keep_hidden_ok(hidden, answers)
        or budget_problem({**answers, "hsk.config_3d": value})
    )


def _layer_top_problem(scheme: str, answers: Answers) -> str | None:
    try:
        top = parse_layer_scheme(scheme)
    except MudkdError as error:
        return _message(error)
    teacher = teacher_facts(answers)
    if teacher is not None and top > teacher.layers:
        return f"{scheme} maps beyond the teacher's {teacher.layers} layers (use t_topN with N <= {teacher.layers})"
    return None


def layer_scheme_choice_ok(value: Any, answers: Answers) -> str | None:
    """A listed mapping within the teacher's depth (``standard`` and ``other`` always are)."""
    return None if value in ("standard", "other") else _layer_top_problem(str(value), answers)


def layer_scheme_ok(value: Any, answers: Answers) -> str | None:
    """A ``t_topN`` string with N up to the teacher's depth."""
    return _layer_top_problem(str(value), answers)


#: Validators of the width answers: the budget must keep at least one value.
keep_hidden_fits = _fits("hsk.keep_hidden")
hidden_scheme_fits = _fits("hsk.hidden_scheme")


def keep_hidden_answer_ok(value: Any, answers: Answers) -> str | None:
    """ρ in (0, 1] (the schema), keeping at least one value of the teacher's width."""
    return keep_hidden_ok(value, answers) or keep_hidden_fits(value, answers)


# -- teacher-free --------------------------------------------------------------------------------------------------


def train_examples(answers: Answers) -> int | None:
    """Training examples the run uses: the task's size capped by ``task.max_train_samples`` (None: unknown)."""
    examples = TRAIN_SIZES.get(str(answers.get("task.name", schema_default("task.name"))))
    cap = answers.get("task.max_train_samples")
    if isinstance(cap, int):
        return min(examples, cap) if examples is not None else cap
    return examples


def answered_budget(answers: Answers) -> KnowledgeBudget | None:
    """The answered budget, resolved against the models (BERT-base and a half-depth student where a shape cannot be
    read); None when it does not fit."""
    teacher = teacher_facts(answers) or ASSUMED_TEACHER
    depth = student_depth(answers) or max(1, teacher.layers // 2)
    try:
        return _resolve(answers, teacher, depth)
    except MudkdError:
        return None


def store_default(answers: Answers) -> bool:
    """Teacher-free by default when the budget is storable (:attr:`KnowledgeBudget.storable`: not a batch-scope
    Mag Mask) and its store is at most :data:`STORE_DEFAULT_LIMIT`."""
    budget = answered_budget(answers)
    if budget is None or not budget.storable:
        return False
    examples = train_examples(answers)
    return examples is None or budget.bytes_for(examples, schema_default("cache.dtype")) <= STORE_DEFAULT_LIMIT


# -- when questions apply ------------------------------------------------------------------------------------------


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


def uses_magnitude_mask(answers: Answers) -> bool:
    """The width mask is the Mag Mask (so its scope, per example or per batch, matters)."""
    scheme = answers.get("hsk.hidden_scheme", schema_default("hsk.hidden_scheme"))
    return compresses_width(answers) and scheme == HiddenScheme.IMPORTANCE_MASK_DYNAMIC


def default_output(answers: Answers) -> str:
    """``runs/<task>-<rosita|tinybert>``."""
    student = "rosita" if is_pruned(answers) else "tinybert"
    return f"runs/{answers.get('task.name', schema_default('task.name'))}-{student}"
