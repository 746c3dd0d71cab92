"""Evaluate a trained model on a task's dev data, and predict labels for raw text (issue 15).

Both are read-only: they load a model, read data, and return results; nothing is written (not even the
tokenised-split cache). They use the training code's pieces: :func:`mudkd.core.data.load_eval_data` reads and
tokenises the data as training does, :class:`mudkd.core.batching.PaddingCollator` pads each batch to its own
longest example, and :func:`mudkd.core.metrics.compute_metrics` computes the same metrics training reports.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mudkd.core.data import labels_are_ids, load_eval_data, tokenize_split, tokenizer_fingerprint
from mudkd.core.datacheck import check_data
from mudkd.core.metrics import compute_metrics, confusion_matrix, per_class_scores, predicted_classes
from mudkd.core.models import check_finite_weights, check_positions, load_classifier, load_tokenizer
from mudkd.core.tables import first_bad_line, malformed_line_error
from mudkd.core.training import resolve_device
from mudkd.errors import CheckpointError, DataError, RunError
from mudkd.recipe.schema import Recipe, TrainingConfig

# torch and the batching helpers (~1.5 s at import) are imported inside the functions that run a model:
# check_model_dir and read_inputs refuse bad input without importing torch.

_GENERIC_LABEL = re.compile(r"^LABEL_\d+$")


def model_labels(config: Any) -> list[str] | None:
    """A model's class names in id order (its ``id2label``), or None for regression or generic ``LABEL_i`` names."""
    if getattr(config, "problem_type", None) == "regression" or config.num_labels == 1:
        return None
    id2label = {int(key): str(value) for key, value in (config.id2label or {}).items()}
    labels = [id2label.get(index, f"LABEL_{index}") for index in range(config.num_labels)]
    return None if all(_GENERIC_LABEL.match(label) for label in labels) else labels


def check_model_dir(model_dir: str, role: str = "model") -> None:
    """Refuse a model directory that does not exist (before any input is read).

    Raises:
        CheckpointError: ``model_dir`` is not a directory.
    """
    if not Path(model_dir).is_dir():
        raise CheckpointError(
            f"{model_dir}: {role} directory not found",
            hint="pass a directory written by mudkd finetune / distill (config.json + model.safetensors)",
        )


def _load(model_dir: str, role: str) -> tuple[Any, Any]:
    check_model_dir(model_dir, role)
    tokenizer = load_tokenizer(model_dir)
    model = load_classifier(model_dir)
    check_finite_weights(model, model_dir)  # nan weights give nan probabilities and metrics, never a result
    model.eval()
    return model, tokenizer


def batched_logits(model: Any, dataset: Any, collator: Any, batch_size: int, device: str) -> np.ndarray:
    """The model's logits for every example of a tokenised split, in the split's order.

    Examples are batched by similar length (longest first) and each batch is padded to its own longest example;
    the logits are put back in the split's order.
    """
    import torch

    from mudkd.core.batching import example_lengths, length_sorted_batches

    columns = [name for name in ("input_ids", "token_type_ids", "attention_mask") if name in dataset.column_names]
    rows = dataset.select_columns(columns)
    lengths = example_lengths(dataset)
    outputs: list[np.ndarray | None] = [None] * len(lengths)
    model.to(device)
    with torch.no_grad():
        for indices in length_sorted_batches(lengths, 0, len(lengths), batch_size):
            batch = collator([rows[index] for index in indices])
            logits = model(**{name: tensor.to(device) for name, tensor in batch.items()}).logits
            for position, index in enumerate(indices):
                outputs[index] = logits[position].float().cpu().numpy()
    return np.stack(outputs) if outputs else np.zeros((0, model.config.num_labels))  # type: ignore[arg-type]


def _aligned(logits: np.ndarray, own: list[str] | None, labels: list[str] | None) -> np.ndarray:
    """Logits with their columns in ``labels`` order, when the model names the same classes in another order."""
    if own is None or labels is None or own == labels or set(own) != set(labels):
        return logits
    return logits[:, [own.index(label) for label in labels]]


def _report(names: Sequence[str], logits: np.ndarray, gold: np.ndarray, labels: list[str] | None) -> dict[str, Any]:
    """Metrics, per-class precision/recall/F1 and the confusion matrix (rows gold, columns predicted) of a split."""
    report: dict[str, Any] = {"examples": len(gold), "metrics": compute_metrics(names, logits, gold, labels)}
    if labels is None:
        return report | {"per_class": None, "confusion_matrix": None}
    matrix = confusion_matrix(gold, predicted_classes(logits), len(labels))
    scores = per_class_scores(matrix)
    report["per_class"] = {label: scores[index] for index, label in enumerate(labels)}
    report["confusion_matrix"] = matrix.tolist()
    return report


