"""``mudkd export --output-dir``: a student as a folder to deploy or push, with its model card.

The folder holds the model (``model.onnx``: fp32 or int8; or, with the PyTorch backend, the int8 state dict
:data:`mudkd.core.quantize.TORCH_INT8_WEIGHTS`), ``config.json`` and the tokenizer (so ONNX Runtime and
``optimum``'s ``ORTModelForSequenceClassification`` users have everything), the student's own records
(``metrics.json``, ``run_info.json``, ``recipe.resolved.toml``, ``metrics.jsonl``: they describe the same weights),
``quantization.json`` (the fp32-vs-int8 check) and ``README.md``, the model card built from those records.

It goes through the output guard like every mudkd output (:func:`mudkd.core.outputs.check_output_dir`, then
:class:`mudkd.core.outputs.StagingDir`): built in ``<dir>.partial``, card included, and committed in one rename.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from mudkd.core import quantize as q
from mudkd.core.card import write_card
from mudkd.core.measure import paired_ratios
from mudkd.core.metrics import compute_metrics
from mudkd.core.models import load_classifier
from mudkd.core.outputs import StagingDir, check_output_dir
from mudkd.core.quantize import BACKENDS, QUANTIZATION_FILE, describe_check
from mudkd.core.stages.export import dev_set_to_quantize, export_onnx, measure_latency, weight_files
from mudkd.errors import RecipeError
from mudkd.recipe import build_recipe

# Imports torch (through quantize and the export stage) at the top: 'mudkd export' loads torch before it calls this
# module (its library-quieting step imports datasets, which loads torch).

#: The student's records copied into the folder (they describe the exported weights; the card reads them).
RECORDS = ("metrics.json", "metrics.jsonl", "run_info.json", "recipe.resolved.toml", "knowledge_budget.json")
ONNX_FILE = "model.onnx"


def export_folder(
    model_path: str,
    output_dir: str | Path,
    *,
    recipe: Any,
    backend: str = "onnx",
    quantize: str = "none",
    max_metric_drop: float = 1.0,
    task: Any = None,
    opset: int = 17,
    max_seq_length: int = 128,
    overwrite: bool = False,
    trust_remote_code: bool = False,
) -> dict[str, Any]:
    """Export ``model_path`` into the folder ``output_dir`` (ONNX, or int8 PyTorch), with its model card.

    Args:
        model_path: The student (a ``save_pretrained`` directory).
        output_dir: The folder to write (refused if it exists and mudkd did not make it, or without ``overwrite``).
        recipe: The command's recipe: the card's task and teacher when the student has no ``recipe.resolved.toml``.
        backend: ``onnx`` or ``torch`` (int8 only: the fp32 student already is a PyTorch folder).
        quantize: ``none`` or ``dynamic``.
        max_metric_drop: Points of dev metric the int8 model may lose.
        task: The task whose dev split checks the int8 model.
        opset: ONNX opset.
        max_seq_length: Length of the traced example (ONNX).
        overwrite: Replace a folder mudkd made.
        trust_remote_code: Allow model code shipped in ``model_path`` to run.

    Returns:
        ``output``, ``backend``, ``files`` (name -> bytes), ``bytes`` (the model file), ``card`` (its path) and
        ``quantization`` (the int8 check, or None), plus the ONNX export's fields for that backend.

    Raises:
        RecipeError: An unknown backend, or ``torch`` without ``quantize``.
        CheckpointError: The output folder breaks the output guard, or the student cannot be loaded.
        RunError: The export fails, or the int8 model loses more than ``max_metric_drop`` (nothing is written).
    """
    if backend not in BACKENDS:
        raise RecipeError(f"--format {backend} is not supported", hint=f"choose one of {', '.join(BACKENDS)}")
    if backend == "torch" and quantize == "none":
        raise RecipeError(
            "--format torch writes an int8 PyTorch model, and --quantize is none",
            hint="add --quantize dynamic (the fp32 student already is a PyTorch folder: use it as it is)",
        )

    final = check_output_dir(output_dir, overwrite=overwrite, inputs={"--student-model": model_path})
    card_recipe = _student_recipe(model_path) or recipe
    dev = dev_set_to_quantize(quantize, task, model_path, max_metric_drop)  # bad data is refused before writing
    with StagingDir(final, command="export") as staging, _discarded_on_failure(staging.path):
        if backend == "onnx":
            result = export_onnx(
                model_path,
                staging.path / ONNX_FILE,
                opset=opset,
                max_seq_length=max_seq_length,
                trust_remote_code=trust_remote_code,
                quantize=quantize,
                task=task,
                max_metric_drop=max_metric_drop,
                dev=dev,
            )
            model_file = ONNX_FILE
        else:
            result = _torch_int8(model_path, staging.path, dev, max_metric_drop, trust_remote_code)
            model_file = result.pop("model_file")
        _copy_model_files(model_path, staging.path, keep_weights=False)
        quantization = result.get("quantization")
        if quantization:
            quantization["check_text"] = describe_check(quantization["check"])
            (staging.path / QUANTIZATION_FILE).write_text(json.dumps(quantization, indent=2) + "\n", encoding="utf-8")

        card = write_card(staging.path, card_recipe, command="export")
        files = {path.name: path.stat().st_size for path in sorted(staging.path.iterdir()) if path.is_file()}
        output = staging.commit()
    files.pop(".mudkd-output.json", None)
    return {
        **result,
        "output": str(output),
        "backend": backend,
        "bytes": files[model_file],
        "files": files,
        "card": str(output / card.name),
    }


@contextmanager
def _discarded_on_failure(partial: Path) -> Iterator[None]:
    """Remove the staged folder when the export fails: an export has nothing to resume, and a refused int8
    model must leave nothing behind."""
    try:
        yield
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _student_recipe(model_path: str) -> Any:
    """The recipe the student was trained with (its ``recipe.resolved.toml``), or None."""
    path = Path(model_path) / "recipe.resolved.toml"
    if not path.is_file():
        return None

    try:
        return build_recipe(path)
    except Exception:  # an older or edited recipe: the card falls back to the command's settings
        return None


def _copy_model_files(model_path: str, directory: Path, *, keep_weights: bool) -> None:
    """Copy the student's config, tokenizer, modeling code and records (not its weights) into ``directory``."""
    source = Path(model_path)
    for path in sorted(source.iterdir()) if source.is_dir() else ():
        weights = path.suffix in {".safetensors", ".bin"} or path.name.startswith("model.safetensors")
        skipped = path.name.startswith(".") or path.name == "README.md" or (weights and not keep_weights)
        if not path.is_file() or skipped:
            continue
        if path.suffix in {".json", ".txt", ".py", ".model", ".toml", ".jsonl"} or path.name in RECORDS:
            if path.name not in {"resume_settings.json", "stage.json"}:
                shutil.copyfile(path, directory / path.name)


