"""``mudkd wizard``: write a commented recipe by answering questions in the terminal.

The questions and the answers → recipe conversion are data and pure functions in :mod:`mudkd.recipe.wizard`; this
module only prompts (questionary), shows the summary and the knowledge-budget table, and writes the file.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from mudkd.cli import common as c
from mudkd.cli import options as o
from mudkd.errors import MudkdError, RecipeError
from mudkd.knowledge.shapes import model_shape as knowledge_model_shape
from mudkd.recipe import Recipe
from mudkd.recipe.load import flatten
from mudkd.recipe.wizard import (
    QUESTIONS,
    Question,
    answers_to_recipe,
    apply_overrides,
    complete_answers,
    recipe_budget,
    render_commented_toml,
    split_sets,
)

EPILOG = """Examples:

  $ mudkd wizard

  $ mudkd wizard --defaults --set task.name=cola --set hsk.config_3d=1l_10t_0.1h -o cola.toml

  $ mudkd wizard --defaults --set student.model=models/tinybert-4l --set task.name=rte -o rte_tinybert.toml
"""

#: Where the prompts read keys and draw, as prompt_toolkit ``input``/``output`` objects. Empty means the terminal;
#: tests put a pipe input and a ``DummyOutput`` here to drive the real prompts (and skip the terminal check).
PROMPT_IO: dict[str, Any] = {}

#: Depth and width of well-known models, used when the model is not a local directory with a config.json.
KNOWN_SHAPES = {
    "bert-base-uncased": (12, 768),
    "bert-base-cased": (12, 768),
    "bert-large-uncased": (24, 1024),
    "bert-large-cased": (24, 1024),
    "huawei-noah/TinyBERT_General_4L_312D": (4, 312),
    "huawei-noah/TinyBERT_General_6L_768D": (6, 768),
}


def wizard_cli(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Recipe file to write.", rich_help_panel="Output")
    ] = Path("recipe.toml"),
    defaults: Annotated[
        bool, typer.Option("--defaults", help="Do not ask: write the default answers, changed by --set.")
    ] = False,
    set_: o.SetOpt = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing recipe file.", rich_help_panel="Output")
    ] = False,
) -> None:
    """Write a commented recipe by answering a few questions.

    Asks for the task, the teacher, the student (pruned ROSITA-style or an existing smaller BERT), training
    settings and the knowledge budget, shows a summary and the budget table, then writes a TOML recipe with a
    comment above every key. --set presets an answer (task.name, student_kind, budget_mode, hsk.config_3d, ...)
    or overrides any other recipe key. Without a terminal, use --defaults.
    """
    if not defaults:
        _require_terminal()
    _refuse_existing(output, overwrite)
    presets, overrides = split_sets(set_)
    answers = _check_sets(presets, overrides)  # every problem with --set, before any question is asked
    recipe = _recipe_from_defaults(answers, overrides) if defaults else _ask(answers, presets, overrides, output)
    _write_recipe(output, recipe, overwrite)


def _recipe_from_defaults(answers: dict[str, Any], overrides: list[str]) -> Recipe:
    recipe = apply_overrides(answers_to_recipe(answers), overrides)
    _show_summary(recipe, strict=True)
    return recipe


def _ask(answers: dict[str, Any], presets: dict[str, Any], overrides: list[str], output: Path) -> Recipe:
    """Ask the questions (presets answered already), show the summary and confirm writing."""
    try:
        answers = ask(QUESTIONS, {key: answers[key] for key in presets}, **PROMPT_IO)
        recipe = apply_overrides(answers_to_recipe(answers), overrides)
        fits = _show_summary(recipe, strict=False)
        if not ask_confirm(f"Write {output}?", default=fits, **PROMPT_IO):
            c.stderr_console().print("Nothing written.", highlight=False)
            raise typer.Exit(1)
    except (KeyboardInterrupt, EOFError):
        c.stderr_console().print("Aborted.", highlight=False)
        raise typer.Exit(130) from None
    return recipe


def _write_recipe(output: Path, recipe: Recipe, overwrite: bool) -> None:
    """Write the commented recipe and say what to run next."""
    header = f"{WIZARD_HEADER}\nCheck it: mudkd recipe validate {output}"
    _write_atomic(output, render_commented_toml(recipe, header=header, folder=output.parent), overwrite)
    console = c.stdout_console()
    console.print(f"Wrote {output}", highlight=False, markup=False, soft_wrap=True)
    console.print(f"Next: mudkd pipeline {shlex.quote(str(output))}", highlight=False, markup=False, soft_wrap=True)


def _check_sets(presets: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Validate the preset answers and the recipe overrides together; return the completed default answers."""
    problems: list[str] = []
    answers: dict[str, Any] = {}
    try:
        answers = complete_answers(presets)
    except RecipeError as error:
        problems += error.problems
    try:
        apply_overrides(Recipe.model_validate({}), overrides)
    except RecipeError as error:
        problems += error.problems
    if problems:
        raise RecipeError(
            problems[0], hint="check the --set keys and values; 'mudkd recipe show' lists every key", problems=problems
        )
    return answers


