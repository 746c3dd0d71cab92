"""First-order Taylor importance scores and structured pruning of a BERT into a pruned-BERT student.

Stage 2 and 3 of the pipeline (method.md §5, §6): :func:`compute_taylor_scores` accumulates ``Σ_batches |∂L/∂w|``
with the weights fixed and reduces ``|w| ⊙ Σ|g|`` to one score per attention head and per FFN neuron;
:func:`prune_bert` keeps the first (or chosen) layers, the top heads and FFN neurons of each kept layer by those
scores, and factorises the word embedding with a thin SVD. The layer counter is per kept layer (not method.md Q19).

Works on Hugging Face ``BertForSequenceClassification`` teachers and on
:class:`~mudkd.core.modeling_pruned_bert.PrunedBertForSequenceClassification` (their module names are the same).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from mudkd.core import modeling_pruned_bert
from mudkd.core.modeling_pruned_bert import PrunedBertConfig, PrunedBertForSequenceClassification
from mudkd.core.models import UNTRAINED_ATTRIBUTE
from mudkd.errors import BudgetError, CheckpointError, DataError

SCORES_FILE = "importance.safetensors"
SUMMARY_FILE = "summary.json"
_SCORES_FORMAT = "mudkd-taylor-v1"
_BATCH_KEYS = ("input_ids", "attention_mask", "token_type_ids", "labels")


# --------------------------------------------------------------------------------------------------------------------
# Model introspection shared by scoring, pruning and fingerprints
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelShape:
    """The shape of a BERT encoder as far as pruning cares.

    Attributes:
        num_heads: Heads of each layer.
        head_size: Size of every head.
        ffn_sizes: FFN width of each layer.
        hidden_size: Model width.
        vocab_size: Rows of the word embedding.
    """

    num_heads: tuple[int, ...]
    head_size: int
    ffn_sizes: tuple[int, ...]
    hidden_size: int
    vocab_size: int

    @property
    def num_layers(self) -> int:
        """Number of encoder layers."""
        return len(self.num_heads)


def _encoder_layers(model: nn.Module) -> nn.ModuleList:
    """The encoder layers of a BERT classifier or bare BERT (HF or pruned)."""
    base = getattr(model, "bert", model)
    try:
        return base.encoder.layer
    except AttributeError:
        raise CheckpointError(
            f"{type(model).__name__} is not a BERT model (no encoder.layer)",
            hint="use a BertForSequenceClassification or a pruned-BERT student",
        ) from None


def _embeddings(model: nn.Module) -> nn.Module:
    return getattr(model, "bert", model).embeddings


def model_shape(model: nn.Module) -> ModelShape:
    """Read layer-by-layer head counts and FFN widths from a BERT (HF or pruned).

    Args:
        model: A ``BertForSequenceClassification``, ``BertModel`` or pruned-BERT model.

    Returns:
        The model's :class:`ModelShape`.
    """
    layers = _encoder_layers(model)
    embeddings = _embeddings(model)
    head_sizes = {int(layer.attention.self.attention_head_size) for layer in layers}
    if len(head_sizes) > 1:
        raise CheckpointError(f"layers have different head sizes {sorted(head_sizes)}; pruning needs one head size")
    return ModelShape(
        num_heads=tuple(int(layer.attention.self.num_attention_heads) for layer in layers),
        head_size=head_sizes.pop() if head_sizes else 0,
        ffn_sizes=tuple(int(layer.intermediate.dense.out_features) for layer in layers),
        hidden_size=int(embeddings.position_embeddings.embedding_dim),
        vocab_size=int(embeddings.word_embeddings.num_embeddings),
    )


def model_fingerprint(model: nn.Module) -> str:
    """A short hash (16 hex characters) of a BERT's shape and a cheap digest of its weights.

    It ties a score file to the teacher it was computed on. The digest hashes every parameter's name and shape
    plus up to 2,048 sampled values (its first values and an even stride), so any retraining or a different
    checkpoint changes it, without hashing the full weights. Weights its checkpoint did not hold (a classification
    head initialised at random on load, named by ``models.load_classifier``) are left out: they differ at every
    load, so scores of a raw MiniLM would otherwise never match it again.

    Args:
        model: A BERT model (HF or pruned).
    """
    shape, untrained = model_shape(model), getattr(model, UNTRAINED_ATTRIBUTE, frozenset())
    digest = hashlib.sha256()
    digest.update(repr(shape).encode())
    with torch.no_grad():
        for name, parameter in ((n, p) for n, p in model.named_parameters() if n not in untrained):
            flat = parameter.detach().reshape(-1)
            stride = max(1, flat.numel() // 1024)
            sample = torch.cat([flat[:1024], flat[::stride][:1024]]).to(device="cpu", dtype=torch.float32)
            digest.update(f"{name}:{tuple(parameter.shape)}".encode())
            digest.update(sample.numpy().tobytes())
    return digest.hexdigest()[:16]


# --------------------------------------------------------------------------------------------------------------------
# Taylor scores (method.md §5)
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class TaylorScores:
    """Per-layer first-order Taylor importance of attention heads and FFN neurons.

    Attributes:
        head_scores: One float64 tensor [heads_i] per layer: Σ I over the attention-output dense weight columns of
            each head (method.md §5).
        ffn_scores: One float64 tensor [ffn_i] per layer: Σ_j I(W_in[n, j]) + Σ_r I(W_out[r, n]).
        num_batches: Mini-batches accumulated.
        num_examples: Examples accumulated.
        head_size: Head size of the scored model.
        hidden_size: Hidden size of the scored model.
        fingerprint: :func:`model_fingerprint` of the scored model ("" if unknown).
    """

    head_scores: list[torch.Tensor]
    ffn_scores: list[torch.Tensor]
    num_batches: int
    num_examples: int
    head_size: int
    hidden_size: int
    fingerprint: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_layers(self) -> int:
        """Number of scored layers."""
        return len(self.head_scores)

    @property
    def num_heads(self) -> list[int]:
        """Heads of each scored layer."""
        return [int(scores.numel()) for scores in self.head_scores]

    @property
    def ffn_sizes(self) -> list[int]:
        """FFN width of each scored layer."""
        return [int(scores.numel()) for scores in self.ffn_scores]


def _scored_weights(layers: nn.ModuleList) -> list[tuple[nn.Parameter, nn.Parameter, nn.Parameter]]:
    """(attention-output W_O [hidden, heads*head_size], W_in [ffn, hidden], W_out [hidden, ffn]) of each layer."""
    return [
        (layer.attention.output.dense.weight, layer.intermediate.dense.weight, layer.output.dense.weight)
        for layer in layers
    ]


def compute_taylor_scores(
    model: nn.Module,
    batches: Iterable[Mapping[str, torch.Tensor]],
    *,
    device: str | torch.device = "cpu",
    on_step: Callable[[int, float], None] | None = None,
) -> TaylorScores:
    """Score every head and FFN neuron by first-order Taylor importance (method.md §5, Q23).

    The model runs in train mode (dropout on, as in the reference) and computes its own task loss against the
    batch's gold ``labels``. After each backward pass ``|grad|`` is added to an accumulator; no optimiser step is
    taken, so the weights are unchanged. Only the three weights the scores use receive gradients (others are
    frozen for the duration), which saves the large word-embedding gradient. Then ``I(w) = |w| ⊙ Σ_batches |g|``.

    Args:
        model: A BERT classifier (HF or pruned). It is moved to ``device``; its train/eval mode and
            ``requires_grad`` flags are restored afterwards.
        batches: Dicts of tensors with ``input_ids`` [batch, seq], ``labels`` [batch] and optionally
            ``attention_mask`` and ``token_type_ids`` [batch, seq]; other keys are ignored.
        device: Where to run.
        on_step: Called as ``on_step(step, loss)`` after each batch, ``step`` counting from 1.

    Returns:
        The :class:`TaylorScores`, with the model's fingerprint.

    Raises:
        DataError: If there are no batches, a batch lacks ``input_ids`` or ``labels``, or the loss is not finite.
    """
    layers = _encoder_layers(model)
    shape = model_shape(model)
    model.to(device)
    weights = _scored_weights(layers)
    scored_ids = {id(weight) for triple in weights for weight in triple}
    saved_flags = {name: parameter.requires_grad for name, parameter in model.named_parameters()}
    was_training = model.training
    # float32 like the reference's accumulators; the final reduction below is done in float64.
    accumulators = [tuple(torch.zeros_like(weight) for weight in triple) for triple in weights]
    num_batches = 0
    num_examples = 0
    try:
        for parameter in model.parameters():
            parameter.requires_grad_(id(parameter) in scored_ids)
        model.train()
        for batch in batches:
            missing = [key for key in ("input_ids", "labels") if key not in batch]
            if missing:
                raise DataError(f"Taylor scoring batch {num_batches + 1} has no {', '.join(missing)}")
            inputs = {key: batch[key].to(device) for key in _BATCH_KEYS if key in batch}
            model.zero_grad(set_to_none=True)
            loss = model(**inputs).loss
            if not torch.isfinite(loss):
                raise DataError(f"Taylor scoring loss is {loss.item()} at batch {num_batches + 1}")
            loss.backward()
            with torch.no_grad():
                for triple, sums in zip(weights, accumulators, strict=True):
                    for weight, total in zip(triple, sums, strict=True):
                        total.add_(weight.grad.abs())
            num_batches += 1
            num_examples += int(inputs["input_ids"].shape[0])
            if on_step is not None:
                on_step(num_batches, float(loss.detach()))
    finally:
        model.zero_grad(set_to_none=True)
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(saved_flags[name])
        model.train(was_training)
    if num_batches == 0:
        raise DataError("Taylor scoring got no batches", hint="check the training data and batch size")

    head_scores, ffn_scores = [], []
    with torch.no_grad():
        for (w_o, w_in, w_out), (g_o, g_in, g_out), heads in zip(weights, accumulators, shape.num_heads, strict=True):
            importance_o = (w_o.double().abs() * g_o.double()).cpu()  # [hidden, heads * head_size]
            importance_in = (w_in.double().abs() * g_in.double()).cpu()  # [ffn, hidden]
            importance_out = (w_out.double().abs() * g_out.double()).cpu()  # [hidden, ffn]
            head_scores.append(importance_o.view(importance_o.shape[0], heads, shape.head_size).sum(dim=(0, 2)))
            ffn_scores.append(importance_in.sum(dim=1) + importance_out.sum(dim=0))
    return TaylorScores(
        head_scores=head_scores,
        ffn_scores=ffn_scores,
        num_batches=num_batches,
        num_examples=num_examples,
        head_size=shape.head_size,
        hidden_size=shape.hidden_size,
        fingerprint=model_fingerprint(model),
    )


def save_scores(
    scores: TaylorScores,
    directory: str | Path,
    *,
    model_fingerprint: str,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``importance.safetensors`` (tensors ``layer.{i}.heads`` and ``layer.{i}.ffn``) and ``summary.json``.

    Args:
        scores: The scores to save.
        directory: Output directory (created if missing).
        model_fingerprint: :func:`model_fingerprint` of the scored teacher, checked by :func:`load_scores`.
        extra: JSON-serialisable provenance (task, data, seed...) stored in both files.

    Returns:
        The path of ``importance.safetensors``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    extra = dict(extra or {})
    tensors = {}
    for index, (heads, ffn) in enumerate(zip(scores.head_scores, scores.ffn_scores, strict=True)):
        tensors[f"layer.{index}.heads"] = heads.detach().to("cpu", torch.float64).contiguous()
        tensors[f"layer.{index}.ffn"] = ffn.detach().to("cpu", torch.float64).contiguous()
    metadata = {
        "format": _SCORES_FORMAT,
        "fingerprint": model_fingerprint,
        "num_layers": str(scores.num_layers),
        "num_heads": json.dumps(scores.num_heads),
        "ffn_sizes": json.dumps(scores.ffn_sizes),
        "head_size": str(scores.head_size),
        "hidden_size": str(scores.hidden_size),
        "num_batches": str(scores.num_batches),
        "num_examples": str(scores.num_examples),
        "extra": json.dumps(extra),
    }
    path = directory / SCORES_FILE
    save_file(tensors, str(path), metadata=metadata)

    def stats(values: torch.Tensor) -> dict[str, float]:
        return {"min": float(values.min()), "mean": float(values.mean()), "max": float(values.max())}

    summary = {
        "format": _SCORES_FORMAT,
        "fingerprint": model_fingerprint,
        "num_batches": scores.num_batches,
        "num_examples": scores.num_examples,
        "head_size": scores.head_size,
        "extra": extra,
        "layers": [
            {
                "layer": index,
                "num_heads": int(heads.numel()),
                "ffn_size": int(ffn.numel()),
                "heads": stats(heads) if heads.numel() else None,
                "ffn": stats(ffn) if ffn.numel() else None,
                # Heads in descending score order: the first `keep_heads` of them survive pruning.
                "top_heads": torch.argsort(heads, descending=True, stable=True).tolist(),
            }
            for index, (heads, ffn) in enumerate(zip(scores.head_scores, scores.ffn_scores, strict=True))
        ],
    }
    (directory / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return path


def load_scores(
    directory: str | Path,
    *,
    expect_fingerprint: str | None = None,
    model: nn.Module | None = None,
) -> TaylorScores:
    """Read scores written by :func:`save_scores` and check they belong to the expected model.

    Args:
        directory: Directory holding ``importance.safetensors``.
        expect_fingerprint: If given, the stored fingerprint must equal it.
        model: If given, its layer, head and FFN shapes must match the scores (and, when ``expect_fingerprint`` is
            None, its fingerprint is expected).

    Returns:
        The scores, with ``fingerprint`` and ``extra`` filled from the file.

    Raises:
        CheckpointError: If the file is missing or malformed, holds nan/inf scores, or the scores were computed
            for another model.
    """
    path = Path(directory) / SCORES_FILE
    if not path.is_file():
        raise CheckpointError(f"no importance scores at {path}", hint="compute Taylor scores for this teacher first")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            num_layers = int(metadata["num_layers"])
            head_scores = [handle.get_tensor(f"layer.{index}.heads") for index in range(num_layers)]
            ffn_scores = [handle.get_tensor(f"layer.{index}.ffn") for index in range(num_layers)]
        if metadata.get("format") != _SCORES_FORMAT:
            raise ValueError(f"format is {metadata.get('format')!r}, expected {_SCORES_FORMAT!r}")
        scores = TaylorScores(
            head_scores=head_scores,
            ffn_scores=ffn_scores,
            num_batches=int(metadata["num_batches"]),
            num_examples=int(metadata["num_examples"]),
            head_size=int(metadata["head_size"]),
            hidden_size=int(metadata["hidden_size"]),
            fingerprint=metadata["fingerprint"],
            extra=json.loads(metadata.get("extra", "{}")),
        )
    except Exception as error:  # any parse failure means the same thing to the user: recompute
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(
            f"malformed importance scores at {path}: {message}", hint="recompute the Taylor scores"
        ) from error
    for kind, tensors in (("heads", head_scores), ("ffn", ffn_scores)):
        for index, tensor in enumerate(tensors):
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise CheckpointError(
                    f"{path}: importance scores layer.{index}.{kind} hold non-finite values (nan or inf)",
                    hint="recompute the Taylor scores with 'mudkd score' (a teacher with nan/inf weights gives these)",
                )

    if model is not None:
        check_scores_match(scores, model, source=str(path))
        if expect_fingerprint is None:
            expect_fingerprint = model_fingerprint(model)
    if expect_fingerprint is not None and scores.fingerprint != expect_fingerprint:
        raise CheckpointError(
            f"scores at {path} were computed for another model "
            f"(fingerprint {scores.fingerprint}, this model {expect_fingerprint})",
            hint="recompute the Taylor scores for this teacher",
        )
    return scores


def check_scores_match(scores: TaylorScores, model: nn.Module, *, source: str = "scores") -> None:
    """Raise ``CheckpointError`` unless ``scores`` have one entry per head and FFN neuron of ``model``.

    Args:
        scores: Scores to check.
        model: The model they should describe.
        source: Where the scores came from, for the message.
    """
    shape = model_shape(model)
    if tuple(scores.num_heads) != shape.num_heads or tuple(scores.ffn_sizes) != shape.ffn_sizes:
        raise CheckpointError(
            f"{source} were computed for another model "
            f"(heads {scores.num_heads}, FFN {scores.ffn_sizes}; "
            f"this model has heads {list(shape.num_heads)}, FFN {list(shape.ffn_sizes)})",
            hint="recompute the Taylor scores for this teacher",
        )


# --------------------------------------------------------------------------------------------------------------------
# Structured pruning (method.md §6)
# --------------------------------------------------------------------------------------------------------------------


def validate_prune_budget(
    shape: ModelShape,
    *,
    keep_heads: int,
    num_layers: int | None,
    layers: list[int] | None,
    ffn_hidden_dim: int,
    emb_hidden_dim: int,
) -> list[int]:
    """Check the pruning budget against the teacher and return the 0-based teacher layers to keep."""
    depth = shape.num_layers
    if layers is not None and num_layers is not None:
        raise BudgetError("give either num_layers or layers, not both", hint="use layers for an explicit choice")
    if layers is None:
        count = depth if num_layers is None else num_layers
        if not 1 <= count <= depth:
            raise BudgetError(
                f"num_layers={count} is outside 1..{depth} (the teacher has {depth} layers)",
                hint=f"choose num_layers between 1 and {depth}",
            )
        kept = list(range(count))
    else:
        kept = [int(index) for index in layers]
        if not kept:
            raise BudgetError("layers is empty", hint=f"list 0-based teacher layers between 0 and {depth - 1}")
        bad = [index for index in kept if not 0 <= index < depth]
        if bad:
            raise BudgetError(
                f"layers {bad} out of range (the teacher has {depth} layers, 0-based)",
                hint=f"use indices between 0 and {depth - 1}",
            )
        if len(set(kept)) != len(kept):
            raise BudgetError(f"layers {kept} has duplicates", hint="list each teacher layer once")
    for index in kept:
        heads, ffn = shape.num_heads[index], shape.ffn_sizes[index]
        if not 1 <= keep_heads <= heads:
            raise BudgetError(
                f"keep_heads={keep_heads} is outside 1..{heads} (teacher layer {index} has {heads} heads)",
                hint=f"choose keep_heads between 1 and {heads}",
            )
        if not 1 <= ffn_hidden_dim <= ffn:
            raise BudgetError(
                f"ffn_hidden_dim={ffn_hidden_dim} is outside 1..{ffn} (teacher layer {index} FFN width is {ffn})",
                hint=f"choose ffn_hidden_dim between 1 and {ffn}",
            )
    max_rank = min(shape.vocab_size, shape.hidden_size)
    if emb_hidden_dim != -1 and not 1 <= emb_hidden_dim <= max_rank:
        raise BudgetError(
            f"emb_hidden_dim={emb_hidden_dim} must be -1 (no factorisation) or between 1 and {max_rank}",
            hint=f"use -1 or a rank between 1 and min(vocab, hidden) = {max_rank}",
        )
    return kept


def _head_rows(heads: torch.Tensor, head_size: int) -> torch.Tensor:
    """Row (or column) indices of the given heads, head by head in the given order: [len(heads) * head_size]."""
    offsets = torch.arange(head_size)
    return (heads[:, None] * head_size + offsets[None, :]).reshape(-1)


def _copy_linear(target: nn.Linear, source: nn.Linear, *, rows: torch.Tensor | None = None, cols=None) -> None:
    """Copy ``source`` into ``target``, keeping only ``rows`` (outputs, with bias) and ``cols`` (inputs)."""
    weight = source.weight.detach()
    bias = source.bias.detach() if source.bias is not None else None
    if rows is not None:
        weight = weight.index_select(0, rows.to(weight.device))
        bias = bias.index_select(0, rows.to(weight.device)) if bias is not None else None
    if cols is not None:
        weight = weight.index_select(1, cols.to(weight.device))
    target.weight.copy_(weight)
    if bias is not None:
        target.bias.copy_(bias)


def _word_embedding_matrix(embeddings: nn.Module) -> torch.Tensor:
    """The effective word-embedding matrix [vocab, hidden] (re-composed if already factorised)."""
    matrix = embeddings.word_embeddings.weight.detach()
    projection = getattr(embeddings, "word_embeddings_proj", None)
    if projection is not None:
        matrix = matrix.double() @ projection.weight.detach().double().T
    return matrix


def factorise_embedding(matrix: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Best rank-``rank`` factorisation of an embedding matrix by thin SVD in float64 (method.md §6, Q20).

    Args:
        matrix: Word embeddings E, [vocab, hidden].
        rank: Rank r, at most min(vocab, hidden).

    Returns:
        ``(codes, projection)``: codes = U[:, :r]·diag(S[:r]) [vocab, r] and projection = Vh[:r]ᵀ [hidden, r] (a
        ``Linear(r, hidden)`` weight), so ``codes @ projection.T`` ≈ E. Both float64.
    """
    left, singular, right_t = torch.linalg.svd(matrix.double(), full_matrices=False)
    codes = left[:, :rank] * singular[:rank]
    projection = right_t[:rank].T.contiguous()
    return codes, projection


