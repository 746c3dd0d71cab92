"""``mudkd wizard``: write a commented recipe by answering questions in the terminal.

The questions and the answers → recipe conversion are data and pure functions in :mod:`mudkd.recipe.wizard`; this
module only prompts (questionary), shows the summary and the knowledge-budget table, and writes the file.
"""

from __future__ import annotations

import shlex
import sys
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from mudkd.cli import common as c
from mudkd.cli import options as o
from mudkd.errors import MudkdError, RecipeError
from mudkd.recipe import Recipe
from mudkd.recipe.load import flatten
from mudkd.recipe.overrides import Overrides, apply_overrides, parse_override
from mudkd.recipe.wizard import (
    QUESTIONS,
    Question,
    answers_to_recipe,
    complete_answers,
    model_facts,
    package_references,
    recipe_budget,
    render_commented_toml,
    split_sets,
)
from mudkd.recipe.wizard.models import ASSUMED_TEACHER

EPILOG = """Examples:

  $ mudkd wizard

  $ mudkd wizard --defaults -o quick.toml

  $ mudkd wizard --defaults --set task.name=cola --set task.data_dir=glue/CoLA --set hsk.config_3d=1l_10t_0.1h

  $ mudkd wizard --defaults --set student.model=models/tiny-4l --set task.name=rte --set task.data_dir=glue/RTE
"""

#: Where the prompts read keys and draw, as prompt_toolkit ``input``/``output`` objects. Empty means the terminal;
#: tests put a pipe input and a ``DummyOutput`` here to drive the real prompts (and skip the terminal check).
PROMPT_IO: dict[str, Any] = {}


def wizard_cli(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Recipe file to write.", rich_help_panel="Output")
    ] = Path("recipe.toml"),
    defaults: Annotated[
        bool, typer.Option("--defaults", metavar="", help="Do not ask: write the default answers, changed by --set.")
    ] = False,
    set_: o.SetOpt = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", metavar="", help="Replace an existing recipe file.", rich_help_panel="Output")
    ] = False,
) -> None:
    """Write a commented recipe by answering a few questions.

    Asks for the task, the teacher, the student (pruned ROSITA-style or an existing smaller BERT), training
    settings and the knowledge budget, shows a summary and the budget table, then writes a TOML recipe with a
    comment above every key. Every answer is checked when it is given (files exist, numbers in range, the budget
    fits the teacher and student) and asked again with the reason. Ctrl-C after some answers writes them to
    <output>.draft.toml. --set presets an answer (task.name, student_kind, budget_mode, hsk.config_3d, ...) or
    overrides any other recipe key. Without a terminal, use --defaults.
    """
    if not defaults:
        _require_terminal()
    _refuse_existing(output, overwrite)
    presets, overrides = split_sets(set_)
    answers = _check_sets(presets, overrides)  # every problem with --set, before any question is asked
    if defaults:
        recipe = _recipe_from_defaults(presets, overrides, package_references(answers, overrides))
    else:
        recipe, answers = _ask(answers, presets, overrides, output)
    _write_recipe(output, recipe, overwrite, package_references(answers, overrides))


def _recipe_from_defaults(presets: dict[str, Any], overrides: Overrides, references: dict[str, str]) -> Recipe:
    """The recipe of the preset answers and every other default, each checked as if it had been typed."""
    recipe = apply_overrides(answers_to_recipe(presets, check_defaults=True), overrides, where="command line")
    _show_summary(recipe, strict=True, references=references)
    return recipe


def _ask(
    answers: dict[str, Any], presets: dict[str, Any], overrides: Overrides, output: Path
) -> tuple[Recipe, dict[str, Any]]:
    """Ask the questions (presets answered already), show the summary and confirm writing (default: yes).

    Ctrl-C or the end of the input after at least one answer writes the answers to a draft next to ``output``.
    """
    try:
        answers = ask(QUESTIONS, {key: answers[key] for key in presets}, **PROMPT_IO)
    except WizardAborted as aborted:
        _abort(output, aborted, overrides)
    try:
        recipe = apply_overrides(answers_to_recipe(answers), overrides, where="command line")
    except MudkdError:
        draft = write_draft(output, answers, list(answers), overrides)
        if draft is not None:
            c.stderr_console().print(f"Your answers are saved in {draft}", highlight=False, markup=False)
        raise
    _show_summary(recipe, strict=False, references=package_references(answers, overrides))
    try:
        write = ask_confirm(f"Write {output}?", default=True, **PROMPT_IO)
    except (KeyboardInterrupt, EOFError):
        _abort(output, WizardAborted(answers, list(answers)), overrides)
    if not write:
        c.stderr_console().print("Nothing written.", highlight=False)
        raise typer.Exit(1)
    return recipe, answers


