"""Every command-line option, declared once, each carrying the recipe key it sets.

An option is an ``Annotated`` type: its ``typer.Option`` says how it is spelled, and a :class:`Key` says which
recipe key its value overrides, so a command never spells a flag a second time as a dict key.
:func:`overrides` turns a command's parameters into recipe overrides. ``{stage}`` in a key stands for the
command's training stage (``--learning-rate`` sets ``finetune.learning_rate`` in ``finetune`` and
``hsk.learning_rate`` in ``distill hsk``).

One name per thing: ``--teacher-model`` is the fine-tuned teacher everywhere, ``--student-model`` a student,
``--output-dir/-o`` a directory a command writes. Older spellings are kept as hidden aliases that still work.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from mudkd.errors import RecipeError
from mudkd.recipe.schema import Recipe


@dataclass(frozen=True)
class Key:
    """``Annotated`` metadata: the recipe key an option sets, and how its raw value becomes the recipe value."""

    name: str
    convert: Callable[[Any], Any] | None = None


def keyed(
    kind: Any,
    key: str,
    *names: str,
    convert: Callable[[Any], Any] | None = None,
    note: str = "",
    schema: type[BaseModel] = Recipe,
    **option: Any,
) -> Any:
    """An option type: ``typer.Option(*names, **option)`` that sets recipe key ``key``.

    Its help is the schema field's description (the one text ``recipe show`` and the wizard also print), with
    ``note`` appended for what only the flag has (its syntax); its shown default is the schema's default.

    Args:
        kind: The parameter type (``int | None``: None means "not given").
        key: The dotted key it sets; ``{stage}`` stands for the command's training stage.
        names: The flag's spellings.
        convert: Turns the flag's text into the recipe value (``"0,3,6"`` → ``[0, 3, 6]``).
        note: Appended to the description: what the flag adds (``e.g. 0,3,6``).
        schema: The model holding ``key`` (a first key part that is no field of it names the model itself, as
            ``search.tolerance`` names :class:`~mudkd.recipe.search.SearchSettings`).
        option: Further ``typer.Option`` settings (``metavar``, ``hidden``, ``rich_help_panel``).
    """
    description, default = schema_help(key, schema)
    option.setdefault("help", f"{description} {note}".strip())
    option.setdefault("show_default", False if kind is bool else default)
    if kind is bool:
        option.setdefault("metavar", "")  # a flag takes no value (typer would print "<bool>")
    return Annotated[kind, typer.Option(*names, **option), Key(key, convert)]


def _table(field: FieldInfo) -> type[BaseModel] | None:
    annotation = field.annotation
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def schema_fields(key: str, schema: type[BaseModel] = Recipe) -> dict[str, FieldInfo]:
    """The schema fields ``key`` sets, by dotted key: one, or one per stage table for a ``{stage}`` key."""
    parts = key.split(".")
    if len(parts) > 1 and parts[0] not in schema.model_fields and parts[0] != "{stage}":
        parts = parts[1:]  # ``search.tolerance`` in SearchSettings: the first part names the model
    if len(parts) == 1:
        return {key: schema.model_fields[parts[0]]}
    section, name = parts
    tables = {
        table_name: table
        for table_name, field in schema.model_fields.items()
        if (table := _table(field)) is not None and section in {"{stage}", table_name} and name in table.model_fields
    }
    return {f"{table_name}.{name}": table.model_fields[name] for table_name, table in tables.items()}


def schema_help(key: str, schema: type[BaseModel] = Recipe) -> tuple[str, str | bool]:
    """``(description, default text or False)`` of ``key``; a ``{stage}`` key lists each stage's default.

    Typer shows the text as ``[default: (128)]``; a key without a default (None, an empty list) shows none.
    """
    fields = schema_fields(key, schema)
    description = next(iter(fields.values())).description or ""
    defaults: dict[str, str] = {}
    for dotted, field in fields.items():
        value = field.get_default(call_default_factory=True)
        if value is not None and value != []:
            defaults[dotted.split(".")[0]] = str(value.value if isinstance(value, Enum) else value)
    if not defaults:
        return description, False
    if len(set(defaults.values())) == 1 and len(defaults) == len(fields):
        return description, next(iter(defaults.values()))
    return description, ", ".join(f"{table} {value}" for table, value in defaults.items())


def overrides(command: Callable[..., Any], values: Mapping[str, Any], *, stage: str | None = None) -> dict[str, Any]:
    """The recipe overrides a command's options give: ``{recipe key: value}`` for every option that was given.

    Args:
        command: The command function (its annotations carry the :class:`Key` of each option).
        values: Its parameters, e.g. ``locals()`` at the top of the command.
        stage: The command's training stage, substituted for ``{stage}`` in keys.
    """
    hints = typing.get_type_hints(command, include_extras=True)
    flags: dict[str, Any] = {}
    for name in inspect.signature(command).parameters:
        key = next((meta for meta in getattr(hints.get(name), "__metadata__", ()) if isinstance(meta, Key)), None)
        value = values.get(name)
        if key is None or value is None or value is False:  # not given (a flag's False means "not given")
            continue
        if isinstance(value, Enum):
            value = value.value
        flags[key.name.format(stage=stage)] = _convert(key, value, hints.get(name)) if key.convert else value
    return flags


def _convert(key: Key, value: Any, hint: Any) -> Any:
    """``key.convert(value)``, its error naming the flag (``--layers: '0,x' is not ...``)."""
    try:
        return key.convert(value)  # type: ignore[misc]
    except RecipeError as error:
        option = next((meta for meta in getattr(hint, "__metadata__", ()) if hasattr(meta, "param_decls")), None)
        # typer keeps the first flag of typer.Option("--layers", ...) in ``default``, the others in ``param_decls``
        names = [option.default, *option.param_decls] if option is not None else []
        flag = next((n for n in names if isinstance(n, str) and n.startswith("-")), key.name)
        raise RecipeError(f"{flag}: {error.message}", hint=error.hint) from None


# ---------------------------------------------------------------------------------------------------------------
# Conversions


def int_list(text: str) -> list[int]:
    """``"0,3,6"`` → ``[0, 3, 6]``."""
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise RecipeError(f"'{text}' is not a comma-separated list of layer numbers", hint="e.g. 0,3,6") from None


def name_list(text: str) -> list[str]:
    """``"premise,hypothesis"`` → ``["premise", "hypothesis"]`` (column names; blanks around commas dropped)."""
    return [part.strip() for part in text.split(",") if part.strip()]


def true_or_false(text: str) -> bool:
    """``true|false`` (also ``1|0``, ``yes|no``) → bool."""
    lowered = text.lower()
    if lowered not in {"true", "false", "1", "0", "yes", "no"}:
        raise RecipeError(f"expected true or false (got '{text}')")
    return lowered in {"true", "1", "yes"}


# ---------------------------------------------------------------------------------------------------------------
# Choices: taken from the recipe schema (one definition), listed in --help and completed by the shell


def schema_choices(dotted: str) -> Any:
    """The allowed values of recipe key ``dotted`` as an Enum for Typer (the schema's own Enum if it has one)."""
    section, _, name = dotted.partition(".")
    annotation = Recipe.model_fields[section].annotation.model_fields[name].annotation  # type: ignore[union-attr]
    kinds = [kind for kind in typing.get_args(annotation) or (annotation,) if kind is not type(None)]
    if len(kinds) == 1 and isinstance(kinds[0], type) and issubclass(kinds[0], Enum):
        return kinds[0]
    values = [value for kind in kinds for value in (typing.get_args(kind) or (kind,))]
    class_name = "".join(part.title() for part in name.split("_"))
    return Enum(class_name, {str(value): str(value) for value in values}, type=str)


def choice(key: str, *names: str, **option: Any) -> Any:
    """An option whose values are the schema's allowed values for ``key``."""
    return keyed(schema_choices(key.replace("{stage}", "hsk")) | None, key, *names, **option)


# ---------------------------------------------------------------------------------------------------------------
# What every command takes

RecipeArg = Annotated[
    Path | None, typer.Argument(help="TOML recipe (optional: flags alone are enough).", show_default=False)
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        help="Override any recipe key: --set hsk.keep_tokens=10; a list as a,b: --set task.text_columns=a,b "
        "(repeatable).",
        metavar="KEY=VALUE",
    ),
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", metavar="", help="Validate and print the plan; write nothing.")]
JsonOpt = Annotated[bool, typer.Option("--json", metavar="", help="Print exactly one JSON document on stdout.")]
ResumeOpt = Annotated[
    bool, typer.Option("--resume", metavar="", help="Continue an interrupted run from its last checkpoint.")
]
OverwriteOpt = keyed(bool, "output.overwrite", "--overwrite")
SeedOpt = keyed(int | None, "training.seed", "--seed")
DeviceOpt = choice("training.device", "--device")
#: The spelling of every option naming a directory a command writes (one key per command: :func:`output_dir`).
OUTPUT_DIR = ("--output-dir", "-o")


def output_dir(key: str, *, schema: type[BaseModel] = Recipe, note: str = "") -> Any:
    """The ``--output-dir/-o`` option of a command, setting ``key`` (a stage's, the pipeline's, a sweep's...)."""
    return keyed(str | None, key, *OUTPUT_DIR, schema=schema, note=note)


OutputDirOpt = output_dir("{stage}.output_dir")
# export writes one file (--output/-o) or, with --output-dir (no -o: that is the file's), a folder; no recipe key
ExportDirOpt = Annotated[
    str | None,
    typer.Option(
        OUTPUT_DIR[0],
        help="Write a folder instead: the model, config, tokenizer, records and a model card (README.md).",
        show_default=False,
    ),
]

# ---------------------------------------------------------------------------------------------------------------
# Models

PretrainedOpt = keyed(str | None, "teacher.pretrained", "--model-name-or-path")
TeacherOpt = keyed(str | None, "teacher.model", "--teacher-model")
StudentOpt = keyed(str | None, "student.model", "--student-model")
# old spellings of the fine-tuned teacher (score: --model-name-or-path, prune: --model-path), hidden
TeacherAsModelNameOpt = keyed(str | None, "teacher.model", "--model-name-or-path", hidden=True)
TeacherAsModelPathOpt = keyed(str | None, "teacher.model", "--model-path", hidden=True)
# export and report took the student as --model-path
StudentAsModelPathOpt = keyed(str | None, "student.model", "--model-path", hidden=True)

# ---------------------------------------------------------------------------------------------------------------
# Data

TaskOpt = keyed(str | None, "task.name", "--task-name")
DataDirOpt = keyed(str | None, "task.data_dir", "--data-dir")
TrainFileOpt = keyed(str | None, "task.train_file", "--train-file", note="Implies --task-name custom.")
ValidationFileOpt = keyed(str | None, "task.validation_file", "--validation-file")
TextColumnsOpt = keyed(
    str | None, "task.text_columns", "--text-columns", convert=name_list, metavar="A[,B]", note="Comma-separated."
)
LabelColumnOpt = keyed(str | None, "task.label_column", "--label-column")
MaxSeqOpt = keyed(int | None, "task.max_seq_length", "--max-seq-length")
MaxTrainOpt = keyed(int | None, "task.max_train_samples", "--max-train-samples")
MaxEvalOpt = keyed(int | None, "task.max_eval_samples", "--max-eval-samples")

# ---------------------------------------------------------------------------------------------------------------
# Training (the keys of the command's own stage)

_TRAINING = "Training"
BatchOpt = keyed(int | None, "{stage}.train_batch_size", "--train-batch-size", rich_help_panel=_TRAINING)
LrOpt = keyed(float | None, "{stage}.learning_rate", "--learning-rate", rich_help_panel=_TRAINING)
EpochsOpt = keyed(float | None, "{stage}.num_train_epochs", "--num-train-epochs", rich_help_panel=_TRAINING)
MaxStepsOpt = keyed(int | None, "{stage}.max_steps", "--max-steps", rich_help_panel=_TRAINING)
EvalStepOpt = keyed(int | None, "{stage}.eval_step", "--eval-step", rich_help_panel=_TRAINING)
WarmupOpt = keyed(float | None, "{stage}.warmup_proportion", "--warmup-proportion", rich_help_panel=_TRAINING)
TemperatureOpt = keyed(float | None, "pred.temperature", "--temperature", rich_help_panel=_TRAINING)

# ---------------------------------------------------------------------------------------------------------------
# Knowledge budget (distill hsk and distill cache)

_BUDGET = "Budget"
KeepLayersOpt = keyed(int | None, "hsk.keep_layers", "--keep-layers", rich_help_panel=_BUDGET)
LayerSchemeOpt = keyed(str | None, "hsk.layer_scheme", "--layer-scheme", rich_help_panel=_BUDGET)
StudentLayersOpt = keyed(
    str | None, "hsk.student_layers", "--student-layers", convert=int_list, note="E.g. 0,3,6.", rich_help_panel=_BUDGET
)
TeacherLayersOpt = keyed(
    str | None, "hsk.teacher_layers", "--teacher-layers", convert=int_list, note="E.g. 0,6,12.", rich_help_panel=_BUDGET
)
KeepTokensOpt = keyed(int | None, "hsk.keep_tokens", "--keep-tokens", rich_help_panel=_BUDGET)
AttTtop12Opt = keyed(
    str | None, "hsk.att_ttop12", "--att-ttop12", convert=true_or_false, metavar="true|false", rich_help_panel=_BUDGET
)
KeepHiddenOpt = keyed(float | None, "hsk.keep_hidden", "--keep-hidden", note="In (0, 1].", rich_help_panel=_BUDGET)
Config3dOpt = keyed(str | None, "hsk.config_3d", "--config-3d", rich_help_panel=_BUDGET)
TokenSchemeOpt = choice("hsk.token_scheme", "--token-scheme", rich_help_panel=_BUDGET)
HiddenSchemeOpt = choice("hsk.hidden_scheme", "--hidden-scheme", rich_help_panel=_BUDGET)
MagScopeOpt = choice("hsk.mag_scope", "--mag-scope", rich_help_panel=_BUDGET)
MaskModeOpt = choice("hsk.mask_mode", "--mask-mode", rich_help_panel=_BUDGET)