@dataclass
class Evaluation:
    """What :func:`evaluate` returns; ``to_dict()`` is the ``mudkd evaluate --json`` document.

    Attributes:
        model: The evaluated model's directory.
        task: The task's name.
        data: The files the examples were read from.
        metric: The task's selection metric.
        labels: The label names in class order (None for a regression task).
        splits: Per evaluated split (``dev``; MNLI also ``dev_mismatched``): ``examples``, ``metrics``,
            ``per_class`` and ``confusion_matrix`` (rows gold classes, columns predictions).
        teacher: ``{"model", "splits"}`` of a teacher evaluated on the same examples, or None.
    """

    model: str
    task: str | None
    data: list[str]
    metric: str | None
    labels: list[str] | None
    splits: dict[str, dict[str, Any]]
    teacher: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The document, its keys in the attributes' order."""
        return asdict(self)


def evaluate(
    recipe: Recipe, model_dir: str, *, teacher_dir: str | None = None, validation_file: str | None = None
) -> Evaluation:
    """Evaluate ``model_dir`` (and optionally a teacher, side by side) on the recipe's dev data.

    Args:
        recipe: The task (``recipe.task``) and the batching/device settings (``recipe.training``).
        model_dir: A fine-tuned or distilled model directory.
        teacher_dir: Another model evaluated on the same examples.
        validation_file: Evaluate on this file (the task's format) instead of the task's dev split(s).

    Returns:
        An :class:`Evaluation`: the model's (and the teacher's) metrics, per-class scores and confusion matrix on
        every dev split.

    Raises:
        CheckpointError: A model directory is missing or unreadable, its weights hold nan or inf, or its label
            count does not fit the task.
        DataError: The data cannot be read (its file and line named), holds a label the model does not know, or
            the teacher names other labels than the model.
        RecipeError: ``task.metric`` / ``task.positive_label`` do not fit the task.
    """
    from mudkd.core.batching import make_collator

    if validation_file is None:
        check_data(recipe.task)  # every problem with the task's files at once, before a model loads
    check_positions(recipe.task.max_seq_length, model_dir, teacher_dir)
    device = resolve_device(recipe.training)
    model, tokenizer = _load(model_dir, "model")
    data = load_eval_data(recipe.task, tokenizer, model_labels(model.config), validation_file)
    by_id = labels_are_ids(recipe.task.name, data.labels)  # GLUE's class ids: every model is read by id
    teacher = _load(teacher_dir, "teacher") if teacher_dir else None

    def run(role_model: Any, role_tokenizer: Any, role: str, path: str) -> dict[str, Any]:
        if role_model.config.num_labels != data.num_labels:
            raise CheckpointError(
                f"{path}: the {role} has {role_model.config.num_labels} labels, task '{recipe.task.name}' "
                f"{data.num_labels}",
                hint="evaluate a model fine-tuned on this task",
            )
        own = model_labels(role_model.config)
        if own and data.labels and set(own) != set(data.labels) and not by_id:  # no mapping between other names
            raise DataError(
                f"{path}: the {role}'s labels ({', '.join(own)}) are not those evaluated ({', '.join(data.labels)})",
                hint="compare models trained on the same labels",
            )
        splits = data.dev
        if tokenizer_fingerprint(role_tokenizer) != tokenizer_fingerprint(tokenizer):
            splits = load_eval_data(recipe.task, role_tokenizer, data.labels, validation_file).dev
        collator = make_collator(role_tokenizer, recipe.training.padding, recipe.task.max_seq_length)
        results = {}
        for name, split in splits.items():
            logits = batched_logits(role_model, split, collator, recipe.training.eval_batch_size, device)
            logits = _aligned(logits, model_labels(role_model.config), data.labels)
            results[name] = _report(data.metrics, logits, np.asarray(split["labels"]), data.labels)
        return results

    evaluation = Evaluation(
        model=str(model_dir),
        task=recipe.task.name,
        data=[str(path) for path in data.data_files],
        metric=data.selection,
        labels=data.labels,
        splits=run(model, tokenizer, "model", model_dir),
    )
    if teacher is not None:
        evaluation.teacher = {"model": str(teacher_dir), "splits": run(*teacher, "teacher", str(teacher_dir))}
    return evaluation


# ---------------------------------------------------------------------------------------------------------------
# predict


