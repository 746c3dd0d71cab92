"""Stage 3: structured pruning of the teacher into a ROSITA-style student (method.md §6).

Keeps the bottom ``num_layers`` (or the listed) teacher layers, the top ``keep_heads`` heads and top
``ffn_hidden_dim`` FFN neurons of each by their Taylor scores, and factorises the word embedding to rank
``emb_hidden_dim``. The student is a ``save_pretrained`` directory that ``AutoModelForSequenceClassification``
loads once mudkd is imported (or anywhere with ``trust_remote_code=True``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from mudkd.core.events import RunEvents, StagePlan, StageResult
from mudkd.core.health import HEALTH_FILE, check_student, degenerate_warning, has_dev_data
from mudkd.core.models import load_classifier, load_tokenizer
from mudkd.core.outputs import StagingDir, check_output_dir
from mudkd.core.stages.score import require_teacher
from mudkd.core.training import resolve_device, write_run_files
from mudkd.errors import BudgetError, CheckpointError
from mudkd.recipe.schema import Recipe

# pruning (transformers' models, ~5 s at import) and safetensors are imported inside the functions: --dry-run and a
# refused budget do not load them.


@dataclass(frozen=True)
class PrunePlan(StagePlan):
    """What ``mudkd prune`` would do (``--dry-run``); every figure is checked against the teacher's config.

    Attributes:
        teacher: The fine-tuned teacher's directory.
        scores: The directory holding its importance scores.
        output_dir: Where the student goes.
        teacher_layers: The teacher's depth.
        layers: The teacher layers the student keeps, bottom first.
        keep_heads: Attention heads kept per layer.
        ffn_hidden_dim: FFN neurons kept per layer.
        emb_hidden_dim: The rank of the factorised word embedding.
        health_check: Whether the pruned student is checked on the dev set (a sentence, as the table shows it).
    """

    stage: ClassVar[str] = "prune"
    teacher: str
    scores: str
    output_dir: str | None
    teacher_layers: int
    layers: list[int]
    keep_heads: int
    ffn_hidden_dim: int
    emb_hidden_dim: int | None
    health_check: str


def plan(recipe: Recipe, *, resume: bool = False) -> PrunePlan:
    """What ``run`` would do, for ``--dry-run``.

    Validates the teacher's ``config.json``, the score file's header and the budget against them without loading
    any weights, so a budget that does not fit fails here (the score fingerprint is checked by ``run``).
    """
    from mudkd.core.pruning import validate_prune_budget

    teacher = require_teacher(recipe, flag="--model-path")
    if recipe.prune.layers is not None and "num_layers" in recipe.prune.model_fields_set:
        raise BudgetError("give either num_layers or layers, not both", hint="drop --num-layers or --layers")
    scores = scores_dir(recipe)
    shape = teacher_shape(teacher)
    check_scores_header(scores, shape)
    stage = recipe.prune
    kept = validate_prune_budget(
        shape,
        keep_heads=stage.keep_heads,
        num_layers=None if stage.layers is not None else stage.num_layers,
        layers=stage.layers,
        ffn_hidden_dim=stage.ffn_hidden_dim,
        emb_hidden_dim=stage.emb_hidden_dim,
    )
    check_output_dir(
        stage.output_dir,
        overwrite=recipe.output.overwrite,
        command="prune",
        inputs={"--teacher-model": teacher, "--scores": scores},
    )
    return PrunePlan(
        teacher=teacher,
        scores=str(scores),
        output_dir=stage.output_dir,
        teacher_layers=shape.num_layers,
        layers=kept,
        keep_heads=stage.keep_heads,
        ffn_hidden_dim=stage.ffn_hidden_dim,
        emb_hidden_dim=stage.emb_hidden_dim,
        health_check="on the dev set" if has_dev_data(recipe.task) else "skipped (no dev data)",
    )


def scores_dir(recipe: Recipe) -> Path:
    """The score directory (``prune.scores``, else ``score.output_dir``), checked to hold a score file."""
    from mudkd.core.pruning import SCORES_FILE

    directory = recipe.prune.scores or recipe.score.output_dir
    if not directory:
        raise CheckpointError("no importance scores given", hint="pass --scores DIR (written by 'mudkd score')")
    if not (Path(directory) / SCORES_FILE).is_file():
        problem = "does not exist" if not Path(directory).exists() else f"has no {SCORES_FILE}"
        raise CheckpointError(
            f"scores directory {directory} {problem}", hint="run 'mudkd score' on this teacher first, or fix --scores"
        )
    return Path(directory)


def teacher_shape(teacher: str) -> Any:
    """The teacher's :class:`~mudkd.core.pruning.ModelShape`, read from its ``config.json`` (no weights)."""
    from mudkd.core.pruning import ModelShape

    path = Path(teacher) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
        kind = config.get("model_type")
        if kind not in ("bert", "pruned_bert"):
            raise CheckpointError(f"{teacher}: a '{kind}' model cannot be pruned", hint="prune a fine-tuned BERT")
        depth = int(config["num_hidden_layers"])
        heads = config.get("num_heads_per_layer") or [config["num_attention_heads"]] * depth
        ffn = config.get("intermediate_sizes") or [config["intermediate_size"]] * depth
        head_size = config.get("attention_head_size") or config["hidden_size"] // config["num_attention_heads"]
        return ModelShape(
            num_heads=tuple(int(n) for n in heads),
            head_size=int(head_size),
            ffn_sizes=tuple(int(n) for n in ffn),
            hidden_size=int(config["hidden_size"]),
            vocab_size=int(config["vocab_size"]),
        )
    except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError) as error:
        raise CheckpointError(f"{path}: malformed model config ({error})", hint="re-save the teacher") from None


