"""Hidden-state knowledge (HSK): teacher targets under a budget, the HSK loss and the store's array format.

The processing order is the reference's (method.md §8, §12): depth (which teacher hidden state) → length (which
tokens, ranked by the teacher's [CLS] attention) → width (which dimensions or magnitudes). The resolved
:class:`~mudkd.knowledge.budget.KnowledgeBudget` says what to keep; this module does it on tensors.

Determinism: every ranking here (tokens by score, values by magnitude) breaks ties by position, lower first, via a
stable descending sort. A top-k' is therefore always the prefix of a top-k with k' ≤ k, which is what lets a store
built for a larger budget serve a smaller one exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mudkd.errors import BudgetError, StoreError
from mudkd.knowledge import KnowledgeBudget, MagScope, MaskMode, TokenScheme, kept_count
from mudkd.knowledge.serving import serving_plan

#: The reference's additive attention mask at padded keys, and the score it forces onto [SEP] tokens.
MASK_SCORE = -10000.0


def cls_attention_scores(
    layer: nn.Module, hidden_in: Tensor, attention_mask: Tensor | None = None, *, average_heads: bool = True
) -> Tensor:
    """Pre-softmax attention scores of the [CLS] query in one BERT layer, as the reference ranks tokens (§10).

    Only the [CLS] query row is computed (no eager attention, no hooks): per head,
    ``score[h, t] = (q_0 · k_t) / √head_size + m_t`` with ``m_t = −10000`` at padded keys and 0 elsewhere,
    then averaged over heads.

    Args:
        layer: An HF ``BertLayer`` (or a pruned layer) exposing ``attention.self.query/key`` and
            ``attention.self.num_attention_heads/attention_head_size``.
        hidden_in: The layer's input ``[batch, seq, hidden]``: ``hidden_states[a]`` for layer ``a + 1``.
        attention_mask: ``[batch, seq]``, 1 on real tokens and 0 on padding; None means no padding.
        average_heads: Return the head average ``[batch, seq]`` (default) or the per-head scores
            ``[batch, heads, seq]``.

    Returns:
        Scores ``[batch, seq]`` (or ``[batch, heads, seq]``) in the dtype of ``hidden_in``.
    """
    attention = layer.attention.self
    heads = attention.num_attention_heads
    head_size = attention.attention_head_size
    batch, seq_len, _ = hidden_in.shape
    query = attention.query(hidden_in[:, :1]).view(batch, heads, head_size)
    key = attention.key(hidden_in).view(batch, seq_len, heads, head_size)
    scores = torch.einsum("bhd,bthd->bht", query, key) / math.sqrt(head_size)
    if attention_mask is not None:
        # Added per head before averaging, exactly like the reference's extended attention mask.
        scores = scores + (1.0 - attention_mask[:, None, :].to(scores.dtype)) * MASK_SCORE
    return scores.mean(dim=1) if average_heads else scores


def select_tokens(
    scheme: str,
    k: int,
    scores: Tensor | None,
    input_ids: Tensor,
    attention_mask: Tensor | None,
    sep_token_id: int,
    *,
    exclude_padding: bool = False,
) -> Tensor:
    """Choose k token positions per example (method.md §10).

    * ``left_first``: positions 0..k−1 (padding included when the example is shorter than k).
    * ``attention``: the k highest scores, in descending order.
    * ``attention_no_sep``: the same after setting the score of **every** [SEP] of **each** example to exactly
      −10000 (per example, fixing quirk Q7, so pairs and single sentences can share a batch).

    Ties are broken by position, lower first (a stable descending sort), so the result is deterministic and the
    top-k' is a prefix of the top-k. As in the reference (Q6), once k exceeds an example's real non-[SEP] tokens
    the [SEP]s (−10000) and padding (raw score − 10000) are picked in the order of those numbers.

    With ``exclude_padding`` (mudkd's storable default, ``hsk.pad_tokens = "exclude"``) padding is never chosen:
    the example's n real tokens fill slots 0..n−1 in the scheme's order and every slot j ≥ n holds the placeholder
    position j, which :func:`token_validity` marks as carrying no target and no loss. The result then depends only
    on the example itself, not on how far its batch is padded, and k may exceed the batch's padded length.
    Why this rule and not the reference's: the reference's choice among padding positions depends on the padded
    length T (left_first takes pads 0..k−1, attention ranks pads by raw score − 10000 over all T − n of them), so
    it is only defined for batches padded to ``max_seq_length``; it is kept reachable for parity
    (``hsk.pad_tokens = "reference"``, which pads HSK batches to ``max_seq_length``).

    Args:
        scheme: ``left_first``, ``attention`` or ``attention_no_sep``.
        k: Tokens to keep, 1..seq.
        scores: ``[batch, seq]`` from :func:`cls_attention_scores` (unused by ``left_first``; may be None there).
        input_ids: ``[batch, seq]``, used to find the [SEP]s.
        attention_mask: ``[batch, seq]``; padding is already in ``scores``, so it is only shape-checked.
        sep_token_id: Id of [SEP] in the tokenizer in use.

    Returns:
        LongTensor ``[batch, k]`` of positions.

    Raises:
        BudgetError: On an unknown scheme, k out of range, or missing/misshaped scores.
    """
    batch, seq_len = input_ids.shape
    if not 1 <= k <= (k if exclude_padding else seq_len):
        raise BudgetError(f"keep_tokens must be between 1 and {seq_len} (got {k})", "lower keep_tokens")
    if attention_mask is not None and attention_mask.shape != input_ids.shape:
        raise BudgetError(
            f"attention_mask shape {tuple(attention_mask.shape)} differs from input_ids {tuple(input_ids.shape)}",
            "pass the tokenizer's attention_mask for the same batch",
        )
    if scheme == TokenScheme.LEFT_FIRST:
        return torch.arange(k, device=input_ids.device).expand(batch, k).clone()
    if scheme not in TokenScheme.values():
        raise BudgetError(f"token_scheme: unknown value {scheme!r}", f"use one of {', '.join(TokenScheme.values())}")
    if scores is None or scores.shape != input_ids.shape:
        got = None if scores is None else tuple(scores.shape)
        raise BudgetError(
            f"token scheme {scheme} needs [CLS] scores of shape {tuple(input_ids.shape)} (got {got})",
            "compute them with cls_attention_scores",
        )
    if scheme == TokenScheme.ATTENTION_NO_SEP:
        scores = scores.masked_fill(input_ids == sep_token_id, MASK_SCORE)
    if not exclude_padding:
        return torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
    if attention_mask is not None:  # padding sorts last, in position order, so slot j >= n holds position j
        scores = scores.masked_fill(attention_mask == 0, float("-inf"))
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
    if k > seq_len:
        beyond = torch.arange(seq_len, k, device=input_ids.device).expand(batch, -1)
        order = torch.cat([order, beyond], dim=1)
    return order


def token_validity(token_index: Tensor, lengths: Tensor) -> Tensor:
    """Which chosen token slots hold a real token, under ``exclude_padding``: ``token_index < length``.

    Args:
        token_index: ``[batch, k]`` positions from :func:`select_tokens` (or a store).
        lengths: ``[batch]`` real token counts (``attention_mask.sum(1)``), independent of the batch's padding.

    Returns:
        BoolTensor ``[batch, k]``.
    """
    return token_index < lengths.to(token_index.device)[:, None]


def gather_tokens(states: Tensor, token_index: Tensor | None) -> Tensor:
    """Pick tokens from hidden states.

    Args:
        states: ``[batch, seq, hidden]``.
        token_index: ``[batch, k]`` positions, or None for all tokens in order.

    Returns:
        ``[batch, k, hidden]`` (``states`` itself when ``token_index`` is None).
    """
    if token_index is None:
        return states
    # A placeholder slot (exclude_padding) may point past the batch's padded length: read any position there,
    # the slot is zeroed and carries no loss.
    batch, seq_len, hidden = states.shape
    token_index = token_index.clamp(max=seq_len - 1)
    # One index_select of whole rows of the flattened states: the same copy as a gather along dim 1 (so the same
    # values and, its backward being an index_add into zeros, the same gradients), several times faster on a CPU.
    rows = token_index + torch.arange(0, batch * seq_len, seq_len, device=token_index.device)[:, None]
    return states.reshape(batch * seq_len, hidden).index_select(0, rows.reshape(-1)).view(*token_index.shape, hidden)


def _magnitude_order(keys: Tensor, count: int) -> Tensor:
    """Flat positions ``[batch, count]`` of the largest ``keys`` per row, descending, ties by position."""
    return torch.sort(keys, dim=1, descending=True, stable=True).indices[:, :count]


def magnitude_mask(target: Tensor, rho: float, scope: str) -> Tensor:
    """The magnitude mask ("Mag Mask", ``importance_mask_dynamic``) of method.md §11.

    * ``example`` (storable; the default): per example, exactly n = ⌊ρ·k·d⌋ entries with the largest |value|,
      ties broken by flat position (lower first).
    * ``batch`` (reference, Q5): n = ⌊ρ·B·k·d⌋, τ = the n-th largest |value| of the whole batch tensor, and
      mask = |value| ≥ τ, so ties keep a few extra entries and the count per example varies.

    Args:
        target: Teacher HSK after token selection, ``[batch, k, d]``.
        rho: Kept fraction ρ in (0, 1].
        scope: ``example`` or ``batch``.

    Returns:
        BoolTensor ``[batch, k, d]``, True where the value is kept.

    Raises:
        BudgetError: On an unknown scope or a ρ that keeps nothing.
    """
    magnitude = target.detach().abs()
    if scope == MagScope.EXAMPLE:
        flat = magnitude.reshape(target.shape[0], -1)
        count = kept_count(flat.shape[1], rho)
        if count < 1:
            raise BudgetError(f"keep_hidden = {rho} keeps no value of {flat.shape[1]}", "raise keep_hidden")
        mask = torch.zeros_like(flat, dtype=torch.bool)
        mask.scatter_(1, _magnitude_order(flat, count), True)
        return mask.view(target.shape)
    if scope == MagScope.BATCH:
        count = kept_count(magnitude.numel(), rho)
        if count < 1:
            raise BudgetError(f"keep_hidden = {rho} keeps no value of {magnitude.numel()}", "raise keep_hidden")
        threshold = torch.topk(magnitude.reshape(-1), count).values[-1]
        return magnitude >= threshold
    raise BudgetError(f"mag_scope: unknown value {scope!r}", f"use one of {', '.join(MagScope.values())}")


@dataclass
class LayerTarget:
    """The teacher HSK one student layer learns from.

    Attributes:
        student_layer: Student hidden-state index s_j (0 = embeddings).
        teacher_layer: Teacher hidden-state index t_j.
        token_index: LongTensor ``[batch, k]`` of chosen positions, or None for all tokens in natural order.
        target: Teacher values ``[batch, k, d]``, zero where masked.
        mask: BoolTensor ``[batch, k, d]`` (True = supervised), or None when all values are kept.
        valid: BoolTensor ``[batch, k]``, False on placeholder slots past an example's real tokens (which carry
            no loss, see :func:`select_tokens`), or None when every slot is a token (the reference rule).
    """

    student_layer: int
    teacher_layer: int
    token_index: Tensor | None
    target: Tensor
    mask: Tensor | None
    valid: Tensor | None = None


def _apply_width(states: Tensor, budget: KnowledgeBudget) -> tuple[Tensor, Tensor | None]:
    """Mask ``states [batch, k, d]`` to the budget's width; returns (target zeroed where masked, mask or None)."""
    if budget.magnitude_mask:
        mask = magnitude_mask(states, budget.keep_hidden, budget.mag_scope)
    elif budget.static_mask:
        keep = torch.zeros(states.shape[-1], dtype=torch.bool, device=states.device)
        keep[list(budget.width_dims or [])] = True
        mask = keep.expand(states.shape)
    else:
        return states, None
    return states.masked_fill(~mask, 0.0), mask


