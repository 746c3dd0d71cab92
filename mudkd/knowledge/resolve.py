"""Resolving a budget: every setting validated against the models' shapes, all problems reported at once.

Two levels of checks live here, so that no other module restates them:

* :func:`budget_string_problems` — what a recipe's ``[hsk]`` table gets wrong without any model: a malformed
  ``config_3d`` or ``layer_scheme`` string, more tokens than ``task.max_seq_length`` (``mudkd recipe validate``,
  the wizard).
* :func:`resolve_budget` — everything, once the shapes of teacher and student are known (from their configs, see
  :mod:`mudkd.knowledge.shapes`): ranges of K, k and ρ, explicit layer lists, scheme names, masks that keep nothing.
"""

from __future__ import annotations

import re
from typing import Any

from mudkd.errors import BudgetError
from mudkd.knowledge.arithmetic import attention_layer_list, layer_mapping, rand_mask_dims, uniform_mask_dims
from mudkd.knowledge.budget import KnowledgeBudget
from mudkd.knowledge.schemes import (
    HiddenScheme,
    MagScope,
    MaskMode,
    TokenScheme,
    layer_scheme_name,
    parse_config_3d,
    parse_layer_scheme,
)

Problem = tuple[str, str]  # (message, hint)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_problem(name: str, value: object, low: int, high: int | None, hint: str) -> Problem | None:
    if not _is_int(value) or value < low or (high is not None and value > high):  # type: ignore[operator]
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        return f"{name} must be an integer {bound} (got {value!r})", hint
    return None


def _choice_problem(name: str, value: object, allowed: tuple[str, ...]) -> Problem | None:
    if value not in allowed:
        return f"{name}: unknown value {value!r}", f"use one of {', '.join(allowed)}"
    return None


def _indices_problems(name: str, values: object, high: int, hint: str) -> list[Problem]:
    if not isinstance(values, (list, tuple)) or not values:
        return [(f"{name} must be a non-empty list of layer indices (got {values!r})", hint)]
    return [p for value in values if (p := _int_problem(f"{name} entry", value, 0, high, hint))]


def _raise(problems: list[Problem]) -> None:
    if problems:
        raise BudgetError(problems[0][0], problems[0][1], problems=[message for message, _ in problems])


def _parse(parser: Any, text: str, problems: list[Problem]) -> Any:
    try:
        return parser(text)
    except BudgetError as error:
        problems.append((error.message, error.hint or ""))
        return None


