"""The Trainer stages (finetune, distill hsk, distill pred): one runner, its arguments, callbacks and run files.

:func:`run_trainer_stage` is the skeleton the three stages share — stage the output, train with the transformers
Trainer (resume, DDP and mixed precision come from it), evaluate, refuse a non-finite model, save, commit — and
each stage describes only what differs in a :class:`TrainerStage`. The core never prints: progress goes to the
:class:`~mudkd.core.events.RunEvents` the CLI supplies, and every log record to ``metrics.jsonl``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import mudkd
from mudkd.core.card import write_card
from mudkd.core.data import SELECTION_SPLIT, load_raw, selection_carve, tokenize_split
from mudkd.core.events import RunEvents
from mudkd.core.health import eval_history, flat_curve, flat_curve_warning
from mudkd.core.metrics import compute_metrics
from mudkd.core.models import give_weights_default_permissions, non_finite_weight
from mudkd.core.outputs import StagingDir, is_main_process
from mudkd.errors import CheckpointError, RunError
from mudkd.recipe.load import recipe_to_toml
from mudkd.recipe.schema import Recipe, TaskConfig, TrainingConfig, TrainingStage

# torch and transformers (the Trainer costs ~7.8 s at import) are imported inside the functions that train:
# stages.evaluate imports this module, and 'mudkd predict' refuses a bad model directory before torch loads.

if TYPE_CHECKING:
    from mudkd.core.data import TaskData


def quiet_libraries(verbose: bool = False) -> None:
    """Silence transformers/datasets logging and progress bars unless ``verbose``."""
    import datasets
    import transformers

    if verbose:
        return
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()


def resolve_device(training: TrainingConfig) -> str:
    """The device string a stage runs on (``auto`` picks CUDA, then MPS, then CPU)."""
    import torch

    if training.device != "auto":
        if training.device == "cuda" and not torch.cuda.is_available():
            raise CheckpointError("device 'cuda' requested but CUDA is not available", hint="use --device cpu")
        return training.device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def tensorboard_available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None or importlib.util.find_spec("tensorboardX") is not None


def training_arguments(
    stage: TrainingStage,
    training: TrainingConfig,
    work_dir: Path,
    *,
    selection: str | None,
    evaluate: bool = True,
    **overrides: Any,
) -> Any:
    """Map a recipe stage onto ``transformers.TrainingArguments``.

    Checkpoints go to ``work_dir/checkpoints`` every ``eval_step`` updates; with ``evaluate`` the best one by
    ``selection`` is reloaded at the end (the reference's best-on-dev selection, method.md §4, Q17).
    """
    from transformers import TrainingArguments

    device = resolve_device(training)
    arguments: dict[str, Any] = {
        "output_dir": str(work_dir / "checkpoints"),
        "per_device_train_batch_size": stage.train_batch_size,
        "per_device_eval_batch_size": training.eval_batch_size,
        "gradient_accumulation_steps": training.gradient_accumulation_steps,
        "learning_rate": stage.learning_rate,
        "weight_decay": stage.weight_decay,
        "num_train_epochs": stage.num_train_epochs,
        "max_steps": stage.max_steps or -1,
        "warmup_steps": stage.warmup_proportion,
        "lr_scheduler_type": stage.lr_scheduler,
        "max_grad_norm": 1.0,
        "logging_strategy": "steps",
        "logging_steps": training.logging_steps,
        "save_strategy": "steps",
        "save_steps": stage.eval_step,
        "save_total_limit": 2,
        "seed": training.seed,
        "data_seed": training.seed,
        "disable_tqdm": True,
        "report_to": ["tensorboard"] if tensorboard_available() else [],
        "use_cpu": device == "cpu",
        "fp16": training.precision == "fp16",
        "bf16": training.precision == "bf16",
        "dataloader_num_workers": training.dataloader_num_workers,
        "remove_unused_columns": False,
        "save_only_model": False,
        # Length-grouped batches (random order of the groups, drawn from the seeded RNG) waste little on padding.
        "train_sampling_strategy": "group_by_length" if training.group_by_length else "random",
        "length_column_name": "length",
    }
    if evaluate:
        arguments |= {
            "eval_strategy": "steps",
            "eval_steps": stage.eval_step,
            "load_best_model_at_end": True,
            "metric_for_best_model": selection,
            "greater_is_better": True,
        }
    arguments |= overrides
    return TrainingArguments(**arguments)


class JsonlWriter:
    """Appends one JSON object per line to ``metrics.jsonl``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, record: dict[str, Any]) -> None:
        if not is_main_process():  # every DDP rank logs the same records; rank 0 writes them once
            return
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")