def _encoder_layers(teacher: nn.Module | Sequence[nn.Module]) -> Sequence[nn.Module]:
    """The teacher's Transformer layers: ``teacher.bert.encoder.layer`` (or ``teacher.encoder.layer``)."""
    if isinstance(teacher, (nn.ModuleList, list, tuple)):
        return teacher
    for owner in (getattr(teacher, "bert", None), teacher):
        encoder = getattr(owner, "encoder", None)
        if encoder is not None and hasattr(encoder, "layer"):
            return encoder.layer
    raise BudgetError(
        f"cannot find the encoder layers of {type(teacher).__name__}",
        "pass an HF BERT model (BertModel or BertForSequenceClassification)",
    )


def build_targets(
    teacher: nn.Module | Sequence[nn.Module],
    hidden_states: Sequence[Tensor],
    input_ids: Tensor,
    attention_mask: Tensor,
    budget: KnowledgeBudget,
    *,
    sep_token_id: int,
    exclude_padding: bool = False,
) -> list[LayerTarget]:
    """Teacher HSK targets for one batch: depth → length → width (method.md §8, §12).

    The caller runs the teacher in eval mode under ``torch.no_grad()`` with ``output_hidden_states=True``. Token
    scores for layer j come from :func:`cls_attention_scores` of teacher layer ``a_j + 1`` on its input
    ``hidden_states[a_j]``; layers sharing an attention layer share its scores.

    Args:
        teacher: The teacher (its encoder layers are only used to rank tokens), or its list of layers.
        hidden_states: The teacher's L_T + 1 hidden states, each ``[batch, seq, d]``.
        input_ids: ``[batch, seq]``.
        attention_mask: ``[batch, seq]``, 1 on real tokens.
        budget: The resolved budget.
        sep_token_id: Id of [SEP].
        exclude_padding: Never target padding (:func:`select_tokens`): each example's targets are then the same
            whatever its batch's padded length, and a budget keeping all tokens keeps slots 0..T−1 with the slots
            past the example's length empty.

    Returns:
        One :class:`LayerTarget` per kept layer, in the budget's order.

    Raises:
        BudgetError: If the hidden states do not match the budget's teacher.
    """
    if len(hidden_states) != budget.num_teacher_layers + 1:
        raise BudgetError(
            f"the teacher returned {len(hidden_states)} hidden states, the budget expects "
            f"{budget.num_teacher_layers + 1}",
            "resolve the budget with the teacher's num_hidden_layers",
        )
    if hidden_states[0].shape[-1] != budget.teacher_hidden:
        raise BudgetError(
            f"the teacher's width is {hidden_states[0].shape[-1]}, the budget expects {budget.teacher_hidden}",
            "resolve the budget with the teacher's hidden_size",
        )
    layers = _encoder_layers(teacher) if budget.uses_attention_scores else None
    scores_by_layer: dict[int, Tensor] = {}
    targets = []
    for student_layer, teacher_layer, attention_layer in zip(
        budget.student_layers, budget.teacher_layers, budget.attention_layers, strict=True
    ):
        states = hidden_states[teacher_layer]
        token_index = valid = None
        if exclude_padding and not budget.token_selection_active:
            token_index = torch.arange(budget.keep_tokens, device=input_ids.device).expand(len(input_ids), -1)
        elif budget.token_selection_active:
            scores = None
            if layers is not None:
                if attention_layer not in scores_by_layer:
                    scores_by_layer[attention_layer] = cls_attention_scores(
                        layers[attention_layer], hidden_states[attention_layer], attention_mask
                    )
                scores = scores_by_layer[attention_layer]
            token_index = select_tokens(
                budget.token_scheme,
                budget.keep_tokens,
                scores,
                input_ids,
                attention_mask,
                sep_token_id,
                exclude_padding=exclude_padding,
            )
        if token_index is not None:
            states = gather_tokens(states, token_index)
        if exclude_padding:
            valid = token_validity(token_index, attention_mask.sum(dim=1))
            states = states.masked_fill(~valid[:, :, None], 0.0)
        target, mask = _apply_width(states, budget)
        targets.append(LayerTarget(student_layer, teacher_layer, token_index, target, mask, valid))
    return targets