def _student_config(teacher: nn.Module, shape: ModelShape, **sizes: Any) -> PrunedBertConfig:
    """A pruned-BERT config inheriting the teacher's BERT fields and labels."""
    config = teacher.config
    fields = {
        name: getattr(config, name)
        for name in (
            "vocab_size",
            "hidden_size",
            "hidden_act",
            "hidden_dropout_prob",
            "attention_probs_dropout_prob",
            "max_position_embeddings",
            "type_vocab_size",
            "initializer_range",
            "layer_norm_eps",
            "pad_token_id",
            "classifier_dropout",
            "problem_type",
            "id2label",
            "label2id",
        )
        if getattr(config, name, None) is not None
    }
    return PrunedBertConfig(**fields, attention_head_size=shape.head_size, **sizes)


@torch.no_grad()
def prune_bert(
    teacher: nn.Module,
    scores: TaylorScores,
    *,
    keep_heads: int,
    num_layers: int | None = None,
    layers: list[int] | None = None,
    ffn_hidden_dim: int,
    emb_hidden_dim: int,
) -> PrunedBertForSequenceClassification:
    """Build a pruned-BERT student from a teacher and its Taylor scores (method.md §6).

    Per kept teacher layer (its own scores; the reference's Q19 counter bug is not copied): the top ``keep_heads``
    heads in ``torch.topk`` order (descending score) — Q/K/V rows and biases sliced in head-size chunks, the
    attention-output input columns in the same order, its bias unchanged — and the top ``ffn_hidden_dim`` FFN
    neurons in their original order — intermediate rows and bias, output columns, output bias unchanged. The word
    embedding is factorised to rank ``emb_hidden_dim`` by a float64 thin SVD; everything else is copied.

    Args:
        teacher: A BERT classifier (HF ``BertForSequenceClassification`` or pruned-BERT). Not modified.
        scores: Taylor scores of ``teacher``.
        keep_heads: Heads kept per layer, 1..heads.
        num_layers: Keep the first ``num_layers`` layers (the reference); default all. Exclusive with ``layers``.
        layers: Explicit 0-based teacher layers to keep, in the order they are stacked in the student.
        ffn_hidden_dim: FFN neurons kept per layer, 1..FFN width.
        emb_hidden_dim: Embedding rank, 1..min(vocab, hidden), or -1 for no factorisation.

    Returns:
        The student in eval mode, on the teacher's device and dtype.

    Raises:
        BudgetError: If a budget does not fit the teacher.
        CheckpointError: If the scores do not match the teacher's shape.
    """
    shape = model_shape(teacher)
    check_scores_match(scores, teacher)
    kept_layers = validate_prune_budget(
        shape,
        keep_heads=keep_heads,
        num_layers=num_layers,
        layers=layers,
        ffn_hidden_dim=ffn_hidden_dim,
        emb_hidden_dim=emb_hidden_dim,
    )
    config = _student_config(
        teacher,
        shape,
        num_hidden_layers=len(kept_layers),
        num_attention_heads=keep_heads,
        intermediate_size=ffn_hidden_dim,
        num_heads_per_layer=[keep_heads] * len(kept_layers),
        intermediate_sizes=[ffn_hidden_dim] * len(kept_layers),
        emb_hidden_dim=emb_hidden_dim,
        num_labels=teacher.config.num_labels,
    )
    reference = next(teacher.parameters())
    student = PrunedBertForSequenceClassification(config).to(device=reference.device, dtype=reference.dtype)

    source_embeddings, target_embeddings = _embeddings(teacher), student.bert.embeddings
    matrix = _word_embedding_matrix(source_embeddings)
    if emb_hidden_dim == -1:
        target_embeddings.word_embeddings.weight.copy_(matrix)
    else:
        codes, projection = factorise_embedding(matrix, emb_hidden_dim)
        target_embeddings.word_embeddings.weight.copy_(codes)
        target_embeddings.word_embeddings_proj.weight.copy_(projection)
    for name in ("position_embeddings", "token_type_embeddings", "LayerNorm"):
        getattr(target_embeddings, name).load_state_dict(getattr(source_embeddings, name).state_dict())

    teacher_layers = _encoder_layers(teacher)
    for student_layer, teacher_index in zip(student.bert.encoder.layer, kept_layers, strict=True):
        source = teacher_layers[teacher_index]
        heads = torch.topk(scores.head_scores[teacher_index].detach().cpu(), keep_heads).indices
        head_index = _head_rows(heads, shape.head_size)
        for name in ("query", "key", "value"):
            _copy_linear(
                getattr(student_layer.attention.self, name), getattr(source.attention.self, name), rows=head_index
            )
        _copy_linear(student_layer.attention.output.dense, source.attention.output.dense, cols=head_index)
        student_layer.attention.output.LayerNorm.load_state_dict(source.attention.output.LayerNorm.state_dict())

        neurons = torch.topk(scores.ffn_scores[teacher_index].detach().cpu(), ffn_hidden_dim).indices.sort().values
        _copy_linear(student_layer.intermediate.dense, source.intermediate.dense, rows=neurons)
        _copy_linear(student_layer.output.dense, source.output.dense, cols=neurons)
        student_layer.output.LayerNorm.load_state_dict(source.output.LayerNorm.state_dict())

    teacher_base = getattr(teacher, "bert", teacher)
    if teacher_base.pooler is None:
        raise CheckpointError("the teacher has no pooler", hint="use a BertForSequenceClassification teacher")
    student.bert.pooler.dense.load_state_dict(teacher_base.pooler.dense.state_dict())
    student.classifier.load_state_dict(teacher.classifier.state_dict())
    return student.eval()


