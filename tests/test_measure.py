"""Ratios a user can believe: the median of interleaved pairs, its range, the load, and "measured" only when every
pair agrees on which side of 1.0 the ratio lies and the range is narrower than the effect (values by hand)."""

from __future__ import annotations

import pytest

from mudkd.core.batching import padded_batches
from mudkd.core.measure import MEASURED, NOT_MEASURABLE, describe, interleaved, paired_ratios


def test_median_and_range_of_the_pairs():
    # ratios 2.0, 3.0, 2.5 → sorted 2.0, 2.5, 3.0; range 1.0 narrower than the effect 1.5
    spread = paired_ratios([4.0, 6.0, 5.0], [2.0, 2.0, 2.0], load=1.25)
    assert spread["median"] == pytest.approx(2.5) and spread["low"] == 2.0 and spread["high"] == 3.0
    assert spread["n"] == spread["pairs"] == 3 and spread["load"] == 1.25
    assert spread["verdict"] == MEASURED and spread["measurable"] is True and spread["reason"] is None
    assert describe(spread) == "2.50× [2.00, 3.00] over 3 interleaved pairs, load 1.2"


def test_pairs_on_both_sides_of_one_are_not_a_measurement():
    # the store "speed-up" a loaded machine once reported: 0.86 in one run, 2.96 in another
    spread = paired_ratios([0.86, 2.96, 1.4], [1.0, 1.0, 1.0], load=3.0)
    assert spread["median"] == pytest.approx(1.4) and spread["verdict"] == NOT_MEASURABLE
    assert spread["reason"] == "the pairs straddle 1.0"
    assert describe(spread) == (
        "not measurable on this machine now (the pairs straddle 1.0): 1.40× [0.86, 2.96] over 3 interleaved pairs, "
        "load 3.0"
    )


def test_a_range_entirely_above_one_but_wider_than_the_effect_is_a_bound():
    # ratios 1.1, 1.2, 1.5: all above 1.0, the range 0.4 wider than the effect 0.2: "at least 1.10x" (issue 21)
    spread = paired_ratios([1.1, 1.2, 1.5], [1.0, 1.0, 1.0], load=0.5)
    assert spread["verdict"] == MEASURED and spread["bound"] == ("≥", pytest.approx(1.1))
    assert describe(spread).startswith("≥ 1.10× (median 1.20× [1.10, 1.50] over 3 interleaved pairs")
    # every pair >= 2.7x with a wide range: the example, a measurement and not "not measurable"
    wide = paired_ratios([2.7, 3.5, 6.0], [1.0, 1.0, 1.0])
    assert wide["verdict"] == MEASURED and describe(wide).startswith("≥ 2.70×")
    below = paired_ratios([1.0, 1.0, 1.0], [1.1, 2.0, 5.0])  # ratios 0.2 .. 0.91: at most 0.91x
    assert below["bound"] == ("≤", pytest.approx(1 / 1.1)) and describe(below).startswith("≤ 0.91×")
    # 1.1, 1.2, 1.25: range 0.15 within the effect 0.2: the value itself
    narrow = paired_ratios([1.1, 1.2, 1.25], [1.0, 1.0, 1.0])
    assert narrow["verdict"] == MEASURED and narrow["bound"] is None and describe(narrow).startswith("1.20× [")


def test_too_few_pairs_are_not_a_measurement():
    spread = paired_ratios([3.0, 3.0], [1.0, 1.0])
    assert spread["verdict"] == NOT_MEASURABLE and spread["reason"] == "fewer than 3 pairs"
    empty = paired_ratios([], [])
    assert empty["median"] is None and empty["n"] == 0 and describe(empty) == "-"


def test_a_consistent_slowdown_is_measurable_too():
    spread = paired_ratios([1.0, 1.0, 1.0], [1.5, 1.25, 2.0])  # ratios 0.5, 0.67, 0.8: effect 0.33, range 0.3
    assert spread["high"] < 1.0 and spread["verdict"] == MEASURED


def test_interleaved_rotates_the_order_and_pairs_the_repetitions():
    """A fake clock: every call advances it by the variant's own cost, so each timing is known by hand."""
    ticks = {"value": 0.0}
    calls: list[str] = []

    def clock() -> float:
        return ticks["value"]

    def variant(name: str, cost: float):
        def run() -> None:
            calls.append(name)
            ticks["value"] += cost

        return run

    seconds = interleaved(
        {"a": variant("a", 3.0), "b": variant("b", 1.0), "c": variant("c", 2.0)}, repeats=3, warmup=1, clock=clock
    )
    assert calls == ["a", "b", "c"] + ["a", "b", "c", "b", "c", "a", "c", "a", "b"]  # warm-up, then rotations
    assert seconds == {"a": [3.0, 3.0, 3.0], "b": [1.0, 1.0, 1.0], "c": [2.0, 2.0, 2.0]}
    spread = paired_ratios(seconds["a"], seconds["b"], load=0.0)
    assert spread["median"] == 3.0 and spread["n"] == 3 and spread["verdict"] == MEASURED


def test_padded_batches_pad_each_batch_to_its_own_longest_example():
    examples = [
        {"input_ids": [2] + [7] * (length - 2) + [3], "attention_mask": [1] * length} for length in (3, 6, 4, 4, 8)
    ]
    batches, tokens = padded_batches(examples, 2, pad_token_id=0)
    assert [tuple(batch["input_ids"].shape) for batch in batches] == [(2, 6), (2, 4), (1, 8)]
    assert tokens == 2 * 6 + 2 * 4 + 8 == 28
    assert batches[0]["attention_mask"].sum().item() == 3 + 6 and batches[0]["input_ids"][0].tolist()[3:] == [0] * 3