def resolve_budget(
    *,
    num_student_layers: int,
    num_teacher_layers: int,
    teacher_hidden: int,
    max_seq_length: int,
    keep_layers: int | None = None,
    layer_scheme: str | None = None,
    student_layer_indices: list[int] | None = None,
    teacher_layer_indices: list[int] | None = None,
    keep_tokens: int | None = None,
    token_scheme: str = TokenScheme.ATTENTION_NO_SEP.value,
    att_ttop12: bool = False,
    keep_hidden: float = 1.0,
    hidden_scheme: str = HiddenScheme.IMPORTANCE_MASK_DYNAMIC.value,
    mag_scope: str = MagScope.EXAMPLE.value,
    mask_mode: str = MaskMode.BOTH.value,
    config_3d: str | None = None,
    seed: int = 42,
    num_labels: int = 2,
) -> KnowledgeBudget:
    """Validate the budget settings against the models and resolve every index (method.md §9–§12).

    Args:
        num_student_layers: L_S.
        num_teacher_layers: L_T.
        teacher_hidden: Teacher width d.
        max_seq_length: T.
        keep_layers: K, the top student layers that get HSK (embeddings = layer 0); default L_S + 1.
        layer_scheme: ``t_topN``; default ``t_top{L_T}``, the standard mapping.
        student_layer_indices: Explicit s_j, overriding the top-K choice.
        teacher_layer_indices: Explicit t_j (same length as s_j), overriding the mapping.
        keep_tokens: k; default T (all tokens).
        token_scheme: A :class:`~mudkd.knowledge.schemes.TokenScheme`.
        att_ttop12: Rank tokens with the attention of the layer producing g(l; L_T) (reference default) instead
            of the layer producing the target, max(t_j − 1, 0).
        keep_hidden: ρ in (0, 1].
        hidden_scheme: A :class:`~mudkd.knowledge.schemes.HiddenScheme`.
        mag_scope: ``example`` or ``batch`` (Mag Mask only).
        mask_mode: ``both`` or ``teacher_only``.
        config_3d: ``{K}l_{k}t_{ρ}h``; overrides keep_layers, keep_tokens and keep_hidden.
        seed: Seed of ``rand_mask``.
        num_labels: Teacher logits per example (for storage sizes; see :mod:`mudkd.knowledge.shapes`).

    Returns:
        The resolved, validated budget.

    Raises:
        BudgetError: Naming the first problem (with a hint); ``problems`` lists every problem found.
    """
    shape_checks = [
        _int_problem("num_student_layers", num_student_layers, 1, None, "check the student config"),
        _int_problem("num_teacher_layers", num_teacher_layers, 1, None, "check the teacher config"),
        _int_problem("teacher_hidden", teacher_hidden, 1, None, "check the teacher config"),
        _int_problem("max_seq_length", max_seq_length, 1, None, "set a positive max_seq_length"),
        _int_problem("num_labels", num_labels, 0, None, "use the number of teacher logits (0 for none)"),
    ]
    _raise([problem for problem in shape_checks if problem])  # every other check needs the shapes

    problems: list[Problem] = []
    if config_3d is not None:
        parsed = _parse(parse_config_3d, config_3d, problems)
        if parsed is not None:
            keep_layers, keep_tokens, keep_hidden = parsed

    l_top = _parse(
        parse_layer_scheme,
        layer_scheme if layer_scheme is not None else layer_scheme_name(num_teacher_layers),
        problems,
    )
    if l_top is not None and l_top > num_teacher_layers:
        problems.append(
            (
                f"layer_scheme t_top{l_top} maps beyond the teacher's {num_teacher_layers} layers",
                f"use t_topN with N <= {num_teacher_layers}",
            )
        )
        l_top = None

    max_k = num_student_layers + 1
    student_layers: list[int] = []
    if student_layer_indices is not None:
        hint = f"use student hidden-state indices 0..{num_student_layers} (0 = embeddings)"
        found = _indices_problems("student_layer_indices", student_layer_indices, num_student_layers, hint)
        problems += found
        student_layers = [] if found else list(student_layer_indices)
        if student_layers and keep_layers is not None and keep_layers != len(student_layers):
            problems.append(
                (
                    f"keep_layers = {keep_layers} disagrees with {len(student_layers)} student_layer_indices",
                    "drop keep_layers or make it match the explicit index list",
                )
            )
    else:
        k_layers = max_k if keep_layers is None else keep_layers
        hint = f"the student has {num_student_layers} layers + embeddings"
        if found_k := _int_problem("keep_layers", k_layers, 1, max_k, hint):
            problems.append(found_k)
        else:
            student_layers = list(range(num_student_layers - k_layers + 1, num_student_layers + 1))

    teacher_layers: list[int] = []
    if teacher_layer_indices is not None:
        hint = f"use teacher hidden-state indices 0..{num_teacher_layers} (0 = embeddings)"
        found = _indices_problems("teacher_layer_indices", teacher_layer_indices, num_teacher_layers, hint)
        problems += found
        teacher_layers = [] if found else list(teacher_layer_indices)
        if teacher_layers and student_layers and len(teacher_layers) != len(student_layers):
            problems.append(
                (
                    f"{len(teacher_layers)} teacher layer indices for {len(student_layers)} student layers",
                    "give one teacher index per distilled student layer",
                )
            )
    elif l_top is not None:
        mapping = layer_mapping(num_student_layers, l_top)
        teacher_layers = [mapping[layer] for layer in student_layers]

    if not isinstance(att_ttop12, bool):
        problems.append((f"att_ttop12 must be true or false (got {att_ttop12!r})", "use a boolean"))

    k_tokens = max_seq_length if keep_tokens is None else keep_tokens
    hint = f"keep at most max_seq_length = {max_seq_length} tokens"
    problems += [
        p
        for p in (
            _int_problem("keep_tokens", k_tokens, 1, max_seq_length, hint),
            _choice_problem("token_scheme", token_scheme, TokenScheme.values()),
            _choice_problem("hidden_scheme", hidden_scheme, HiddenScheme.values()),
            _choice_problem("mag_scope", mag_scope, MagScope.values()),
            _choice_problem("mask_mode", mask_mode, MaskMode.values()),
        )
        if p
    ]
    if isinstance(keep_hidden, bool) or not isinstance(keep_hidden, (int, float)) or not 0 < keep_hidden <= 1:
        problems.append((f"keep_hidden must be in (0, 1] (got {keep_hidden!r})", "e.g. 0.1 keeps 10% of the width"))
    if not _is_int(seed):
        problems.append((f"seed must be an integer (got {seed!r})", "use an integer seed, e.g. 42"))
    _raise(problems)
    assert l_top is not None  # for the type checker: a missing l_top was reported above

    if att_ttop12:
        attention_list = attention_layer_list(num_student_layers, num_teacher_layers)
        attention_layers = [attention_list[layer] for layer in student_layers]
    else:
        attention_layers = [max(layer - 1, 0) for layer in teacher_layers]

    rho = float(keep_hidden)
    width_dims: list[int] | None = None
    if rho < 1.0 and hidden_scheme == HiddenScheme.UNIFORM_MASK:
        width_dims = uniform_mask_dims(teacher_hidden, rho)
    elif rho < 1.0 and hidden_scheme == HiddenScheme.RAND_MASK:
        width_dims = rand_mask_dims(teacher_hidden, rho, seed)
    if width_dims is not None and not width_dims:
        raise BudgetError(
            f"keep_hidden = {rho} keeps no dimension of width {teacher_hidden}",
            f"use keep_hidden >= {1 / teacher_hidden:.2g}",
        )

    budget = KnowledgeBudget(
        num_student_layers=num_student_layers,
        num_teacher_layers=num_teacher_layers,
        teacher_hidden=teacher_hidden,
        max_seq_length=max_seq_length,
        layer_top=l_top,
        student_layers=student_layers,
        teacher_layers=teacher_layers,
        attention_layers=attention_layers,
        att_ttop12=att_ttop12,
        keep_tokens=k_tokens,
        token_scheme=str(token_scheme),
        keep_hidden=rho,
        hidden_scheme=str(hidden_scheme),
        mag_scope=str(mag_scope),
        mask_mode=str(mask_mode),
        width_dims=width_dims,
        seed=seed,
        num_labels=num_labels,
    )
    if budget.magnitude_mask and budget.magnitude_count < 1:
        raise BudgetError(
            f"keep_hidden = {rho} keeps no value of {k_tokens} tokens x {teacher_hidden} dims",
            "raise keep_hidden or keep_tokens",
        )
    return budget


