"""``mudkd evaluate`` (a model's metrics, per-class report and confusion matrix on dev data) and ``mudkd predict``
(labels and probabilities for raw text, as JSON lines). Both are read-only."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from mudkd.cli import common as c
from mudkd.cli import options as o
from mudkd.cli.stage import build
from mudkd.errors import DataError

EVALUATE_EPILOG = """Examples:

  $ mudkd evaluate models/final --recipe recipes/glue_rosita.toml --data-dir glue/SST-2 --teacher models/teacher

  $ mudkd evaluate models/final --task-name sst-2 --data-dir glue/SST-2 --json

  $ mudkd evaluate models/spam --task-name custom --validation-file dev.csv --text-columns text --metric f1[spam]

  $ mudkd evaluate models/spam --task-name custom --validation-file dev.csv --text-columns text --metric f1
"""

PREDICT_EPILOG = """Examples:

  $ echo "a gripping, funny film" | mudkd predict models/final

  $ mudkd predict models/final reviews.txt > predictions.jsonl

  $ mudkd predict models/mnli pairs.tsv --text-columns premise,hypothesis
"""

ModelArg = Annotated[str, typer.Argument(help="Model directory (from mudkd finetune or distill).", show_default=False)]
RecipeOpt = Annotated[
    Path | None, typer.Option("--recipe", "-r", help="TOML recipe whose task and dev data to use.", show_default=False)
]
EvalTeacherOpt = Annotated[
    str | None, typer.Option("--teacher", help="A second model evaluated side by side (the teacher).")
]
MetricOpt = o.keyed(str | None, "task.metric", "--metric")
PositiveOpt = o.keyed(str | None, "task.positive_label", "--positive-label")
EvalBatchOpt = o.keyed(int | None, "training.eval_batch_size", "--batch-size")


def evaluate_cli(
    model: ModelArg,
    recipe: RecipeOpt = None,
    teacher: EvalTeacherOpt = None,
    task_name: o.TaskOpt = None,
    data_dir: o.DataDirOpt = None,
    train_file: o.TrainFileOpt = None,
    validation_file: o.ValidationFileOpt = None,
    text_columns: o.TextColumnsOpt = None,
    label_column: o.LabelColumnOpt = None,
    metric: MetricOpt = None,
    positive_label: PositiveOpt = None,
    max_seq_length: o.MaxSeqOpt = None,
    max_eval_samples: o.MaxEvalOpt = None,
    batch_size: EvalBatchOpt = None,
    device: o.DeviceOpt = None,
    set_: o.SetOpt = None,
    json_: o.JsonOpt = False,
) -> None:
    """Evaluate a model on dev data: metrics, per-class precision/recall/F1, confusion matrix.

    The data is the recipe's (or the task flags') dev split, or the --validation-file given here (in the task's
    format; --train-file, when given, only names the classes); it is read, tokenised, batched and scored exactly as
    training does. With --teacher, a second model is scored on the same examples. Writes nothing.
    """
    values = dict(locals())
    if validation_file and not train_file and task_name == "custom" and not _recipe_sets_train_file(recipe):
        # A custom task is declared with its training file; evaluating one file needs none: the file stands in.
        values["set_"] = [f"task.train_file={_toml_string(validation_file)}", *(set_ or [])]
    resolved = build(evaluate_cli, values)
    from mudkd.core.stages.evaluate import evaluate

    c.quiet_libraries()
    document = evaluate(resolved, model, teacher_dir=teacher, validation_file=validation_file).to_dict()
    if json_:
        c.emit_json(document)
        return
    render_evaluation(document)


def _recipe_sets_train_file(recipe: Path | None) -> bool:
    if recipe is None:
        return False
    from mudkd.recipe import build_recipe

    try:
        return bool(build_recipe(recipe).task.train_file)
    except Exception:  # the full build below reports the recipe's problems
        return True


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_evaluation(document: dict[str, Any]) -> None:
    """Per split: the metrics (model and teacher side by side), the per-class report and the confusion matrix."""
    from rich import box
    from rich.markup import escape  # metric names (f1[spam]), labels and paths are text, not rich markup
    from rich.table import Table

    console = c.stdout_console()
    teacher = document.get("teacher")
    for split, result in document["splits"].items():
        other = teacher["splits"][split] if teacher else None
        title = escape(f"{split}: {result['examples']:,} examples, {document['model']}")
        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
        table.add_column("metric", style="bold")
        table.add_column("model", justify="right")
        if other is not None:
            table.add_column(escape(f"teacher ({teacher['model']})"), justify="right")
        for name, value in result["metrics"].items():
            marker = " *" if name == document["metric"] else ""
            cells = [f"{value:.4f}"] + ([f"{other['metrics'][name]:.4f}"] if other is not None else [])
            table.add_row(escape(name + marker), *cells)
        console.print(table)
        if result["per_class"] is None:
            continue
        report = Table(title="per class", title_justify="left", box=box.SIMPLE_HEAD)
        for column in ("class", "precision", "recall", "f1", "support", *(["teacher f1"] if other else [])):
            report.add_column(column, justify="left" if column == "class" else "right")
        for label, scores in result["per_class"].items():
            extra = [f"{other['per_class'][label]['f1']:.4f}"] if other is not None else []
            cells = [f"{scores[key]:.4f}" for key in ("precision", "recall", "f1")]
            report.add_row(escape(label), *cells, f"{scores['support']:,}", *extra)
        console.print(report)
        render_confusion(document["labels"], result["confusion_matrix"], "confusion matrix (rows: gold)")
        if other is not None:
            render_confusion(document["labels"], other["confusion_matrix"], "teacher confusion matrix")
    c.info(f"* = the task's metric ({document['metric']}: task.metric selects it)")


def render_confusion(labels: list[str], matrix: list[list[int]], title: str) -> None:
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("gold \\ predicted", style="bold")
    for label in labels:
        table.add_column(escape(label), justify="right")
    for label, row in zip(labels, matrix, strict=True):
        table.add_row(escape(label), *(f"{count:,}" for count in row))
    c.stdout_console().print(table)


InputArg = Annotated[
    str,
    typer.Argument(help="Input file: one text per line, or a .csv/.tsv with a header; '-' (default): stdin."),
]
PredictTextColumnsOpt = Annotated[
    str | None,
    typer.Option("--text-columns", help="CSV/TSV input: the text column (default text, or sentence), two for pairs."),
]
PairsOpt = Annotated[bool, typer.Option("--pairs", metavar="", help="Plain lines hold a pair: TEXT<TAB>TEXT.")]
FormatOpt = Annotated[
    str | None,
    typer.Option("--format", help="lines, csv or tsv (default: from the file's suffix; stdin: lines)."),
]
PredictMaxSeqOpt = Annotated[int, typer.Option("--max-seq-length", help="Tokens per example (longer is truncated).")]
PredictBatchOpt = Annotated[int, typer.Option("--batch-size", help="Examples per batch.")]


def predict_cli(
    model: ModelArg,
    input_file: InputArg = "-",
    text_columns: PredictTextColumnsOpt = None,
    pairs: PairsOpt = False,
    format_: FormatOpt = None,
    max_seq_length: PredictMaxSeqOpt = 128,
    batch_size: PredictBatchOpt = 64,
    device: o.DeviceOpt = None,
    json_: o.JsonOpt = False,
) -> None:
    """Predict labels for raw text: one JSON object per line on stdout (text, label, probabilities per label).

    Labels are the model's id2label names. With --json, one JSON document holds every prediction. Reads only the
    model and the input; writes nothing else.
    """
    from mudkd.core.stages.evaluate import check_model_dir, predict

    check_model_dir(model)  # before waiting for stdin
    rows = _input_rows(input_file, format_, text_columns, pairs)
    c.quiet_libraries()
    chosen = device.value if device is not None else "auto"
    predictions = predict(model, rows, max_seq_length=max_seq_length, batch_size=batch_size, device=chosen)
    emit_predictions(model, predictions, json_)


def _input_rows(input_file: str, format_: str | None, text_columns: str | None, pairs: bool) -> list:
    from mudkd.core.stages.evaluate import read_inputs

    columns = [part.strip() for part in (text_columns or "").split(",") if part.strip()]
    source = "stdin" if input_file == "-" else input_file
    table = _table_format(input_file, format_)
    return read_inputs(_read_input(input_file), table=table, text_columns=columns, pairs=pairs, source=source)


def emit_predictions(model: str, predictions: Any, json_mode: bool) -> None:
    """JSON lines on stdout, one per example as it is predicted; with ``--json`` one document holding them all."""
    import json

    if json_mode:
        c.emit_json({"model": model, "predictions": list(predictions)})
        return
    for record in predictions:
        sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _table_format(input_file: str, format_: str | None) -> str | None:
    if format_ is not None:
        if format_ not in ("lines", "csv", "tsv"):
            raise DataError(f"--format: '{format_}' is not one of lines, csv, tsv")
        return None if format_ == "lines" else format_
    suffix = Path(input_file).suffix.lower() if input_file != "-" else ""
    return suffix.lstrip(".") if suffix in (".csv", ".tsv") else None


def _read_input(input_file: str) -> str:
    if input_file == "-":
        return _text("stdin", _stdin_bytes())
    path = Path(input_file)
    if not path.is_file():
        raise DataError(f"{path}: input file not found", hint="give a text file, or '-' to read stdin")
    from mudkd.core.data import check_utf8

    check_utf8(path)
    return _text(str(path), path.read_bytes())


def _stdin_bytes() -> bytes:
    """stdin as bytes: decoding is ours, so binary input is an error naming its line, not a crash on output."""
    buffer = getattr(sys.stdin, "buffer", None)
    return buffer.read() if buffer is not None else sys.stdin.read().encode("utf-8", "surrogateescape")


def _text(source: str, data: bytes) -> str:
    """``data`` as UTF-8 text; binary input (bytes that are not UTF-8, or NUL bytes) is refused with its line."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise DataError(
            f"{source}: not UTF-8 text (byte 0x{data[error.start]:02x} on line {line})",
            hint="give UTF-8 text, one text per line (or a .csv/.tsv with a header); binary data cannot be predicted",
        ) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise DataError(
            f"{source}: a NUL byte on line {line}: binary data, not text",
            hint="give UTF-8 text, one text per line (or a .csv/.tsv with a header)",
        )
    return text