def read_inputs(
    text: str,
    *,
    table: str | None = None,
    text_columns: Sequence[str] = (),
    pairs: bool = False,
    source: str = "input",
) -> list[tuple[str, str | None]]:
    """The examples of ``predict``'s input: ``(text, text_pair or None)`` per example.

    Args:
        text: The input, read whole.
        table: ``"csv"`` or ``"tsv"``: a table with a header row; None: one text per line (blank lines skipped).
        text_columns: A table's text column (or two, for pairs); default: ``text``, else ``sentence``.
        pairs: Plain lines hold a pair, separated by the first tab.
        source: What the input is called in an error (its file name, or ``stdin``).

    Raises:
        DataError: No example, a missing column, a malformed table (its line named), or a pair line without a tab.
    """
    if table is None:
        lines = [line for line in text.splitlines() if line.strip()]
        if not pairs:
            rows: list[tuple[str, str | None]] = [(line, None) for line in lines]
        else:
            rows = []
            for number, line in enumerate(lines, 1):
                first, tab, second = line.partition("\t")
                if not tab:
                    raise DataError(f"line {number}: no tab between the two texts of a pair", hint="TEXT<TAB>TEXT")
                rows.append((first, second))
    else:
        rows = _table_rows(text, table, text_columns, source)
    if not rows:
        raise DataError("no text to predict (the input is empty)", hint="give one text per line, in a file or on stdin")
    return rows


def _table_rows(text: str, table: str, text_columns: Sequence[str], source: str) -> list[tuple[str, str | None]]:
    delimiter = "\t" if table == "tsv" else ","
    problem = first_bad_line(io.StringIO(text, newline=""), delimiter=delimiter)  # a lenient read would glue rows
    if problem is not None:
        raise malformed_line_error(source, *problem)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = list(reader.fieldnames or [])
    if not header:
        raise DataError("no text to predict (the input is empty)", hint="give a header row and one example per row")
    columns = list(text_columns) or [next((c for c in ("text", "sentence") if c in header), "text")]
    missing = [column for column in columns if column not in header]
    if missing or len(columns) > 2:
        problem = f"column(s) {', '.join(repr(c) for c in missing)} not found" if missing else "at most 2 columns"
        raise DataError(
            f"{table.upper()} input: {problem} (columns: {', '.join(header)})",
            hint="name the text column (or two, for pairs) with --text-columns",
        )
    second = columns[1] if len(columns) == 2 else None
    return [(row[columns[0]] or "", (row[second] or "") if second else None) for row in reader]


def predict(
    model_dir: str,
    rows: Iterable[tuple[str, str | None]],
    *,
    max_seq_length: int = 128,
    batch_size: int = 64,
    device: str = "auto",
) -> Iterator[dict[str, Any]]:
    """Label every example with ``model_dir``: ``{"text", ["text_pair"], "label", "probabilities"}`` in input order.

    ``label`` and the keys of ``probabilities`` (softmax over the logits) are the model's ``id2label`` names; a
    regression model gives ``{"text", "score"}``. Examples are tokenised as training does (longest-first pair
    truncation to ``max_seq_length``) and batched by length, each batch padded to its longest example.

    Raises:
        CheckpointError: The model directory is missing or unreadable, or its weights hold nan or inf.
        RecipeError: ``max_seq_length`` exceeds the model's positions.
        RunError: The model's outputs for an example are not finite (nothing non-finite is ever yielded).
    """
    from mudkd.core.batching import PaddingCollator

    check_positions(max_seq_length, model_dir)
    model, tokenizer = _load(model_dir, "model")
    run_on = resolve_device(TrainingConfig(device=device))  # type: ignore[arg-type]
    config = model.config
    names = [str((config.id2label or {}).get(i, f"LABEL_{i}")) for i in range(config.num_labels)]
    regression = getattr(config, "problem_type", None) == "regression" or config.num_labels == 1
    collator = PaddingCollator(tokenizer.pad_token_id)
    rows = list(rows)
    for start in range(0, len(rows), 4096):  # a window at a time: long inputs never sit tokenised in memory whole
        window = rows[start : start + 4096]
        columns: dict[str, list] = {"text_a": [a for a, _ in window], "label": [0] * len(window)}
        if window[0][1] is not None:
            columns["text_b"] = [b or "" for _, b in window]
        dataset = tokenize_split(columns, tokenizer, max_seq_length, cache=False)
        logits = batched_logits(model, dataset, collator, batch_size, run_on)
        for number, ((text_a, text_b), row) in enumerate(zip(window, logits, strict=True), start + 1):
            if not np.isfinite(row).all():  # finite weights can still overflow: never print a nan probability
                raise RunError(
                    f"{model_dir}: the model's outputs for example {number} are not finite ({row.tolist()})",
                    hint="the model overflows on this input; check the checkpoint (evaluate it on its dev data)",
                )
            record: dict[str, Any] = {"text": text_a}
            if text_b is not None:
                record["text_pair"] = text_b
            if regression:
                record["score"] = float(row.reshape(-1)[0])
            else:
                with np.errstate(over="ignore"):  # a logit far below the largest: probability 0, as it is
                    shifted = np.exp(row - row.max())
                probabilities = shifted / shifted.sum()
                record["label"] = names[int(row.argmax())]
                record["probabilities"] = {name: float(p) for name, p in zip(names, probabilities, strict=True)}
            yield record
