"""A transfer set: extra distillation examples (augmented or unlabelled) that the teacher labels (issue 19).

``mudkd augment`` (:mod:`mudkd.core.stages.augment`) writes a directory holding ``transfer.jsonl`` (one example per
line: ``text_a``, optionally ``text_b``, its ``origin`` and the training example it came from) and
``transfer.json`` (what it was made from, and the counts). With ``augment.transfer_set`` set, ``distill cache``,
``hsk`` and ``pred`` train on the **union**: the task's training examples first (so a store of the union serves a
run without the transfer set from its prefix), then the transfer set in file order.

Transfer examples carry no gold label: their ``labels`` hold :data:`NO_LABEL` (classification) or NaN
(regression), and the one loss that reads gold labels (regression in ``distill pred``) uses the teacher's
prediction for them instead (:func:`regression_loss`). The store keeps every example's origin in an ``origin``
field (only when a transfer set is stored, so a store without one is byte-identical to before).
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from mudkd.errors import DataError

TRANSFER_FILE = "transfer.jsonl"
SUMMARY_FILE = "transfer.json"
FORMAT = "mudkd-transfer-set"
#: Per-example origin codes, as stored in a store's ``origin`` field.
ORIGINS = {"original": 0, "augmented": 1, "unlabeled": 2}
#: The label of a classification example without a gold label (PyTorch's ignore index).
NO_LABEL = -100


def read_summary(directory: str | Path) -> dict[str, Any]:
    """A transfer set's ``transfer.json``, checked to describe a finished transfer set.

    Raises:
        DataError: The directory is not a transfer set written by ``mudkd augment``.
    """
    path = Path(directory) / SUMMARY_FILE
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        summary = None
    if (
        not isinstance(summary, dict)
        or summary.get("format") != FORMAT
        or not (Path(directory) / TRANSFER_FILE).is_file()
    ):
        raise DataError(
            f"{directory}: not a transfer set (no {SUMMARY_FILE} and {TRANSFER_FILE} written by 'mudkd augment')",
            hint="run 'mudkd augment' first, or unset augment.transfer_set",
        )
    return summary


def transfer_fingerprint(recipe: Any) -> str | None:
    """The store fingerprint entry of a recipe's transfer set (None without one): the file's hash and the number
    of training examples before it, which fixes where every transfer example sits in the store."""
    directory = recipe.augment.transfer_set
    if not directory:
        return None
    from mudkd.core.store import fingerprint_files

    summary = read_summary(directory)
    return f"{fingerprint_files([Path(directory) / TRANSFER_FILE])[:32]}:{summary['num_original']}"


def transfer_count(recipe: Any) -> int:
    """The examples a recipe's transfer set adds (0 without one)."""
    if not recipe.augment.transfer_set:
        return 0
    summary = read_summary(recipe.augment.transfer_set)
    return int(summary["augmented"]) + int(summary["unlabeled"])


def add_transfer(data: Any, recipe: Any, tokenizer: Any) -> Any:
    """``data`` (a :class:`~mudkd.core.data.TaskData`) with the recipe's transfer set appended to its training split.

    The transfer file is read through ``datasets`` (an Arrow file on disk, memory-mapped) and tokenised in batches,
    so a million-example set never sits in RAM as Python objects. The result's ``origin`` is the per-example
    origin code (uint8, :data:`ORIGINS`), its ``transfer_key`` the store fingerprint entry.

    Raises:
        DataError: Not a transfer set, or one made for another number of training examples.
    """
    directory = recipe.augment.transfer_set
    if not directory:
        return data
    summary = read_summary(directory)
    if int(summary["num_original"]) != len(data.train):
        raise DataError(
            f"{directory}: the transfer set was made for {summary['num_original']:,} training examples, this run "
            f"has {len(data.train):,}",
            hint="rerun 'mudkd augment' with this run's task settings (task.max_train_samples)",
        )
    from datasets import concatenate_datasets, load_dataset

    from mudkd.core.data import encode_texts

    extra = load_dataset("json", data_files=str(Path(directory) / TRANSFER_FILE), split="train")
    regression = data.is_regression
    length = recipe.task.max_seq_length

    def tokenize(batch: dict[str, list]) -> dict[str, list]:
        text_b = batch.get("text_b")
        if text_b is not None:  # a single text among pairs (an unlabelled line) is encoded alone
            text_b = None if all(value is None for value in text_b) else [value or "" for value in text_b]
        encoded = encode_texts(tokenizer, batch["text_a"], text_b, length, pad_to_max_length=False)
        encoded["labels"] = [float("nan") if regression else NO_LABEL] * len(batch["text_a"])
        return encoded

    origins = np.asarray([ORIGINS[name] for name in extra["origin"]], dtype=np.uint8)
    tokenised = extra.map(tokenize, batched=True, remove_columns=extra.column_names)
    tokenised = tokenised.cast(data.train.features)
    union = concatenate_datasets([data.train, tokenised])
    origin = np.concatenate([np.zeros(len(data.train), dtype=np.uint8), origins])
    return dataclasses.replace(data, train=union, origin=origin, transfer_key=transfer_fingerprint(recipe))


