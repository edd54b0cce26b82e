"""Confidence intervals over seeds: t quantiles against published tables, intervals against
hand computations, and the honest n = 1 case."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bnlab.report.stats import (
    diff_ci,
    format_estimate,
    format_interval,
    mean_ci,
    mean_ci_band,
    t_multiplier,
)

# t_{0.975, df} from any printed t table (3 decimals).
T_975 = {1: 12.706, 2: 4.303, 4: 2.776, 9: 2.262, 29: 2.045, 120: 1.980}


@pytest.mark.parametrize(("df", "expected"), sorted(T_975.items()))
def test_t_multiplier_matches_table(df, expected):
    assert t_multiplier(0.95, df) == pytest.approx(expected, abs=5e-4)


def test_t_multiplier_other_levels():
    assert t_multiplier(0.99, 4) == pytest.approx(4.604, abs=5e-4)  # 99% two-sided, df=4
    assert t_multiplier(0.90, 10) == pytest.approx(1.812, abs=5e-4)


@pytest.mark.parametrize(("confidence", "df"), [(0.0, 3), (1.0, 3), (0.9, 0), (0.9, -1)])
def test_t_multiplier_rejects_bad_arguments(confidence, df):
    with pytest.raises(ValueError, match="expected"):
        t_multiplier(confidence, df)


def test_mean_ci_by_hand():
    # values 1..5: mean 3, s = sqrt(2.5), sem = sqrt(0.5); half = 2.776 * 0.7071 = 1.963
    est = mean_ci([1, 2, 3, 4, 5])
    assert est.mean == 3.0 and est.n == 5
    half = T_975[4] * math.sqrt(2.5 / 5)
    assert half == pytest.approx(1.963, abs=1e-3)
    assert (est.low, est.high) == pytest.approx((3 - half, 3 + half), abs=5e-4)  # table: 3 dp
    assert "t" in est.method and "df=4" in est.method


def test_mean_ci_single_run_has_no_interval():
    est = mean_ci([0.97])
    assert est.n == 1 and est.mean == 0.97
    assert math.isnan(est.low) and math.isnan(est.high) and not est.has_ci
    assert "n=1" in est.method and "no CI" in est.method


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [[1.0, 2.0]], [1.0, float("inf")]])
def test_mean_ci_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="values"):
        mean_ci(bad)


def test_mean_ci_rejects_bad_confidence():
    with pytest.raises(ValueError, match="confidence"):
        mean_ci([1.0, 2.0], confidence=95)


def test_welch_by_hand():
    a, b = [10.0, 12.0, 14.0], [1.0, 2.0, 3.0, 4.0, 5.0]
    # var_a/na = 4/3, var_b/nb = 2.5/5 = 0.5; se^2 = 11/6
    va, vb = 4 / 3, 0.5
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 4)  # Welch-Satterthwaite: (11/6)^2 / (8/9 + 1/16)
    est = diff_ci(a, b)
    assert est.mean == pytest.approx(9.0)
    assert df == pytest.approx(3.5328, abs=1e-4)
    half = t_multiplier(0.95, df) * math.sqrt(va + vb)
    assert (est.low, est.high) == pytest.approx((9 - half, 9 + half), rel=1e-12)
    assert est.n == 3 and "Welch" in est.method and "df=3.5" in est.method


def test_paired_uses_per_seed_differences():
    a, b = [0.98, 0.97, 0.99], [0.95, 0.94, 0.97]
    paired, ref = diff_ci(a, b, paired=True), mean_ci([0.03, 0.03, 0.02])
    assert (paired.mean, paired.low, paired.high) == pytest.approx((ref.mean, ref.low, ref.high))
    assert "paired" in paired.method and not math.isnan(paired.p_value)
    # Pairing removes the shared seed-to-seed variation: the interval is narrower than Welch's.
    assert paired.half_width < diff_ci(a, b).half_width


def test_diff_ci_edge_cases():
    assert not diff_ci([1.0], [2.0, 3.0]).has_ci
    assert not diff_ci([1.0], [2.0], paired=True).has_ci
    exact = diff_ci([2.0, 2.0], [1.0, 1.0])
    assert (exact.low, exact.mean, exact.high) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="pair"):
        diff_ci([1.0, 2.0], [1.0], paired=True)


def test_mean_ci_band_matches_mean_ci_per_column():
    curves = [[0.1, 0.5, 0.9], [0.2, 0.6, 0.9], [0.3, 0.4, 0.95]]  # (seeds=3, T=3)
    mean, low, high = mean_ci_band(curves)
    for t in range(3):
        est = mean_ci([c[t] for c in curves])
        assert (mean[t], low[t], high[t]) == pytest.approx((est.mean, est.low, est.high))
    _, low1, _ = mean_ci_band([[1.0, 2.0]])
    assert all(math.isnan(v) for v in low1)


def test_format_estimate():
    est = mean_ci([0.975, 0.978, 0.981, 0.976, 0.980])
    text = format_estimate(est, digits=1, scale=100, unit="%")
    assert text.startswith("97.8% ± 0.") and text.endswith("(95% CI, n=5)")
    assert format_estimate(mean_ci([0.9]), scale=100, unit="%") == "90.0% (n=1, no CI)"
    assert format_interval(mean_ci([1.0, 3.0]), digits=2).startswith("[-")
    assert format_interval(mean_ci([1.0])) == "no CI"


def test_paired_p_value_is_005_where_the_interval_touches_zero():
    """Differences whose t statistic is the table's t_{0.975, 4} = 2.776 have two-sided
    p = 0.05, and their 95% interval ends at zero (printed t table, 3 decimals)."""
    d = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])  # s = sqrt(2.5), sem = sqrt(0.5)
    shift = T_975[4] * math.sqrt(0.5)  # mean such that t = 2.776
    est = diff_ci(d + shift, np.zeros(5), paired=True)
    assert est.p_value == pytest.approx(0.05, abs=2e-4)
    assert est.low == pytest.approx(0.0, abs=1e-3)
    far = diff_ci(d + 10.0, np.zeros(5), paired=True)
    assert far.p_value < 1e-3 and far.low > 0


def test_welch_p_value_against_the_paired_one_on_independent_samples():
    """Welch's p is a two-sided test too: symmetric in a and b, and 1 at equal means."""
    a, b = [1.0, 2.0, 3.0], [2.0, 4.0, 6.0, 8.0]
    assert diff_ci(a, b).p_value == pytest.approx(diff_ci(b, a).p_value, rel=1e-12)
    assert diff_ci([1.0, 3.0], [0.0, 4.0]).p_value == pytest.approx(1.0)


def test_a_plain_mean_and_a_spread_free_difference_have_no_p_value():
    assert math.isnan(mean_ci([1.0, 2.0, 3.0]).p_value)
    exact = diff_ci([2.0, 3.0], [1.0, 2.0], paired=True)  # every seed differs by exactly 1
    assert (exact.low, exact.high) == (1.0, 1.0) and math.isnan(exact.p_value)