def hsk_loss(
    student_hidden_states: Sequence[Tensor], targets: Sequence[LayerTarget], mask_mode: str
) -> tuple[Tensor, list[Tensor]]:
    """The HSK loss, summed (not averaged) over distilled layers (method.md §8, §11).

    Per layer, the student state ``S[s_j]`` is gathered at the target's token positions, then:

    * ``teacher_only`` (reference, Q3): mean of (S − T)² over **all** batch·k·d elements, T being zero where
      masked, so the student is pulled to 0 there.
    * ``both``: Σ mask·(S − T)² / Σ mask — the mean over the **kept** elements only; masked entries carry no
      supervision. Without a mask both modes are the plain MSE.

    Placeholder slots past an example's real tokens (``valid`` False, :func:`select_tokens`) are left out of both
    the sum and the count, in either mode.

    Args:
        student_hidden_states: The student's L_S + 1 hidden states ``[batch, seq, d]``, already projected to the
            teacher width d (TinyBERT's fit_dense) by the caller.
        targets: From :func:`build_targets` or :func:`unpack_targets`.
        mask_mode: ``both`` or ``teacher_only``.

    Returns:
        ``(total, per_layer)``: a scalar and one scalar per target.

    Raises:
        BudgetError: On an unknown mask mode or no targets.
    """
    if mask_mode not in MaskMode.values():
        raise BudgetError(f"mask_mode: unknown value {mask_mode!r}", f"use one of {', '.join(MaskMode.values())}")
    if not targets:
        raise BudgetError("no HSK targets to distil", "keep at least one layer (keep_layers >= 1)")
    per_layer = []
    for layer_target in targets:
        student = gather_tokens(student_hidden_states[layer_target.student_layer], layer_target.token_index)
        teacher = layer_target.target.to(student.dtype)
        valid = layer_target.valid
        if valid is not None and bool(valid.all()):
            valid = None  # every slot is a token: exactly the reference's arithmetic
        if (layer_target.mask is None or mask_mode == MaskMode.TEACHER_ONLY) and valid is None:
            per_layer.append(F.mse_loss(student, teacher))
            continue
        if layer_target.mask is None or mask_mode == MaskMode.TEACHER_ONLY:
            weight = valid[:, :, None].expand(student.shape).to(student.dtype)  # type: ignore[index]
        else:
            kept = layer_target.mask if valid is None else layer_target.mask & valid[:, :, None]
            weight = kept.to(student.dtype)
        per_layer.append(((student - teacher) ** 2 * weight).sum() / weight.sum().clamp_min(1.0))
    return torch.stack(per_layer).sum(), per_layer


