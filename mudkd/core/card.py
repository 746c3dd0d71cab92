"""The model card (``README.md``) of every final model mudkd writes, in the Hugging Face format.

A card has YAML metadata (``base_model``, ``pipeline_tag: text-classification``, ``tags``, ``datasets`` and a
``model-index`` with the dev metrics; built with ``huggingface_hub``'s ``ModelCardData``, not by hand) and a body
that says what the model is: the teacher, the pruning shape, the knowledge budget and its HSK fraction, the data and
number of updates, the dev metrics, the latency and size ratios where they were measured, the command and recipe
hash that reproduce it, and how to load it.

**Never an invented number**: every figure is read from the run's own records in the output folder
(``metrics.json``, ``run_info.json``, ``config.json``, ``metrics.jsonl``'s final record, ``knowledge_budget.json``
of the HSK student it started from, ``quantization.json``) or handed over from another record (a pipeline's
``summary.json``). A figure without a record is left out, never estimated.

The card is a file of a mudkd output, so it is written inside the staging directory, before the output is
committed (:func:`write_card` from :func:`mudkd.core.training.run_trainer_stage` and the export).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mudkd.core.measure import describe
from mudkd.core.outputs import recipe_hash, write_text_atomic

# huggingface_hub (model cards) is imported inside the functions that build or read a card: reading card records stays
# cheap for the torch-free paths (mudkd push's checks, outputs).

CARD_FILE = "README.md"
TAGS = ["distillation", "pruning", "mudkd"]
VERSIONS = ("mudkd", "transformers", "torch")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _final_step(directory: Path) -> int | None:
    """The number of updates, from ``metrics.jsonl``'s final record (None when there is none)."""
    try:
        lines = (directory / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("final"):
            return int(record["step"])
    return None


def hub_name(reference: str | None) -> str | None:
    """``reference`` when it names a model on the Hub (``org/name``), else None (a local path, ``package:NAME``)."""
    if not reference or reference.startswith(("package:", ".", "/", "~")) or Path(reference).exists():
        return None
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(reference)
    except HFValidationError:
        return None
    return reference


def card_records(directory: Path, *, student_model: str | None = None) -> dict[str, Any]:
    """Everything a card may say about the model in ``directory``, read from the records written there.

    Args:
        directory: The output folder (a staging directory before its commit).
        student_model: The student the run started from; its ``knowledge_budget.json`` (an HSK student's) is the
            knowledge budget the model was distilled with.
    """
    config = _read_json(directory / "config.json") or {}
    budget = None
    if student_model:
        budget = _read_json(Path(student_model) / "knowledge_budget.json")
    return {
        "metrics": _read_json(directory / "metrics.json") or {},
        "run_info": _read_json(directory / "run_info.json") or {},
        "config": config,
        "steps": _final_step(directory),
        "budget": budget,
        "quantization": _read_json(directory / "quantization.json"),
    }


def pruning_shape(config: dict[str, Any]) -> str | None:
    """``3 layers, hidden 384, heads per layer [2, 2, 2] of 32, FFN widths [384, 384, 384], embedding rank 64``."""
    if not config:
        return None
    layers, hidden = config.get("num_hidden_layers"), config.get("hidden_size")
    heads = config.get("num_heads_per_layer") or ([config.get("num_attention_heads")] * int(layers or 0))
    ffn = config.get("intermediate_sizes") or ([config.get("intermediate_size")] * int(layers or 0))
    head_size = config.get("attention_head_size") or (
        hidden // config["num_attention_heads"] if hidden and config.get("num_attention_heads") else None
    )
    text = f"{layers} layers, hidden {hidden}, heads per layer {list(heads)} of size {head_size}"
    text += f", FFN widths {list(ffn)}"
    rank = config.get("emb_hidden_dim")
    if rank and int(rank) > 0:
        text += f", word embedding factorised to rank {rank}"
    return text


def build_card(
    directory: Path,
    recipe: Any,
    *,
    command: str,
    summary: dict[str, Any] | None = None,
    model_name: str | None = None,
) -> str:
    """The card's text (YAML metadata and Markdown body) for the model in ``directory``.

    The body's sections, in order: the title and one line on how the model was made, Model, Data and training,
    Dev metrics, Size and speed (pipelines only), Reproduce, Load.

    Args:
        directory: The output folder, holding the run's records.
        recipe: The resolved recipe of the run (task, teacher, stage settings).
        command: The mudkd command that made the model (``distill pred``, ``finetune``, ``export``).
        summary: A pipeline's ``summary.json`` (teacher metrics, parameter/FLOP/latency ratios), when there is one.
        model_name: The name in ``model-index`` (default: the folder's name).
    """
    from huggingface_hub import ModelCard

    student_model = getattr(getattr(recipe, "student", None), "model", None)
    records = card_records(directory, student_model=student_model if command != "finetune" else None)
    metrics = records["metrics"]
    quantization = records["quantization"]
    if quantization and quantization.get("check"):  # the folder holds the int8 model: its own dev metrics
        metrics = {**quantization["check"]["metrics_int8"]}
    task = recipe.task.name
    name = model_name or directory.name.removesuffix(".partial")
    lines = [f"# {name}", ""]
    lines.append(
        f"A {'fine-tuned teacher' if command == 'finetune' else 'compressed student'} for `{task}` made by "
        f"mudkd (`mudkd {command}`): Taylor-pruned BERT distilled with compressed "
        "hidden-state knowledge (ACL 2021, *Marginal Utility Diminishes*)."
    )
    teacher = recipe.teacher.pretrained if command == "finetune" else recipe.teacher.model
    lines += _model_section(records, teacher)
    lines += _training_section(records, recipe.task)
    lines += _metrics_section(metrics, (summary or {}).get("teacher", {}).get("metrics") or {})
    if summary:
        lines += _size_section(summary)
    lines += _reproduce_section(records, recipe)
    lines += ["", "## Load", "", "```python", *_load_example(records["config"], directory), "```", ""]
    template = "---\n{{ card_data }}\n---\n\n{{ body }}"
    data = _card_data(recipe, task, name, metrics)
    return str(ModelCard.from_template(data, template_str=template, body="\n".join(lines)).content)


def _card_data(recipe: Any, task: str, name: str, metrics: dict[str, Any]) -> Any:
    """The card's YAML metadata: base model, tags, dataset and the dev metrics as ``model-index`` results."""
    from huggingface_hub import EvalResult, ModelCardData

    results = [
        EvalResult(
            task_type="text-classification",
            dataset_type=task,
            dataset_name=task,
            dataset_split="dev",
            metric_type=key,
            metric_name=key,
            metric_value=value,
        )
        for key, value in metrics.items()
        if isinstance(value, int | float) and key != "loss" and not key.endswith("_loss")
    ]
    return ModelCardData(
        base_model=hub_name(recipe.teacher.pretrained),
        pipeline_tag="text-classification",
        library_name="transformers",
        tags=list(TAGS),
        datasets=[task],
        model_name=name,
        eval_results=results or None,
    )


def _model_section(records: dict[str, Any], teacher: str | None) -> list[str]:
    """The teacher, the pruned shape, the knowledge budget and the int8 check, each when the folder has one."""
    lines = ["", "## Model", ""]
    if teacher:
        lines.append(f"- teacher: `{teacher}`")
    shape = pruning_shape(records["config"])
    if shape:
        lines.append(f"- shape: {shape} (model type `{records['config'].get('model_type')}`)")
    budget = records["budget"]
    if budget:
        lines.append(
            f"- knowledge budget: {len(budget.get('layers') or [])} layer(s), {budget.get('keep_tokens')} token(s), "
            f"width fraction {budget.get('keep_hidden')} ({budget.get('token_scheme')}, {budget.get('hidden_scheme')});"
            f" HSK fraction {budget.get('hsk_fraction')}"
        )
    quantization = records["quantization"]
    if quantization:
        lines.append(
            f"- int8: {quantization.get('scheme')} quantization ({quantization.get('backend')}); "
            f"{quantization.get('check_text')}"
        )
    return lines


def _training_section(records: dict[str, Any], task: Any) -> list[str]:
    """The task, its sequence length and training examples, the updates and the seed."""
    lines = ["", "## Data and training", ""]
    lines.append(f"- task: `{task.name}`, sequences of at most {task.max_seq_length} tokens")
    if task.max_train_samples:
        lines.append(f"- training examples: the first {task.max_train_samples}")
    if records["steps"] is not None:
        lines.append(f"- updates: {records['steps']}")
    seed = records["run_info"].get("seed")
    if seed is not None:
        lines.append(f"- seed: {seed}")
    return lines


def _metrics_section(metrics: dict[str, Any], teacher_metrics: dict[str, Any]) -> list[str]:
    """A table of the model's dev metrics, with the teacher's beside them when a pipeline recorded them."""
    lines = ["", "## Dev metrics", ""]
    if not metrics:
        return [*lines, "No dev metrics were recorded for this model."]
    lines += ["| metric | this model |" + (" teacher |" if teacher_metrics else ""), "|---|---|"]
    lines[-1] += "---|" if teacher_metrics else ""
    for key, value in metrics.items():
        row = f"| {key} | {_number(value)} |"
        if teacher_metrics:
            row += f" {_number(teacher_metrics.get(key))} |"
        lines.append(row)
    return lines


def _size_section(summary: dict[str, Any]) -> list[str]:
    """A pipeline's parameter, FLOP and CPU-latency ratios (teacher / this model)."""
    lines = ["", "## Size and speed (teacher / this model)", ""]
    for label, key in (("parameters", "param_ratio"), ("FLOPs per example", "flop_ratio")):
        if summary.get(key) is not None:
            lines.append(f"- {label}: {summary[key]:.2f}×")
    if summary.get("latency_spread"):
        lines.append(f"- CPU latency: {describe(summary['latency_spread'])} ({summary.get('latency_input')})")
    return lines


def _reproduce_section(records: dict[str, Any], recipe: Any) -> list[str]:
    """The command line that made the model, the recipe hash and the library versions it ran with."""
    lines = ["", "## Reproduce", ""]
    argv = records["run_info"].get("command")
    if argv:
        lines += ["```bash", " ".join(argv), "```", ""]
    versions = ", ".join(f"{name} {records['run_info'][name]}" for name in VERSIONS if records["run_info"].get(name))
    lines.append(
        f"Recipe hash `{recipe_hash(recipe)}`"
        + (f"; trained with {versions}" if versions else "")
        + "."
        + (" The resolved recipe is `recipe.resolved.toml` in this folder." if records["run_info"] else "")
    )
    return lines


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


def _load_example(config: dict[str, Any], directory: Path) -> list[str]:
    if (directory / "model_int8.pt").is_file():
        return ["from mudkd.core.quantize import load_quantized", 'model = load_quantized("PATH")  # int8, CPU']
    if (directory / "model.onnx").is_file():
        return [
            "import onnxruntime",
            'session = onnxruntime.InferenceSession("PATH/model.onnx")',
            "# inputs: input_ids, attention_mask, token_type_ids (int64) -> logits",
        ]
    remote = ", trust_remote_code=True" if config.get("model_type") == "pruned_bert" else ""
    lines = ["from transformers import AutoModelForSequenceClassification, AutoTokenizer", ""]
    lines.append(f'model = AutoModelForSequenceClassification.from_pretrained("PATH"{remote})')
    lines.append('tokenizer = AutoTokenizer.from_pretrained("PATH")')
    if remote:
        lines.append("# or, with mudkd installed: from mudkd.core.models import load_classifier; load_classifier(PATH)")
    return lines


def write_card(directory: Path, recipe: Any, *, command: str, summary: dict[str, Any] | None = None) -> Path:
    """Write :func:`build_card` to ``directory/README.md`` (atomically) and return its path."""
    path = directory / CARD_FILE
    write_text_atomic(path, build_card(directory, recipe, command=command, summary=summary))
    return path


def read_card(directory: Path) -> Any:
    """The ``ModelCard`` in ``directory`` (None when it has no README.md)."""
    from huggingface_hub import ModelCard

    path = directory / CARD_FILE
    return ModelCard.load(path) if path.is_file() else None
