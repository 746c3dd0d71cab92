"""Which store serves which budget: the one servability rule, and the covering budget a sweep builds.

A store built for a budget serves any smaller budget of the same schemes by slicing (fewer layers, the top k' of k
ranked tokens, the top values of a magnitude mask). :func:`can_serve` is that rule — the store reader
(:mod:`mudkd.core.hsk`), the HSK stage and the sweep all ask it. :func:`covering_overrides` goes the other way: the
smallest store budget that serves a set of budgets, as recipe overrides.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from mudkd.errors import StoreError
from mudkd.knowledge.arithmetic import kept_count
from mudkd.knowledge.budget import KnowledgeBudget
from mudkd.knowledge.layout import DTYPE_BYTES, position_dtype
from mudkd.knowledge.schemes import HiddenScheme, MagScope, TokenScheme


def can_serve(stored: KnowledgeBudget, wanted: KnowledgeBudget, *, certain: bool = False) -> tuple[bool, str]:
    """Whether a store built for ``stored`` can serve ``wanted`` exactly, by slicing.

    Rules:
        * Same student/teacher shape (L_S, L_T, d), T and number of logits.
        * Every wanted (student, teacher) layer pair is stored; when tokens are ranked by attention, with the same
          attention layer too.
        * Tokens: k' ≤ k. Attention-ranked tokens need the same scheme (the top-k' of a score-ordered list is its
          prefix); ``left_first`` k' is a prefix of a ``left_first`` store or of an all-token store.
        * Width: no mask needs a full-width store. A static mask needs its dims among the stored dims (same dims,
          or a full-width store). A Mag Mask is served by a full-width store (recomputed at load time, either scope)
          or by a per-example Mag store with n' ≤ n. With k' < k, whether enough of the stored top-n lie within the
          first k' tokens is only known per example: :func:`mudkd.core.hsk.unpack_targets` checks it at load time
          and raises ``StoreError`` otherwise. With ``certain``, such a store serves only when every example is
          sure to have them (:func:`magnitudes_certain`), which is what a sweep plans its stores by.
        * A batch-scope Mag Mask is never stored (its threshold depends on the batch).

    Args:
        stored: The budget the store was built with.
        wanted: The budget a run asks for.
        certain: Also require that a Mag store read with fewer tokens serves every possible example.

    Returns:
        ``(True, "")``, or ``(False, reason)`` with a one-line reason.
    """
    if not stored.storable:
        return False, "the stored budget uses a batch-scope magnitude mask, which cannot be stored"
    for name in ("num_student_layers", "num_teacher_layers", "teacher_hidden", "max_seq_length", "num_labels"):
        if getattr(stored, name) != getattr(wanted, name):
            return False, f"{name} differs: store has {getattr(stored, name)}, run wants {getattr(wanted, name)}"

    if wanted.keep_tokens > stored.keep_tokens:
        return False, f"the run wants {wanted.keep_tokens} tokens but the store kept only {stored.keep_tokens}"
    if wanted.token_selection_active:
        if wanted.token_scheme == TokenScheme.LEFT_FIRST:
            if stored.token_selection_active and stored.token_scheme != TokenScheme.LEFT_FIRST:
                return False, f"the store ranked tokens by {stored.token_scheme}, the run wants left_first"
        elif not stored.token_selection_active or stored.token_scheme != wanted.token_scheme:
            have = stored.token_scheme if stored.token_selection_active else "all tokens (no ranking)"
            return False, f"token scheme differs: store has {have}, run wants {wanted.token_scheme}"

    stored_pairs = list(zip(stored.student_layers, stored.teacher_layers, stored.attention_layers, strict=True))
    for student, teacher, attention in zip(
        wanted.student_layers, wanted.teacher_layers, wanted.attention_layers, strict=True
    ):
        matches = [pair for pair in stored_pairs if pair[:2] == (student, teacher)]
        if not matches:
            return False, f"layer pair student {student} -> teacher {teacher} is not in the store"
        if wanted.uses_attention_scores and not any(pair[2] == attention for pair in matches):
            return False, (
                f"student layer {student}: the store ranked tokens with attention layer {matches[0][2]}, "
                f"the run wants {attention} (att_ttop12 differs)"
            )

    if not wanted.width_active:
        if stored.width_active:
            return False, f"the run wants the full width but the store kept keep_hidden = {stored.keep_hidden}"
    elif wanted.static_mask:
        if stored.magnitude_mask:
            return False, "the store holds a magnitude mask, the run wants a static width mask"
        if stored.static_mask and not set(wanted.width_dims or []) <= set(stored.width_dims or []):
            return False, "the run's width dims are not among the stored dims (different ρ, scheme or seed)"
    else:  # wanted Mag Mask
        if stored.static_mask:
            return False, "the store holds a static width mask, the run wants a magnitude mask"
        if stored.magnitude_mask:
            if wanted.mag_scope != MagScope.EXAMPLE:
                return False, "a batch-scope magnitude mask needs a full-width store (keep_hidden = 1)"
            if wanted.magnitude_count > stored.magnitude_count:
                return False, (
                    f"the run wants {wanted.magnitude_count} magnitudes per layer, the store kept "
                    f"{stored.magnitude_count}"
                )
            if certain and not magnitudes_certain(stored, wanted):
                return False, "not enough stored magnitudes are certain to lie within its tokens"
    return True, ""


def needs_magnitude_check(stored: KnowledgeBudget, wanted: KnowledgeBudget) -> bool:
    """Whether serving ``wanted`` from ``stored`` needs a per-example look at the stored Mag Mask positions.

    A per-example top-n over k tokens read with k' < k tokens may hold fewer than n' values within the first k'
    tokens; only the stored positions tell.
    """
    return stored.magnitude_mask and wanted.magnitude_mask and wanted.keep_tokens < stored.keep_tokens


def magnitudes_certain(stored: KnowledgeBudget, wanted: KnowledgeBudget) -> bool:
    """Whether a Mag store surely holds n' values within the first k' tokens of every example.

    The top-n over k tokens keeps at most (k − k')·d values beyond token k', so n − (k − k')·d ≥ n' guarantees it
    however the magnitudes fall.
    """
    if not needs_magnitude_check(stored, wanted):
        return True
    spare = stored.magnitude_count - (stored.keep_tokens - wanted.keep_tokens) * stored.teacher_hidden
    return spare >= wanted.magnitude_count


def stored_slots(stored: KnowledgeBudget, wanted: KnowledgeBudget) -> list[int]:
    """For each wanted layer, its index among the stored layers (same pair; same ranking attention when ranked).

    Call it only for a pair :func:`can_serve` accepted.
    """
    stored_layers = list(zip(stored.student_layers, stored.teacher_layers, stored.attention_layers, strict=True))
    return [
        next(
            index
            for index, (s, t, a) in enumerate(stored_layers)
            if (s, t) == (student, teacher) and (not wanted.uses_attention_scores or a == attention)
        )
        for student, teacher, attention in zip(
            wanted.student_layers, wanted.teacher_layers, wanted.attention_layers, strict=True
        )
    ]


# -- the covering budget of a sweep -------------------------------------------------------------------------------


def token_key(budget: KnowledgeBudget) -> tuple[str, bool | None]:
    """Budgets can share a store only if their tokens come from the same ranking (natural order or a scheme)."""
    if budget.uses_attention_scores:
        return budget.token_scheme, budget.att_ttop12
    return "natural", None


def decimal_at_least(count: int, total: int) -> float:
    """The smallest 6-decimal ρ with ⌊total·ρ⌋ ≥ count (ρ is read as the decimal written, like the budget)."""
    millionths = math.ceil(Fraction(count * 10**6, total))
    while kept_count(total, millionths / 10**6) < count:
        millionths += 1
    return min(millionths / 10**6, 1.0)


def _covering_width(budgets: list[KnowledgeBudget], keep_tokens: int, dtype: str) -> tuple[dict[str, Any], str]:
    """The width settings of a store serving ``budgets`` with ``keep_tokens`` tokens, and why."""
    full = {"hsk.keep_hidden": 1.0}
    if all(not b.width_active for b in budgets):
        return full, ""
    if all(b.magnitude_mask and b.mag_scope == MagScope.EXAMPLE for b in budgets):
        hidden = budgets[0].teacher_hidden
        total = keep_tokens * hidden
        # A per-example top-n over k tokens serves (k', n') for certain only if n - (k - k')·d >= n': however the
        # magnitudes fall, at least n' of them then lie in the first k' tokens (the load-time check always passes).
        needed = max(b.magnitude_count + (keep_tokens - b.keep_tokens) * hidden for b in budgets)
        rho = decimal_at_least(needed, total)
        magnitude_bytes = needed * (DTYPE_BYTES[dtype] + DTYPE_BYTES[position_dtype(total)])
        if rho < 1.0 and magnitude_bytes < total * DTYPE_BYTES[dtype]:
            note = (
                ""
                if needed == max(b.magnitude_count for b in budgets)
                else (f"magnitude store widened to ρ={rho:g} so that points with fewer tokens are certain to be served")
            )
            return {"hsk.keep_hidden": rho, "hsk.hidden_scheme": HiddenScheme.IMPORTANCE_MASK_DYNAMIC.value}, note
        return full, "full-width store: cheaper than a magnitude store covering every point's tokens"
    statics = [b for b in budgets if b.static_mask]
    if len(statics) == len(budgets) and len({b.hidden_scheme for b in statics}) == 1:
        widest = max(statics, key=lambda b: len(b.width_dims or []))
        if all(set(b.width_dims or []) <= set(widest.width_dims or []) for b in statics):
            return {
                "hsk.keep_hidden": widest.keep_hidden,
                "hsk.hidden_scheme": widest.hidden_scheme,
                "training.seed": widest.seed,
            }, ""
    return full, "full-width store: the points' width masks differ (every mask is recomputed from the full width)"


def covering_overrides(budgets: list[KnowledgeBudget], dtype: str) -> tuple[dict[str, Any], str]:
    """Recipe overrides of the smallest store serving every budget in ``budgets`` (one :func:`token_key`), and a
    note on why its width is what it is ("" when nothing needs explaining).

    The store keeps the union of the layer pairs, the largest k, the budgets' ranking, and the narrowest width
    that serves every budget for certain (:func:`magnitudes_certain`).
    """
    pairs = sorted({pair for b in budgets for pair in zip(b.student_layers, b.teacher_layers, strict=True)})
    keep_tokens = max(b.keep_tokens for b in budgets)
    ranked = [b for b in budgets if b.uses_attention_scores]
    overrides: dict[str, Any] = {
        "hsk.config_3d": None,
        "hsk.keep_layers": None,
        "hsk.student_layers": [s for s, _ in pairs],
        "hsk.teacher_layers": [t for _, t in pairs],
        "hsk.keep_tokens": keep_tokens,
        "hsk.token_scheme": ranked[0].token_scheme if ranked else TokenScheme.LEFT_FIRST.value,
        "hsk.att_ttop12": ranked[0].att_ttop12 if ranked else budgets[0].att_ttop12,
        "hsk.mag_scope": MagScope.EXAMPLE.value,
    }
    width, note = _covering_width(budgets, keep_tokens, dtype)
    return overrides | width, note


#: Recipe overrides of the smallest store there is: one layer, one token, full width (the teacher's logits only).
LOGITS_ONLY_OVERRIDES: dict[str, Any] = {
    "hsk.config_3d": None,
    "hsk.student_layers": None,
    "hsk.teacher_layers": None,
    "hsk.keep_layers": 1,
    "hsk.keep_tokens": 1,
    "hsk.token_scheme": TokenScheme.LEFT_FIRST.value,
    "hsk.keep_hidden": 1.0,
    "hsk.mag_scope": MagScope.EXAMPLE.value,
}


#: ``(stored, budget, plan)`` by ``(id(stored), id(budget))``: the serving plan depends only on the two (immutable)
#: budgets, and computing it (exact fractions) is most of an unpack's Python time; both are kept alive in the entry
#: so an id cannot be reused while it is cached.
_PLANS: dict[tuple[int, int], tuple[KnowledgeBudget, KnowledgeBudget, tuple[list[int], int]]] = {}


def serving_plan(stored: KnowledgeBudget, budget: KnowledgeBudget) -> tuple[list[int], int]:
    """``(stored slot per wanted layer, magnitude count n' or 0)`` of a run reading ``budget`` from a ``stored`` store.

    Cached per pair of budget objects (an unpack runs once per training step).

    Raises:
        StoreError: If ``stored`` cannot serve ``budget`` (:func:`can_serve`).
    """
    entry = _PLANS.get((id(stored), id(budget)))
    if entry is not None and entry[0] is stored and entry[1] is budget:
        return entry[2]
    servable, reason = can_serve(stored, budget)
    if not servable:
        raise StoreError(
            f"the store cannot serve this budget: {reason}",
            "rebuild the store for this budget or ask for a budget the store contains",
        )
    plan = (list(stored_slots(stored, budget)), budget.magnitude_count if stored.magnitude_mask else 0)
    if len(_PLANS) >= 16:
        _PLANS.clear()
    _PLANS[(id(stored), id(budget))] = (stored, budget, plan)
    return plan
