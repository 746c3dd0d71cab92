"""The knowledge budget: which teacher HSK a student learns from, and what storing it costs.

A budget fixes the three compression axes of method.md §9–§12 — depth (which student layers learn from which
teacher layers), length (which tokens) and width (which hidden dimensions) — plus the attention layers used to rank
tokens. It is resolved once, before any model is loaded, so the CLI's ``--dry-run`` and the recipe wizard can show
it. This module is therefore pure Python: no torch, no numpy. The tensor side lives in :mod:`mudkd.core.hsk`.

Index conventions (method.md §2): hidden-state index 0 is the embedding output, ``i`` the output of layer ``i``;
attention index ``a`` (0-based) belongs to layer ``a + 1``, whose input is hidden state ``a``.

Rounding is exact: every ``round_half_even(x)`` below is Python's ``round`` applied to a ``Fraction``, which rounds
halves to even (the reference's banker's rounding, quirk Q9) without float error.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from mudkd.errors import BudgetError

TOKEN_SCHEMES = ("left_first", "attention", "attention_no_sep")
HIDDEN_SCHEMES = ("rand_mask", "uniform_mask", "importance_mask_dynamic")
STATIC_HIDDEN_SCHEMES = ("rand_mask", "uniform_mask")
MAG_SCOPES = ("example", "batch")
MASK_MODES = ("both", "teacher_only")

#: Bytes per stored element for the value dtypes a store may use.
VALUE_DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4}
#: Largest flat position an int16 can hold; beyond it positions are stored as int32.
INT16_MAX = 32767

_LAYER_SCHEME = re.compile(r"t_top(\d+)")
_FLOAT = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_CONFIG_3D = re.compile(rf"(\d+)l_(\d+)t_({_FLOAT})h")


def _exact(value: float | int) -> Fraction:
    """The decimal a user typed, as an exact fraction (``0.1`` → 1/10, not the nearest binary float)."""
    return Fraction(str(value)) if isinstance(value, float) else Fraction(value)


def parse_layer_scheme(scheme: str) -> int:
    """Parse a depth scheme name into the top teacher layer it maps onto.

    Args:
        scheme: ``"t_topN"``, e.g. ``"t_top10"``.

    Returns:
        N, the teacher layer the last student layer learns from.

    Raises:
        BudgetError: If ``scheme`` is not of the form ``t_topN`` with N ≥ 1.
    """
    match = _LAYER_SCHEME.fullmatch(scheme.strip()) if isinstance(scheme, str) else None
    if match is None or int(match.group(1)) < 1:
        raise BudgetError(
            f"layer_scheme: unknown scheme {scheme!r}",
            "use the form t_topN with N between 1 and the teacher depth, e.g. t_top12 (standard) or t_top10",
        )
    return int(match.group(1))


def layer_mapping(num_student_layers: int, l_top: int) -> list[int]:
    """The teacher hidden-state index each student hidden state learns from (method.md §9).

    ``g(l; L_top) = round_half_even(l · L_top / L_S)`` for ``l = 0..L_S``, computed exactly.

    Args:
        num_student_layers: L_S, the student's Transformer layers.
        l_top: L_top, the teacher layer the last student layer maps to.

    Returns:
        ``[g(0), …, g(L_S)]``, L_S + 1 teacher hidden-state indices.
    """
    if num_student_layers < 1:
        raise BudgetError(f"num_student_layers must be >= 1 (got {num_student_layers})", "check the student config")
    return [round(Fraction(layer * l_top, num_student_layers)) for layer in range(num_student_layers + 1)]


def parse_config_3d(text: str) -> tuple[int, int, float]:
    """Parse a joint 3D budget string ``{K}l_{k}t_{ρ}h``.

    Unlike the reference regex (quirk Q27), the format is strict and scientific notation works
    (``"2l_20t_1e-2h"`` → ``(2, 20, 0.01)``).

    Args:
        text: e.g. ``"1l_10t_0.1h"``.

    Returns:
        ``(keep_layers, keep_tokens, keep_hidden)``; ranges are checked by :func:`resolve_budget`.

    Raises:
        BudgetError: If ``text`` does not have the form ``{int}l_{int}t_{float}h``.
    """
    match = _CONFIG_3D.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise BudgetError(
            f"config_3d: cannot parse {text!r}",
            "use {layers}l_{tokens}t_{width}h, e.g. 1l_10t_0.1h or 2l_20t_1e-2h",
        )
    return int(match.group(1)), int(match.group(2)), float(match.group(3))


def kept_count(total: int, rho: float) -> int:
    """⌊ρ · total⌋ in exact arithmetic (``kept_count(7680, 0.1)`` is 768, never 767 through float error).

    Args:
        total: Number of elements the fraction applies to.
        rho: Kept fraction ρ, read as the decimal it was written as.

    Returns:
        The number of elements kept.
    """
    return math.floor(total * _exact(rho))


def uniform_mask_dims(hidden: int, rho: float) -> list[int]:
    """The evenly spaced dimensions kept by ``uniform_mask`` (method.md §11).

    ``{round_half_even(i / ρ) : i = 0..⌊hidden·ρ⌋ − 1}``, computed with exact fractions so that e.g.
    ⌊768 · 0.1⌋ is 76 whatever the float representation of 0.1.

    Args:
        hidden: Teacher width d.
        rho: Kept fraction ρ in (0, 1].

    Returns:
        Sorted kept dimension indices (ρ = 0.1, d = 768 → 76 dims 0, 10, …, 750).
    """
    exact_rho = _exact(rho)
    count = kept_count(hidden, rho)
    # Steps of 1/ρ ≥ 1 never round two indices onto one dim, but a set keeps that true by construction.
    return sorted({round(Fraction(index) / exact_rho) for index in range(count)})


def rand_mask_dims(hidden: int, rho: float, seed: int) -> list[int]:
    """The random dimensions kept by ``rand_mask`` (method.md §11).

    ``m_c = 1[u_c > 1 − ρ]`` with ``u_c ~ U(0, 1)`` i.i.d. from ``random.Random(seed)``, so the count is itself
    random (≈ hidden·ρ), as in the reference. If no dimension survives (tiny ρ), the one with the largest ``u_c``
    is kept so that the mask is never empty.

    Args:
        hidden: Teacher width d.
        rho: Kept fraction ρ in (0, 1].
        seed: Seed of the generator; the same seed gives the same mask.

    Returns:
        Sorted kept dimension indices.
    """
    rng = random.Random(seed)
    draws = [rng.random() for _ in range(hidden)]
    threshold = 1.0 - rho
    dims = [dim for dim, draw in enumerate(draws) if draw > threshold]
    return dims or [max(range(hidden), key=draws.__getitem__)]


def _attention_layer_list(num_student_layers: int, num_teacher_layers: int) -> list[int]:
    """The reference's ``att_ttop12`` list ``[0] + [(i+1)·L_T/L_S − 1]``, exact for any depth ratio."""
    return [0] + [
        round(Fraction((index + 1) * num_teacher_layers, num_student_layers)) - 1 for index in range(num_student_layers)
    ]