# ---------------------------------------------------------------------------------------------------------------
# Prompts


def _prompt_kwargs(input: Any = None, output: Any = None) -> dict[str, Any]:
    return {name: value for name, value in (("input", input), ("output", output)) if value is not None}


def _say(text: str, style: str, output: Any = None) -> None:
    from prompt_toolkit import print_formatted_text
    from prompt_toolkit.formatted_text import FormattedText

    print_formatted_text(FormattedText([(style, text)]), **_prompt_kwargs(output=output))


def ask(
    questions: Iterable[Question], presets: Mapping[str, Any] | None = None, *, input: Any = None, output: Any = None
) -> dict[str, Any]:
    """Ask every question that applies, in order, and return the typed answers.

    Args:
        questions: The questions (normally :data:`mudkd.recipe.wizard.QUESTIONS`).
        presets: Typed answers from ``--set``; they are shown as the defaults of their questions.
        input: prompt_toolkit input (tests: ``create_pipe_input()``); None reads the terminal.
        output: prompt_toolkit output (tests: ``DummyOutput()``); None draws on the terminal.

    Raises:
        KeyboardInterrupt: On Ctrl-C (prompts use ``unsafe_ask``).
        EOFError: When the input ends.
    """
    import questionary

    presets = dict(presets or {})
    answers: dict[str, Any] = dict(presets)
    kwargs = _prompt_kwargs(input, output)
    section = None
    for question in questions:
        if not question.applies(answers):
            continue
        if question.section != section:
            section = question.section
            _say(f"\n{section}", "bold", output)
        if question.help:
            _say(f"  {question.help}", "fg:ansibrightblack", output)
        default = presets[question.key] if question.key in presets else question.default_for(answers)
        if question.kind == "select":
            choices = [questionary.Choice(title=choice.title, value=choice.value) for choice in question.choices]
            value = questionary.select(question.message, choices=choices, default=default, **kwargs).unsafe_ask()
        elif question.kind == "confirm":
            value = questionary.confirm(question.message, default=bool(default), **kwargs).unsafe_ask()
        else:
            text = questionary.text(
                question.message,
                default=question.display(default),
                validate=lambda text, q=question: q.validate_text(text, answers) or True,
                **kwargs,
            ).unsafe_ask()
            value = question.parse(text)
        answers[question.key] = value
    return answers


def ask_confirm(message: str, default: bool, *, input: Any = None, output: Any = None) -> bool:
    """A yes/no prompt (Ctrl-C raises KeyboardInterrupt)."""
    import questionary

    return bool(questionary.confirm(message, default=default, **_prompt_kwargs(input, output)).unsafe_ask())


def _require_terminal() -> None:
    if PROMPT_IO:
        return
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise MudkdError(
            "the wizard needs a terminal (stdin and stdout must be a TTY)",
            hint="use --defaults with --set KEY=VALUE ..., e.g. mudkd wizard --defaults --set task.name=cola "
            "--set hsk.config_3d=1l_10t_0.1h -o recipe.toml",
        )


# ---------------------------------------------------------------------------------------------------------------
# Summary and budget table


def model_shape(name: str | None, fallback: tuple[int, int]) -> tuple[int, int, str]:
    """``(layers, hidden, source)`` of a model, from its config.json, a known hub name, or ``fallback``.

    Reads JSON only: no torch, no download.
    """
    if name:
        config = Path(name) / "config.json"
        if config.is_file():
            try:
                shape = knowledge_model_shape(json.loads(config.read_text()), str(config))
                return shape.layers, shape.hidden, str(config)
            except (ValueError, OSError, MudkdError):
                pass
        if name in KNOWN_SHAPES:
            return (*KNOWN_SHAPES[name], "known shape")
        match = re.search(r"(\d+)L[_-](\d+)D", name, flags=re.IGNORECASE)
        if match:
            return int(match.group(1)), int(match.group(2)), "from the name"
    return (*fallback, "assumed")


