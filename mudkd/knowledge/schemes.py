"""The names of "which knowledge": scheme enums and the two budget strings (``t_topN``, ``{K}l_{k}t_{ρ}h``).

Every scheme name mudkd knows is spelled here once. The enums are ``str`` enums: a member equals its value
(``TokenScheme.ATTENTION == "attention"``), prints as its value, and serialises as a plain string, so recipes, JSON
documents and stores keep holding plain strings. The pydantic schema (``mudkd.recipe.schema``) uses them as field
types, which gives the CLI its choices and the wizard its options.
"""

from __future__ import annotations

import re
from enum import Enum

from mudkd.errors import BudgetError


class Choice(str, Enum):
    """A ``str`` enum whose members print and format as their values (``enum.StrEnum`` needs Python 3.11)."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    @classmethod
    def values(cls) -> tuple[str, ...]:
        """Every value, in declaration order (the order shown in hints and help)."""
        return tuple(str(member.value) for member in cls)


class TokenScheme(Choice):
    """Length: which k tokens of an example get HSK (method.md §10)."""

    LEFT_FIRST = "left_first"  # the first k tokens ([CLS] included)
    ATTENTION = "attention"  # top-k of the teacher's head-averaged pre-softmax [CLS] scores
    ATTENTION_NO_SEP = "attention_no_sep"  # the same with every [SEP] masked


class HiddenScheme(Choice):
    """Width: which hidden dimensions (or values) of a kept token get HSK (method.md §11)."""

    RAND_MASK = "rand_mask"  # a random set of dims, fixed by the seed
    UNIFORM_MASK = "uniform_mask"  # ⌊dρ⌋ evenly spaced dims
    IMPORTANCE_MASK_DYNAMIC = "importance_mask_dynamic"  # Mag Mask: the largest magnitudes


#: The width schemes that keep a fixed set of dims (the Mag Mask varies per example).
STATIC_HIDDEN_SCHEMES = (HiddenScheme.RAND_MASK.value, HiddenScheme.UNIFORM_MASK.value)


class MagScope(Choice):
    """Where the Mag Mask's top-n is taken: per example (exact, storable) or batch-wide (the reference, Q5)."""

    EXAMPLE = "example"
    BATCH = "batch"


class MaskMode(Choice):
    """What masked HSK contributes to the loss: nothing (``both``) or a pull to 0 (``teacher_only``, reference Q3)."""

    BOTH = "both"
    TEACHER_ONLY = "teacher_only"


class StoreDtype(Choice):
    """Precision of the HSK values a teacher-free store keeps (``cache.dtype``)."""

    FLOAT16 = "float16"
    FLOAT32 = "float32"


#: Short labels of the schemes, for point ids and one-line budget descriptions (``k10-attnosep``, ``ρ=0.1 mag``).
SHORT_NAMES: dict[str, str] = {
    TokenScheme.LEFT_FIRST.value: "left",
    TokenScheme.ATTENTION.value: "att",
    TokenScheme.ATTENTION_NO_SEP.value: "attnosep",
    HiddenScheme.RAND_MASK.value: "rand",
    HiddenScheme.UNIFORM_MASK.value: "uniform",
    HiddenScheme.IMPORTANCE_MASK_DYNAMIC.value: "mag",
}

_LAYER_SCHEME = re.compile(r"t_top(\d+)")
_FLOAT = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_CONFIG_3D = re.compile(rf"(\d+)l_(\d+)t_({_FLOAT})h")

#: The hints of the two parsers, also shown by validators that report a bad string without raising.
LAYER_SCHEME_HINT = "use the form t_topN with N between 1 and the teacher depth, e.g. t_top12 (standard) or t_top10"
CONFIG_3D_HINT = "use {layers}l_{tokens}t_{width}h, e.g. 1l_10t_0.1h or 2l_20t_1e-2h"


def layer_scheme_name(layer_top: int) -> str:
    """The depth scheme name of a top teacher layer: ``10`` → ``"t_top10"``."""
    return f"t_top{layer_top}"


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
        raise BudgetError(f"layer_scheme: unknown scheme {scheme!r}", LAYER_SCHEME_HINT)
    return int(match.group(1))


def parse_config_3d(text: str) -> tuple[int, int, float]:
    """Parse a joint 3D budget string ``{K}l_{k}t_{ρ}h``.

    Unlike the reference regex (quirk Q27), the format is strict and scientific notation works
    (``"2l_20t_1e-2h"`` → ``(2, 20, 0.01)``).

    Args:
        text: e.g. ``"1l_10t_0.1h"``.

    Returns:
        ``(keep_layers, keep_tokens, keep_hidden)``; ranges are checked by
        :func:`mudkd.knowledge.resolve.resolve_budget`.

    Raises:
        BudgetError: If ``text`` does not have the form ``{int}l_{int}t_{float}h``.
    """
    match = _CONFIG_3D.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise BudgetError(f"config_3d: cannot parse {text!r}", CONFIG_3D_HINT)
    return int(match.group(1)), int(match.group(2)), float(match.group(3))
