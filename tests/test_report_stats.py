"""Confidence intervals over seeds: t quantiles against published tables, intervals against
hand computations, and the honest n = 1 case."""

from __future__ import annotations

import math

import pytest

from bnlab.report._tdist import t_cdf, t_quantile
from bnlab.report.stats import diff_ci, format_estimate, format_interval, mean_ci, mean_ci_band

# t_{0.975, df} from any printed t table (3 decimals).
T_975 = {1: 12.706, 2: 4.303, 4: 2.776, 9: 2.262, 29: 2.045, 120: 1.980}


@pytest.mark.parametrize(("df", "expected"), sorted(T_975.items()))
def test_t_quantile_matches_table(df, expected):
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=5e-4)


def test_t_quantile_other_levels_and_symmetry():
    assert t_quantile(0.995, 4) == pytest.approx(4.604, abs=5e-4)  # 99% two-sided, df=4
    assert t_quantile(0.95, 10) == pytest.approx(1.812, abs=5e-4)
    assert t_quantile(0.025, 9) == pytest.approx(-t_quantile(0.975, 9), rel=1e-12)
    assert t_quantile(0.5, 3) == 0.0
    assert t_cdf(t_quantile(0.9, 2.5), 2.5) == pytest.approx(0.9, abs=1e-12)


def test_t_quantile_matches_scipy_at_fractional_df():
    stats = pytest.importorskip("scipy.stats", reason="SciPy not installed: table test covers it")
    for df in (1.3, 3.7, 7.25, 55.5):
        for p in (0.6, 0.9, 0.975, 0.999):
            assert t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-9)


@pytest.mark.parametrize(("p", "df"), [(0.0, 3), (1.0, 3), (0.9, 0), (0.9, -1)])
def test_t_quantile_rejects_bad_arguments(p, df):
    with pytest.raises(ValueError, match="expected"):
        t_quantile(p, df)


def test_mean_ci_by_hand():
    # values 1..5: mean 3, s = sqrt(2.5), sem = sqrt(0.5); half = 2.776 * 0.7071 = 1.963
    est = mean_ci([1, 2, 3, 4, 5])
    assert est.mean == 3.0 and est.n == 5
    half = t_quantile(0.975, 4) * math.sqrt(2.5 / 5)
    assert half == pytest.approx(1.9632, abs=1e-4)
    assert (est.low, est.high) == pytest.approx((3 - half, 3 + half), rel=1e-12)
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
    half = t_quantile(0.975, df) * math.sqrt(va + vb)
    assert (est.low, est.high) == pytest.approx((9 - half, 9 + half), rel=1e-12)
    assert est.n == 3 and "Welch" in est.method


def test_paired_uses_per_seed_differences():
    a, b = [0.98, 0.97, 0.99], [0.95, 0.94, 0.97]
    paired, ref = diff_ci(a, b, paired=True), mean_ci([0.03, 0.03, 0.02])
    assert (paired.mean, paired.low, paired.high) == pytest.approx((ref.mean, ref.low, ref.high))
    assert "paired" in paired.method
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
