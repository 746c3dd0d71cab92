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

from mudkd.errors import RecipeError


@dataclass(frozen=True)
class Key:
    """``Annotated`` metadata: the recipe key an option sets, and how its raw value becomes the recipe value."""

    name: str
    convert: Callable[[Any], Any] | None = None


def keyed(kind: Any, key: str, *names: str, convert: Callable[[Any], Any] | None = None, **option: Any) -> Any:
    """An option type: ``typer.Option(*names, **option)`` that sets recipe key ``key``."""
    option.setdefault("show_default", False)
    return Annotated[kind, typer.Option(*names, **option), Key(key, convert)]


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
    from mudkd.recipe.schema import Recipe

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
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Validate and print the plan; write nothing.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print exactly one JSON document on stdout.")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue an interrupted run from its last checkpoint.")]
OverwriteOpt = keyed(
    bool, "output.overwrite", "--overwrite", help="Replace an output directory mudkd made (never one it did not)."
)
SeedOpt = keyed(int | None, "training.seed", "--seed", help="Random seed.")
DeviceOpt = choice("training.device", "--device", help="Where to run.")
OutputDirOpt = keyed(str | None, "{stage}.output_dir", "--output-dir", "-o", help="Output directory.")

# ---------------------------------------------------------------------------------------------------------------
# Models

PretrainedOpt = keyed(
    str | None, "teacher.pretrained", "--model-name-or-path", help="Pretrained model to fine-tune (hub name or dir)."
)
TeacherOpt = keyed(str | None, "teacher.model", "--teacher-model", help="Fine-tuned teacher directory.")
StudentOpt = keyed(str | None, "student.model", "--student-model", help="Student directory.")
# old spellings of the fine-tuned teacher (score: --model-name-or-path, prune: --model-path), hidden
TeacherAsModelNameOpt = keyed(str | None, "teacher.model", "--model-name-or-path", hidden=True)
TeacherAsModelPathOpt = keyed(str | None, "teacher.model", "--model-path", hidden=True)
# export and report took the student as --model-path
StudentAsModelPathOpt = keyed(str | None, "student.model", "--model-path", hidden=True)

# ---------------------------------------------------------------------------------------------------------------
# Data

TaskOpt = keyed(str | None, "task.name", "--task-name", help="GLUE task (sst-2, cola, ...), 'rt-snippets' or 'custom'.")
DataDirOpt = keyed(str | None, "task.data_dir", "--data-dir", help="GLUE task directory (TSV files).")
TrainFileOpt = keyed(
    str | None,
    "task.train_file",
    "--train-file",
    help="Your own training file (.csv, .tsv, .json, .jsonl); implies --task-name custom.",
)
ValidationFileOpt = keyed(
    str | None, "task.validation_file", "--validation-file", help="Your own dev file, same columns as --train-file."
)
TextColumnsOpt = keyed(
    str | None,
    "task.text_columns",
    "--text-columns",
    convert=name_list,
    metavar="A[,B]",
    help="Text column of your files, or two comma-separated for sentence pairs.",
)
LabelColumnOpt = keyed(str | None, "task.label_column", "--label-column", help="Label column of your files (label).")
MaxSeqOpt = keyed(int | None, "task.max_seq_length", "--max-seq-length", help="Tokens per example.")
MaxTrainOpt = keyed(
    int | None, "task.max_train_samples", "--max-train-samples", help="Use the first N training examples."
)
MaxEvalOpt = keyed(int | None, "task.max_eval_samples", "--max-eval-samples", help="Use the first N dev examples.")

# ---------------------------------------------------------------------------------------------------------------
# Training (the keys of the command's own stage)

_TRAINING = "Training"
BatchOpt = keyed(
    int | None,
    "{stage}.train_batch_size",
    "--train-batch-size",
    help="Training batch size per device.",
    rich_help_panel=_TRAINING,
)
LrOpt = keyed(
    float | None, "{stage}.learning_rate", "--learning-rate", help="Peak learning rate.", rich_help_panel=_TRAINING
)
EpochsOpt = keyed(
    float | None, "{stage}.num_train_epochs", "--num-train-epochs", help="Training epochs.", rich_help_panel=_TRAINING
)
MaxStepsOpt = keyed(
    int | None, "{stage}.max_steps", "--max-steps", help="Stop after N updates.", rich_help_panel=_TRAINING
)
EvalStepOpt = keyed(
    int | None,
    "{stage}.eval_step",
    "--eval-step",
    help="Evaluate/checkpoint every N updates.",
    rich_help_panel=_TRAINING,
)
WarmupOpt = keyed(
    float | None,
    "{stage}.warmup_proportion",
    "--warmup-proportion",
    help="Fraction of updates with warm-up.",
    rich_help_panel=_TRAINING,
)
TemperatureOpt = keyed(
    float | None, "pred.temperature", "--temperature", help="Softmax temperature.", rich_help_panel=_TRAINING
)

# ---------------------------------------------------------------------------------------------------------------
# Knowledge budget (distill hsk and distill cache)

_BUDGET = "Budget"
KeepLayersOpt = keyed(
    int | None,
    "hsk.keep_layers",
    "--keep-layers",
    help="K: top student layers with HSK (embeddings count).",
    rich_help_panel=_BUDGET,
)
LayerSchemeOpt = keyed(
    str | None,
    "hsk.layer_scheme",
    "--layer-scheme",
    help="Depth mapping t_topN (t_top8/10/12 in the paper).",
    rich_help_panel=_BUDGET,
)
StudentLayersOpt = keyed(
    str | None,
    "hsk.student_layers",
    "--student-layers",
    convert=int_list,
    help="Explicit student layers, e.g. 0,3,6.",
    rich_help_panel=_BUDGET,
)
TeacherLayersOpt = keyed(
    str | None,
    "hsk.teacher_layers",
    "--teacher-layers",
    convert=int_list,
    help="Explicit teacher layers, e.g. 0,6,12.",
    rich_help_panel=_BUDGET,
)
KeepTokensOpt = keyed(
    int | None, "hsk.keep_tokens", "--keep-tokens", help="k: tokens per example with HSK.", rich_help_panel=_BUDGET
)
AttTtop12Opt = keyed(
    str | None,
    "hsk.att_ttop12",
    "--att-ttop12",
    convert=true_or_false,
    metavar="true|false",
    help="Rank tokens with the g(l; teacher depth) layer's attention.",
    rich_help_panel=_BUDGET,
)
KeepHiddenOpt = keyed(
    float | None,
    "hsk.keep_hidden",
    "--keep-hidden",
    help="rho: kept fraction of the width, in (0, 1].",
    rich_help_panel=_BUDGET,
)
Config3dOpt = keyed(
    str | None, "hsk.config_3d", "--config-3d", help="K, k and rho at once: 1l_10t_0.1h.", rich_help_panel=_BUDGET
)
TokenSchemeOpt = choice(
    "hsk.token_scheme", "--token-scheme", help="Which tokens get HSK (length).", rich_help_panel=_BUDGET
)
HiddenSchemeOpt = choice(
    "hsk.hidden_scheme", "--hidden-scheme", help="Which hidden units get HSK (width).", rich_help_panel=_BUDGET
)
MagScopeOpt = choice(
    "hsk.mag_scope", "--mag-scope", help="Magnitude mask per example (storable) or per batch.", rich_help_panel=_BUDGET
)
MaskModeOpt = choice(
    "hsk.mask_mode",
    "--mask-mode",
    help="both: masked HSK has no loss; teacher_only: the reference.",
    rich_help_panel=_BUDGET,
)
