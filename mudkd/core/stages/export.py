"""Ship a student: export it to ONNX (checked against PyTorch) and report its size, FLOPs and speed-up.

:func:`export_onnx` writes ``input_ids, attention_mask, token_type_ids -> logits`` with dynamic batch and sequence
axes, using the TorchScript exporter (``dynamo=False``): the dynamo exporter needs ``onnxscript``, which is not a
dependency. The file is written atomically and only after onnxruntime reproduced PyTorch's logits on shapes other
than the traced one, so a trace that baked in a shape never reaches the output path.

:func:`report` counts parameters, weight bytes and matmul FLOPs per example, and, given a teacher, times both models
side by side in one process, on dev batches padded per batch to their own longest example when a task is given (else
on a synthetic batch, and says so). Latency is reported as the median teacher/student ratio of interleaved pairs with
its range and verdict (:mod:`mudkd.core.measure`): absolute times depend on the machine and its load, the ratio much
less.
"""

from __future__ import annotations

import json
import os
import statistics
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mudkd.core import quantize as q
from mudkd.core.batching import padded_batches
from mudkd.core.data import encode_texts, load_raw
from mudkd.core.measure import interleaved, machine_load, paired_ratios
from mudkd.core.models import check_finite_weights, load_classifier, load_tokenizer
from mudkd.core.outputs import check_no_overlap, replaced_atomically
from mudkd.core.quantize import SCHEMES, check_max_metric_drop, load_dev_set
from mudkd.errors import CheckpointError, RecipeError, RunError

# onnx and onnxruntime are an optional extra ('mudkd[onnx]'), imported where an export needs them; pruning
# (transformers, ~5 s at import) only where a pruned model is described.

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "logits"
MIN_OPSET = 14  # aten::scaled_dot_product_attention (HF BERT's default attention) needs opset 14
MAX_OPSET = 20  # the newest opset the TorchScript exporter writes
TOLERANCE = 1e-4  # max |onnxruntime - PyTorch| on the logits
CHECK_SHAPES = ((3, 17), (1, 40))  # [batch, seq] used to check the exported graph; none equals the traced shape
MADE_BY = ("made_by", "mudkd")  # metadata_props entry that marks an ONNX file mudkd exported (and may replace)
_LEGACY_MARK = ("producer", "mudkd")  # the same mark as written by mudkd before ``made_by`` existed
_WEIGHT_SUFFIXES = (".safetensors", ".bin")


