"""The teacher-free store's layout: which arrays one example holds, their dtypes, and what they cost in bytes.

A store keeps per example (method.md §16): the kept HSK values (``float16`` by default, ``float32`` for bit-exact
parity), the attention-ranked token indices (``int16``), the Mag Mask's flat positions within k·d (``int16``, or
``int32`` beyond :data:`INT16_MAX`) and the teacher's logits (``float32 [num_labels]``). Bytes are always counted
from these fields, so the budget summary, the store's manifest and the sweep's store sizes agree by construction.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from mudkd.errors import BudgetError

#: Bytes per element of every dtype a store may hold.
DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4, "int16": 2, "int32": 4}
#: Bytes per stored element for the value dtypes a store may use.
VALUE_DTYPE_BYTES = {name: DTYPE_BYTES[name] for name in ("float16", "bfloat16", "float32")}
#: Largest flat position an int16 can hold; beyond it positions are stored as int32.
INT16_MAX = 32767
#: Dtype of the attention-ranked token indices (k ≤ max_seq_length ≤ 4096 always fits).
TOKEN_INDEX_DTYPE = "int16"
#: Dtype of the teacher logits beside the HSK.
LOGITS_DTYPE = "float32"
#: Name of the logits field in a store.
LOGITS_FIELD = "logits"

Fields = dict[str, tuple[str, tuple[int, ...]]]


def check_value_dtype(value_dtype: str) -> str:
    """Refuse a value dtype a store cannot hold.

    Raises:
        BudgetError: ``value_dtype`` is not ``float16``, ``bfloat16`` or ``float32``.
    """
    if value_dtype not in VALUE_DTYPE_BYTES:
        raise BudgetError(
            f"store value dtype {value_dtype!r} is not supported", f"use one of {', '.join(VALUE_DTYPE_BYTES)}"
        )
    return str(value_dtype)


def position_dtype(flat_size: int) -> str:
    """Dtype of Mag Mask flat positions within ``flat_size`` = k·d values: int16 when they fit, else int32."""
    return "int16" if flat_size <= INT16_MAX else "int32"


def logits_field(num_labels: int) -> Fields:
    """The logits field of a store: ``{"logits": ("float32", (num_labels,))}``."""
    return {LOGITS_FIELD: (LOGITS_DTYPE, (num_labels,))}


def field_bytes(fields: Mapping[str, tuple[str, tuple[int, ...]]]) -> int:
    """Bytes of one example of ``fields`` (``{name: (dtype, per-example shape)}``)."""
    return sum(DTYPE_BYTES[dtype] * math.prod(shape) for dtype, shape in fields.values())