def _abort(output: Path, aborted: WizardAborted, overrides: Overrides) -> typing.NoReturn:
    """Say that the wizard was aborted and where the answers given so far were saved (exit 130)."""
    console = c.stderr_console()
    if not aborted.asked:
        console.print("Aborted; nothing was answered, nothing written.", highlight=False, markup=False)
        raise typer.Exit(130)
    draft = write_draft(output, aborted.answers, aborted.asked, overrides)
    count = f"{len(aborted.asked)} answer{'s' if len(aborted.asked) != 1 else ''}"
    if draft is None:
        console.print(
            f"Aborted. Could not save your {count}: every draft name next to {output} is taken by another file.",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        console.print(f"To resume: {resume_command(output, aborted.answers, aborted.asked, overrides)}", markup=False)
    else:
        console.print(f"Aborted. Your {count} are saved in {draft}", highlight=False, markup=False, soft_wrap=True)
        console.print(
            f"Finish it by hand (check it: mudkd recipe validate {shlex.quote(str(draft))}), or resume: "
            f"{resume_command(output, aborted.answers, aborted.asked, overrides)}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    raise typer.Exit(130)


def _write_recipe(output: Path, recipe: Recipe, overwrite: bool, references: dict[str, str]) -> None:
    """Write the commented recipe (``package:`` references kept as given) and say what to run next."""
    header = f"{WIZARD_HEADER}\nCheck it: mudkd recipe validate {output}"
    text = render_commented_toml(recipe, header=header, folder=output.parent, references=references)
    _write_atomic(output, text, overwrite)
    console = c.stdout_console()
    console.print(f"Wrote {output}", highlight=False, markup=False, soft_wrap=True)
    console.print(f"Next: mudkd pipeline {shlex.quote(str(output))}", highlight=False, markup=False, soft_wrap=True)


def _check_sets(presets: dict[str, Any], overrides: Overrides) -> dict[str, Any]:
    """Validate the preset answers and the recipe overrides together; return the completed default answers."""
    problems: list[str] = []
    answers: dict[str, Any] = {}
    try:
        answers = complete_answers(presets)
    except RecipeError as error:
        problems += error.problems
    try:
        apply_overrides(Recipe.model_validate({}), overrides, where="command line")
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


class WizardAborted(Exception):
    """Ctrl-C or the end of the input during the questions, with the answers given until then.

    Attributes:
        answers: Every answer so far (presets included).
        asked: The keys answered at a prompt (not presets that were never shown).
    """

    def __init__(self, answers: dict[str, Any], asked: list[str]) -> None:
        super().__init__("aborted")
        self.answers = answers
        self.asked = asked


def ask(
    questions: Iterable[Question], presets: Mapping[str, Any] | None = None, *, input: Any = None, output: Any = None
) -> dict[str, Any]:
    """Ask every question that applies, in order, and return the typed answers.

    Typed answers are checked when they are entered (the prompt says why and keeps the question); a choice
    question offers only the options that are valid given the earlier answers (e.g. no ``t_top8`` for a 6-layer
    teacher).

    Args:
        questions: The questions (normally :data:`mudkd.recipe.wizard.QUESTIONS`).
        presets: Typed answers from ``--set``; they are shown as the defaults of their questions.
        input: prompt_toolkit input (tests: ``create_pipe_input()``); None reads the terminal.
        output: prompt_toolkit output (tests: ``DummyOutput()``); None draws on the terminal.

    Raises:
        WizardAborted: On Ctrl-C (prompts use ``unsafe_ask``) or when the input ends, with the answers so far.
    """
    presets = dict(presets or {})
    answers: dict[str, Any] = dict(presets)
    asked: list[str] = []
    section = None
    try:
        for question in questions:
            if not question.applies(answers):
                continue
            if question.section != section:
                section = question.section
                _say(f"\n{section}", "bold", output)
            if question.help:
                _say(f"  {question.help}", "fg:ansibrightblack", output)
            default = presets[question.key] if question.key in presets else question.default_for(answers)
            answers[question.key] = _prompt(question, default, answers, input, output)
            asked.append(question.key)
    except (KeyboardInterrupt, EOFError):
        raise WizardAborted(answers, asked) from None
    return answers


def _prompt(question: Question, default: Any, answers: dict[str, Any], input: Any, output: Any) -> Any:
    """One prompt; the typed answer."""
    import questionary

    kwargs = _prompt_kwargs(input, output)
    if question.kind == "select":
        offered = [choice for choice in question.choices if question.check(choice.value, answers) is None]
        offered = offered or list(question.choices)
        if default not in {choice.value for choice in offered}:
            default = offered[0].value
        choices = [questionary.Choice(title=choice.title, value=choice.value) for choice in offered]
        return questionary.select(question.message, choices=choices, default=default, **kwargs).unsafe_ask()
    if question.kind == "confirm":
        return questionary.confirm(question.message, default=bool(default), **kwargs).unsafe_ask()
    text = questionary.text(
        question.message,
        default=question.display(default),
        validate=lambda text: question.validate_text(text, answers) or True,
        **kwargs,
    ).unsafe_ask()
    return question.parse(text)


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
            "--set task.data_dir=glue/CoLA --set hsk.config_3d=1l_10t_0.1h -o recipe.toml",
        )


# ---------------------------------------------------------------------------------------------------------------
# Summary and budget table


def _summary_rows(recipe: Recipe, references: Mapping[str, str] | None = None) -> list[tuple[str, Any]]:
    """The keys the answers changed from the schema defaults, plus the ones that define the run (``package:``
    references shown as written, not as the directory they resolve to)."""
    references = references or {}
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
            value = references.get(key, value)
            rows.append((key, ", ".join(map(str, value)) if isinstance(value, list) else value))
    return rows


def budget_rows(budget: Mapping[str, Any], notes: list[str]) -> list[tuple[str, Any]]:
    """The knowledge-budget table every command shows, plus the model shapes the wizard had to assume."""
    from mudkd.knowledge.summary import summary_rows

    return [*summary_rows(budget), *(("assumed", note) for note in notes)]


def _show_summary(recipe: Recipe, *, strict: bool, references: Mapping[str, str] | None = None) -> bool:
    """Print the summary and budget tables; return whether the budget fits the (possibly assumed) models."""
    c.print_table("Recipe summary", _summary_rows(recipe, references))
    notes = []
    teacher = model_facts(recipe.teacher.pretrained)
    if teacher is None or teacher.source == "from the name":
        source = "assumed" if teacher is None else teacher.source
        teacher = teacher or ASSUMED_TEACHER
        notes.append(f"teacher {teacher.layers} layers x {teacher.hidden} ({source})")
    teacher_layers, teacher_hidden = teacher.layers, teacher.hidden
    if recipe.student.model:
        student = model_facts(recipe.student.model)
        student_layers = student.layers if student else max(1, teacher_layers // 3)
        if student is None or student.source == "from the name":
            notes.append(f"student {student_layers} layers ({'assumed' if student is None else student.source})")
    else:
        student_layers = len(recipe.prune.layers) if recipe.prune.layers else recipe.prune.num_layers
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


# ---------------------------------------------------------------------------------------------------------------
# Drafts: the answers of an interrupted wizard


DRAFT_HEADER = "mudkd recipe DRAFT written by an interrupted 'mudkd wizard'."
#: Draft names tried next to the output (``recipe.draft.toml``, ``recipe.draft-2.toml``, ...).
MAX_DRAFTS = 20


def draft_path(output: Path) -> Path | None:
    """Where the draft of ``output`` goes: the first of ``<name>.draft.toml``, ``<name>.draft-2.toml``, ... that does
    not exist or is an earlier wizard draft (never another file); None when all are taken."""
    stem = output.name.removesuffix(".toml")
    for number in range(1, MAX_DRAFTS + 1):
        path = output.with_name(f"{stem}.draft.toml" if number == 1 else f"{stem}.draft-{number}.toml")
        if path.is_symlink() or path.is_dir():
            continue
        if not path.exists() or _first_line(path) == f"# {DRAFT_HEADER}":
            return path
    return None


def _first_line(path: Path) -> str:
    try:
        with path.open(encoding="utf-8") as handle:
            return handle.readline().rstrip("\n")
    except (OSError, UnicodeDecodeError):
        return ""


def _set_value(value: Any) -> str:
    """A typed answer as the value of ``--set KEY=VALUE`` (plain when it reads back the same, else a TOML literal)."""
    import tomli_w

    if isinstance(value, str) and parse_override(f"k={value}")[1] == value:
        return value
    return tomli_w.dumps({"v": value}).removeprefix("v = ").strip()


def resume_command(output: Path, answers: Mapping[str, Any], asked: Iterable[str], overrides: Overrides) -> str:
    """The ``mudkd wizard`` command that asks again with the given answers as the defaults."""
    parts = ["mudkd", "wizard", "-o", str(output)]
    for key in asked:
        if answers.get(key) is not None:
            parts += ["--set", f"{key}={_set_value(answers[key])}"]
    for key, value in overrides.items():
        parts += ["--set", f"{key}={_set_value(value)}"]
    return shlex.join(parts)


def write_draft(output: Path, answers: dict[str, Any], asked: list[str], overrides: Overrides) -> Path | None:
    """Save the answers of an interrupted wizard next to ``output``; the draft's path, or None if none is free.

    The draft is the recipe of the answers given so far and the defaults of the rest (commented like a finished
    recipe, ``package:`` references kept), headed by the answers given and the command that resumes the wizard with
    them. If those answers do not make a recipe yet, the draft holds the answers and the command only.
    """
    path = draft_path(output)
    if path is None:
        return None
    given = ", ".join(f"{key} = {answers[key]!r}" for key in asked)
    header = (
        f"{DRAFT_HEADER}\nAnswers given: {given}.\nEvery other key is the wizard's default.\n"
        f"Resume the questions with them: {resume_command(output, answers, asked, overrides)}"
    )
    try:
        recipe = apply_overrides(answers_to_recipe(answers), overrides, where="command line")
        text = render_commented_toml(
            recipe, header=header, folder=path.parent, references=package_references(answers, overrides)
        )
    except MudkdError as error:
        lines = [f"# {line}" for line in header.splitlines()]
        text = "\n".join([*lines, f"# No recipe yet: {error.message}", ""])
    from mudkd.core.outputs import write_text_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)
    return path