def attach_events(trainer: Any, events: RunEvents, stage: str, log: JsonlWriter, eval_split: str = "dev") -> None:
    """Replace the Trainer's own printing/tqdm callbacks with mudkd's event bridge (the core never prints).

    ``eval_split`` names the split the evaluations during training score (:func:`selection_set`)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(_event_bridge(events, stage, log, eval_split))
    # The Trainer's nan/inf filter replaces a non-finite step loss by the running mean, which would hide a diverged
    # run from the logs; with it off, the first non-finite loss reaches the next log and the guard stops the run.
    trainer.args.logging_nan_inf_filter = False
    trainer.add_callback(_finite_loss_guard(stage))


_NON_FINITE_HINT = "lower the learning rate, or check the data (labels, regression targets) for broken values"


def _loss_terms(logs: dict[str, Any]) -> dict[str, float]:
    """The loss terms of one log record: ``loss`` and every ``*_loss`` (``hsk_loss``, ``eval_loss``, ...)."""
    return {
        key: value
        for key, value in logs.items()
        if (key == "loss" or key.endswith("_loss")) and isinstance(value, int | float) and not isinstance(value, bool)
    }


def _non_finite_loss(logs: dict[str, Any]) -> tuple[str, float] | None:
    for key, value in _loss_terms(logs).items():
        if not math.isfinite(value):
            return key, value
    return None


def _raise_non_finite_loss(stage: str, key: str, value: float, step: int) -> None:
    if key.startswith("eval_"):
        what = "dev loss" if key == "eval_loss" else f"dev loss ({key.removeprefix('eval_')})"
    else:
        what = "training loss" if key in ("loss", "train_loss") else f"training loss ({key})"
    raise RunError(f"{stage}: {what} became {value} at step {step}; nothing was committed", hint=_NON_FINITE_HINT)


def _finite_loss_guard(stage: str) -> Any:
    """A ``TrainerCallback`` that stops a run whose logged loss becomes nan or inf by raising :class:`RunError`.

    The Trainer logs only every ``logging_steps`` updates, so a run shorter than that is checked at its end too:
    every record of ``state.log_history`` (including the final ``train_loss``).
    """
    from transformers import TrainerCallback

    class FiniteLossGuard(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
            found = _non_finite_loss(dict(logs or {}))
            if found:
                _raise_non_finite_loss(stage, *found, state.global_step)

        def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001
            for record in state.log_history:
                found = _non_finite_loss(record)
                if found:
                    _raise_non_finite_loss(stage, *found, int(record.get("step", state.global_step)))

    return FiniteLossGuard()


def check_finite_model(model: Any, stage: str) -> None:
    """Refuse to save a model with a nan or inf parameter (or floating-point buffer).

    Call it right before a stage saves its model: a diverged run then fails with exit 1 and commits nothing.

    Args:
        model: The ``torch.nn.Module`` about to be saved.
        stage: The stage name for the message (``finetune``, ``distill hsk``, ...).

    Raises:
        RunError: If any floating-point parameter or buffer holds a non-finite value.
    """
    found = non_finite_weight(model)
    if found is not None:
        name, kind = found
        raise RunError(
            f"{stage}: the model's weights became {kind} ({name}); nothing was committed", hint=_NON_FINITE_HINT
        )


def _event_bridge(events: RunEvents, stage: str, log: JsonlWriter, eval_split: str = "dev") -> Any:
    """A ``TrainerCallback`` that forwards Trainer logs to ``events`` and ``metrics.jsonl``: evaluations while
    training score ``eval_split``; those after it (logged once ``train_runtime`` is) score dev."""
    from transformers import TrainerCallback

    class EventBridge(TrainerCallback):
        trained = False

        def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001
            self.started = time.monotonic()
            events.on_start(stage, state.max_steps)

        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
            logs = dict(logs or {})
            record = {"step": state.global_step, "epoch": state.epoch, **logs}
            log.write(record)
            evaluation = {k.removeprefix("eval_"): v for k, v in logs.items() if k.startswith("eval_")}
            if "train_runtime" in logs:
                self.trained = True
                return
            if evaluation:
                events.on_eval(state.global_step, evaluation, "dev" if self.trained else eval_split)
            else:
                events.on_step(state.global_step, {**logs, "epoch": state.epoch or 0.0})

        def on_save(self, args, state, control, **kwargs):  # noqa: ANN001
            events.on_save(state.global_step, args.output_dir)

        def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001
            events.on_end(stage)

    return EventBridge()


def discard_checkpoints(work_dir: Path) -> None:
    """Delete Trainer checkpoints once the final model is saved, keeping the TensorBoard logs (``runs/``)."""
    checkpoints = work_dir / "checkpoints"
    if (checkpoints / "runs").is_dir():
        os.replace(checkpoints / "runs", work_dir / "runs")
    shutil.rmtree(checkpoints, ignore_errors=True)


def latest_checkpoint(work_dir: Path) -> str | None:
    """The newest complete ``checkpoint-N`` directory under ``work_dir/checkpoints``, if any.

    The Trainer writes ``trainer_state.json`` last (and not atomically), so a checkpoint without a readable one was
    cut short by a kill mid-save and is skipped.
    """
    root = work_dir / "checkpoints"
    if not root.is_dir():
        return None
    candidates = [p for p in root.glob("checkpoint-*") if p.name.split("-")[-1].isdigit() and _complete(p)]
    if not candidates:
        return None
    return str(max(candidates, key=lambda p: int(p.name.split("-")[-1])))


def _complete(checkpoint: Path) -> bool:
    try:
        json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def write_run_files(directory: Path, recipe: Recipe, *, metrics: dict[str, Any] | None, device: str) -> None:
    """Write ``recipe.resolved.toml``, ``run_info.json`` and (when given) ``metrics.json``; called right after a
    stage saved its model, it also gives the weight files the permissions of the other files."""
    import torch
    import transformers

    give_weights_default_permissions(directory)

    (directory / "recipe.resolved.toml").write_text(recipe_to_toml(recipe), encoding="utf-8")
    info = {
        "mudkd": mudkd.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "device": device,
        "seed": recipe.training.seed,
        "git_sha": _git_sha(),
        "command": command_line(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (directory / "run_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    if metrics is not None:
        (directory / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")


def command_line() -> list[str] | None:
    """The ``mudkd ...`` command line of this process (None when mudkd was not started as a command)."""
    program = Path(sys.argv[0]).name if sys.argv else ""
    if program == "mudkd" or (program == "__main__.py" and Path(sys.argv[0]).parent.name == "mudkd"):
        return ["mudkd", *sys.argv[1:]]
    return None


def _git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


SAFETENSORS_WEIGHTS = "model.safetensors"


@dataclass
class TrainerStage:
    """What one Trainer stage trains, and how it saves; everything else is :func:`run_trainer_stage`'s.

    Attributes:
        command: The stage as users name it (``finetune``, ``distill hsk``, ``distill pred``).
        config: Its recipe table (``recipe.finetune``, ``recipe.hsk``, ``recipe.pred``).
        output_dir: The directory the stage commits.
        model: The module the Trainer optimises.
        train_dataset: Tokenised training examples.
        save: Writes the final model files into the staging directory.
        dev: Dev splits evaluated during and after training (best-on-dev reload by ``selection``); None: no
            evaluation, the last model is kept.
        selection: The dev metric that picks the best checkpoint.
        metric_names: The task's metrics (for ``compute_metrics``).
        labels: The task's class names in id order (for ``f1[LABEL]``), None for regression.
        trainer_class: A Trainer subclass (distillation); default ``transformers.Trainer``.
        trainer_options: Extra keyword arguments for it.
        files: ``{name: text}`` written into the output before training (e.g. ``knowledge_budget.json``).
        run_metrics: Without ``dev``: the ``metrics.json`` of the run, from the trained Trainer.
        data_collator: Pads each batch (:class:`mudkd.core.batching.PaddingCollator`); None: the Trainer's default.
    """

    command: str
    config: TrainingStage
    output_dir: Path
    model: Any
    train_dataset: Any
    save: Callable[[Path], None]
    dev: dict[str, Any] | None = None
    selection: str | None = None
    metric_names: tuple[str, ...] = ()
    labels: list[str] | None = None
    trainer_class: Any = None
    trainer_options: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    run_metrics: Callable[[Any], dict[str, Any]] | None = None
    data_collator: Any = None
    model_card: bool = False  # write README.md (a final model: finetune, distill pred)


@dataclass
class TrainerOutcome:
    """What :func:`run_trainer_stage` returns: where the output went, the trained Trainer and the dev metrics.

    ``flat_curve`` is set when the dev metric never moved from its first evaluation
    (:func:`mudkd.core.health.flat_curve`); ``warnings`` then holds the line that says so.
    """

    output_dir: Path
    trainer: Any
    metrics: dict[str, float]
    train_seconds: float | None
    flat_curve: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    selection: dict[str, Any] = field(default_factory=dict)

    def curve_details(self) -> dict[str, Any]:
        """The ``flat_curve`` and ``warnings`` entries of the stage result's details, and how the checkpoint
        was selected (:func:`selection_details`)."""
        return {"flat_curve": self.flat_curve, "warnings": list(self.warnings), **self.selection}


def run_trainer_stage(
    recipe: Recipe, stage: TrainerStage, *, events: RunEvents, resume: bool, device: str
) -> TrainerOutcome:
    """Train ``stage`` with the transformers Trainer and commit its output (rank 0 only under DDP).

    In ``<output>.partial`` under the output's lock: write ``stage.files``, train (resuming from the newest complete
    checkpoint with ``resume``), evaluate every dev split, refuse a non-finite model, save it with ``stage.save``,
    drop the checkpoints, write the run files, and commit. The other DDP ranks train and evaluate alongside and
    return without writing.

    Raises:
        RunError: The loss or the weights became non-finite (nothing is committed).
    """
    from transformers import Trainer

    from mudkd.core.batching import with_lengths

    evaluate = stage.dev is not None
    grouped = recipe.training.group_by_length
    train_dataset = with_lengths(stage.train_dataset) if grouped else stage.train_dataset
    dev = {name: eval_order(split, recipe.training.padding) for name, split in stage.dev.items()} if stage.dev else None
    with StagingDir(stage.output_dir, command=stage.command, resume=resume, recipe=recipe) as staging:
        if staging.main:
            for name, text in stage.files.items():
                (staging.path / name).write_text(text, encoding="utf-8")
        log = JsonlWriter(staging.path / "metrics.jsonl")
        arguments = training_arguments(
            stage.config, recipe.training, staging.path, selection=stage.selection, evaluate=evaluate
        )
        trainer = _with_seeded_order(stage.trainer_class or Trainer)(
            model=stage.model,
            args=arguments,
            train_dataset=train_dataset,
            eval_dataset=selection_set(dev)[1] if dev is not None else None,
            compute_metrics=compute_metrics_fn(stage.metric_names, stage.labels) if evaluate else None,
            data_collator=stage.data_collator,
            **stage.trainer_options,
        )
        split = selection_set(dev)[0] if dev is not None else "dev"  # what the evaluations while training score
        attach_events(trainer, events, stage.command, log, split)
        checkpoint = latest_checkpoint(staging.path) if resume else None
        if checkpoint:
            events.on_message(f"resuming from {checkpoint}")
        train_output = trainer.train(resume_from_checkpoint=checkpoint)
        curve = _flat_curve(trainer, stage.selection) if evaluate else None  # before the final evaluation logs
        warnings = [flat_curve_warning(stage.command, curve, split)] if curve else []
        selection = selection_details(trainer, dev)  # before the final evaluations log theirs
        metrics = evaluate_all(trainer, dev) if dev is not None else {}
        seconds = train_output.metrics.get("train_runtime")
        if not staging.main:
            return TrainerOutcome(stage.output_dir, trainer, metrics, seconds, curve, warnings, selection)
        check_finite_model(stage.model, stage.command)
        if evaluate:
            log.write({"step": trainer.state.global_step, "final": True, **metrics})
        stage.save(staging.path)
        discard_checkpoints(staging.path)
        file_metrics = metrics if evaluate or stage.run_metrics is None else stage.run_metrics(trainer)
        write_run_files(staging.path, recipe, metrics=file_metrics, device=device)
        if stage.model_card:  # a file of the output, so written before the commit, from the records just written
            write_card(staging.path, recipe, command=stage.command)
        output = staging.commit()
    return TrainerOutcome(output, trainer, metrics, seconds, curve, warnings, selection)


def _with_seeded_order(base: type) -> type:
    """``base`` (a Trainer class) whose length-grouped batches are drawn per epoch from the data seed.

    Resuming must continue exactly where the killed run was: the Trainer restores the model, optimizer, scheduler
    and global RNG states, but its length-grouped sampler draws an epoch's order from the global RNG before that
    state is restored (:func:`mudkd.core.batching.epoch_seeded_length_sampler`). Plain random batches are already
    drawn from ``data_seed + epoch`` by accelerate's seedable sampler.
    """
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from mudkd.core.batching import epoch_seeded_length_sampler

    class SeededOrder(base):  # type: ignore[misc, valid-type]
        def _get_train_sampler(self, train_dataset: Any = None) -> Any:
            sampler = super()._get_train_sampler(train_dataset)
            if not isinstance(sampler, LengthGroupedSampler):
                return sampler
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            return epoch_seeded_length_sampler(sampler.lengths, sampler.batch_size, seed)

    SeededOrder.__name__ = SeededOrder.__qualname__ = base.__name__
    return SeededOrder


def _flat_curve(trainer: Any, selection: str | None) -> dict[str, Any] | None:
    """The flat-curve record of a trained Trainer's dev evaluations of ``selection`` (None if the metric moved)."""
    if not selection:
        return None
    return flat_curve(eval_history(trainer.state.log_history, selection), selection)