@dataclass(frozen=True)
class KnowledgeBudget:
    """A resolved knowledge budget. Build it with :func:`resolve_budget`, which validates everything.

    Attributes:
        num_student_layers: L_S.
        num_teacher_layers: L_T.
        teacher_hidden: Teacher width d; all HSK (and width masks) live in this space.
        max_seq_length: T, the padded sequence length.
        layer_top: L_top of the depth scheme ``t_topN`` (used for the default mapping).
        student_layers: s_j, student hidden-state indices that get HSK (0 = embeddings), length K.
        teacher_layers: t_j, the teacher hidden-state index each s_j learns from.
        attention_layers: a_j, 0-based teacher attention index (layer a_j + 1) whose [CLS] row ranks tokens.
        att_ttop12: Whether a_j came from the reference's g(l; L_T) list rather than max(t_j − 1, 0).
        keep_tokens: k, tokens per example that get HSK (k == T keeps all, in natural order).
        token_scheme: ``left_first``, ``attention`` or ``attention_no_sep``.
        keep_hidden: ρ, the kept fraction of the width (1.0 keeps all).
        hidden_scheme: ``rand_mask``, ``uniform_mask`` or ``importance_mask_dynamic`` (Mag Mask).
        mag_scope: Mag Mask top-n ``example`` (storable) or one ``batch`` threshold (reference, Q5).
        mask_mode: ``both`` (masked HSK carries no loss) or ``teacher_only`` (reference, Q3).
        width_dims: Kept dims of a static mask; None for the Mag Mask or ρ = 1.
        seed: Seed of ``rand_mask``.
        num_labels: Teacher logits stored per example (0 stores none, e.g. STS-B trained on gold labels).
    """

    num_student_layers: int
    num_teacher_layers: int
    teacher_hidden: int
    max_seq_length: int
    layer_top: int
    student_layers: list[int]
    teacher_layers: list[int]
    attention_layers: list[int]
    att_ttop12: bool
    keep_tokens: int
    token_scheme: str
    keep_hidden: float
    hidden_scheme: str
    mag_scope: str
    mask_mode: str
    width_dims: list[int] | None
    seed: int
    num_labels: int

    # -- derived switches --------------------------------------------------------------------------------------

    @property
    def keep_layers(self) -> int:
        """K, the number of distilled layer pairs."""
        return len(self.student_layers)

    @property
    def layer_scheme(self) -> str:
        """The depth scheme name, ``t_topN``."""
        return f"t_top{self.layer_top}"

    @property
    def token_selection_active(self) -> bool:
        """Whether tokens are selected at all (k < T); with k == T all tokens are kept in natural order."""
        return self.keep_tokens < self.max_seq_length

    @property
    def uses_attention_scores(self) -> bool:
        """Whether token selection needs the teacher's [CLS] attention scores."""
        return self.token_selection_active and self.token_scheme != "left_first"

    @property
    def stores_token_index(self) -> bool:
        """Whether a store must hold the chosen token indices (left_first indices are implied)."""
        return self.uses_attention_scores

    @property
    def width_active(self) -> bool:
        """Whether a width mask applies (ρ < 1)."""
        return self.keep_hidden < 1.0

    @property
    def magnitude_mask(self) -> bool:
        """Whether the width mask is the dynamic magnitude mask (Mag Mask)."""
        return self.width_active and self.hidden_scheme == "importance_mask_dynamic"

    @property
    def static_mask(self) -> bool:
        """Whether the width mask is a fixed set of dims (rand_mask or uniform_mask)."""
        return self.width_active and self.hidden_scheme in STATIC_HIDDEN_SCHEMES

    @property
    def storable(self) -> bool:
        """Whether a teacher-free store can hold this budget (a batch-scope Mag Mask depends on the batch)."""
        return not (self.magnitude_mask and self.mag_scope == "batch")

    @property
    def kept_width(self) -> int | None:
        """Dims kept per token: |dims| for a static mask, d without a mask, None for the Mag Mask (varies)."""
        if self.magnitude_mask:
            return None
        return len(self.width_dims) if self.width_dims is not None else self.teacher_hidden

    @property
    def magnitude_count(self) -> int:
        """n = ⌊ρ·k·d⌋, the values a per-example Mag Mask keeps per layer (exact arithmetic)."""
        return kept_count(self.keep_tokens * self.teacher_hidden, self.keep_hidden)

    # -- amounts -----------------------------------------------------------------------------------------------

    @property
    def values_per_layer(self) -> int:
        """HSK values per example and layer: k·|dims| (static), ⌊ρ·k·d⌋ (Mag Mask) or k·d (no mask)."""
        if self.magnitude_mask:
            return self.magnitude_count
        return self.keep_tokens * (self.kept_width or self.teacher_hidden)

    @property
    def elements_per_example(self) -> int:
        """HSK values per example over all kept layers: K · values_per_layer."""
        return self.keep_layers * self.values_per_layer

    @property
    def hsk_fraction(self) -> float:
        """Share of the student's full HSK, elements / ((L_S + 1)·T·d) (method.md §12; padded T)."""
        full = (self.num_student_layers + 1) * self.max_seq_length * self.teacher_hidden
        return self.elements_per_example / full

    def store_fields(self, value_dtype: str = "float16") -> dict[str, tuple[str, tuple[int, ...]]]:
        """The per-example HSK arrays of a teacher-free store, exactly as :func:`mudkd.core.hsk.pack_targets` builds.

        Teacher logits are not listed: the store keeps them as a separate ``float32 [num_labels]`` array.

        Args:
            value_dtype: ``float16``, ``bfloat16`` or ``float32``.

        Returns:
            ``{name: (dtype, per-example shape)}``: ``token_index`` int16 ``[K, k]`` (only when attention-ranked
            tokens are selected); ``values`` ``[K, k, w]`` for a static or no mask; ``values`` ``[K, n]`` and
            ``positions`` ``[K, n]`` (int16, or int32 when k·d > 32767) for the per-example Mag Mask.

        Raises:
            BudgetError: For a batch-scope Mag Mask, or an unknown value dtype.
        """
        if value_dtype not in VALUE_DTYPE_BYTES:
            raise BudgetError(
                f"store value dtype {value_dtype!r} is not supported", f"use one of {', '.join(VALUE_DTYPE_BYTES)}"
            )
        if not self.storable:
            raise BudgetError(
                "a batch-scope magnitude mask cannot be stored: its threshold depends on the training batch",
                "set mag_scope = 'example' to build a teacher-free store",
            )
        fields: dict[str, tuple[str, tuple[int, ...]]] = {}
        if self.stores_token_index:
            fields["token_index"] = ("int16", (self.keep_layers, self.keep_tokens))
        if self.magnitude_mask:
            count = self.magnitude_count
            fields["values"] = (value_dtype, (self.keep_layers, count))
            fields["positions"] = (self.position_dtype, (self.keep_layers, count))
        else:
            fields["values"] = (value_dtype, (self.keep_layers, self.keep_tokens, self.kept_width or 0))
        return fields

    @property
    def position_dtype(self) -> str:
        """Dtype of Mag Mask flat positions within k·d: int16 when they fit, else int32."""
        return "int16" if self.keep_tokens * self.teacher_hidden <= INT16_MAX else "int32"

    def example_bytes(self, value_dtype: str = "float16") -> int:
        """Bytes a teacher-free store needs per example: HSK values, token indices, positions and float32 logits.

        A batch-scope Mag Mask cannot be stored; for it this is the size of the equivalent per-example store.
        """
        if value_dtype not in VALUE_DTYPE_BYTES:
            raise BudgetError(
                f"store value dtype {value_dtype!r} is not supported", f"use one of {', '.join(VALUE_DTYPE_BYTES)}"
            )
        total = self.elements_per_example * VALUE_DTYPE_BYTES[value_dtype]
        if self.stores_token_index:
            total += 2 * self.keep_layers * self.keep_tokens
        if self.magnitude_mask:
            total += (2 if self.position_dtype == "int16" else 4) * self.elements_per_example
        return total + 4 * self.num_labels

    @property
    def bytes_per_example(self) -> int:
        """:meth:`example_bytes` with float16 values (the store's default)."""
        return self.example_bytes("float16")

    def bytes_for(self, num_examples: int, value_dtype: str = "float16") -> int:
        """Bytes a store of ``num_examples`` examples needs (headers not counted)."""
        return num_examples * self.example_bytes(value_dtype)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary: the budget table's content plus what :meth:`from_dict` needs to rebuild it."""
        return {
            "layers": [
                {"student": student, "teacher": teacher, "attention": attention}
                for student, teacher, attention in zip(
                    self.student_layers, self.teacher_layers, self.attention_layers, strict=True
                )
            ],
            "keep_tokens": self.keep_tokens,
            "max_seq_length": self.max_seq_length,
            "keep_hidden": self.keep_hidden,
            "kept_width": self.kept_width,
            "token_scheme": self.token_scheme,
            "hidden_scheme": self.hidden_scheme,
            "mag_scope": self.mag_scope,
            "mask_mode": self.mask_mode,
            "hsk_fraction": self.hsk_fraction,
            "elements_per_example": self.elements_per_example,
            "bytes_per_example": self.bytes_per_example,
            "layer_scheme": self.layer_scheme,
            "att_ttop12": self.att_ttop12,
            "num_student_layers": self.num_student_layers,
            "num_teacher_layers": self.num_teacher_layers,
            "teacher_hidden": self.teacher_hidden,
            "width_dims": None if self.width_dims is None else list(self.width_dims),
            "seed": self.seed,
            "num_labels": self.num_labels,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KnowledgeBudget:
        """Rebuild a budget from :meth:`to_dict` output (e.g. a store's metadata)."""
        try:
            layers = data["layers"]
            return cls(
                num_student_layers=int(data["num_student_layers"]),
                num_teacher_layers=int(data["num_teacher_layers"]),
                teacher_hidden=int(data["teacher_hidden"]),
                max_seq_length=int(data["max_seq_length"]),
                layer_top=parse_layer_scheme(data["layer_scheme"]),
                student_layers=[int(layer["student"]) for layer in layers],
                teacher_layers=[int(layer["teacher"]) for layer in layers],
                attention_layers=[int(layer["attention"]) for layer in layers],
                att_ttop12=bool(data["att_ttop12"]),
                keep_tokens=int(data["keep_tokens"]),
                token_scheme=str(data["token_scheme"]),
                keep_hidden=float(data["keep_hidden"]),
                hidden_scheme=str(data["hidden_scheme"]),
                mag_scope=str(data["mag_scope"]),
                mask_mode=str(data["mask_mode"]),
                width_dims=None if data["width_dims"] is None else [int(dim) for dim in data["width_dims"]],
                seed=int(data["seed"]),
                num_labels=int(data["num_labels"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise BudgetError(
                f"budget metadata is incomplete or malformed ({error!r})", "rebuild it with KnowledgeBudget.to_dict()"
            ) from error


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(name: str, value: object, low: int, high: int | None, hint: str) -> int:
    if not _is_int(value) or value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise BudgetError(f"{name} must be an integer {bound} (got {value!r})", hint)
    return int(value)


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise BudgetError(f"{name}: unknown value {value!r}", f"use one of {', '.join(allowed)}")
    return str(value)


def _check_indices(name: str, values: object, high: int, hint: str) -> list[int]:
    if not isinstance(values, (list, tuple)) or not values:
        raise BudgetError(f"{name} must be a non-empty list of layer indices (got {values!r})", hint)
    for value in values:
        _check_int(f"{name} entry", value, 0, high, hint)
    return list(values)


def resolve_budget(
    *,
    num_student_layers: int,
    num_teacher_layers: int,
    teacher_hidden: int,
    max_seq_length: int,
    keep_layers: int | None = None,
    layer_scheme: str | None = None,
    student_layer_indices: list[int] | None = None,
    teacher_layer_indices: list[int] | None = None,
    keep_tokens: int | None = None,
    token_scheme: str = "attention_no_sep",
    att_ttop12: bool = False,
    keep_hidden: float = 1.0,
    hidden_scheme: str = "importance_mask_dynamic",
    mag_scope: str = "example",
    mask_mode: str = "both",
    config_3d: str | None = None,
    seed: int = 42,
    num_labels: int = 2,
) -> KnowledgeBudget:
    """Validate the budget settings against the models and resolve every index (method.md §9–§12).

    Args:
        num_student_layers: L_S.
        num_teacher_layers: L_T.
        teacher_hidden: Teacher width d.
        max_seq_length: T.
        keep_layers: K, the top student layers that get HSK (embeddings = layer 0); default L_S + 1.
        layer_scheme: ``t_topN``; default ``t_top{L_T}``, the standard mapping.
        student_layer_indices: Explicit s_j, overriding the top-K choice.
        teacher_layer_indices: Explicit t_j (same length as s_j), overriding the mapping.
        keep_tokens: k; default T (all tokens).
        token_scheme: ``left_first``, ``attention`` or ``attention_no_sep``.
        att_ttop12: Rank tokens with the attention of the layer producing g(l; L_T) (reference default) instead
            of the layer producing the target, max(t_j − 1, 0).
        keep_hidden: ρ in (0, 1].
        hidden_scheme: ``rand_mask``, ``uniform_mask`` or ``importance_mask_dynamic``.
        mag_scope: ``example`` or ``batch`` (Mag Mask only).
        mask_mode: ``both`` or ``teacher_only``.
        config_3d: ``{K}l_{k}t_{ρ}h``; overrides keep_layers, keep_tokens and keep_hidden.
        seed: Seed of ``rand_mask``.
        num_labels: Teacher logits per example (for storage sizes).

    Returns:
        The resolved, validated budget.

    Raises:
        BudgetError: On the first setting that does not fit, with a hint.
    """
    _check_int("num_student_layers", num_student_layers, 1, None, "check the student config")
    _check_int("num_teacher_layers", num_teacher_layers, 1, None, "check the teacher config")
    _check_int("teacher_hidden", teacher_hidden, 1, None, "check the teacher config")
    _check_int("max_seq_length", max_seq_length, 1, None, "set a positive max_seq_length")
    _check_int("num_labels", num_labels, 0, None, "use the number of teacher logits (0 for none)")

    if config_3d is not None:
        keep_layers, keep_tokens, keep_hidden = parse_config_3d(config_3d)

    l_top = parse_layer_scheme(layer_scheme if layer_scheme is not None else f"t_top{num_teacher_layers}")
    if l_top > num_teacher_layers:
        raise BudgetError(
            f"layer_scheme t_top{l_top} maps beyond the teacher's {num_teacher_layers} layers",
            f"use t_topN with N <= {num_teacher_layers}",
        )
    mapping = layer_mapping(num_student_layers, l_top)

    max_k = num_student_layers + 1
    if student_layer_indices is not None:
        student_layers = _check_indices(
            "student_layer_indices",
            student_layer_indices,
            num_student_layers,
            f"use student hidden-state indices 0..{num_student_layers} (0 = embeddings)",
        )
        if keep_layers is not None and keep_layers != len(student_layers):
            raise BudgetError(
                f"keep_layers = {keep_layers} disagrees with {len(student_layers)} student_layer_indices",
                "drop keep_layers or make it match the explicit index list",
            )
    else:
        k_layers = max_k if keep_layers is None else keep_layers
        _check_int("keep_layers", k_layers, 1, max_k, f"the student has {num_student_layers} layers + embeddings")
        student_layers = list(range(num_student_layers - k_layers + 1, num_student_layers + 1))

    if teacher_layer_indices is not None:
        teacher_layers = _check_indices(
            "teacher_layer_indices",
            teacher_layer_indices,
            num_teacher_layers,
            f"use teacher hidden-state indices 0..{num_teacher_layers} (0 = embeddings)",
        )
        if len(teacher_layers) != len(student_layers):
            raise BudgetError(
                f"{len(teacher_layers)} teacher layer indices for {len(student_layers)} student layers",
                "give one teacher index per distilled student layer",
            )
    else:
        teacher_layers = [mapping[layer] for layer in student_layers]

    if not isinstance(att_ttop12, bool):
        raise BudgetError(f"att_ttop12 must be true or false (got {att_ttop12!r})", "use a boolean")
    if att_ttop12:
        attention_list = _attention_layer_list(num_student_layers, num_teacher_layers)
        attention_layers = [attention_list[layer] for layer in student_layers]
    else:
        attention_layers = [max(layer - 1, 0) for layer in teacher_layers]

    k_tokens = max_seq_length if keep_tokens is None else keep_tokens
    _check_int("keep_tokens", k_tokens, 1, max_seq_length, f"keep at most max_seq_length = {max_seq_length} tokens")
    _check_choice("token_scheme", token_scheme, TOKEN_SCHEMES)
    _check_choice("hidden_scheme", hidden_scheme, HIDDEN_SCHEMES)
    _check_choice("mag_scope", mag_scope, MAG_SCOPES)
    _check_choice("mask_mode", mask_mode, MASK_MODES)

    if isinstance(keep_hidden, bool) or not isinstance(keep_hidden, (int, float)) or not 0 < keep_hidden <= 1:
        raise BudgetError(f"keep_hidden must be in (0, 1] (got {keep_hidden!r})", "e.g. 0.1 keeps 10% of the width")
    rho = float(keep_hidden)
    if not _is_int(seed):
        raise BudgetError(f"seed must be an integer (got {seed!r})", "use an integer seed, e.g. 42")

    width_dims: list[int] | None = None
    if rho < 1.0 and hidden_scheme == "uniform_mask":
        width_dims = uniform_mask_dims(teacher_hidden, rho)
    elif rho < 1.0 and hidden_scheme == "rand_mask":
        width_dims = rand_mask_dims(teacher_hidden, rho, seed)
    if width_dims is not None and not width_dims:
        raise BudgetError(
            f"keep_hidden = {rho} keeps no dimension of width {teacher_hidden}",
            f"use keep_hidden >= {1 / teacher_hidden:.2g}",
        )

    budget = KnowledgeBudget(
        num_student_layers=num_student_layers,
        num_teacher_layers=num_teacher_layers,
        teacher_hidden=teacher_hidden,
        max_seq_length=max_seq_length,
        layer_top=l_top,
        student_layers=student_layers,
        teacher_layers=teacher_layers,
        attention_layers=attention_layers,
        att_ttop12=att_ttop12,
        keep_tokens=k_tokens,
        token_scheme=token_scheme,
        keep_hidden=rho,
        hidden_scheme=hidden_scheme,
        mag_scope=mag_scope,
        mask_mode=mask_mode,
        width_dims=width_dims,
        seed=seed,
        num_labels=num_labels,
    )
    if budget.magnitude_mask and budget.magnitude_count < 1:
        raise BudgetError(
            f"keep_hidden = {rho} keeps no value of {k_tokens} tokens x {teacher_hidden} dims",
            "raise keep_hidden or keep_tokens",
        )
    return budget


def can_serve(stored: KnowledgeBudget, wanted: KnowledgeBudget) -> tuple[bool, str]:
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
          and raises ``StoreError`` otherwise.
        * A batch-scope Mag Mask is never stored (its threshold depends on the batch).

    Args:
        stored: The budget the store was built with.
        wanted: The budget a run asks for.

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
        if wanted.token_scheme == "left_first":
            if stored.token_selection_active and stored.token_scheme != "left_first":
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
            if wanted.mag_scope != "example":
                return False, "a batch-scope magnitude mask needs a full-width store (keep_hidden = 1)"
            if wanted.magnitude_count > stored.magnitude_count:
                return False, (
                    f"the run wants {wanted.magnitude_count} magnitudes per layer, the store kept "
                    f"{stored.magnitude_count}"
                )
    return True, ""


def budget_from_recipe(
    recipe: Any, *, num_student_layers: int, num_teacher_layers: int, teacher_hidden: int, num_labels: int
) -> KnowledgeBudget:
    """Resolve a recipe's ``[hsk]`` budget against the models' shapes (pure: no model is loaded).

    Args:
        recipe: A :class:`mudkd.recipe.schema.Recipe` (its ``task``, ``hsk`` and ``training`` tables are read).
        num_student_layers: L_S.
        num_teacher_layers: L_T.
        teacher_hidden: Teacher width d.
        num_labels: Teacher logits stored per example (0: none).

    Raises:
        BudgetError: If the budget does not fit the models.
    """
    hsk = recipe.hsk
    return resolve_budget(
        num_student_layers=num_student_layers,
        num_teacher_layers=num_teacher_layers,
        teacher_hidden=teacher_hidden,
        max_seq_length=recipe.task.max_seq_length,
        keep_layers=hsk.keep_layers,
        layer_scheme=hsk.layer_scheme,
        student_layer_indices=hsk.student_layers,
        teacher_layer_indices=hsk.teacher_layers,
        keep_tokens=hsk.keep_tokens,
        token_scheme=hsk.token_scheme,
        att_ttop12=hsk.att_ttop12,
        keep_hidden=hsk.keep_hidden,
        hidden_scheme=hsk.hidden_scheme,
        mag_scope=hsk.mag_scope,
        mask_mode=hsk.mask_mode,
        config_3d=hsk.config_3d,
        seed=recipe.training.seed,
        num_labels=num_labels,
    )


def budget_table(budget: KnowledgeBudget, num_examples: int | None, value_dtype: str = "float16") -> dict[str, Any]:
    """The knowledge-budget document: ``budget.to_dict()`` plus the train-set size when stored."""
    document = budget.to_dict()
    document["bytes_per_example"] = budget.example_bytes(value_dtype)
    document["num_train_examples"] = num_examples
    document["train_set_bytes"] = budget.bytes_for(num_examples, value_dtype) if num_examples else None
    document["value_dtype"] = value_dtype
    return document
