"""The knowledge budget: which teacher HSK a student learns from, and what storing it costs.

A budget fixes the three compression axes of method.md §9–§12 — depth (which student layers learn from which
teacher layers), length (which tokens) and width (which hidden dimensions) — plus the attention layers used to rank
tokens. It is resolved once, before any model is loaded (:func:`mudkd.knowledge.resolve.resolve_budget`), so the
CLI's ``--dry-run`` and the recipe wizard can show it. This package is therefore pure Python: no torch, no numpy.
The tensor side lives in :mod:`mudkd.core.hsk`.

Index conventions (method.md §2): hidden-state index 0 is the embedding output, ``i`` the output of layer ``i``;
attention index ``a`` (0-based) belongs to layer ``a + 1``, whose input is hidden state ``a``.
"""

from __future__ import annotations

import types
import typing
from dataclasses import asdict, dataclass, fields
from typing import Any

from mudkd.errors import BudgetError
from mudkd.knowledge.arithmetic import kept_count
from mudkd.knowledge.layout import (
    TOKEN_INDEX_DTYPE,
    Fields,
    check_value_dtype,
    field_bytes,
    logits_field,
    position_dtype,
)
from mudkd.knowledge.schemes import (
    STATIC_HIDDEN_SCHEMES,
    HiddenScheme,
    MagScope,
    TokenScheme,
    layer_scheme_name,
    parse_layer_scheme,
)


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
        return layer_scheme_name(self.layer_top)

    @property
    def token_selection_active(self) -> bool:
        """Whether tokens are selected at all (k < T); with k == T all tokens are kept in natural order."""
        return self.keep_tokens < self.max_seq_length

    @property
    def uses_attention_scores(self) -> bool:
        """Whether token selection needs the teacher's [CLS] attention scores."""
        return self.token_selection_active and self.token_scheme != TokenScheme.LEFT_FIRST

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
        return self.width_active and self.hidden_scheme == HiddenScheme.IMPORTANCE_MASK_DYNAMIC

    @property
    def static_mask(self) -> bool:
        """Whether the width mask is a fixed set of dims (rand_mask or uniform_mask)."""
        return self.width_active and self.hidden_scheme in STATIC_HIDDEN_SCHEMES

    @property
    def storable(self) -> bool:
        """Whether a teacher-free store can hold this budget (a batch-scope Mag Mask depends on the batch)."""
        return not (self.magnitude_mask and self.mag_scope == MagScope.BATCH)

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

    def store_fields(self, value_dtype: str = "float16", *, with_logits: bool = False) -> Fields:
        """The per-example arrays of a teacher-free store, exactly as :func:`mudkd.core.hsk.pack_targets` builds.

        Args:
            value_dtype: ``float16``, ``bfloat16`` or ``float32``.
            with_logits: Add the teacher logits, ``float32 [num_labels]`` (what ``mudkd distill cache`` writes).

        Returns:
            ``{name: (dtype, per-example shape)}``: ``token_index`` int16 ``[K, k]`` (only when attention-ranked
            tokens are selected); ``values`` ``[K, k, w]`` for a static or no mask; ``values`` ``[K, n]`` and
            ``positions`` ``[K, n]`` (int16, or int32 when k·d > 32767) for the per-example Mag Mask; ``logits``
            when asked.

        Raises:
            BudgetError: For a batch-scope Mag Mask, or an unknown value dtype.
        """
        check_value_dtype(value_dtype)
        if not self.storable:
            raise BudgetError(
                "a batch-scope magnitude mask cannot be stored: its threshold depends on the training batch",
                "set mag_scope = 'example' to build a teacher-free store",
            )
        return self._fields(value_dtype, with_logits=with_logits)

    def _fields(self, value_dtype: str, *, with_logits: bool) -> Fields:
        fields: Fields = {}
        if self.stores_token_index:
            fields["token_index"] = (TOKEN_INDEX_DTYPE, (self.keep_layers, self.keep_tokens))
        if self.magnitude_mask:
            count = self.magnitude_count
            fields["values"] = (value_dtype, (self.keep_layers, count))
            fields["positions"] = (self.position_dtype, (self.keep_layers, count))
        else:
            fields["values"] = (value_dtype, (self.keep_layers, self.keep_tokens, self.kept_width or 0))
        return fields | logits_field(self.num_labels) if with_logits else fields

    @property
    def position_dtype(self) -> str:
        """Dtype of Mag Mask flat positions within k·d: int16 when they fit, else int32."""
        return position_dtype(self.keep_tokens * self.teacher_hidden)

    def example_bytes(self, value_dtype: str = "float16") -> int:
        """Bytes a teacher-free store needs per example: HSK values, token indices, positions and float32 logits.

        Counted from :meth:`store_fields` with the logits, the arrays a store really holds. A batch-scope Mag Mask
        cannot be stored; for it this is the size of the equivalent per-example store.
        """
        return field_bytes(self._fields(check_value_dtype(value_dtype), with_logits=True))

    def logits_bytes(self) -> int:
        """Bytes of the teacher logits per example (part of :meth:`example_bytes`)."""
        return field_bytes(logits_field(self.num_labels))

    @property
    def bytes_per_example(self) -> int:
        """:meth:`example_bytes` with float16 values (the store's default)."""
        return self.example_bytes("float16")

    def bytes_for(self, num_examples: int, value_dtype: str = "float16") -> int:
        """Bytes a store of ``num_examples`` examples needs (headers not counted)."""
        return num_examples * self.example_bytes(value_dtype)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary: the budget table's content plus what :meth:`from_dict` needs to rebuild it.

        Every field (:func:`dataclasses.asdict`), with s_j, t_j and a_j as one ``layers`` row per pair and L_top as
        its scheme name, plus the amounts a summary shows (:data:`SUMMARY_AMOUNTS`).
        """
        data = asdict(self)
        pairs = zip(*(data.pop(name) for name in LAYER_PAIR_KEYS), strict=True)
        del data["layer_top"]  # written as its name, layer_scheme
        return {
            "layers": [dict(zip(LAYER_PAIR_KEYS.values(), pair, strict=True)) for pair in pairs],
            **data,
            **{name: getattr(self, name) for name in SUMMARY_AMOUNTS},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KnowledgeBudget:
        """Rebuild a budget from :meth:`to_dict` output (e.g. a store's metadata), each value of its field's type."""
        hints = typing.get_type_hints(cls)
        try:
            values = {
                field.name: _typed(hints[field.name], data[field.name])
                for field in fields(cls)
                if field.name not in LAYER_PAIR_KEYS and field.name != "layer_top"
            }
            for name, key in LAYER_PAIR_KEYS.items():
                values[name] = [int(pair[key]) for pair in data["layers"]]
            return cls(layer_top=parse_layer_scheme(data["layer_scheme"]), **values)
        except (KeyError, TypeError, ValueError) as error:
            raise BudgetError(
                f"budget metadata is incomplete or malformed ({error!r})", "rebuild it with KnowledgeBudget.to_dict()"
            ) from error


#: The per-pair fields of a budget and their key in a ``layers`` row of :meth:`KnowledgeBudget.to_dict`.
LAYER_PAIR_KEYS = {"student_layers": "student", "teacher_layers": "teacher", "attention_layers": "attention"}
#: Derived amounts :meth:`KnowledgeBudget.to_dict` adds to the fields (a summary shows them; rebuilding ignores them).
SUMMARY_AMOUNTS = ("kept_width", "hsk_fraction", "elements_per_example", "bytes_per_example", "layer_scheme")


def _typed(hint: Any, value: Any) -> Any:
    """``value`` as the type ``hint`` names (``int``, ``float``, ``bool``, ``str``, ``list[int] | None``)."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    if value is None and type(None) in options:
        return None
    kind = next(option for option in options if option is not type(None))
    if typing.get_origin(kind) is list:
        (item,) = typing.get_args(kind)
        return [item(entry) for entry in value]
    return kind(value)


#: The budget columns of sweep and search records and tables (``results.csv``, ``summary.csv``), in order: its size,
#: its three axes K, k and ρ, then its three schemes.
BUDGET_SIZE_COLUMNS = ("hsk_fraction", "elements_per_example")
BUDGET_AXIS_COLUMNS = ("keep_layers", "keep_tokens", "keep_hidden")
BUDGET_SCHEME_COLUMNS = ("layer_scheme", "token_scheme", "hidden_scheme")


def budget_columns(budget: KnowledgeBudget | None, *, schemes: bool = True) -> dict[str, Any]:
    """A run's budget columns (:data:`BUDGET_AXIS_COLUMNS`...); a run without HSK has size 0 and no schemes."""
    columns: dict[str, Any] = {
        "hsk_fraction": budget.hsk_fraction if budget else 0.0,
        "elements_per_example": budget.elements_per_example if budget else 0,
        "keep_layers": budget.keep_layers if budget else 0,
        "keep_tokens": budget.keep_tokens if budget else 0,
        "keep_hidden": budget.keep_hidden if budget else 0.0,
    }
    if schemes:
        columns |= {name: getattr(budget, name) if budget else None for name in BUDGET_SCHEME_COLUMNS}
    return columns
