"""Models on disk: loading them (safetensors only), and facts read without loading weights.

Plans and budget checks need a model's shape before anything heavy runs; the store needs a fingerprint of the
teacher's weights; every stage loads tokenizers and classifiers the same guarded way. All of it lives here,
beneath the stages that use it (finetune, score, prune, distill, cache, sweep, pipeline, export).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from mudkd.core.data import tokenizer_fingerprint
from mudkd.core.store import fingerprint_files
from mudkd.errors import CheckpointError, RecipeError
from mudkd.knowledge.shapes import ModelShape, model_shape

# transformers, safetensors and torch are imported inside the loaders: read_config/read_shape/check_positions serve
# the sweep's and the search's --dry-run and predict's model check, which stay torch-free (~1.5-3.5 s saved).


def read_config(path: str | None, role: str) -> dict[str, Any]:
    """A model's ``config.json`` as a dict, without loading weights (for plans and budget checks)."""
    if not path:
        raise CheckpointError(f"no {role} model given", hint=f"pass --{role}-model DIR")
    config_file = Path(path) / "config.json"
    if not Path(path).exists() and path.count("/") == 1 and not path.startswith((".", "~")):
        return _hub_config(path, role)  # a hub name such as huawei-noah/TinyBERT_General_4L_312D
    if not config_file.is_file():
        raise CheckpointError(
            f"{path}: {role} is not a model directory (no config.json)",
            hint="pass a directory written by save_pretrained (mudkd finetune / prune / distill)",
        )
    try:
        return json.loads(config_file.read_text())
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{config_file}: malformed config.json ({error})") from None


def read_shape(path: str | None, role: str) -> ModelShape:
    """A model's depth, width and label count from its config, without loading weights (see
    :mod:`mudkd.knowledge.shapes` for the rules)."""
    return model_shape(read_config(path, role), f"{path} ({role})")


def _hub_config(name: str, role: str) -> dict[str, Any]:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(name).to_dict()
    except (OSError, ValueError) as error:
        raise CheckpointError(
            f"{name}: {role} model not found locally or on the hub ({str(error).splitlines()[0][:120]})",
            hint="check the name and your network, or pass a local directory",
        ) from None


def check_same_tokenizer(teacher_tokenizer: Any, student_tokenizer: Any) -> None:
    """Teacher and student must split text identically: the HSK is compared token by token."""
    if tokenizer_fingerprint(teacher_tokenizer) != tokenizer_fingerprint(student_tokenizer):
        raise CheckpointError(
            f"teacher and student use different tokenizers (vocabularies of {len(teacher_tokenizer)} and "
            f"{len(student_tokenizer)} tokens)",
            hint="distil into a student built from the teacher (mudkd prune) or one with the same vocabulary",
        )


def teacher_fingerprint(teacher_path: str) -> str:
    """A hash of the teacher's weight files (and config), streamed from disk."""
    directory = Path(teacher_path)
    files = sorted(p for p in directory.iterdir() if p.suffix in {".safetensors", ".bin"} or p.name == "config.json")
    return fingerprint_files(files)


_PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")
_RESAVE_HINT = (
    "re-save it as safetensors in an environment you trust: "
    "AutoModelForSequenceClassification.from_pretrained(DIR).save_pretrained(DIR) writes model.safetensors"
)


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


#: The attribute :func:`load_classifier` sets on a model: the names of the weights its checkpoint did not hold.
UNTRAINED_ATTRIBUTE = "mudkd_untrained"


def untrained_weights(model: Any) -> list[str]:
    """The parameters of ``model`` initialised at random on load (not in its checkpoint), sorted; [] if none."""
    missing = getattr(model, UNTRAINED_ATTRIBUTE, frozenset())
    return sorted(name for name, _ in model.named_parameters() if name in missing)