def _torch_int8(
    model_path: str, directory: Path, dev: Any, max_metric_drop: float, trust_remote_code: bool
) -> dict[str, Any]:
    """Quantize the student with PyTorch, check it on dev, and write its int8 state dict into ``directory``."""
    model = load_classifier(model_path, trust_remote_code=trust_remote_code, dtype=torch.float32).eval()
    int8 = q.quantize_torch(model)  # a quantized copy: the fp32 model stays as it is
    fp32_logits = q.dev_logits(q.torch_forward(model), dev)
    check = q.compare(fp32_logits, q.dev_logits(q.torch_forward(int8), dev), dev, max_metric_drop=max_metric_drop)
    q.check_drop(check)
    fp32_bytes = sum(path.stat().st_size for path in weight_files(model_path)) or None
    q.save_torch_int8(int8, directory)
    quantization = {"scheme": "dynamic", "backend": "torch", "fp32_bytes": fp32_bytes, "check": check}
    return {"model_file": q.TORCH_INT8_WEIGHTS, "model_type": model.config.model_type, "quantization": quantization}


def int8_report(
    model_path: str,
    *,
    teacher_path: str | None,
    task: Any,
    examples: int = 128,
    repeats: int = 10,
    warmup: int = 2,
    threads: int | None = None,
) -> dict[str, Any]:
    """Teacher, student fp32 and student int8 (PyTorch dynamic) side by side: size, CPU latency, dev metric.

    The int8 student is :func:`mudkd.core.quantize.quantize_torch` of the student, in memory (its size is the
    bytes its state dict takes, as ``export --format torch`` would write them). Latency is timed at batch 1 and at
    batch 32 over the first ``examples`` dev examples, each batch padded to its own longest example, the models
    interleaved (:func:`mudkd.core.stages.export.measure_latency`); every ratio is the median of paired passes with
    its range and verdict (:func:`mudkd.core.measure.paired_ratios`). The dev metric is the task's selection metric
    on the whole dev split (``task.max_eval_samples`` caps it).

    Returns:
        ``columns`` (``teacher`` — absent without a teacher —, ``student``, ``student_int8``: ``size_bytes``,
        ``latency_ms`` per batch size, ``metric``), ``metric`` (its name), ``ratios`` (per batch size:
        ``teacher/student``, ``student/student_int8``, ``teacher/student_int8`` spreads), ``check`` (the int8
        check of :func:`mudkd.core.quantize.compare`, with no drop limit) and ``input``.
    """
    student = load_classifier(model_path, dtype=torch.float32).eval()
    models: dict[str, Any] = {}
    if teacher_path:
        models["teacher"] = load_classifier(teacher_path, dtype=torch.float32).eval()
    models |= {"student": student, "student_int8": q.quantize_torch(student)}
    dev = q.load_dev_set(task, model_path, batch_size=32)
    logits = {name: q.dev_logits(q.torch_forward(model), dev) for name, model in models.items()}
    check = q.compare(logits["student"], logits["student_int8"], dev, max_metric_drop=float("inf"))

    def files_bytes(path: str) -> int | None:
        return sum(file.stat().st_size for file in weight_files(path)) or None

    columns: dict[str, dict[str, Any]] = {
        name: {
            "metric": compute_metrics(dev.metric_names, logits[name], dev.labels, dev.label_names)[dev.metric],
            "latency_ms": {},
        }
        for name in models
    }
    columns["student"]["size_bytes"] = files_bytes(model_path)
    columns["student_int8"]["size_bytes"] = q.int8_state_bytes(models["student_int8"])
    if teacher_path:
        columns["teacher"]["size_bytes"] = files_bytes(teacher_path)
    ratios: dict[str, dict[str, Any]] = {}
    for size in (1, 32):
        batches = q.load_dev_set(task, model_path, batch_size=size, examples=examples).batches
        timed = measure_latency(
            models, batch_size=size, seq_length=0, batches=batches, repeats=repeats, warmup=warmup, threads=threads
        )
        for name in models:
            columns[name]["latency_ms"][str(size)] = timed[f"{name}_median_ms"]
        pairs = [("student", "student_int8")] + (
            [("teacher", "student"), ("teacher", "student_int8")] * bool(teacher_path)
        )
        ratios[str(size)] = {
            f"{a}/{b}": paired_ratios(timed[f"{a}_ms"], timed[f"{b}_ms"], load=timed["load_average"]) for a, b in pairs
        }
    return {
        "columns": columns,
        "metric": dev.metric,
        "ratios": ratios,
        "check": check,
        "input": f"first {min(examples, dev.examples)} dev examples of {task.name} at batch 1 and 32, padded per batch",
        "threads": timed["threads"],
        "repeats": repeats,
    }