def compute_metrics_fn(names: tuple[str, ...], labels: list[str] | None = None) -> Any:
    """A Trainer ``compute_metrics`` returning the task's metrics by their plain names (``f1[spam]``, ...)."""

    def compute(prediction: Any) -> dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        return compute_metrics(names, logits, prediction.label_ids, labels)

    return compute


def eval_order(split: Any, padding: str) -> Any:
    """A dev split in the order it is evaluated: longest first when batches are padded to their longest example.

    Metrics, and the loss (a mean over examples), do not depend on the order of the examples, while batches of
    similar lengths carry almost no padding (issue 12); with static padding the order is kept.
    """
    from mudkd.core.batching import example_lengths

    if padding != "longest" or split is None:
        return split
    lengths = example_lengths(split)
    return split.select(sorted(range(len(lengths)), key=lambda index: -lengths[index]))  # a stable sort


def evaluate_all(trainer: Any, dev: dict[str, Any]) -> dict[str, float]:
    """Evaluate on every dev split; the main split's metrics keep plain names, others get a split prefix.

    The split that selected the checkpoint (:func:`selection_set`) reuses the metrics logged when the best
    checkpoint was evaluated, when there is one: the Trainer has just reloaded exactly those weights
    (``load_best_model_at_end``), so a new pass would repeat the numbers. With a selection split, that is
    ``selection_*`` and dev is scored here, once.
    """
    results: dict[str, float] = {}
    selected = selection_set(dev)[0]
    # read before this function evaluates anything: when the best checkpoint is the last step, an evaluation of
    # another split logged here would carry the same step and be taken for the selection's
    best = _best_evaluation(trainer)
    for name, dataset in dev.items():
        metrics = (name == selected and best) or trainer.evaluate(dataset, metric_key_prefix="eval")
        for key, value in metrics.items():
            plain = key.removeprefix("eval_")
            if plain in {"runtime", "samples_per_second", "steps_per_second", "epoch"}:
                continue
            results[plain if name == "dev" else f"{name}_{plain}"] = float(value)
    return results


