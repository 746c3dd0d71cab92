"""Where a problem sits in a custom CSV/TSV/JSON(L) data file: the line of a record, the first syntax error.

The loader (``datasets``, through pandas) reads a table fast but says little when it fails (``Error tokenizing
data. C error: EOF inside string``) or when a cell is empty. These helpers re-read the file with Python's ``csv``
module, only on that failure path, to name the file and the line a user must fix.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from mudkd.errors import DataError


def _reader(handle: object, suffix: str, *, strict: bool = False) -> object:
    if suffix == ".tsv":  # the loader reads TSV with quoting off
        return csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE, strict=strict)  # type: ignore[arg-type]
    return csv.reader(handle, strict=strict)  # type: ignore[arg-type]


def record_lines(path: Path) -> Iterator[int]:
    """The line (1-based) on which each data record of ``path`` starts, in the loader's record order.

    CSV/TSV: the header is skipped, as are blank lines (pandas skips them too); a quoted cell may span lines.
    JSON Lines: each non-blank line is a record. A ``.json`` array has no useful lines: nothing is yielded.
    """
    suffix = path.suffix.lower()
    with path.open(encoding="utf-8-sig", newline="") as handle:
        if suffix == ".jsonl":
            for number, line in enumerate(handle, 1):
                if line.strip():
                    yield number
            return
        if suffix not in (".csv", ".tsv"):
            return
        reader = _reader(handle, suffix)
        start, header = 1, True
        for row in reader:  # type: ignore[attr-defined]
            if any(cell.strip() for cell in row):
                if not header:
                    yield start
                header = False
            start = reader.line_num + 1  # type: ignore[attr-defined]


def describe_record(path: Path, index: int) -> str:
    """``line N`` of the record at ``index`` (0-based, header excluded), or ``record N`` when no line is known."""
    for position, line in enumerate(record_lines(path)):
        if position == index:
            return f"line {line}"
    return f"record {index + 1}"


def check_labels_present(path: Path, labels: Sequence[object], column: str) -> None:
    """Refuse a file in which a record's label cell is empty (or JSON ``null``), naming the first such line.

    An empty cell would otherwise become a class of its own (the empty string), silently.

    Raises:
        DataError: Some record has no label.
    """
    empty = [index for index, value in enumerate(labels) if value is None or not str(value).strip()]
    if not empty:
        return
    more = f" (and {len(empty) - 1} more row{'s' if len(empty) > 2 else ''})" if len(empty) > 1 else ""
    raise DataError(
        f"{path}: {describe_record(path, empty[0])}: the label cell (column '{column}') is empty{more}",
        hint="give every row a label (or remove the row); an empty label is not a class",
    )


def table_syntax_error(path: Path, error: BaseException) -> DataError:
    """A :class:`DataError` for a data file the loader could not parse, naming the line where it breaks.

    Python's ``csv`` reader (strict) finds the first malformed record; a quoted cell still open at the end of the
    file is reported at the line its quote opened. When it finds nothing, the loader's own reason is given.
    """
    suffix = path.suffix.lower()
    where = _first_bad_line(path, suffix) if suffix in (".csv", ".tsv") else None
    if where is None:
        return DataError(
            f"{path}: cannot be read as {suffix.lstrip('.').upper() or 'data'} ({_root_reason(error)})",
            hint="check the file's format: one header row, the same number of cells in every row",
        )
    return malformed_line_error(str(path), *where)


def malformed_line_error(source: str, line: int, reason: str) -> DataError:
    """The one-line error for a malformed record of ``source`` (a file name, or ``stdin``) at ``line``."""
    quote = "quote" in reason
    return DataError(
        f"{source}: line {line}: {reason}",
        hint='close the quote, or double a quote inside a quoted cell ("")' if quote else "fix that line of the input",
    )


def _first_bad_line(path: Path, suffix: str) -> tuple[int, str] | None:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        if suffix == ".tsv":  # the loader reads TSV with quoting off
            return first_bad_line(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        return first_bad_line(handle)


def first_bad_line(
    lines: Iterable[str], *, delimiter: str = ",", quoting: int = csv.QUOTE_MINIMAL
) -> tuple[int, str] | None:
    """The first malformed record of a CSV text read strictly: ``(line, reason)``, or None when it is well formed.

    A quoted cell still open at the end of the text is reported at the line its quote opened (Python's reader only
    notices at the end); other problems at the line where the reader stopped.
    """
    reader = csv.reader(lines, delimiter=delimiter, quoting=quoting, strict=True)
    start = 1
    while True:
        try:
            next(reader)
        except StopIteration:
            return None
        except csv.Error as error:
            if "unexpected end of data" in str(error):
                return start, 'a quoted cell opened here is never closed (unterminated ")'
            return reader.line_num, f"malformed CSV ({error})"
        start = reader.line_num + 1


def _root_reason(error: BaseException) -> str:
    """The innermost cause's message, on one line (pandas' ``ParserError`` under ``DatasetGenerationError``)."""
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return " ".join(str(error).split()) or type(error).__name__
