"""The ladder of candidate budgets a search walks, as ``{K}l_{k}t_{ρ}h`` strings (pure Python).

* ``3d`` (default): joint budgets at HSK fractions 0.05 %, 0.1 %, 0.2 %, ... (doubling) up to just below full
  HSK; each axis takes about the cube root of the fraction (K of L_S + 1 hidden states, k of T tokens), the width
  ρ makes up the rest.
* ``depth``, ``length``, ``width``: one axis varies (K = 1..L_S + 1; k = 1, 2, 4, ... T; ρ = 0.001 ... 1), the other
  two stay as the recipe has them (unset: all layers, all tokens, full width).

Full HSK itself is never a rung: it is the search's reference, measured with the teacher online. With a token
ranking (``attention``, ``attention_no_sep``) no rung keeps all T tokens, since k = T means "every token in
natural order", which one ranked store cannot serve alongside the ranked rungs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from mudkd.knowledge import parse_config_3d

AXES = ("3d", "depth", "length", "width")

#: HSK fractions of the default 3D ladder: 0.05 % doubling up to 51.2 %.
FRACTIONS_3D = tuple(0.0005 * 2**i for i in range(11))
#: Widths of the 1-D width ladder.
WIDTHS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


def config_3d(layers: int, tokens: int, hidden: float) -> str:
    """``(1, 10, 0.1)`` → ``"1l_10t_0.1h"`` (ρ in ``%g``, which :func:`parse_config_3d` reads back)."""
    return f"{layers}l_{tokens}t_{hidden:g}h"


def _round_up(value: float, digits: int = 2) -> float:
    """``value`` rounded up to ``digits`` significant digits (so a width never drops below its minimum)."""
    if value <= 0:
        return value
    scale = 10 ** (digits - 1 - math.floor(math.log10(value)))
    return math.ceil(value * scale - 1e-9) / scale


def _min_width(tokens: int, hidden: int, magnitude: bool) -> float:
    """The least ρ that keeps one value: one dim of ``hidden`` (static mask), one of k·d values (Mag Mask)."""
    return _round_up(1 / (tokens * hidden) if magnitude else 1 / hidden, 2)


def fraction(layers: int, tokens: int, hidden: float, *, num_layers: int, seq_length: int) -> float:
    """The nominal HSK fraction K·k·ρ / ((L_S + 1)·T) (the resolved budget floors ρ·d; this ignores it)."""
    return layers * tokens * hidden / ((num_layers + 1) * seq_length)


def build_ladder(
    axes: str,
    *,
    num_layers: int,
    seq_length: int,
    hidden: int,
    ranked: bool,
    magnitude: bool,
    base: tuple[int | None, int | None, float],
) -> list[str]:
    """The default ladder along ``axes`` for a student of ``num_layers`` layers, T = ``seq_length`` and teacher
    width ``hidden``, ordered by nominal fraction, without duplicates and without full HSK.

    Args:
        axes: ``3d``, ``depth``, ``length`` or ``width``.
        ranked: Tokens are ranked by attention (no rung keeps all T tokens then).
        magnitude: The width scheme is the Mag Mask (its ρ may go down to one value of k·d).
        base: The recipe's ``(K, k, ρ)`` (None: all), kept by the 1-D ladders on the axes they do not vary.
    """
    if axes not in AXES:
        raise ValueError(f"axes must be one of {', '.join(AXES)}")
    depth, max_tokens = num_layers + 1, seq_length - 1 if ranked else seq_length
    base_layers = min(base[0] or depth, depth)
    base_tokens = min(base[1] or seq_length, seq_length)
    base_hidden = base[2]
    candidates: list[tuple[int, int, float]] = []
    if axes == "3d":
        for target in FRACTIONS_3D:
            share = target ** (1 / 3)
            layers = min(max(round(share * depth), 1), depth)
            tokens = min(max(round(share * seq_length), 1), max_tokens)
            width = target * depth * seq_length / (layers * tokens)
            width = min(max(_round_up(width), _min_width(tokens, hidden, magnitude)), 1.0)
            candidates.append((layers, tokens, width))
    elif axes == "depth":
        candidates = [(layers, base_tokens, base_hidden) for layers in range(1, depth + 1)]
    elif axes == "length":
        powers = [2**i for i in range(max(seq_length.bit_length(), 1)) if 2**i < seq_length] + [seq_length]
        candidates = [(base_layers, tokens, base_hidden) for tokens in powers if tokens <= max_tokens]
    else:
        floor = _min_width(base_tokens, hidden, magnitude)
        candidates = [(base_layers, base_tokens, width) for width in WIDTHS if width >= floor]
    return order_ladder(
        [config_3d(*c) for c in candidates if (c[0], c[1], c[2]) != (depth, seq_length, 1.0)],
        num_layers=num_layers,
        seq_length=seq_length,
    )


def order_ladder(ladder: Sequence[str], *, num_layers: int, seq_length: int) -> list[str]:
    """``ladder`` ordered by nominal HSK fraction, the first of equal fractions kept, duplicates dropped."""
    seen: set[float] = set()
    ordered = []
    for text in sorted(dict.fromkeys(ladder), key=lambda t: _nominal(t, num_layers, seq_length)):
        value = round(_nominal(text, num_layers, seq_length), 12)
        if value not in seen:
            seen.add(value)
            ordered.append(text)
    for text in ordered:
        parse_config_3d(text)  # raises BudgetError on a malformed string
    return ordered


def _nominal(text: str, num_layers: int, seq_length: int) -> float:
    layers, tokens, hidden = parse_config_3d(text)
    return fraction(layers, tokens, hidden, num_layers=num_layers, seq_length=seq_length)