def _best_evaluation(trainer: Any) -> dict[str, float] | None:
    """The ``eval_*`` metrics logged at the best checkpoint's step, or None (no best checkpoint, nothing logged)."""
    step = trainer.state.best_global_step
    if not trainer.args.load_best_model_at_end or step is None:
        return None
    for record in reversed(trainer.state.log_history):
        if record.get("step") == step and "eval_loss" in record:
            return {key: value for key, value in record.items() if key.startswith("eval_")}
    return None


# ---------------------------------------------------------------------------------------------------------------
# Checkpoint selection without peeking (training.selection_split, issue 20)


def with_selection_split(data: TaskData, config: TaskConfig, tokenizer: Any, fraction: float | None) -> TaskData:
    """``data`` with a selection split (:func:`mudkd.core.data.selection_carve`) as ``dev["selection"]`` and train
    cut to the examples before it; unchanged when ``fraction`` is 0 or None.

    The Trainer then selects its checkpoint on ``dev["selection"]`` and scores ``dev["dev"]`` once, after training
    (:func:`selection_set`).
    """
    if not fraction:
        return data
    train = load_raw(config)[0]["train"]
    total = len(train["text_a"])
    size, keep = selection_carve(total, len(data.train), fraction)
    carved = {name: values[total - size :] for name, values in train.items()}
    selection = tokenize_split(carved, tokenizer, config.max_seq_length)
    kept = data.train if keep == len(data.train) else data.train.select(range(keep))
    return replace(data, train=kept, dev={**data.dev, SELECTION_SPLIT: selection})