# --------------------------------------------------------------------------------------------------------------------
# Sizes and saving
# --------------------------------------------------------------------------------------------------------------------


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Count parameters per component of a BERT classifier (HF or pruned).

    Args:
        model: The model.

    Returns:
        ``{"embeddings", "encoder", "pooler", "classifier", "total"}``; ``total`` counts every parameter (shared
        ones once), including any outside the four components.
    """
    counts = {"embeddings": 0, "encoder": 0, "pooler": 0, "classifier": 0}
    for name, parameter in model.named_parameters():
        component = name.removeprefix("bert.").split(".", 1)[0]
        if component in counts:
            counts[component] += parameter.numel()
    counts["total"] = sum(parameter.numel() for parameter in model.parameters())
    return counts


def save_pruned(model: PrunedBertForSequenceClassification, tokenizer: Any, directory: str | Path) -> Path:
    """Save a student as a ``save_pretrained`` directory loadable with or without mudkd installed.

    Writes safetensors weights, ``config.json`` (with ``auto_map``), the tokenizer and a copy of
    ``modeling_pruned_bert.py``, so that ``AutoModelForSequenceClassification.from_pretrained(directory,
    trust_remote_code=True)`` works anywhere, and without ``trust_remote_code`` once
    :func:`~mudkd.core.modeling_pruned_bert.register` has run.

    Args:
        model: The pruned student.
        tokenizer: Its tokenizer (the teacher's), or None to skip.
        directory: Output directory (created if missing).

    Returns:
        The directory.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    shutil.copyfile(Path(modeling_pruned_bert.__file__), directory / "modeling_pruned_bert.py")
    return directory