def load_classifier(path: str, *, num_labels: int | None = None, trust_remote_code: bool = False, **kwargs: Any) -> Any:
    """Load a sequence classifier (BERT or mudkd's pruned BERT) from a hub name or directory.

    Weights are read only from safetensors (``use_safetensors=True``); a local directory is checked first by
    :func:`check_safetensors_weights`, so pickle-only or damaged weights fail with a :class:`CheckpointError`
    naming the path. The names of weights the checkpoint lacked are kept on the model (:func:`untrained_weights`).
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
        model, info = AutoModelForSequenceClassification.from_pretrained(path, output_loading_info=True, **options)
    except (OSError, ValueError, KeyError, SafetensorError) as error:
        raise CheckpointError(
            f"{path}: could not load a model ({str(error).splitlines()[0][:200]})",
            hint="pass a directory written by save_pretrained (config.json + model.safetensors)",
        ) from None
    # Weights the checkpoint did not hold (the classification head of a raw MiniLM or of a BertModel checkpoint)
    # are initialised at random, differently at every load: fingerprints leave them out, and score says so.
    fresh = {entry[0] if isinstance(entry, tuple) else entry for entry in info.get("mismatched_keys") or ()}
    setattr(model, UNTRAINED_ATTRIBUTE, frozenset(set(info.get("missing_keys") or ()) | fresh))
    # Its loss is a batch mean that ignores the Trainer's num_items_in_batch; saying so stops the Trainer from
    # multiplying loss and gradients by the number of DDP ranks (and skipping the gradient-accumulation division).
    model.accepts_loss_kwargs = False
    return model


def non_finite_weight(model: Any) -> tuple[str, str] | None:
    """The first floating-point parameter or buffer of ``model`` holding nan or inf: ``(name, "nan" | "inf")``.

    The one finite-weights check: a training stage refuses to save such a model (``training.check_finite_model``)
    and ``evaluate``, ``predict`` and ``export`` refuse to read one (:func:`check_finite_weights`).
    """
    import torch

    with torch.no_grad():
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                return name, "nan" if bool(torch.isnan(tensor).any()) else "inf"
    return None


def check_finite_weights(model: Any, path: str) -> None:
    """Refuse a loaded model whose weights hold nan or inf: its every output would be nan (invalid JSON, no metric).

    Raises:
        CheckpointError: Naming the first non-finite tensor.
    """
    found = non_finite_weight(model)
    if found is not None:
        name, kind = found
        raise CheckpointError(
            f"{path}: the model's weights hold {kind} values ({name}); its outputs would be {kind}",
            hint="use a checkpoint from a run that did not diverge (retrain it with a lower learning rate)",
        )


#: mudkd's own trained projection of a narrower student, saved beside the model by ``mudkd distill hsk``.
PROJECTION_FILE = "hsk_projection.safetensors"


def load_fit_dense(path: str, *, student_hidden: int, teacher_hidden: int) -> tuple[dict[str, Any], str] | None:
    """The trained ``fit_dense`` projection a student checkpoint carries, to start HSK distillation from it.

    Looked up in order: mudkd's own ``hsk_projection.safetensors`` beside the model (keys ``weight``/``bias``),
    then ``fit_dense.weight``/``fit_dense.bias`` inside the model's safetensors weights (General TinyBERT
    checkpoints ship them there; method.md §7). Hub names are looked up in the local cache.

    Returns:
        ``({"weight": [teacher_hidden, student_hidden], "bias": [teacher_hidden]}, source)`` in float32, or None
        when the checkpoint has no projection (the caller initialises a fresh one).

    Raises:
        CheckpointError: The projection is incomplete, or its shape does not map this student's width to this
            teacher's.
    """
    from safetensors import safe_open

    found: tuple[dict[str, Any], str] | None = None
    for file in _weight_files(path):
        try:
            with safe_open(str(file), framework="pt") as handle:
                keys = list(handle.keys())
                if file.name == PROJECTION_FILE:
                    names = {"weight": "weight", "bias": "bias"}
                else:
                    names = {part: _fit_dense_key(keys, part) for part in ("weight", "bias")}
                present = {part: key for part, key in names.items() if key in keys}
                if not present:
                    continue
                if len(present) < 2:
                    raise CheckpointError(
                        f"{file}: the fit_dense projection has no {'bias' if 'weight' in present else 'weight'}",
                        hint="save both fit_dense.weight and fit_dense.bias, or remove fit_dense to start a fresh one",
                    )
                tensors = {part: handle.get_tensor(key).float() for part, key in present.items()}
        except OSError:
            continue
        found = (tensors, f"{file} ({'hsk projection' if file.name == PROJECTION_FILE else 'fit_dense'})")
        break
    if found is None:
        return None
    weight, bias = found[0]["weight"], found[0]["bias"]
    if tuple(weight.shape) != (teacher_hidden, student_hidden) or tuple(bias.shape) != (teacher_hidden,):
        raise CheckpointError(
            f"{found[1].split(' (')[0]}: its fit_dense projection maps width {_width(weight, 1)} to "
            f"{_width(weight, 0)} (weight {list(weight.shape)}, bias {list(bias.shape)}); this student "
            f"({student_hidden}) and teacher ({teacher_hidden}) need weight [{teacher_hidden}, {student_hidden}]",
            hint="distil from a teacher of the width the checkpoint's fit_dense was trained for, "
            "or remove fit_dense from the checkpoint to start a fresh projection",
        )
    return found


def _width(weight: Any, dim: int) -> Any:
    return weight.shape[dim] if weight.dim() == 2 else "?"


def _fit_dense_key(keys: list[str], part: str) -> str | None:
    """The key of ``fit_dense.<part>`` (with any prefix, e.g. ``bert.fit_dense.weight``), if exactly one."""
    matches = [key for key in keys if key == f"fit_dense.{part}" or key.endswith(f".fit_dense.{part}")]
    return matches[0] if len(matches) == 1 else None


def _weight_files(path: str) -> list[Path]:
    """The projection file, then the model's safetensors weights, of a local directory or a cached hub model."""
    directory = Path(path)
    if directory.is_dir():
        return [p for p in [directory / PROJECTION_FILE, *sorted(directory.glob("model*.safetensors"))] if p.is_file()]
    try:
        from huggingface_hub import try_to_load_from_cache

        files = [try_to_load_from_cache(path, name) for name in (PROJECTION_FILE, "model.safetensors")]
    except Exception:  # not a hub name, or no cache: nothing to load
        return []
    return [Path(file) for file in files if isinstance(file, str)]


def give_weights_default_permissions(directory: str | Path) -> None:
    """Give the weight files of a freshly saved model the permissions every other file of it has.

    ``save_pretrained`` writes ``model.safetensors`` through a private temporary file, so it lands as 0600 while
    the config and tokenizer files next to it follow the user's umask (0644 for the usual 022); a model copied or
    shared from a mudkd output then fails to load for anyone else. Only files still at 0600 are changed.
    """
    mask = os.umask(0)
    os.umask(mask)
    for path in Path(directory).glob("*.safetensors"):
        if stat.S_IMODE(path.stat().st_mode) == 0o600:
            path.chmod(0o666 & ~mask)