def labelled_mask(labels: Any) -> Any:
    """Which examples of a batch carry a gold label (a bool tensor like ``labels``)."""
    import torch

    if labels.is_floating_point():
        return ~torch.isnan(labels)
    return labels != NO_LABEL


def regression_loss(predictions: Any, labels: Any, teacher_logits: Any) -> Any:
    """Mean squared error to the gold label where there is one, else to the teacher's prediction.

    ``teacher_logits`` is a zero-argument callable (the teacher's ``[batch, 1]`` logits), called only when the
    batch holds an example without a gold label, so a batch of labelled examples costs exactly what it did before.
    """
    from torch.nn import functional as F

    labelled = labelled_mask(labels)
    if bool(labelled.all()):
        return F.mse_loss(predictions, labels.float())
    target = labels.float().where(labelled, teacher_logits().squeeze(-1).to(predictions.dtype))
    return F.mse_loss(predictions, target)


# --------------------------------------------------------------------------------------------------------------------
# Unlabelled text


def read_unlabeled(path: str | Path, text_columns: list[str]) -> list[tuple[str, str | None]]:
    """The texts of an unlabelled file: ``.txt`` one per line (blank lines skipped), or the ``text_columns`` of a
    ``.csv``/``.tsv``/``.jsonl`` (default ``text``, else ``sentence``; two columns make pairs).

    Raises:
        DataError: A missing, unreadable or empty file, or a column it does not have.
    """
    from mudkd.core.data import check_utf8

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: unlabelled file not found", hint="check augment.unlabeled_file (--unlabeled-file)")
    check_utf8(path)
    suffix = path.suffix.lower()
    if suffix == ".txt":
        with path.open(encoding="utf-8") as handle:
            texts: list[tuple[str, str | None]] = [(line.strip(), None) for line in handle if line.strip()]
    elif suffix in {".csv", ".tsv", ".jsonl", ".json"}:
        rows = _rows(path, suffix)
        if not rows:
            raise DataError(f"{path}: the unlabelled file holds no text", hint="give a file with one text per row")
        columns = list(text_columns) or _default_column(rows, path)
        missing = [column for column in columns if rows and column not in rows[0]]
        if missing:
            raise DataError(
                f"{path}: column(s) {', '.join(map(repr, missing))} not found (columns: {', '.join(rows[0])})",
                hint="name the text column(s) with --text-columns (task.text_columns)",
            )
        texts = [
            (str(row[columns[0]]), str(row[columns[1]]) if len(columns) > 1 else None)
            for row in rows
            if str(row[columns[0]]).strip()
        ]
    else:
        raise DataError(f"{path}: unsupported unlabelled file type '{suffix}'", hint="use .txt, .csv, .tsv or .jsonl")
    if not texts:
        raise DataError(f"{path}: the unlabelled file holds no text", hint="give a file with one text per line")
    return texts


def _rows(path: Path, suffix: str) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8", newline="") as handle:
        if suffix in {".csv", ".tsv"}:
            options: dict[str, Any] = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if suffix == ".tsv" else {}
            return list(csv.DictReader(handle, **options))
        rows = []
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise DataError(f"{path}: line {number} is not JSON", hint="one JSON object per line") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}: line {number} is not a JSON object", hint="one JSON object per line")
            rows.append(row)
        return rows


def _default_column(rows: list[dict[str, Any]], path: Path) -> list[str]:
    names = list(rows[0]) if rows else []
    for name in ("text", "sentence"):
        if name in names:
            return [name]
    if len(names) == 1:
        return names
    raise DataError(
        f"{path}: which column holds the text? (columns: {', '.join(names) or 'none'})",
        hint="name it with --text-columns (task.text_columns)",
    )