def _torch_dtype(name: str) -> torch.dtype:
    return {
        "float16": torch.float16,
        "bfloat16": torch.bfloat16,
        "float32": torch.float32,
        "int16": torch.int16,
        "int32": torch.int32,
    }[name]


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def pack_targets(
    targets: Sequence[LayerTarget], budget: KnowledgeBudget, value_dtype: torch.dtype = torch.float16
) -> dict[str, Tensor]:
    """Pack a batch's targets into the teacher-free store's per-example arrays (batch first, method.md §16).

    Arrays (``budget.store_fields()`` describes exactly these, without the batch dimension):

    * ``token_index`` int16 ``[B, K, k]``: only when tokens are ranked by attention (left_first is implied).
    * static or no mask: ``values`` ``[B, K, k, w]``, only the kept dims, in dim order.
    * per-example Mag Mask: ``values`` ``[B, K, n]`` and ``positions`` ``[B, K, n]`` (int16, or int32 when
      k·d > 32767): flat positions within k·d sorted by **descending** magnitude (ties by position), so that any
      prefix is a smaller top-n.

    Args:
        targets: One :class:`LayerTarget` per kept layer, from :func:`build_targets`.
        budget: The budget the targets were built with.
        value_dtype: Storage dtype of the values (float32 makes the round trip exact).

    Returns:
        ``{name: tensor}``.

    Raises:
        BudgetError: If the budget cannot be stored (batch-scope Mag Mask).
        StoreError: If the targets do not match the budget.
    """
    fields = budget.store_fields(_dtype_name(value_dtype))
    if len(targets) != budget.keep_layers:
        raise StoreError(
            f"{len(targets)} layer targets for a budget of {budget.keep_layers} layers",
            "pack the output of build_targets for the same budget",
        )
    batch = targets[0].target.shape[0]
    expected = (batch, budget.keep_tokens, budget.teacher_hidden)
    for layer_target in targets:
        if tuple(layer_target.target.shape) != expected:
            raise StoreError(
                f"layer target shape {tuple(layer_target.target.shape)} differs from {expected}",
                "pack the output of build_targets for the same budget",
            )
    packed: dict[str, Tensor] = {}
    if "token_index" in fields:
        packed["token_index"] = torch.stack([t.token_index for t in targets], dim=1).to(torch.int16)
    if budget.magnitude_mask:
        count = budget.magnitude_count
        values, positions = [], []
        for layer_target in targets:
            flat = layer_target.target.reshape(batch, -1)
            kept = layer_target.mask.reshape(batch, -1)
            if (kept.sum(dim=1) != count).any():
                raise StoreError(
                    f"a per-example magnitude mask must keep exactly {count} values per example",
                    "build the targets with mag_scope = 'example'",
                )
            # Masked entries get key −1 so that every kept entry (|value| ≥ 0) sorts before them.
            order = _magnitude_order(flat.abs().masked_fill(~kept, -1.0), count)
            values.append(flat.gather(1, order))
            positions.append(order)
        packed["values"] = torch.stack(values, dim=1).to(value_dtype)
        packed["positions"] = torch.stack(positions, dim=1).to(_torch_dtype(budget.position_dtype))
    else:
        dims = budget.width_dims
        packed["values"] = torch.stack([t.target if dims is None else t.target[..., dims] for t in targets], dim=1).to(
            value_dtype
        )
    return packed