class _LogitsOnly(nn.Module):
    """Positional ``(input_ids, attention_mask, token_type_ids) -> logits`` view of a classifier, for tracing."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        """[batch, seq] x 3 -> logits [batch, num_labels]."""
        output = self.model(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, return_dict=True
        )
        return output.logits


# --------------------------------------------------------------------------------------------------------------------
# ONNX export
# --------------------------------------------------------------------------------------------------------------------


def export_onnx(
    model_path: str,
    output_file: str | Path,
    *,
    opset: int = 17,
    max_seq_length: int = 128,
    check: bool = True,
    overwrite: bool = False,
    trust_remote_code: bool = False,
    quantize: str = "none",
    task: Any = None,
    max_metric_drop: float = 1.0,
    dev: Any = None,
) -> dict[str, Any]:
    """Export a sequence classifier (HF BERT or pruned BERT) to ONNX and check it with onnxruntime.

    With ``quantize="dynamic"`` the checked fp32 graph is optimised and quantized to int8
    (:func:`mudkd.core.quantize.quantize_onnx`) and compared with it on ``task``'s dev examples; an int8 model that
    loses more than ``max_metric_drop`` points is refused (:class:`RunError`, exit 1) and nothing is written.

    The graph takes ``input_ids``, ``attention_mask`` and ``token_type_ids`` (int64, [batch, seq]) and returns
    ``logits`` (float32, [batch, num_labels]); batch and sequence axes are dynamic. The model is traced on a padded
    batch of 2 x ``max_seq_length`` tokens and written to a temporary file beside ``output_file``; with ``check``,
    onnxruntime must reproduce PyTorch's logits within 1e-4 on :data:`CHECK_SHAPES` (with padding and both
    segments) before the file is moved into place.

    The output file rule, checked before anything is written: it may not be a directory or a symbolic link, nor be
    (or sit inside) ``model_path``; an existing file is replaced only with ``overwrite`` and only if it is an ONNX
    file mudkd exported (its ``metadata_props`` carry :data:`MADE_BY`, which every export writes).

    Args:
        model_path: A ``save_pretrained`` directory (or hub name) of a sequence classifier.
        output_file: The ``.onnx`` file to write.
        opset: ONNX opset, 14..20.
        max_seq_length: Sequence length of the traced example (the exported axes stay dynamic).
        check: Compare onnxruntime with PyTorch before writing.
        overwrite: Replace an existing ``output_file``.
        trust_remote_code: Allow model code shipped in ``model_path`` to run (only needed without mudkd's classes).
        quantize: ``none`` or ``dynamic`` (int8 weights, activations quantized per batch).
        task: The task whose dev split checks the int8 model (a recipe's ``TaskConfig``; needed to quantize).
        max_metric_drop: Points of the task's selection metric the int8 model may lose.
        dev: The dev examples already read (:func:`dev_set_to_quantize`), instead of reading ``task``'s.

    Returns:
        ``{"output", "bytes", "max_abs_diff", "opset"}`` plus ``check_shapes``, ``model_type`` and
        ``quantization`` (None, or the int8 check: :func:`mudkd.core.quantize.compare` under ``check``, the
        fp32 file's bytes, the fused operators); ``max_abs_diff`` is None without ``check``.

    Raises:
        RecipeError: If ``opset`` or ``max_seq_length`` is out of range.
        CheckpointError: If ``model_path`` is missing or not a classifier, or ``output_file`` breaks the rule above.
        RunError: If onnx/onnxruntime are missing, the export fails, or onnxruntime disagrees with PyTorch.
    """
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise RecipeError(
            f"--opset {opset} is not supported", hint=f"choose an opset between {MIN_OPSET} and {MAX_OPSET}"
        )
    if max_seq_length < 2:
        raise RecipeError(f"max_seq_length must be at least 2 (got {max_seq_length})")
    output = Path(output_file)
    check_output_file(output, inputs={"--student-model": model_path}, overwrite=overwrite)
    dev = dev or dev_set_to_quantize(quantize, task, model_path, max_metric_drop)
    # The model is loaded before onnx is imported, so a missing or broken --model-path is reported as bad input
    # (exit 2) even where the onnx extra is not installed.
    model = load_classifier(model_path, trust_remote_code=trust_remote_code, dtype=torch.float32).eval()
    check_finite_weights(model, model_path)  # an ONNX file of nan weights is no model to ship
    onnx, onnxruntime = _import_onnx()
    if output.exists() and not _made_by_mudkd(onnx, output):
        raise CheckpointError(
            f"{output}: was not written by mudkd (not an ONNX file mudkd exported); --overwrite replaces only those",
            hint="choose another --output",
        )
    config = model.config
    wrapper = _LogitsOnly(model).eval()
    seq_length = min(max_seq_length, int(config.max_position_embeddings))
    example = _example_inputs(config, batch=2, seq_length=seq_length, seed=0)

    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        with replaced_atomically(output) as temporary:
            _trace(wrapper, example, temporary, opset)
            _add_metadata(onnx, temporary, config, model_path)
            max_abs_diff = _check_against_torch(onnxruntime, temporary, wrapper, config) if check else None
            if max_abs_diff is not None and not max_abs_diff <= TOLERANCE:
                raise RunError(
                    f"onnxruntime and PyTorch disagree on the logits (max |diff| {max_abs_diff:.3g} > {TOLERANCE:g})",
                    hint="try another --opset, or rerun with --debug and report the model config",
                )
            quantized = _quantize_checked(onnx, temporary, config, model_path, dev, max_metric_drop) if dev else None
    except RunError:
        raise
    except Exception as error:
        first = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise RunError(
            f"ONNX export of {model_path} failed: {first}", hint="rerun with --debug for a traceback"
        ) from error
    return {
        "output": str(output),
        "bytes": output.stat().st_size,
        "max_abs_diff": max_abs_diff,
        "opset": opset,
        "check_shapes": [list(shape) for shape in CHECK_SHAPES] if check else [],
        "model_type": config.model_type,
        "quantization": quantized,
    }


def _trace(wrapper: nn.Module, example: dict[str, torch.Tensor], path: Path, opset: int) -> None:
    """Trace ``wrapper`` on ``example`` into an ONNX graph at ``path`` (batch and sequence axes dynamic)."""
    dynamic_axes = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES} | {OUTPUT_NAME: {0: "batch"}}
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter warns about its own deprecation and about Python branches in HF's mask
        # code; the onnxruntime comparison on other shapes (_check_against_torch) is what validates the trace.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            tuple(example[name] for name in INPUT_NAMES),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_axes=dynamic_axes,
            do_constant_folding=True,
        )


def dev_set_to_quantize(quantize: str, task: Any, model_path: str, max_metric_drop: float) -> Any:
    """The dev examples that check an int8 model (None without quantization); bad settings are refused first."""
    if quantize not in SCHEMES:
        raise RecipeError(f"--quantize {quantize} is not supported", hint=f"choose one of {', '.join(SCHEMES)}")
    if quantize == "none":
        return None
    check_max_metric_drop(max_metric_drop)
    if task is None:
        raise RecipeError(
            "--quantize checks the int8 model on dev examples, and no data was given",
            hint="pass a recipe, --task-name (and --data-dir) or --train-file/--validation-file",
        )
    return load_dev_set(task, model_path)


def _quantize_checked(onnx: Any, path: Path, config: Any, model_path: str, dev: Any, max_drop: float) -> dict[str, Any]:
    """Replace the checked fp32 graph at ``path`` by its int8 version, if it keeps the dev metric (else raise)."""
    int8 = path.with_name(path.name + ".int8.onnx")
    try:
        found = q.quantize_onnx(path, int8, config)
        fp32_logits = q.dev_logits(q.onnx_forward(path), dev)
        check = q.compare(fp32_logits, q.dev_logits(q.onnx_forward(int8), dev), dev, max_metric_drop=max_drop)
        q.check_drop(check)
        fp32_bytes = path.stat().st_size
        os.replace(int8, path)
        _add_metadata(onnx, path, config, model_path, validate=False)  # contrib operators: onnx's checker refuses
    finally:
        int8.unlink(missing_ok=True)
    return {"scheme": "dynamic", "backend": "onnx", "fp32_bytes": fp32_bytes, "check": check, **found}


def check_output_file(output: Path, *, inputs: dict[str, str | None], overwrite: bool) -> None:
    """Refuse an output file that mudkd must not write (read-only: runs before anything is written).

    Refused: a directory, a symbolic link, a path equal to or inside one of ``inputs`` (label to path, e.g.
    ``{"--model-path": DIR}``), and an existing file without ``overwrite``. Whether an existing file is an ONNX
    file mudkd exported needs onnx and is checked by :func:`export_onnx` right after.

    Raises:
        CheckpointError: The output breaks one of these rules.
    """
    if output.is_symlink():
        raise CheckpointError(
            f"{output}: is a symbolic link; mudkd does not write through links", hint="choose another --output"
        )
    if output.is_dir():
        raise CheckpointError(f"{output}: is a directory", hint="pass a file name such as student.onnx")
    check_no_overlap(output, inputs, what="output file")
    if output.exists() and not overwrite:
        raise CheckpointError(f"{output}: file exists", hint="pass --overwrite to replace it")


def _made_by_mudkd(onnx: Any, path: Path) -> bool:
    """Whether ``path`` is an ONNX model whose ``metadata_props`` carry mudkd's mark (:data:`MADE_BY`)."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # not an ONNX protobuf at all: certainly not an export of mudkd's
        return False
    marks = {(entry.key, entry.value) for entry in model.metadata_props}
    return MADE_BY in marks or _LEGACY_MARK in marks


def _import_onnx() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime
    except ImportError as error:
        raise RunError(
            f"ONNX export needs onnx and onnxruntime ({error.name} is not installed)",
            hint="pip install 'mudkd[onnx]'",
        ) from None
    return onnx, onnxruntime


def _example_inputs(config: Any, *, batch: int, seq_length: int, seed: int) -> dict[str, torch.Tensor]:
    """Random int64 inputs [batch, seq]: the first row padded after half its length, segment B in the second half.

    Padding keeps the mask data-dependent in the trace (HF may skip an all-ones mask), and two segments exercise
    the token-type embedding.
    """
    generator = torch.Generator().manual_seed(seed)
    vocab = int(config.vocab_size)
    input_ids = torch.randint(min(5, vocab - 1), vocab, (batch, seq_length), generator=generator)
    attention_mask = torch.ones(batch, seq_length, dtype=torch.long)
    attention_mask[0, max(1, seq_length // 2) :] = 0
    input_ids[attention_mask == 0] = int(getattr(config, "pad_token_id", None) or 0)
    token_type_ids = torch.zeros(batch, seq_length, dtype=torch.long)
    if int(getattr(config, "type_vocab_size", 1)) > 1:
        token_type_ids[:, seq_length // 2 :] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}


def _add_metadata(onnx: Any, path: Path, config: Any, model_path: str, *, validate: bool = True) -> None:
    """Validate the graph and record the label names and source model in the file's metadata."""
    graph = onnx.load(str(path))
    if validate:
        onnx.checker.check_model(graph)
    del graph.metadata_props[:]  # a re-written graph (quantized) may carry them already
    properties = {
        MADE_BY[0]: MADE_BY[1],
        "producer": "mudkd",
        "source_model": str(model_path),
        "model_type": str(config.model_type),
        "id2label": json.dumps({str(key): value for key, value in (config.id2label or {}).items()}),
    }
    for key, value in properties.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(graph, str(path))


def _check_against_torch(onnxruntime: Any, path: Path, wrapper: nn.Module, config: Any) -> float:
    """Max |onnxruntime - PyTorch| of the logits over :data:`CHECK_SHAPES` (lengths capped at the position table)."""
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: the core never prints
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    worst = 0.0
    for index, (batch, seq_length) in enumerate(CHECK_SHAPES):
        seq_length = min(seq_length, int(config.max_position_embeddings))
        inputs = _example_inputs(config, batch=batch, seq_length=seq_length, seed=index + 1)
        with torch.inference_mode():
            expected = wrapper(*(inputs[name] for name in INPUT_NAMES)).numpy()
        (actual,) = session.run([OUTPUT_NAME], {name: tensor.numpy() for name, tensor in inputs.items()})
        if actual.shape != expected.shape:
            raise RunError(f"onnxruntime returned logits of shape {actual.shape}, PyTorch {expected.shape}")
        worst = max(worst, float(abs(actual - expected).max()))
    return worst


# --------------------------------------------------------------------------------------------------------------------
# Size, FLOPs and latency report
# --------------------------------------------------------------------------------------------------------------------


def flops_per_example(config: Any, seq_length: int) -> dict[str, int]:
    """Matmul FLOPs of one classifier forward pass on ``seq_length`` tokens, from the config alone.

    A multiply-add counts as 2 FLOPs. Counted: the factorised word-embedding projection (``emb_hidden_dim`` r:
    2·L·r·H), and per layer i with ``h_i`` heads of size d (A = h_i·d) and FFN width ``F_i``: Q/K/V 3·2·L·H·A,
    attention scores 2·L²·A, weighted sum of values 2·L²·A, attention output 2·L·A·H, FFN 2·2·L·H·F_i; then the
    pooler 2·H² (the [CLS] token only) and the classifier 2·H·labels. Not counted: embedding look-ups, biases,
    LayerNorm, softmax, GELU, residuals (together a few percent at most for BERT shapes).

    Works for HF ``BertConfig`` (uniform ``num_attention_heads``, ``intermediate_size``) and ``PrunedBertConfig``
    (``num_heads_per_layer``, ``intermediate_sizes``, ``attention_head_size``, ``emb_hidden_dim``).

    Args:
        config: The model config.
        seq_length: Tokens per example, L.

    Returns:
        ``{"embeddings", "attention", "ffn", "pooler", "classifier", "total"}`` in FLOPs.

    Raises:
        CheckpointError: If the config lacks BERT's size fields.
    """
    try:
        hidden = int(config.hidden_size)
        layers = int(config.num_hidden_layers)
        uniform_heads = int(config.num_attention_heads)
        uniform_ffn = int(config.intermediate_size)
    except (AttributeError, TypeError) as error:
        raise CheckpointError(
            f"cannot count FLOPs of a {getattr(config, 'model_type', type(config).__name__)} model ({error})",
            hint="FLOPs are counted for BERT and pruned-BERT classifiers",
        ) from None
    head_size = getattr(config, "attention_head_size", None) or hidden // uniform_heads
    heads = list(getattr(config, "num_heads_per_layer", None) or [uniform_heads] * layers)
    ffn_sizes = list(getattr(config, "intermediate_sizes", None) or [uniform_ffn] * layers)
    rank = int(getattr(config, "emb_hidden_dim", -1) or -1)
    labels = int(config.num_labels)
    length = int(seq_length)

    embeddings = 2 * length * rank * hidden if rank > 0 else 0
    attention = 0
    ffn = 0
    for layer_heads, width in zip(heads, ffn_sizes, strict=True):
        all_heads = int(layer_heads) * head_size
        attention += 3 * 2 * length * hidden * all_heads  # Q, K, V projections
        attention += 2 * length * length * all_heads  # scores Q·Kᵀ, every head
        attention += 2 * length * length * all_heads  # probabilities · V
        attention += 2 * length * all_heads * hidden  # output projection
        ffn += 2 * 2 * length * hidden * int(width)  # in and out projections
    pooler = 2 * hidden * hidden
    classifier = 2 * hidden * labels
    counts = {"embeddings": embeddings, "attention": attention, "ffn": ffn, "pooler": pooler, "classifier": classifier}
    counts["total"] = sum(counts.values())
    return counts


def weight_files(model_path: str) -> list[Path]:
    """The weight files of a local ``save_pretrained`` directory: safetensors if any, else PyTorch ``.bin``.

    Only one format is counted, as a directory may carry the same weights in several.
    """
    directory = Path(model_path)
    if not directory.is_dir():
        return []
    files = sorted(path for path in directory.iterdir() if path.is_file() and path.suffix in _WEIGHT_SUFFIXES)
    safetensors = [path for path in files if path.suffix == ".safetensors"]
    return safetensors or files


def describe(model: nn.Module, model_path: str, seq_length: int) -> dict[str, Any]:
    """Parameters, on-disk and in-memory bytes, and FLOPs per example of one loaded model."""
    from mudkd.core.pruning import count_parameters

    files = weight_files(model_path)
    return {
        "model_path": str(model_path),
        "model_type": model.config.model_type,
        "num_layers": int(model.config.num_hidden_layers),
        "params": count_parameters(model),
        "size_bytes": sum(path.stat().st_size for path in files) if files else None,
        "weight_files": [path.name for path in files],
        "param_bytes": sum(parameter.numel() * parameter.element_size() for parameter in model.parameters()),
        "flops": flops_per_example(model.config, seq_length),
    }


def report(
    model_path: str,
    *,
    teacher_path: str | None = None,
    seq_length: int = 64,
    batch_size: int = 32,
    repeats: int = 10,
    warmup: int = 2,
    threads: int | None = None,
    task: Any | None = None,
    examples: int = 128,
    trust_remote_code: bool = False,
) -> dict[str, Any]:
    """Size, FLOPs and (given a teacher) the CPU speed-up of a student.

    The input: given ``task`` (a recipe's ``TaskConfig``), the first ``examples`` dev examples in data order,
    tokenised with the student's tokenizer, cut into batches of ``batch_size`` each padded to its own longest
    example (no compute on padding), and FLOPs are counted at their mean real length. Without a task, a random
    synthetic batch of ``batch_size`` x ``seq_length`` tokens, and ``input`` says so.

    With a teacher, both models run in this process in eval mode under ``torch.inference_mode``: ``warmup``
    untimed passes over the input each, then ``repeats`` timed passes each, interleaved (the order flips every
    repetition). The latency ratio is the median of the ``repeats`` per-repetition ratios teacher/student, with
    their range and verdict (:func:`mudkd.core.measure.paired_ratios`); the absolute medians are secondary fields,
    never a benchmark.

    Args:
        model_path: The student (any BERT or pruned-BERT classifier directory).
        teacher_path: The teacher to compare against, or None for the student alone.
        seq_length: Tokens per example of the synthetic input (without ``task``).
        batch_size: Examples per timed forward pass.
        repeats: Timed passes per model (at least 1; at least 3 for a verdict other than "not measurable").
        warmup: Untimed passes per model before timing.
        threads: CPU threads for the timed passes (default: torch's current setting). On a busy machine, 1 thread
            gives the most stable ratio: multi-threaded passes of a small model suffer most from other processes.
        task: The task whose dev split is timed, or None for the synthetic input.
        examples: Dev examples timed per pass (with ``task``).
        trust_remote_code: Allow model code shipped in the directories to run.

    Returns:
        The student's ``model_path``, ``model_type``, ``params`` (per component and ``total``), ``size_bytes``
        (weight files on disk; None for a hub name), ``param_bytes``, ``flops`` (per component and ``total``),
        ``seq_length`` (the tokens FLOPs are counted at), ``mean_length`` (None without data) and ``input`` (what
        was timed, in words); ``teacher`` (the same fields, or None); ``param_ratio``, ``flop_ratio``,
        ``size_ratio`` and ``latency_ratio`` (teacher/student, None without a teacher); ``latency_spread`` (the
        ratio's ``median``, ``low``, ``high``, ``n``, ``load``, ``verdict``) and ``latency`` (medians, per-pass
        times, token counts and settings), None without a teacher.

    Raises:
        RecipeError: If a size setting is out of range or the task has no dev split.
        CheckpointError: If a path is not a loadable classifier (or, with a task, has no tokenizer).
    """
    _check_report_sizes(
        {
            "seq_length": seq_length,
            "batch_size": batch_size,
            "repeats": repeats,
            "threads": 1 if threads is None else threads,
            "examples": examples,
        }
    )
    options: dict[str, Any] = {"trust_remote_code": trust_remote_code, "dtype": torch.float32}
    student = load_classifier(model_path, **options).eval()
    teacher = load_classifier(teacher_path, **options).eval() if teacher_path else None
    _check_report_positions({"student": student, "teacher": teacher}, task, seq_length)
    batches: list[dict[str, torch.Tensor]] | None = None
    mean_length: float | None = None
    if task is not None:
        batches, mean_length, described_input = _timed_dev_input(task, model_path, teacher_path, examples, batch_size)
        seq_length = max(1, round(mean_length))
    else:
        described_input = f"synthetic {seq_length} tokens"

    result: dict[str, Any] = {
        **describe(student, model_path, seq_length),
        "seq_length": seq_length,
        "mean_length": mean_length,
        "input": described_input,
    }
    result |= dict.fromkeys(_TEACHER_FIELDS)  # None without a teacher
    if teacher is None or not teacher_path:
        return result
    teacher_info = describe(teacher, teacher_path, seq_length)
    latency = measure_latency(
        {"teacher": teacher, "student": student},
        batch_size=batch_size,
        seq_length=seq_length,
        batches=batches,
        repeats=repeats,
        warmup=warmup,
        threads=threads,
    )
    return result | _teacher_ratios(teacher_info, result, latency)


#: The fields of :func:`report` that compare the student with a teacher, in the document's order.
_TEACHER_FIELDS = ("teacher", "param_ratio", "flop_ratio", "size_ratio", "latency_ratio", "latency_spread", "latency")


def _teacher_ratios(teacher: dict[str, Any], student: dict[str, Any], latency: dict[str, Any]) -> dict[str, Any]:
    """The :data:`_TEACHER_FIELDS`: the teacher's description and the teacher/student ratios."""
    sizes = (teacher["size_bytes"], student["size_bytes"])
    spread = latency["teacher_student_spread"]
    return {
        "teacher": teacher,
        "param_ratio": teacher["params"]["total"] / student["params"]["total"],
        "flop_ratio": teacher["flops"]["total"] / student["flops"]["total"],
        "size_ratio": sizes[0] / sizes[1] if all(sizes) else None,
        "latency_ratio": spread["median"],
        "latency_spread": spread,
        "latency": latency,
    }


def _check_report_sizes(sizes: dict[str, int]) -> None:
    """Refuse every size setting of :func:`report` below 1, all at once."""
    problems = [f"{name} must be at least 1 (got {value})" for name, value in sizes.items() if value < 1]
    if problems:
        raise RecipeError(problems[0], problems=problems)


def _check_report_positions(models: dict[str, Any], task: Any | None, seq_length: int) -> None:
    """Refuse a timed length (the task's ``max_seq_length``, else ``seq_length``) beyond a model's positions."""
    longest = task.max_seq_length if task is not None else seq_length
    for name, model in models.items():
        if model is not None and longest > int(model.config.max_position_embeddings):
            flag = "--set task.max_seq_length=" if task is not None else "--seq-length "
            raise RecipeError(
                f"{'max_seq_length' if task is not None else 'seq_length'} {longest} exceeds the {name}'s "
                f"{model.config.max_position_embeddings} positions",
                hint=f"use {flag}{model.config.max_position_embeddings} or less",
            )


def _timed_dev_input(
    task: Any, model_path: str, teacher_path: str | None, examples: int, batch_size: int
) -> tuple[list[dict[str, torch.Tensor]], float, str]:
    """The dev batches :func:`report` times, their mean real length (tokens) and the ``input`` sentence."""
    batches, tokens, real = _dev_batches(task, model_path, teacher_path, examples, batch_size)
    count = sum(int(batch["input_ids"].shape[0]) for batch in batches)
    mean_length = real / count
    described_input = (
        f"dev split of {task.name}: {count} examples, mean {mean_length:.1f} real tokens, "
        f"{tokens} tokens per pass in {len(batches)} batches padded to their own longest example"
    )
    return batches, mean_length, described_input


def _dev_batches(
    task: Any, model_path: str, teacher_path: str | None, examples: int, batch_size: int
) -> tuple[list[dict[str, torch.Tensor]], int, int]:
    """The first ``examples`` dev examples as batches padded per batch, their padded and their real token count."""
    splits = load_raw(task)[0]
    dev = splits.get("dev")
    if not dev or not dev.get("text_a"):
        raise RecipeError(
            f"task {task.name} has no dev examples to time",
            hint="give a task with a dev split (task.validation_file for custom data), or drop the data options",
        )
    limit = min(examples, task.max_eval_samples or examples)
    try:
        tokenizer = load_tokenizer(model_path)
    except CheckpointError:
        if not teacher_path:
            raise
        tokenizer = load_tokenizer(teacher_path)
    text_b = dev.get("text_b")
    encoded = encode_texts(
        tokenizer,
        dev["text_a"][:limit],
        text_b[:limit] if text_b else None,
        task.max_seq_length,
        pad_to_max_length=False,
    )
    rows = [dict(zip(encoded, values, strict=True)) for values in zip(*encoded.values(), strict=True)]
    batches, tokens = padded_batches(rows, batch_size, tokenizer.pad_token_id)
    return batches, tokens, sum(len(row["input_ids"]) for row in rows)


def measure_latency(
    models: dict[str, nn.Module],
    *,
    batch_size: int,
    seq_length: int,
    repeats: int,
    batches: list[dict[str, torch.Tensor]] | None = None,
    warmup: int = 2,
    threads: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Forward-pass times of several models on the same input, repetitions interleaved.

    Args:
        models: Name -> classifier; all must accept the input (the smallest vocabulary bounds the token ids).
        batch_size: Examples per synthetic pass (without ``batches``).
        seq_length: Tokens per synthetic example (without ``batches``).
        repeats: Timed passes per model.
        batches: The input, one pass being a forward over every batch; None for one random synthetic batch.
        warmup: Untimed passes per model first.
        threads: CPU threads while timing (restored afterwards); None keeps torch's setting.
        seed: Seed of the random token ids.

    Returns:
        ``"<name>_median_ms"`` and ``"<name>_ms"`` (every pass) per model; for each adjacent pair of names the
        paired ratio ``"<first>_<second>_spread"`` (:func:`mudkd.core.measure.paired_ratios`) and its median
        ``"<first>_<second>_paired_ratio"``; ``tokens`` per pass, the settings and ``threads``.
    """
    if batches is None:
        vocab = min(int(model.config.vocab_size) for model in models.values())
        generator = torch.Generator().manual_seed(seed)
        input_ids = torch.randint(min(100, vocab - 1), vocab, (batch_size, seq_length), generator=generator)
        batches = [
            {
                "input_ids": input_ids,
                "attention_mask": torch.ones_like(input_ids),
                "token_type_ids": torch.zeros_like(input_ids),
            }
        ]
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        used_threads = torch.get_num_threads()
        load = machine_load()
        timings = _time_interleaved(models, batches, repeats=repeats, warmup=warmup)
    finally:
        torch.set_num_threads(previous_threads)
    names = list(models)
    medians = {f"{name}_median_ms": 1000 * statistics.median(values) for name, values in timings.items()}
    every = {f"{name}_ms": [1000 * value for value in values] for name, values in timings.items()}
    # Each repetition times the models back to back, so the ratio within a repetition shares the machine's load;
    # the load recorded with it is the higher of the loads before and after timing.
    load = max((value for value in (load, machine_load()) if value is not None), default=None)
    pairs = list(zip(names[:-1], names[1:], strict=True))
    spreads = {f"{a}_{b}_spread": paired_ratios(timings[a], timings[b], load=load) for a, b in pairs}
    paired = {f"{a}_{b}_paired_ratio": spreads[f"{a}_{b}_spread"]["median"] for a, b in pairs}
    return {
        **medians,
        **every,
        **paired,
        **spreads,
        "batch_size": batch_size,
        "batches": len(batches),
        "examples": sum(int(batch["input_ids"].shape[0]) for batch in batches),
        "tokens": sum(int(batch["input_ids"].numel()) for batch in batches),
        "seq_length": max(int(batch["input_ids"].shape[1]) for batch in batches),
        "repeats": repeats,
        "warmup": warmup,
        "threads": used_threads,
        "cpu_count": os.cpu_count(),
        # More runnable processes than cores slows multi-threaded passes far more than single-threaded ones.
        "load_average": load,
        "interleaved": True,
    }


def _time_interleaved(
    models: dict[str, nn.Module], batches: list[dict[str, torch.Tensor]], *, repeats: int, warmup: int
) -> dict[str, list[float]]:
    """Seconds per pass (a forward over every batch) of each model; the order flips every repetition."""

    def one_pass(model: nn.Module) -> Any:
        return lambda: [model(**batch) for batch in batches]

    with torch.inference_mode():
        for model in models.values():
            model.eval()
        return interleaved({name: one_pass(model) for name, model in models.items()}, repeats=repeats, warmup=warmup)
