"""The exact arithmetic of a budget: depth mapping, kept counts and static width masks (pure Python).

Index conventions (method.md §2): hidden-state index 0 is the embedding output, ``i`` the output of layer ``i``;
attention index ``a`` (0-based) belongs to layer ``a + 1``, whose input is hidden state ``a``.

Rounding is exact: every ``round_half_even(x)`` below is Python's ``round`` applied to a ``Fraction``, which rounds
halves to even (the reference's banker's rounding, quirk Q9) without float error.
"""

from __future__ import annotations

import math
import random
from fractions import Fraction

from mudkd.errors import BudgetError


def exact(value: float | int) -> Fraction:
    """The decimal a user typed, as an exact fraction (``0.1`` → 1/10, not the nearest binary float)."""
    return Fraction(str(value)) if isinstance(value, float) else Fraction(value)


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


def kept_count(total: int, rho: float) -> int:
    """⌊ρ · total⌋ in exact arithmetic (``kept_count(7680, 0.1)`` is 768, never 767 through float error).

    Args:
        total: Number of elements the fraction applies to.
        rho: Kept fraction ρ, read as the decimal it was written as.

    Returns:
        The number of elements kept.
    """
    return math.floor(total * exact(rho))


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
    exact_rho = exact(rho)
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


def attention_layer_list(num_student_layers: int, num_teacher_layers: int) -> list[int]:
    """The reference's ``att_ttop12`` list ``[0] + [(i+1)·L_T/L_S − 1]``, exact for any depth ratio."""
    return [0] + [
        round(Fraction((index + 1) * num_teacher_layers, num_student_layers)) - 1 for index in range(num_student_layers)
    ]
