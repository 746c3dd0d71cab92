"""Resolving a budget: every setting validated against the models' shapes, all problems reported at once.

Two levels of checks live here, so that no other module restates them:

* :func:`budget_string_problems` — what a recipe's ``[hsk]`` table gets wrong without any model: a malformed
  ``config_3d`` or ``layer_scheme`` string, more tokens than ``task.max_seq_length`` (``mudkd recipe validate``,
  the wizard).
* :func:`resolve_budget` — everything, once the shapes of teacher and student are known (from their configs, see
  :mod:`mudkd.knowledge.shapes`): ranges of K, k and ρ, explicit layer lists, scheme names, masks that keep nothing.
  One helper per axis (:func:`_depth`, :func:`_length`, :func:`_width`) returns its value and its problems, so every
  problem of every axis is reported at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

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
from mudkd.knowledge.shapes import ModelShape

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


class BudgetSettings(Protocol):
    """The budget settings a recipe's ``[hsk]`` table holds (:class:`mudkd.recipe.schema.HskConfig`, whose fields
    carry the defaults and descriptions); the knowledge layer reads them without importing the recipe layer.

    Attributes:
        keep_layers: K, the top student layers that get HSK (embeddings = layer 0); None: L_S + 1.
        layer_scheme: ``t_topN``; None: ``t_top{L_T}``, the standard mapping.
        student_layers: Explicit s_j, overriding the top-K choice.
        teacher_layers: Explicit t_j (same length as s_j), overriding the mapping.
        keep_tokens: k; None: T (all tokens).
        token_scheme: A :class:`~mudkd.knowledge.schemes.TokenScheme`.
        att_ttop12: Rank tokens with the attention of the layer producing g(l; L_T) (reference default) instead of
            the layer producing the target, max(t_j − 1, 0).
        keep_hidden: ρ in (0, 1].
        hidden_scheme: A :class:`~mudkd.knowledge.schemes.HiddenScheme`.
        mag_scope: ``example`` or ``batch`` (Mag Mask only).
        mask_mode: ``both`` or ``teacher_only``.
        config_3d: ``{K}l_{k}t_{ρ}h``; overrides keep_layers, keep_tokens and keep_hidden.
    """

    keep_layers: int | None
    layer_scheme: str | None
    student_layers: list[int] | None
    teacher_layers: list[int] | None
    keep_tokens: int | None
    token_scheme: str
    att_ttop12: bool
    keep_hidden: float
    hidden_scheme: str
    mag_scope: str
    mask_mode: str
    config_3d: str | None


@dataclass(frozen=True)
class _Depth:
    layer_top: int
    student_layers: list[int]
    teacher_layers: list[int]
    attention_layers: list[int]


def _student_layers(hsk: BudgetSettings, keep_layers: int | None, depth: int) -> tuple[list[int], list[Problem]]:
    """s_j: the explicit list, or the top K of the student's ``depth`` layers + embeddings."""
    if hsk.student_layers is not None:
        hint = f"use student hidden-state indices 0..{depth} (0 = embeddings)"
        problems = _indices_problems("student_layer_indices", hsk.student_layers, depth, hint)
        layers = [] if problems else list(hsk.student_layers)
        if layers and keep_layers is not None and keep_layers != len(layers):
            problems.append(
                (
                    f"keep_layers = {keep_layers} disagrees with {len(layers)} student_layer_indices",
                    "drop keep_layers or make it match the explicit index list",
                )
            )
        return layers, problems
    count = depth + 1 if keep_layers is None else keep_layers
    if problem := _int_problem("keep_layers", count, 1, depth + 1, f"the student has {depth} layers + embeddings"):
        return [], [problem]
    return list(range(depth - count + 1, depth + 1)), []


def _depth(
    hsk: BudgetSettings, keep_layers: int | None, student_depth: int, teacher_depth: int
) -> tuple[_Depth | None, list[Problem]]:
    """Depth (method.md §9): which student layers learn from which teacher layers, and the ranking attention."""
    problems: list[Problem] = []
    scheme = hsk.layer_scheme if hsk.layer_scheme is not None else layer_scheme_name(teacher_depth)
    l_top = _parse(parse_layer_scheme, scheme, problems)
    if l_top is not None and l_top > teacher_depth:
        problems.append(
            (
                f"layer_scheme t_top{l_top} maps beyond the teacher's {teacher_depth} layers",
                f"use t_topN with N <= {teacher_depth}",
            )
        )
    students, found = _student_layers(hsk, keep_layers, student_depth)
    problems += found
    teachers: list[int] = []
    if hsk.teacher_layers is not None:
        hint = f"use teacher hidden-state indices 0..{teacher_depth} (0 = embeddings)"
        found = _indices_problems("teacher_layer_indices", hsk.teacher_layers, teacher_depth, hint)
        problems += found
        teachers = [] if found else list(hsk.teacher_layers)
        if teachers and students and len(teachers) != len(students):
            problems.append(
                (
                    f"{len(teachers)} teacher layer indices for {len(students)} student layers",
                    "give one teacher index per distilled student layer",
                )
            )
    if not isinstance(hsk.att_ttop12, bool):
        problems.append((f"att_ttop12 must be true or false (got {hsk.att_ttop12!r})", "use a boolean"))
    if problems or l_top is None:
        return None, problems
    if hsk.teacher_layers is None:
        mapping = layer_mapping(student_depth, l_top)
        teachers = [mapping[layer] for layer in students]
    if hsk.att_ttop12:
        attention_list = attention_layer_list(student_depth, teacher_depth)
        attention = [attention_list[layer] for layer in students]
    else:
        attention = [max(layer - 1, 0) for layer in teachers]
    return _Depth(l_top, students, teachers, attention), []


