"""Pieces every training stage shares: events, atomic output directories, Trainer arguments and callbacks.

The core never prints. Long stages report through a :class:`RunEvents` object that the CLI supplies (a rich
progress display or plain lines); they also append every log record to ``metrics.jsonl`` themselves.
"""

from __future__ import annotations

import json
import os
import platform
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mudkd.core.outputs import is_main_process
from mudkd.errors import CheckpointError, RecipeError, RunError
from mudkd.recipe.load import recipe_to_toml
from mudkd.recipe.schema import Recipe, TrainingConfig, TrainingStage


class RunEvents:
    """Receives progress from long-running stages. The default does nothing; the CLI overrides it."""

    def on_start(self, stage: str, total_steps: int) -> None:
        """A stage starts; ``total_steps`` is its number of updates (or batches)."""

    def on_step(self, step: int, logs: dict[str, float]) -> None:
        """Training logged at update ``step`` (loss terms, learning rate, epoch)."""

    def on_eval(self, step: int, metrics: dict[str, float]) -> None:
        """Dev metrics at update ``step`` (plain GLUE names)."""

    def on_save(self, step: int, path: str) -> None:
        """A checkpoint was written."""

    def on_end(self, stage: str) -> None:
        """The stage finished."""

    def on_message(self, text: str) -> None:
        """An informational line (device, resume point, ...)."""


@dataclass
class StageResult:
    """What a stage returns to the CLI.

    Attributes:
        output_dir: The directory the stage wrote.
        metrics: Final dev metrics (plain names), empty for stages without evaluation.
        details: Stage-specific extras (parameter counts, budget, timings) that the CLI renders.
    """

    output_dir: str
    metrics: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"output_dir": self.output_dir, "metrics": self.metrics, **self.details}


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
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def tensorboard_available() -> bool:
    import importlib.util

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


