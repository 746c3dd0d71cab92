"""The recipe wizard, pure Python: questions declared as data, and the answers → recipe function.

- :mod:`~mudkd.recipe.wizard.fields`: what the wizard reads from the schema (descriptions, defaults, bounds,
  allowed values);
- :mod:`~mudkd.recipe.wizard.question`: what a question is and how typed text becomes an answer;
- :mod:`~mudkd.recipe.wizard.models`: the models' shapes, read from config.json (directory or ``package:``);
- :mod:`~mudkd.recipe.wizard.checks`: when a question applies, answer-dependent defaults and validators;
- :mod:`~mudkd.recipe.wizard.questions`: the questions, in order;
- :mod:`~mudkd.recipe.wizard.answers`: answers → recipe, ``--set`` handling and the budget preview;
- :mod:`~mudkd.recipe.wizard.render`: the recipe as commented TOML.

The terminal side (prompts, tables, writing the file) lives in :mod:`mudkd.cli.wizard`.
"""

from mudkd.recipe.wizard.answers import (
    answers_to_recipe,
    budget_preview,
    complete_answers,
    num_labels_for,
    package_references,
    recipe_budget,
    recipe_problems,
    split_sets,
)
from mudkd.recipe.wizard.fields import Answers
from mudkd.recipe.wizard.models import SUGGESTED_TEACHER, ModelFacts, model_facts, suggested_teacher
from mudkd.recipe.wizard.question import Choice, Kind, Question
from mudkd.recipe.wizard.questions import QUESTION_KEYS, QUESTIONS
from mudkd.recipe.wizard.render import render_commented_toml

__all__ = [
    "QUESTIONS",
    "QUESTION_KEYS",
    "SUGGESTED_TEACHER",
    "Answers",
    "Choice",
    "Kind",
    "ModelFacts",
    "Question",
    "answers_to_recipe",
    "budget_preview",
    "complete_answers",
    "model_facts",
    "num_labels_for",
    "package_references",
    "recipe_budget",
    "recipe_problems",
    "render_commented_toml",
    "split_sets",
    "suggested_teacher",
]