def _length(hsk: BudgetSettings, keep_tokens: int | None, max_seq_length: int) -> tuple[int, list[Problem]]:
    """Length (method.md §10): k tokens per example (default T, all), and the scheme that picks them."""
    count = max_seq_length if keep_tokens is None else keep_tokens
    hint = f"keep at most max_seq_length = {max_seq_length} tokens"
    found = [
        _int_problem("keep_tokens", count, 1, max_seq_length, hint),
        _choice_problem("token_scheme", hsk.token_scheme, TokenScheme.values()),
    ]
    return count, [problem for problem in found if problem]


def _width(
    hsk: BudgetSettings, keep_hidden: float, teacher_hidden: int, seed: int
) -> tuple[list[int] | None, list[Problem]]:
    """Width (method.md §11): the kept dims of a static mask (None for the Mag Mask or ρ = 1)."""
    found = [
        _choice_problem("hidden_scheme", hsk.hidden_scheme, HiddenScheme.values()),
        _choice_problem("mag_scope", hsk.mag_scope, MagScope.values()),
        _choice_problem("mask_mode", hsk.mask_mode, MaskMode.values()),
    ]
    problems = [problem for problem in found if problem]
    if isinstance(keep_hidden, bool) or not isinstance(keep_hidden, (int, float)) or not 0 < keep_hidden <= 1:
        problems.append((f"keep_hidden must be in (0, 1] (got {keep_hidden!r})", "e.g. 0.1 keeps 10% of the width"))
    if not _is_int(seed):
        problems.append((f"seed must be an integer (got {seed!r})", "use an integer seed, e.g. 42"))
    if problems or keep_hidden >= 1.0:
        return None, problems
    dims = None
    if hsk.hidden_scheme == HiddenScheme.UNIFORM_MASK:
        dims = uniform_mask_dims(teacher_hidden, keep_hidden)
    elif hsk.hidden_scheme == HiddenScheme.RAND_MASK:
        dims = rand_mask_dims(teacher_hidden, keep_hidden, seed)
    if dims is not None and not dims:
        message = f"keep_hidden = {keep_hidden} keeps no dimension of width {teacher_hidden}"
        return None, [(message, f"use keep_hidden >= {1 / teacher_hidden:.2g}")]
    return dims, []


def resolve_budget(
    hsk: BudgetSettings, *, student_layers: int, teacher: ModelShape, max_seq_length: int, seed: int = 42
) -> KnowledgeBudget:
    """Validate the budget settings against the models and resolve every index (method.md §9–§12).

    Args:
        hsk: The settings (a recipe's ``[hsk]`` table; raw values are checked here too, as the wizard passes them).
        student_layers: L_S, the student's transformer layers.
        teacher: The teacher's L_T (``layers``), width d (``hidden``) and the logits a store keeps per example
            (``num_labels``; see :mod:`mudkd.knowledge.shapes`).
        max_seq_length: T.
        seed: Seed of ``rand_mask``.

    Returns:
        The resolved, validated budget.

    Raises:
        BudgetError: Naming the first problem (with a hint); ``problems`` lists every problem found.
    """
    shape_checks = [
        _int_problem("num_student_layers", student_layers, 1, None, "check the student config"),
        _int_problem("num_teacher_layers", teacher.layers, 1, None, "check the teacher config"),
        _int_problem("teacher_hidden", teacher.hidden, 1, None, "check the teacher config"),
        _int_problem("max_seq_length", max_seq_length, 1, None, "set a positive max_seq_length"),
        _int_problem("num_labels", teacher.num_labels, 0, None, "use the number of teacher logits (0 for none)"),
    ]
    _raise([problem for problem in shape_checks if problem])  # every other check needs the shapes

    problems: list[Problem] = []
    keep_layers, keep_tokens, keep_hidden = hsk.keep_layers, hsk.keep_tokens, hsk.keep_hidden
    if hsk.config_3d is not None:
        parsed = _parse(parse_config_3d, hsk.config_3d, problems)
        if parsed is not None:
            keep_layers, keep_tokens, keep_hidden = parsed
    depth, found = _depth(hsk, keep_layers, student_layers, teacher.layers)
    problems += found
    tokens, found = _length(hsk, keep_tokens, max_seq_length)
    problems += found
    width_dims, found = _width(hsk, keep_hidden, teacher.hidden, seed)
    problems += found
    _raise(problems)
    assert depth is not None  # for the type checker: a depth problem was raised above

    budget = KnowledgeBudget(
        num_student_layers=student_layers,
        num_teacher_layers=teacher.layers,
        teacher_hidden=teacher.hidden,
        max_seq_length=max_seq_length,
        layer_top=depth.layer_top,
        student_layers=depth.student_layers,
        teacher_layers=depth.teacher_layers,
        attention_layers=depth.attention_layers,
        att_ttop12=hsk.att_ttop12,
        keep_tokens=tokens,
        token_scheme=str(hsk.token_scheme),
        keep_hidden=float(keep_hidden),
        hidden_scheme=str(hsk.hidden_scheme),
        mag_scope=str(hsk.mag_scope),
        mask_mode=str(hsk.mask_mode),
        width_dims=width_dims,
        seed=seed,
        num_labels=teacher.num_labels,
    )
    if budget.magnitude_mask and budget.magnitude_count < 1:
        raise BudgetError(
            f"keep_hidden = {keep_hidden} keeps no value of {tokens} tokens x {teacher.hidden} dims",
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
    return resolve_budget(
        recipe.hsk,
        student_layers=num_student_layers,
        teacher=ModelShape(layers=num_teacher_layers, hidden=teacher_hidden, num_labels=num_labels),
        max_seq_length=recipe.task.max_seq_length,
        seed=recipe.training.seed,
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