def budget_from_recipe(
    recipe: Any, *, num_student_layers: int, num_teacher_layers: int, teacher_hidden: int, num_labels: int
) -> KnowledgeBudget:
    """Resolve a recipe's ``[hsk]`` budget against the models' shapes (pure: no model is loaded).

    Args:
        recipe: A :class:`mudkd.recipe.schema.Recipe` (its ``task``, ``hsk`` and ``training`` tables are read).
        num_student_layers: L_S.
        num_teacher_layers: L_T.
        teacher_hidden: Teacher width d.
        num_labels: Teacher logits stored per example (see :mod:`mudkd.knowledge.shapes`).

    Raises:
        BudgetError: If the budget does not fit the models (``problems`` lists every problem).
    """
    hsk = recipe.hsk
    return resolve_budget(
        num_student_layers=num_student_layers,
        num_teacher_layers=num_teacher_layers,
        teacher_hidden=teacher_hidden,
        max_seq_length=recipe.task.max_seq_length,
        keep_layers=hsk.keep_layers,
        layer_scheme=hsk.layer_scheme,
        student_layer_indices=hsk.student_layers,
        teacher_layer_indices=hsk.teacher_layers,
        keep_tokens=hsk.keep_tokens,
        token_scheme=hsk.token_scheme,
        att_ttop12=hsk.att_ttop12,
        keep_hidden=hsk.keep_hidden,
        hidden_scheme=hsk.hidden_scheme,
        mag_scope=hsk.mag_scope,
        mask_mode=hsk.mask_mode,
        config_3d=hsk.config_3d,
        seed=recipe.training.seed,
        num_labels=num_labels,
    )


def _without_key(message: str) -> str:
    """``"config_3d: cannot parse …"`` → ``"cannot parse …"`` (the caller names the key)."""
    return re.sub(r"^[a-z_0-9]+: ", "", message)


def budget_string_problems(hsk: Any, max_seq_length: int, source: str = "recipe") -> list[str]:
    """Problems of a recipe's ``[hsk]`` table that no model is needed to see, one line each.

    A malformed ``config_3d`` or ``layer_scheme`` string, and more tokens (``keep_tokens`` or the k of
    ``config_3d``) than ``max_seq_length``. Limits that depend on the models (layers, width) are checked by
    :func:`resolve_budget`.

    Args:
        hsk: A recipe's ``hsk`` table (:class:`mudkd.recipe.schema.HskConfig`).
        max_seq_length: The recipe's ``task.max_seq_length``.
        source: What the lines are prefixed with (the recipe file, or ``wizard answers``).
    """
    problems = []
    if hsk.config_3d is not None:
        try:
            _, tokens, _ = parse_config_3d(hsk.config_3d)
        except BudgetError as error:
            problems.append(f"{source}: hsk.config_3d: {_without_key(error.message)} ({error.hint})")
        else:
            if tokens > max_seq_length:
                problems.append(
                    f"{source}: hsk.config_3d: keeps {tokens} tokens but task.max_seq_length is {max_seq_length}"
                )
    if hsk.layer_scheme is not None:
        try:
            parse_layer_scheme(hsk.layer_scheme)
        except BudgetError as error:
            problems.append(f"{source}: hsk.layer_scheme: {_without_key(error.message)} ({error.hint})")
    if hsk.keep_tokens is not None and hsk.keep_tokens > max_seq_length:
        problems.append(
            f"{source}: hsk.keep_tokens: must be <= task.max_seq_length = {max_seq_length} (got {hsk.keep_tokens})"
        )
    return problems