def _summary_rows(recipe: Recipe) -> list[tuple[str, Any]]:
    """The keys the answers changed from the schema defaults, plus the ones that define the run."""
    always = {"task.name", "task.max_seq_length", "teacher.pretrained", "output.dir", "finetune.train_batch_size"}
    always |= {f"{stage}.num_train_epochs" for stage in ("finetune", "hsk", "pred")}
    default = flatten(Recipe.model_validate({}).model_dump(mode="json"))
    pruned = recipe.student.model is None
    rows: list[tuple[str, Any]] = []
    for key, value in flatten(recipe.model_dump(mode="json")).items():
        if key == "student.model":
            rows.append(("student", "pruned (ROSITA-style)" if pruned else "pretrained (TinyBERT-style)"))
        if key.startswith("prune."):
            show = pruned and value is not None
        else:
            show = key in always or value != default.get(key)
        if show:
            rows.append((key, ", ".join(map(str, value)) if isinstance(value, list) else value))
    return rows


def budget_rows(budget: Mapping[str, Any], notes: list[str]) -> list[tuple[str, Any]]:
    """The knowledge-budget table every command shows, plus the model shapes the wizard had to assume."""
    from mudkd.knowledge.summary import summary_rows

    return [*summary_rows(budget), *(("assumed", note) for note in notes)]


def _show_summary(recipe: Recipe, *, strict: bool) -> bool:
    """Print the summary and budget tables; return whether the budget fits the (possibly assumed) models."""
    c.print_table("Recipe summary", _summary_rows(recipe))
    teacher_layers, teacher_hidden, teacher_source = model_shape(recipe.teacher.pretrained, (12, 768))
    notes = []
    if teacher_source in {"assumed", "from the name"}:
        notes.append(f"teacher {teacher_layers} layers x {teacher_hidden} ({teacher_source})")
    if recipe.student.model:
        student_layers, _, student_source = model_shape(recipe.student.model, (4, 312))
        if student_source in {"assumed", "from the name"}:
            notes.append(f"student {student_layers} layers ({student_source})")
    else:
        student_layers, student_source = recipe.prune.num_layers, "pruned"
    try:
        budget = recipe_budget(
            recipe, teacher_layers=teacher_layers, teacher_hidden=teacher_hidden, student_layers=student_layers
        )
    except MudkdError as error:
        if strict and not notes:
            raise
        c.stderr_console().print(
            f"Warning: the knowledge budget does not fit: {error.message}", highlight=False, markup=False
        )
        if error.hint:
            c.stderr_console().print(f"Hint: {error.hint}", highlight=False, markup=False)
        return False
    c.print_table("Knowledge budget", budget_rows(budget, notes))
    if recipe.hsk.hsk_store and not budget["storable"]:
        c.stderr_console().print(
            "Warning: a batch-scope magnitude mask cannot be stored; set hsk.mag_scope = 'example'",
            highlight=False,
            markup=False,
        )
    return True


# ---------------------------------------------------------------------------------------------------------------
# Writing


WIZARD_HEADER = "mudkd recipe written by 'mudkd wizard'."


def _refuse_existing(path: Path, overwrite: bool) -> None:
    """A recipe file is written new, or replaces (with --overwrite) only a file the wizard itself wrote."""
    if path.is_symlink():
        raise MudkdError(f"{path} is a symbolic link", hint="give the real file name")
    if path.is_dir():
        raise MudkdError(f"{path} is a directory", hint="give a file name, e.g. --output recipe.toml")
    if not path.exists():
        return
    if not overwrite:
        raise MudkdError(f"{path} already exists", hint="pass --overwrite to replace it, or choose another --output")
    try:
        first_line = path.read_text(encoding="utf-8").splitlines()[0]
    except (OSError, UnicodeDecodeError, IndexError):
        first_line = ""
    if first_line != f"# {WIZARD_HEADER}":
        raise MudkdError(
            f"{path} was not written by 'mudkd wizard'",
            hint="mudkd never replaces a file it did not write: choose another --output",
        )


def _write_atomic(path: Path, text: str, overwrite: bool) -> None:
    """Write ``text`` through a temporary file and one rename (never a half-written file)."""
    from mudkd.core.outputs import write_text_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    _refuse_existing(path, overwrite)  # again: the file may have appeared while the questions were answered
    write_text_atomic(path, text)