def selection_set(dev: dict[str, Any]) -> tuple[str, Any]:
    """``(name, split)`` the best checkpoint is selected on: the selection split carved from train
    (:func:`mudkd.core.data.with_selection_split`) when there is one, else the dev set itself."""
    name = SELECTION_SPLIT if SELECTION_SPLIT in dev else "dev"
    return name, dev[name]


def selection_details(trainer: Any, dev: dict[str, Any] | None) -> dict[str, Any]:
    """How a trained stage picked its checkpoint (read right after training, before the final evaluations).

    ``selected_step`` is the update of the reloaded checkpoint (None: no evaluation, the last model was kept),
    ``selection_evaluations`` how many evaluations it was chosen from, and ``selected_on`` says in words whether
    selection and report used the same set.
    """
    if dev is None:
        return {"selected_step": None, "selection_evaluations": 0, "selected_on": "no selection (the last model)"}
    name, split = selection_set(dev)
    if name == "dev":
        where = "dev, the set the metrics report (optimistic: set training.selection_split to avoid it)"
    else:
        where = f"a selection split of {len(split)} training examples; dev scored once, at the end"
    return {
        "selected_step": trainer.state.best_global_step,
        "selection_evaluations": sum(1 for record in trainer.state.log_history if "eval_loss" in record),
        "selected_on": where,
    }
