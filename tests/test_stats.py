"""core/stats.py on hand-computed examples (scipy.stats as the oracle where a t tail is needed)."""

from __future__ import annotations

import math

import pytest
from scipy import stats as scipy_stats

from mudkd.core import stats


def test_welch_from_summary_statistics_matches_the_hand_computation_and_scipy():
    # A = 1, 2, 3 and B = 4, 5, 6: means 2 and 5, std 1 each; se = sqrt(1/3 + 1/3) = 0.8165,
    # df = (2/3)² / ((1/3)²/2 + (1/3)²/2) = 4, t = -3 / 0.8165 = -3.674
    difference = stats.welch(2.0, 1.0, 3, 5.0, 1.0, 3)
    assert difference.test == "welch" and difference.difference == -3.0
    assert difference.se == pytest.approx(math.sqrt(2 / 3)) and difference.df == pytest.approx(4.0)
    oracle = scipy_stats.ttest_ind([1, 2, 3], [4, 5, 6], equal_var=False)
    assert difference.p == pytest.approx(oracle.pvalue) and difference.p == pytest.approx(0.02131, abs=1e-5)
    # 95 % CI: -3 ± t(0.975, 4) · 0.8165 = -3 ± 2.776 · 0.8165 = [-5.267, -0.733]
    assert (difference.low, difference.high) == pytest.approx((-5.2669, -0.7331), abs=1e-4)
    assert stats.welch_values([1, 2, 3], [4, 5, 6]) == difference


def test_welch_satterthwaite_degrees_of_freedom_with_unequal_noise():
    # the findings' 0.2 % vs no-HSK: v_a = 0.004135²/3, v_b = 0.004999²/3 → df 3.86, p 0.0058 (the issue's 0.006)
    difference = stats.welch(0.762615, 0.004135, 3, 0.741972, 0.004999, 3)
    oracle = scipy_stats.ttest_ind_from_stats(0.762615, 0.004135, 3, 0.741972, 0.004999, 3, equal_var=False)
    assert difference.p == pytest.approx(oracle.pvalue) and difference.p == pytest.approx(0.0058, abs=1e-4)
    v_a, v_b = 0.004135**2 / 3, 0.004999**2 / 3
    assert difference.df == pytest.approx((v_a + v_b) ** 2 / (v_a**2 / 2 + v_b**2 / 2))


def test_a_single_deterministic_value_is_a_constant():
    # B evaluated once (the untrained student): its variance term is 0, df = n_a - 1 = 2, se = 0.005 / sqrt(3)
    difference = stats.welch(0.742, 0.005, 3, 0.516, None, 1)
    assert difference.df == pytest.approx(2.0) and difference.se == pytest.approx(0.005 / math.sqrt(3))
    oracle = scipy_stats.ttest_1samp([0.742 - 0.005, 0.742, 0.742 + 0.005], 0.516)
    assert difference.p == pytest.approx(oracle.pvalue)
    exact = stats.welch_values([0.7, 0.7], [0.6])  # no variance anywhere: known exactly
    assert exact.test == "exact" and exact.p == 0.0 and exact.low == exact.high == pytest.approx(0.1)


def test_paired_test_uses_the_per_seed_differences():
    # differences 1, 2, 3: mean 2, std 1, se 1/sqrt(3), t = 3.464, df 2 → p 0.0742; Welch on the same values
    # (means 2.333 and 0.333, std 1.528 and 0.577) is weaker: p 0.14
    a, b = [1.0, 2.0, 4.0], [0.0, 0.0, 1.0]
    difference = stats.paired(a, b)
    assert difference.test == "paired" and difference.df == 2 and difference.se == pytest.approx(1 / math.sqrt(3))
    assert difference.p == pytest.approx(scipy_stats.ttest_rel(a, b).pvalue)
    assert difference.p == pytest.approx(0.0742, abs=1e-4)
    assert stats.compare(a, b, shared_seeds=True) == difference
    assert stats.compare(a, b).test == "welch" and stats.compare(a, b).p > 0.1
    with pytest.raises(ValueError):
        stats.paired([1.0, 2.0], [1.0])


def test_tost_needs_both_one_sided_tests():
    # d = 0.002, se = 0.004, df 4, margin 0.01: p_lower = P(T4 > 3) = 0.0200, p_upper = P(T4 < -2) = 0.0581
    difference = stats.Difference("welch", 0.002, 0.004, 4.0, 0.63, -0.009, 0.013, 3, 3)
    equivalence = stats.tost(difference, 0.01)
    assert equivalence.p_lower == pytest.approx(scipy_stats.t.sf(3, 4)) and equivalence.p_lower == pytest.approx(
        0.0200, abs=1e-4
    )
    assert equivalence.p_upper == pytest.approx(0.0581, abs=1e-4) and equivalence.p == equivalence.p_upper
    assert equivalence.non_inferior() and not equivalence.equivalent()
    # the 90 % interval 0.002 ± 2.132 · 0.004 = [-0.0065, 0.0105] crosses +0.01: the same answer
    assert equivalence.high == pytest.approx(0.002 + 2.1318 * 0.004, abs=1e-5)
    assert stats.tost(difference, 0.012).equivalent()  # [-0.0065, 0.0105] inside ±0.012


def test_holm_adjusts_step_down_and_keeps_the_order():
    # sorted 0.01, 0.03, 0.04 → ×3, ×2, ×1 = 0.03, 0.06, 0.04 → non-decreasing 0.03, 0.06, 0.06
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert stats.holm([]) == []


def test_verdict_words():
    strong = stats.welch(0.7626, 0.0041, 3, 0.7420, 0.0050, 3)
    assert stats.verdict(strong, 0.04) == "reproduces"
    assert stats.verdict(strong, 0.06) == "not resolved (n = 3, CI [+1.0, +3.1])"
    assert stats.verdict(stats.welch(0.7420, 0.0050, 3, 0.7626, 0.0041, 3), 0.01) == "reversed"
    same = stats.welch(0.750, 0.001, 5, 0.7505, 0.001, 5)
    equivalence = stats.tost(same, 0.005)
    assert stats.verdict(same, 1.0, equivalence=equivalence) == "equivalent within ±0.5 points"
    assert stats.verdict(same, 1.0, equivalence=equivalence, adjusted_equivalence_p=0.2).startswith("not resolved")
