"""Answers → recipe: the pure, unit-tested function behind ``mudkd wizard``, and the budget preview it shows.

An *answers* dict maps question keys (:mod:`mudkd.recipe.wizard.questions`) to typed values. Keys with a dot are
recipe keys (``hsk.keep_tokens``) and go into the recipe as given; keys without one (``student_kind``,
``budget_mode``, ``layer_scheme``, ``batch_size``, ``use_store``) are wizard choices that set several recipe keys.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from mudkd.errors import RecipeError
from mudkd.knowledge import budget_from_recipe, budget_string_problems, budget_summary, task_num_labels
from mudkd.knowledge.tasks import TRAIN_SIZES
from mudkd.recipe.load import build_recipe
from mudkd.recipe.overrides import Overrides, parse_sets, split_overrides
from mudkd.recipe.schema import Recipe, path_keys, reference_hsk_epochs
from mudkd.recipe.wizard.checks import chosen_layer_scheme, is_custom, is_pruned
from mudkd.recipe.wizard.fields import Answers, schema_default
from mudkd.recipe.wizard.questions import QUESTION_KEYS, QUESTIONS, QUESTIONS_BY_KEY


def complete_answers(given: Answers, *, check_defaults: bool = False) -> dict[str, Any]:
    """Check the given answers and fill every question that applies but was not answered with its default.

    Given answers are coerced to the question's type (``"10"`` → 10), so ``--set`` values work as answers.

    Args:
        given: Answers by question key.
        check_defaults: Check the defaults too (``mudkd wizard --defaults``: no one sees them before they are
            written, so a default data directory that does not exist is an error there, not a prompt).

    Raises:
        RecipeError: Listing every unknown key and every invalid answer.
    """
    problems = []
    answers: dict[str, Any] = {}
    for key, value in given.items():
        question = QUESTIONS_BY_KEY.get(key)
        if question is None:
            close = difflib.get_close_matches(key, QUESTION_KEYS, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known answers: {', '.join(QUESTION_KEYS)}"
            problems.append(f"wizard answers: {key}: unknown answer ({hint})")
            continue
        try:
            answers[key] = question.parse(value)
        except ValueError as error:
            problems.append(f"wizard answers: {key}: {error} (got {value!r})")
    for question in QUESTIONS:
        if question.key in answers:
            problem = question.check(answers[question.key], answers)
        elif question.applies(answers) and not problems:
            answers[question.key] = question.default_for(answers)
            if not check_defaults:
                continue
            problem = question.check(answers[question.key], answers)
            if problem:
                problems.append(f"wizard answers: {question.key}: {problem} (the default; set it with --set)")
            continue
        else:
            continue
        if problem:
            got = "" if "(got " in problem else f" (got {answers[question.key]!r})"
            problems.append(f"wizard answers: {question.key}: {problem}{got}")
    if problems:
        raise RecipeError(
            problems[0], hint="fix the answers above; every key is listed by 'mudkd recipe show'", problems=problems
        )
    return answers


def _asked(answers: Answers, key: str) -> bool:
    """Whether an answer counts: given and its question applies (wizard-only keys) or given at all (recipe keys)."""
    return key in answers and (("." in key) or QUESTIONS_BY_KEY[key].applies(answers))


def answers_to_recipe(answers: Answers, *, check_defaults: bool = False) -> Recipe:
    """Turn the wizard's answers into a validated recipe (missing answers take their defaults).

    Recipe keys among the answers are copied as given; the wizard's own choices set several keys: a TinyBERT-style
    student leaves the prune table at its defaults, ``batch_size`` sets every stage's batch, ``layer_scheme``
    ``standard`` leaves the mapping at t_top<teacher depth>, and ``use_store`` points the cache, HSK and logits at
    ``<output.dir>/store``.

    ``check_defaults`` checks the defaults as well (see :func:`complete_answers`).

    Raises:
        RecipeError: Listing every problem with the answers or the resulting recipe.
    """
    answers = complete_answers(answers, check_defaults=check_defaults)
    flags = {key: value for key, value in answers.items() if "." in key}
    if not is_pruned(answers):
        flags = {key: value for key, value in flags.items() if not key.startswith("prune.")}
    else:
        flags.pop("student.model", None)
    if not is_custom(answers):
        custom_keys = ("task.train_file", "task.validation_file", "task.text_columns", "task.label_column")
        flags = {key: value for key, value in flags.items() if key not in custom_keys}
    if _asked(answers, "batch_size"):
        for stage in ("finetune", "hsk", "pred"):
            flags[f"{stage}.train_batch_size"] = answers["batch_size"]
    scheme = chosen_layer_scheme(answers) if _asked(answers, "layer_scheme") else None
    if scheme:
        flags["hsk.layer_scheme"] = scheme
    if answers.get("use_store"):
        store = f"{str(answers['output.dir']).rstrip('/')}/store"
        flags.update({"cache.output_dir": store, "hsk.hsk_store": store, "pred.logits_store": store})
        # teacher-free epochs cost a student step only: with a transfer set, the reference's HSK-stage length
        # replaces the default one (a typed length is kept)
        if answers.get("augment.enabled") and answers["hsk.num_train_epochs"] == schema_default("hsk.num_train_epochs"):
            flags["hsk.num_train_epochs"] = float(reference_hsk_epochs(str(answers["task.name"])))
    else:
        flags.pop("augment.enabled", None)  # the transfer set is labelled in the store: no store, no augmentation
    try:
        recipe = build_recipe(None, flags=flags)
    except RecipeError as error:
        problems = [problem.replace("command line: ", "wizard answers: ", 1) for problem in error.problems]
        raise RecipeError(problems[0], hint=error.hint, problems=problems) from None
    problems = recipe_problems(recipe, source="wizard answers")
    if problems:
        raise RecipeError(problems[0], hint="fix the answers above", problems=problems)
    return recipe


def recipe_problems(recipe: Recipe, source: str = "recipe") -> list[str]:
    """Problems the schema cannot see without models: a malformed ``config_3d`` or ``layer_scheme`` string.

    Budget limits that depend on the models (layers, width) are checked when the budget is resolved; both live in
    :mod:`mudkd.knowledge.resolve`.
    """
    return budget_string_problems(recipe.hsk, recipe.task.max_seq_length, source)


def package_references(answers: Answers, overrides: Mapping[str, Any]) -> dict[str, str]:
    """The ``package:NAME`` model references among the answers and ``--set`` overrides, by recipe key.

    A recipe resolves them to the installed package's directory; the file the wizard writes keeps the reference
    (:func:`mudkd.recipe.wizard.render.render_commented_toml`), so it works in any environment with the package.
    """
    found = {key: value for key, value in answers.items() if "." in key and isinstance(value, str)} | dict(overrides)
    return {
        key: value.strip()
        for key, value in found.items()
        if isinstance(value, str) and value.strip().startswith("package:") and path_keys().get(key) == "model"
    }


def split_sets(sets: list[str] | None) -> tuple[dict[str, Any], Overrides]:
    """Split ``--set KEY=VALUE`` strings into wizard answers (question keys) and typed recipe overrides (the rest).

    The overrides go to :func:`mudkd.recipe.overrides.apply_overrides` once the answers make a recipe.
    """
    return split_overrides(parse_sets(sets), lambda key: key in QUESTIONS_BY_KEY)


# -- budget preview ----------------------------------------------------------------------------------------------------


def num_labels_for(recipe: Recipe) -> int:
    """Teacher logits per example that a store keeps: the labels fine-tuning gives the teacher (1 for regression)."""
    return task_num_labels(recipe.task.name, recipe.task.task_type)


def recipe_budget(recipe: Recipe, *, teacher_layers: int, teacher_hidden: int, student_layers: int) -> dict[str, Any]:
    """Resolve a recipe's knowledge budget for the given model shapes (pure: no models are loaded).

    Returns:
        The budget summary (:func:`mudkd.knowledge.summary.budget_summary`, ``cache.dtype`` values) for the
        task's training examples (GLUE tasks and rt-snippets, capped by ``task.max_train_samples``; else None), plus
        ``train_examples`` and ``store_bytes`` (None when the budget cannot be stored), the names the wizard's
        table reads.

    Raises:
        BudgetError: If the budget does not fit the models.
    """
    budget = budget_from_recipe(
        recipe,
        num_student_layers=student_layers,
        num_teacher_layers=teacher_layers,
        teacher_hidden=teacher_hidden,
        num_labels=num_labels_for(recipe),
    )
    examples = TRAIN_SIZES.get(recipe.task.name)
    if recipe.task.max_train_samples is not None and examples is not None:
        examples = min(examples, recipe.task.max_train_samples)
    summary = budget_summary(budget, examples, recipe.cache.dtype)
    return {
        **summary,
        "train_examples": examples,
        "store_bytes": summary["train_set_bytes"] if budget.storable else None,
    }


def budget_preview(
    answers: Answers, *, teacher_layers: int, teacher_hidden: int, student_layers: int
) -> dict[str, Any]:
    """The knowledge budget the answers describe, for the wizard's budget table (see :func:`recipe_budget`)."""
    return recipe_budget(
        answers_to_recipe(answers),
        teacher_layers=teacher_layers,
        teacher_hidden=teacher_hidden,
        student_layers=student_layers,
    )
