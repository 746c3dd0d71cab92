"""What a wizard question is: a typed prompt declared as data, and how typed text becomes its answer.

:class:`Question` holds no terminal code: the CLI (:mod:`mudkd.cli.wizard`) draws the prompts and calls
:meth:`Question.parse` and :meth:`Question.check` to re-ask on invalid input; ``--set`` answers go through the
same two methods (:func:`mudkd.recipe.wizard.answers.complete_answers`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from mudkd.recipe.wizard.fields import DESCRIPTIONS, Answers

Kind = Literal["text", "select", "confirm", "int", "float"]


@dataclass(frozen=True)
class Choice:
    """One option of a ``select`` question: the value stored in the answers and the title the user reads."""

    value: str
    title: str


def titled_choices(titles: Mapping[Any, str], *, width: int, values: Iterable[Any] | None = None) -> tuple[Choice, ...]:
    """The options of a ``select`` question, in the order of ``titles``: each value padded to ``width``, then its text.

    Args:
        titles: Value → explanation.
        width: Column the explanations start at.
        values: The values the schema allows (an Enum, a ``Literal``, a tuple of names); the titles must cover
            exactly these, so a new scheme or task cannot be left out of the wizard silently.

    Raises:
        ValueError: When ``titles`` and ``values`` differ (at import: a programming error).
    """
    if values is not None:
        differ = {str(value) for value in values} ^ {str(value) for value in titles}
        if differ:
            raise ValueError(f"wizard choices and schema values differ: {', '.join(sorted(differ))}")
    return tuple(Choice(str(value), f"{value:<{width}}{text}") for value, text in titles.items())


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
        return DESCRIPTIONS.get(self.help_key or self.key, "")

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
