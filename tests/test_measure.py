"""Ratios a user can believe: the median of interleaved pairs, its range, and "measurable" only when every pair
agrees on which side of 1.0 the ratio lies (values below derived by hand)."""

from __future__ import annotations

import pytest

from mudkd.core.measure import describe, paired_ratios


def test_median_and_range_of_the_pairs():
    # ratios 2.0, 3.0, 2.5 → sorted 2.0, 2.5, 3.0
    spread = paired_ratios([4.0, 6.0, 5.0], [2.0, 2.0, 2.0])
    assert spread["median"] == pytest.approx(2.5) and spread["low"] == 2.0 and spread["high"] == 3.0
    assert spread["pairs"] == 3 and spread["measurable"] is True
    assert describe(spread) == "2.50× (2.00–3.00, 3 pairs)"


def test_pairs_on_both_sides_of_one_are_not_a_measurement():
    # the store "speed-up" a loaded machine once reported: 0.86 in one run, 2.96 in another
    spread = paired_ratios([0.86, 2.96, 1.4], [1.0, 1.0, 1.0])
    assert spread["median"] == pytest.approx(1.4) and spread["measurable"] is False
    assert describe(spread).startswith("not measurable on this machine now: 1.40×")


def test_too_few_pairs_are_not_a_measurement():
    assert paired_ratios([3.0, 3.0], [1.0, 1.0])["measurable"] is False
    assert paired_ratios([], [])["median"] is None and describe(paired_ratios([], [])) == "-"


def test_a_consistent_slowdown_is_measurable_too():
    spread = paired_ratios([1.0, 1.0, 1.0], [1.5, 1.25, 2.0])
    assert spread["high"] < 1.0 and spread["measurable"] is True