def _check_packed(packed: dict[str, Tensor], stored: KnowledgeBudget) -> int:
    """Check names and per-example shapes against ``stored.store_fields()``; returns the batch size."""
    fields = stored.store_fields()
    if set(packed) != set(fields):
        raise StoreError(
            f"store arrays {sorted(packed)} do not match the stored budget's {sorted(fields)}",
            "pass the budget the store was built with as stored=",
        )
    batch = packed["values"].shape[0]
    for name, (dtype, shape) in fields.items():
        array = packed[name]
        if tuple(array.shape) != (batch, *shape):
            raise StoreError(
                f"store array {name} has shape {tuple(array.shape)}, expected {(batch, *shape)}",
                "the store is truncated or was built for another budget; rebuild it",
            )
        if name != "values" and array.dtype != _torch_dtype(dtype):
            raise StoreError(
                f"store array {name} has dtype {_dtype_name(array.dtype)}, expected {dtype}", "rebuild the store"
            )
    return batch


def _unpack_magnitude(
    values: Tensor, positions: Tensor, keep_tokens: int, stored_tokens: int, hidden: int, count: int
) -> tuple[Tensor, Tensor]:
    """Scatter one layer's stored top-n ``[B, n]`` into a target ``[B, k', d]`` keeping its first ``count``.

    ``stored_tokens`` is the store's k. When k' = k every stored position lies in the wanted tokens, so the wanted
    top-n' is the stored prefix and no per-example search is needed (the common case: a run uses the budget its
    store was built with). This runs once per training step, so it is kept to a handful of tensor ops.
    """
    batch = values.shape[0]
    limit = keep_tokens * hidden
    if keep_tokens == stored_tokens:
        kept_positions = positions[:, :count].long()
        kept_values = values[:, :count]
        # One cheap reduction turns a damaged store into a StoreError instead of an out-of-bounds scatter.
        low, high = torch.aminmax(kept_positions)
        if int(low) < 0 or int(high) >= limit:
            raise StoreError(
                f"stored magnitude positions span [{int(low)}, {int(high)}], outside the {limit} values of "
                f"{keep_tokens} tokens",
                "the store is damaged or was built for another budget; rebuild it",
            )
    else:
        positions = positions.long()
        # Flat positions are token-slot major (slot·d + dim), so the first k' slots are exactly positions < k'·d.
        inside = (positions >= 0) & (positions < limit)
        available = inside.sum(dim=1)
        short = torch.nonzero(available < count).flatten()
        if short.numel():
            example = int(short[0])
            raise StoreError(
                f"example {example} of the batch: only {int(available[example])} stored magnitudes fall in its "
                f"first {keep_tokens} tokens, {count} are needed",
                "use the store's keep_tokens, a smaller keep_hidden, or rebuild the store for this budget",
            )
        take = inside & (inside.cumsum(dim=1) <= count)
        kept_positions = positions[take].view(batch, count)
        kept_values = values[take].view(batch, count)
    flat = torch.zeros(batch, limit, dtype=torch.float32, device=values.device)
    flat.scatter_(1, kept_positions, kept_values.to(torch.float32))
    mask = torch.zeros(batch, limit, dtype=torch.bool, device=values.device).scatter_(1, kept_positions, True)
    return flat.view(batch, keep_tokens, hidden), mask.view(batch, keep_tokens, hidden)