def attach_events(trainer: Any, events: RunEvents, stage: str, log: JsonlWriter) -> None:
    """Replace the Trainer's own printing/tqdm callbacks with mudkd's event bridge (the core never prints)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(_event_bridge(events, stage, log))
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
    import math

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
    import torch

    with torch.no_grad():
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                kind = "nan" if bool(torch.isnan(tensor).any()) else "inf"
                raise RunError(
                    f"{stage}: the model's weights became {kind} ({name}); nothing was committed",
                    hint=_NON_FINITE_HINT,
                )


def _event_bridge(events: RunEvents, stage: str, log: JsonlWriter) -> Any:
    """A ``TrainerCallback`` that forwards Trainer logs to ``events`` and ``metrics.jsonl``."""
    from transformers import TrainerCallback

    class EventBridge(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001
            self.started = time.monotonic()
            events.on_start(stage, state.max_steps)

        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
            logs = dict(logs or {})
            record = {"step": state.global_step, "epoch": state.epoch, **logs}
            log.write(record)
            evaluation = {k.removeprefix("eval_"): v for k, v in logs.items() if k.startswith("eval_")}
            if "train_runtime" in logs:
                return
            if evaluation:
                events.on_eval(state.global_step, evaluation)
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
    """Write ``recipe.resolved.toml``, ``run_info.json`` and (when given) ``metrics.json``."""
    import torch
    import transformers

    import mudkd

    (directory / "recipe.resolved.toml").write_text(recipe_to_toml(recipe), encoding="utf-8")
    info = {
        "mudkd": mudkd.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "device": device,
        "seed": recipe.training.seed,
        "git_sha": _git_sha(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (directory / "run_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    if metrics is not None:
        (directory / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")


def _git_sha() -> str | None:
    import subprocess

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


def load_tokenizer(path: str) -> Any:
    """Load a tokenizer, turning a missing or invalid path into a one-line :class:`CheckpointError`."""
    from transformers import AutoTokenizer

    from mudkd.core.modeling_pruned_bert import register

    register()  # a pruned student's config names mudkd's model type: known locally, no remote code needed
    _check_model_path(path)
    try:
        return AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    except Exception as error:
        # tokenizers raises a bare Exception for a tokenizer.json it cannot parse; any other type is a bug
        if not isinstance(error, OSError | ValueError | KeyError) and type(error) is not Exception:
            raise
        raise CheckpointError(
            f"{path}: no tokenizer could be loaded ({str(error).splitlines()[0][:160]})",
            hint="the directory needs tokenizer files (save_pretrained writes them)",
        ) from None


def check_positions(max_seq_length: int, *models: str | None) -> None:
    """Refuse a ``task.max_seq_length`` longer than a local model's position embeddings (a shape error deep in the
    first forward pass otherwise). Hub names and missing directories are left to the loaders."""
    for path in models:
        config = Path(path) / "config.json" if path else None
        if config is None or not config.is_file():
            continue
        try:
            positions = json.loads(config.read_text(encoding="utf-8")).get("max_position_embeddings")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(positions, int) and max_seq_length > positions:
            raise RecipeError(
                f"task.max_seq_length: {max_seq_length} is longer than {path} supports ({positions} positions)",
                hint=f"pass --max-seq-length {positions} or less",
            )


def _check_model_path(path: str) -> None:
    local = Path(path)
    looks_local = local.exists() or path.startswith((".", "/", "~")) or path.count("/") > 1
    if looks_local and not (local / "config.json").is_file():
        reason = "does not exist" if not local.exists() else "is not a model directory (no config.json)"
        raise CheckpointError(f"{path}: {reason}", hint="pass a save_pretrained directory or a hub model name")


SAFETENSORS_WEIGHTS = "model.safetensors"
_PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")
_RESAVE_HINT = (
    "re-save it as safetensors in an environment you trust: "
    "AutoModelForSequenceClassification.from_pretrained(DIR).save_pretrained(DIR) writes model.safetensors"
)


def check_safetensors_weights(path: str) -> None:
    """Refuse a local model directory whose weights are not (intact) safetensors files.

    mudkd loads weights only from safetensors: a pickle (``pytorch_model.bin``) can run code when unpickled.
    Every ``model*.safetensors`` file's header is parsed, which catches a truncated or corrupted file by name
    before ``from_pretrained`` meets it. A directory without any weights is left to the loader; hub names too.

    Raises:
        CheckpointError: Only pickle weights, or a damaged safetensors file.
    """
    from safetensors import SafetensorError, safe_open

    directory = Path(path)
    if not directory.is_dir():
        return
    files = sorted(directory.glob("model*.safetensors"))
    if not files:
        pickles = sorted(p.name for p in directory.glob("pytorch_model*.bin"))
        if pickles or any((directory / name).exists() for name in _PICKLE_WEIGHTS):
            raise CheckpointError(
                f"{path}: holds only pickle weights ({', '.join(pickles) or _PICKLE_WEIGHTS[0]}); "
                "mudkd loads weights only from safetensors",
                hint=_RESAVE_HINT,
            )
        return
    for file in files:
        try:
            with safe_open(str(file), framework="pt"):
                pass
        except (SafetensorError, OSError) as error:
            raise CheckpointError(
                f"{file}: not a readable safetensors file ({str(error).splitlines()[0][:160]})",
                hint="the file is truncated or corrupted: copy or save the model again",
            ) from None


def load_classifier(path: str, *, num_labels: int | None = None, trust_remote_code: bool = False, **kwargs: Any) -> Any:
    """Load a sequence classifier (BERT or mudkd's pruned BERT) from a hub name or directory.

    Weights are read only from safetensors (``use_safetensors=True``); a local directory is checked first by
    :func:`check_safetensors_weights`, so pickle-only or damaged weights fail with a :class:`CheckpointError`
    naming the path.
    """
    from safetensors import SafetensorError
    from transformers import AutoModelForSequenceClassification

    from mudkd.core.modeling_pruned_bert import register

    register()
    _check_model_path(path)
    check_safetensors_weights(path)
    # Weights come only from safetensors files, never from a pickle (which could run code while loading).
    options: dict[str, Any] = {"trust_remote_code": trust_remote_code, **kwargs, "use_safetensors": True}
    if num_labels is not None:
        options["num_labels"] = num_labels
    try:
        model = AutoModelForSequenceClassification.from_pretrained(path, **options)
    except (OSError, ValueError, KeyError, SafetensorError) as error:
        raise CheckpointError(
            f"{path}: could not load a model ({str(error).splitlines()[0][:200]})",
            hint="pass a directory written by save_pretrained (config.json + model.safetensors)",
        ) from None
    # Its loss is a batch mean that ignores the Trainer's num_items_in_batch; saying so stops the Trainer from
    # multiplying loss and gradients by the number of DDP ranks (and skipping the gradient-accumulation division).
    model.accepts_loss_kwargs = False
    return model