def check_scores_header(directory: Path, shape: Any) -> None:
    """Refuse a score file whose layer, head and FFN counts (read from its header) differ from the teacher's."""
    from safetensors import safe_open

    from mudkd.core.pruning import SCORES_FILE

    path = directory / SCORES_FILE
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        heads, ffn = json.loads(metadata["num_heads"]), json.loads(metadata["ffn_sizes"])
    except Exception as error:  # any unreadable header means the same to the user: recompute
        raise CheckpointError(f"malformed importance scores at {path} ({error})", hint="rerun 'mudkd score'") from None
    if tuple(heads) != shape.num_heads or tuple(ffn) != shape.ffn_sizes:
        raise CheckpointError(
            f"scores at {path} were computed for another model (heads {heads}, FFN {ffn}; "
            f"the teacher has heads {list(shape.num_heads)}, FFN {list(shape.ffn_sizes)})",
            hint="run 'mudkd score' on this teacher",
        )


def run(recipe: Recipe, *, events: RunEvents | None = None, resume: bool = False) -> StageResult:
    """Prune ``recipe.teacher.model`` by its Taylor scores and save the student.

    ``resume`` is accepted for the signature every stage shares; this stage keeps no checkpoints and runs whole.

    Writes a ``save_pretrained`` student (safetensors, config with ``auto_map``, tokenizer, modeling file),
    ``recipe.resolved.toml`` and ``run_info.json`` into ``recipe.prune.output_dir``, atomically. Runs on the CPU
    unless ``training.device`` is ``cuda`` (pruning is a one-off copy plus a float64 SVD).

    When the recipe names task data, the pruned student is evaluated on the dev set before it is saved
    (:func:`mudkd.core.health.check_student`): its dev metric, the majority-class rate and the spread of its
    top-layer [CLS] go into ``student_health.json`` beside it, and a student that predicts one class from a
    near-constant [CLS] gets a warning with the fix.

    Returns:
        A :class:`StageResult` whose details hold ``params`` (``teacher``/``student`` totals), ``components``
        (per component ``teacher``/``student`` counts), ``compression`` (teacher / student parameters),
        ``student_before_training`` (the health figures, None without dev data) and ``warnings``.
    """
    from mudkd.core.pruning import count_parameters, load_scores, prune_bert, save_pruned

    events = events or RunEvents()
    planned = plan(recipe)
    final = Path(recipe.prune.output_dir)  # type: ignore[arg-type]
    device = resolve_device(recipe.training) if recipe.training.device == "cuda" else "cpu"
    teacher_path = planned.teacher
    tokenizer = load_tokenizer(teacher_path)
    teacher = load_classifier(teacher_path).to(device)
    scores = load_scores(planned.scores, model=teacher)
    events.on_message(f"device: {device}; keeping teacher layers {planned.layers}")
    stage = recipe.prune
    student = prune_bert(
        teacher,
        scores,
        keep_heads=stage.keep_heads,
        num_layers=None if stage.layers is not None else stage.num_layers,
        layers=stage.layers,
        ffn_hidden_dim=stage.ffn_hidden_dim,
        emb_hidden_dim=stage.emb_hidden_dim,
    )
    before, after = count_parameters(teacher), count_parameters(student)
    health, warnings = None, []
    if has_dev_data(recipe.task):
        events.on_message("checking the pruned student on the dev set (before any training)")
        health = check_student(student, recipe, tokenizer, device=device)
        if health["degenerate"]:
            depth = planned.teacher_layers
            warnings.append(degenerate_warning(health, kept=planned.layers, teacher_layers=depth))
    else:
        events.on_message("student health check skipped: no dev data (pass --task-name and --data-dir)")

    with StagingDir(final, command="prune", recipe=recipe) as staging:
        save_pruned(student, tokenizer, staging.path)
        write_run_files(staging.path, recipe, metrics=None, device=device)
        if health is not None:
            (staging.path / HEALTH_FILE).write_text(json.dumps(health, indent=2) + "\n", encoding="utf-8")
        output = staging.commit()
    details = {
        "params": {"teacher": before["total"], "student": after["total"]},
        "components": {name: {"teacher": before[name], "student": after[name]} for name in before if name != "total"},
        "compression": before["total"] / after["total"],
        "student_before_training": health,
        "warnings": warnings,
    }
    return StageResult(str(output), {}, details)