def unpack_targets(
    packed: dict[str, Tensor],
    budget: KnowledgeBudget,
    *,
    stored: KnowledgeBudget | None = None,
    lengths: Tensor | None = None,
) -> list[LayerTarget]:
    """Rebuild float32 targets from a store's arrays, optionally for a smaller budget than the stored one.

    Slicing follows :func:`mudkd.knowledge.serving.can_serve`: a subset of layers, the first k' ≤ k tokens (the top-k'
    of a score-ordered list), kept dims among the stored dims, and for the per-example Mag Mask the stored entries
    whose token lies in the first k', then the first n' of those (already in descending magnitude order). From a
    full-width store any width mask is recomputed from the values.

    Args:
        packed: ``{name: tensor}`` as :func:`pack_targets` returns (batch first).
        budget: The budget the run wants.
        stored: The budget the store was built with; default ``budget``.
        lengths: ``[batch]`` real token counts of a store built with ``exclude_padding``: marks the placeholder
            slots (``valid``); None for a store built with the reference rule.

    Returns:
        One :class:`LayerTarget` per wanted layer (values float32).

    Raises:
        StoreError: If the store cannot serve ``budget``, its arrays do not match ``stored``, or an example has
            fewer than n' stored magnitudes within its first k' tokens.
    """
    stored = budget if stored is None else stored
    slots, magnitude_count = serving_plan(stored, budget)
    batch = _check_packed(packed, stored)
    hidden, keep_tokens = budget.teacher_hidden, budget.keep_tokens
    targets = []
    for student_layer, teacher_layer, slot in zip(budget.student_layers, budget.teacher_layers, slots, strict=True):
        token_index = valid = None
        if budget.token_selection_active and stored.stores_token_index:
            token_index = packed["token_index"][:, slot, :keep_tokens].long()
        elif budget.token_selection_active or lengths is not None:
            token_index = torch.arange(keep_tokens, device=packed["values"].device).expand(batch, -1).clone()
        if lengths is not None:
            valid = token_validity(token_index, lengths)
        if stored.magnitude_mask:
            target, mask = _unpack_magnitude(
                packed["values"][:, slot],
                packed["positions"][:, slot],
                keep_tokens,
                stored.keep_tokens,
                hidden,
                magnitude_count,
            )
        else:
            layer_values = packed["values"][:, slot, :keep_tokens].float()
            if stored.width_dims is None:
                full = layer_values
            else:
                full = layer_values.new_zeros(batch, keep_tokens, hidden)
                full[..., stored.width_dims] = layer_values
            target, mask = _apply_width(full, budget)
        targets.append(LayerTarget(student_layer, teacher_layer, token_index, target, mask, valid))
    return targets
