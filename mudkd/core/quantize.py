"""Int8 students: dynamic quantization with ONNX Runtime or PyTorch, checked against fp32 on dev examples first.

Dynamic quantization stores the weights of every matrix multiplication as int8 (one scale per tensor) and quantizes
the activations on the fly, batch by batch; embeddings, LayerNorm and softmax stay fp32. It needs no calibration
data, which is why it is the one scheme mudkd offers (``--quantize dynamic``).

Two backends:

* **ONNX** (:func:`quantize_onnx`): the fp32 export first goes through ONNX Runtime's BERT graph optimiser
  (``onnxruntime.transformers.optimizer``), then ``onnxruntime.quantization.quantize_dynamic``. On mudkd's pruned
  student the optimiser fuses GELU (``BiasGelu``) and the residual LayerNorms (``SkipLayerNormalization``), but not
  ``Attention`` (each layer keeps its own number of heads, and the exported attention is PyTorch's SDPA pattern)
  nor ``EmbedLayerNormalization`` (the word embedding is factorised into a table and a projection): the result
  says which operators were fused (``fused``).
* **PyTorch** (:func:`quantize_torch`): ``torch.ao.quantization.quantize_dynamic`` on the ``nn.Linear`` layers.
  A quantized module cannot be written by ``save_pretrained``: :func:`save_torch_int8` writes its state dict
  (:data:`TORCH_INT8_WEIGHTS`, read back with ``torch.load(weights_only=True)``, no pickled code) beside the fp32
  config and tokenizer, and :func:`load_quantized` rebuilds the model from the config, quantizes it the same way
  and loads the int8 weights.

Before anything is written the int8 model is compared with the fp32 one on the task's dev examples
(:func:`compare`: label agreement, max logit difference, the dev metric both ways); one that loses more than
``max_metric_drop`` points of the task's selection metric is refused by :func:`check_drop`.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mudkd.core.batching import padded_batches
from mudkd.core.data import load_eval_data
from mudkd.core.metrics import compute_metrics
from mudkd.core.models import load_tokenizer, read_config
from mudkd.errors import CheckpointError, RecipeError, RunError

# transformers (~3 s at import) is imported where a model is loaded; onnx and onnxruntime are an optional extra
# ('mudkd[onnx]'), imported inside the functions that use them.

SCHEMES = ("none", "dynamic")
BACKENDS = ("onnx", "torch")
#: Points (the metric x 100) an int8 model may lose on dev before it is refused.
DEFAULT_MAX_METRIC_DROP = 1.0
#: The int8 state dict of the PyTorch backend (beside ``config.json``), read by :func:`load_quantized`.
TORCH_INT8_WEIGHTS = "model_int8.pt"
#: Where a quantized output records its scheme, backend and the fp32-vs-int8 check.
QUANTIZATION_FILE = "quantization.json"


@dataclass
class DevSet:
    """The dev examples a quantized model is checked (or timed) on, in batches padded to their own longest example.

    Attributes:
        batches: ``input_ids``, ``token_type_ids``, ``attention_mask`` int64 tensors [batch, seq].
        labels: Gold class ids (or regression targets) [examples], in batch order.
        metric: The task's selection metric (the one ``max_metric_drop`` is about).
        metric_names: Every metric of the task.
        label_names: Class names in id order (None for regression).
        task: The task name.
    """

    batches: list[dict[str, torch.Tensor]]
    labels: np.ndarray
    metric: str
    metric_names: tuple[str, ...]
    label_names: list[str] | None
    task: str

    @property
    def examples(self) -> int:
        return int(self.labels.shape[0])


def load_dev_set(task: Any, model_path: str, *, batch_size: int = 32, examples: int | None = None) -> DevSet:
    """Read and tokenise ``task``'s dev split with ``model_path``'s tokenizer, labels in the model's order.

    Args:
        task: A recipe's ``TaskConfig`` (its ``max_eval_samples`` caps the examples).
        model_path: The model directory (its tokenizer and ``id2label``).
        batch_size: Examples per batch.
        examples: At most this many examples (the first ones, in data order); None for all.

    Raises:
        RecipeError: The task has no dev examples.
        DataError: The data cannot be read or its labels are not the model's.
    """
    from transformers import AutoConfig

    from mudkd.core.modeling_pruned_bert import register

    tokenizer = load_tokenizer(model_path)
    read_config(model_path, "student")  # a missing or broken config is refused with the model's path
    register()
    config = AutoConfig.from_pretrained(model_path)
    names = [str(config.id2label[index]) for index in range(config.num_labels)] if config.id2label else None
    data = load_eval_data(task, tokenizer, names)  # gold labels in the model's order when they are its names
    split = data.dev.get("dev")
    if split is None or len(split) == 0:
        raise RecipeError(
            f"task {task.name} has no dev examples to check the int8 model on",
            hint="give a task with a dev split (task.validation_file for custom data)",
        )
    count = len(split) if examples is None else min(examples, len(split))
    rows = [split[index] for index in range(count)]
    batches, _ = padded_batches(rows, batch_size, tokenizer.pad_token_id)
    labels = np.asarray([row["labels"] for row in rows])
    return DevSet(batches, labels, data.selection, tuple(data.metrics), data.labels, task.name)


def dev_logits(forward: Callable[[dict[str, torch.Tensor]], Any], dev: DevSet) -> np.ndarray:
    """Logits [examples, classes] of a forward function (batch -> logits tensor or array) over the dev batches."""
    outputs = []
    with torch.inference_mode():
        for batch in dev.batches:
            logits = forward(batch)
            outputs.append(logits.float().numpy() if isinstance(logits, torch.Tensor) else np.asarray(logits))
    return np.concatenate(outputs)


def torch_forward(model: nn.Module) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
    """A PyTorch classifier as a forward function for :func:`dev_logits`."""
    model.eval()
    return lambda batch: model(**batch).logits


def onnx_forward(path: str | Path, *, threads: int | None = None) -> Callable[[dict[str, torch.Tensor]], np.ndarray]:
    """An ONNX classifier (mudkd's export) as a forward function, on ONNX Runtime's CPU provider."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: the core never prints
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [node.name for node in session.get_inputs()]

    def forward(batch: dict[str, torch.Tensor]) -> np.ndarray:
        return session.run(["logits"], {name: batch[name].numpy() for name in names})[0]

    return forward


def compare(fp32: np.ndarray, int8: np.ndarray, dev: DevSet, *, max_metric_drop: float) -> dict[str, Any]:
    """How the int8 model's dev logits differ from the fp32 model's.

    Returns:
        ``examples``, ``agreement`` (fraction of examples with the same predicted class; None for regression),
        ``max_logit_diff`` (max |fp32 - int8|), ``metric`` (the task's selection metric), ``fp32`` and ``int8``
        (its value for each), ``metrics_fp32``/``metrics_int8`` (every metric), ``drop_points`` (100 x (fp32 -
        int8); positive is a loss), ``max_metric_drop`` and ``passed``.
    """
    both = {
        name: compute_metrics(dev.metric_names, logits, dev.labels, dev.label_names)
        for name, logits in (("fp32", fp32), ("int8", int8))
    }
    agreement = None
    if dev.label_names:
        agreement = float((fp32.argmax(-1) == int8.argmax(-1)).mean())
    drop = 100.0 * (both["fp32"][dev.metric] - both["int8"][dev.metric])
    return {
        "examples": dev.examples,
        "agreement": agreement,
        "max_logit_diff": float(np.abs(fp32 - int8).max()),
        "metric": dev.metric,
        "fp32": both["fp32"][dev.metric],
        "int8": both["int8"][dev.metric],
        "metrics_fp32": both["fp32"],
        "metrics_int8": both["int8"],
        "drop_points": drop,
        "max_metric_drop": max_metric_drop,
        "passed": drop <= max_metric_drop,
    }


def describe_check(check: dict[str, Any]) -> str:
    """``accuracy fp32 0.9106, int8 0.8876 (-2.30 points) on 872 dev examples; labels agree on 97.1%, ...``."""
    agreement = f"labels agree on {100 * check['agreement']:.1f}%, " if check.get("agreement") is not None else ""
    change = 0.0 - check["drop_points"]  # 0.0 - x: never "-0.00"
    return (
        f"{check['metric']} fp32 {check['fp32']:.4f}, int8 {check['int8']:.4f} ({change:+.2f} points) "
        f"on {check['examples']} dev examples; {agreement}max logit difference {check['max_logit_diff']:.3g}"
    )


def check_drop(check: dict[str, Any]) -> None:
    """Refuse an int8 model that loses more than ``max_metric_drop`` points (exit 1, nothing written).

    Raises:
        RunError: With the numbers of :func:`compare`.
    """
    if check["passed"]:
        return
    raise RunError(
        f"the int8 model loses {check['drop_points']:.2f} points > --max-metric-drop {check['max_metric_drop']:g} "
        f"({describe_check(check)}); nothing was written",
        hint="keep the fp32 model (no --quantize), or allow a larger loss with --max-metric-drop",
    )


def check_max_metric_drop(value: float) -> None:
    """Refuse a non-finite ``--max-metric-drop`` (a negative one is allowed: it demands a gain).

    Raises:
        RecipeError: If ``value`` is nan or infinite.
    """
    if not np.isfinite(value):
        raise RecipeError(f"--max-metric-drop must be a finite number of points (got {value})", hint="e.g. 1.0")


# --------------------------------------------------------------------------------------------------------------------
# ONNX Runtime


def quantize_onnx(fp32_path: Path, int8_path: Path, config: Any, *, optimise: bool = True) -> dict[str, Any]:
    """Optimise an fp32 ONNX classifier for BERT and quantize its weights to int8 (dynamic, per tensor).

    The optimiser is told the model is BERT and lets ONNX Runtime find the number of heads and the width from the
    graph (``num_heads=0``): a pruned student has a different number of heads per layer, so a fixed value would be
    wrong for most layers; where a pattern does not match, the optimiser leaves the subgraph as it is.

    Args:
        fp32_path: The checked fp32 export.
        int8_path: Where to write the int8 model.
        config: The model config (its ``model_type`` names what was optimised).
        optimise: Run the BERT graph optimiser first (False: quantize the exported graph as it is).

    Returns:
        ``{"optimizer": "bert" | None, "fused": {operator: count}}``, only the operators fused at least once.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    optimised = int8_path.with_name(int8_path.stem + ".optimised.onnx")
    fused: dict[str, int] = {}
    source = fp32_path
    optimizer_name = None
    try:
        if optimise and str(config.model_type) in {"bert", "pruned_bert"}:
            from onnxruntime.transformers import optimizer

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = optimizer.optimize_model(str(fp32_path), model_type="bert", num_heads=0, hidden_size=0)
            fused = {name: count for name, count in model.get_fused_operator_statistics().items() if count}
            model.save_model_to_file(str(optimised))
            source, optimizer_name = optimised, "bert"
        # The fused operators are ONNX Runtime's own (com.microsoft), which onnx's shape inference does not know:
        # tensors it cannot type are float32 (every activation of this graph is), as ORT's examples do.
        from onnx import TensorProto

        with _quiet_root_logger():  # quantize_dynamic logs advice through the root logger: the core never prints
            quantize_dynamic(
                str(source),
                str(int8_path),
                weight_type=QuantType.QInt8,
                extra_options={"DefaultTensorType": TensorProto.FLOAT},
            )
    finally:
        optimised.unlink(missing_ok=True)
    return {"optimizer": optimizer_name, "fused": fused}


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


# --------------------------------------------------------------------------------------------------------------------
# PyTorch


def quantize_torch(model: nn.Module) -> nn.Module:
    """``model`` with every ``nn.Linear`` replaced by a dynamically quantized int8 one (a new module, eval mode)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's eager quantization and qint8 tensors point at torchao
        return torch.ao.quantization.quantize_dynamic(model.eval(), {nn.Linear}, dtype=torch.qint8).eval()


def save_torch_int8(model: nn.Module, directory: Path) -> int:
    """Write a :func:`quantize_torch` model's state dict to ``directory``; return its bytes.

    Only tensors (int8 weights with their scales, fp32 embeddings and LayerNorms) are stored, so
    :func:`load_quantized` reads it with ``torch.load(weights_only=True)``: no pickled code runs.
    """
    path = directory / TORCH_INT8_WEIGHTS
    torch.save(model.state_dict(), path)
    return path.stat().st_size


def int8_state_bytes(model: nn.Module) -> int:
    """Bytes :func:`save_torch_int8` would write for ``model`` (serialised in memory, nothing written)."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def load_quantized(directory: str | Path) -> nn.Module:
    """Load a PyTorch int8 student written by ``mudkd export --format torch --quantize dynamic``.

    The model is built from ``config.json`` (BERT or mudkd's pruned BERT), quantized the same way as when it was
    exported, and given the stored int8 weights. Example::

        from mudkd.core.quantize import load_quantized
        model = load_quantized("student-int8")  # an nn.Module in eval mode, CPU only
        logits = model(**tokenizer(texts, return_tensors="pt", padding=True)).logits

    Raises:
        CheckpointError: The directory holds no int8 weights or they do not fit its config.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from mudkd.core.modeling_pruned_bert import register

    register()
    folder = Path(directory)
    weights = folder / TORCH_INT8_WEIGHTS
    if not weights.is_file():
        raise CheckpointError(
            f"{folder}: has no {TORCH_INT8_WEIGHTS}",
            hint="pass a folder written by mudkd export --format torch --quantize dynamic",
        )
    config = AutoConfig.from_pretrained(str(folder))
    model = quantize_torch(AutoModelForSequenceClassification.from_config(config))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # qint8 tensors are deprecated in favour of torchao's
            model.load_state_dict(torch.load(weights, weights_only=True, map_location="cpu"))
    except (RuntimeError, KeyError) as error:
        raise CheckpointError(
            f"{weights}: does not fit {folder / 'config.json'} ({str(error).splitlines()[0][:160]})",
            hint="export the student again",
        ) from None
    return model.eval()
