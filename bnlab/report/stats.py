"""Statistics over seeds: a mean with its Student t confidence interval, and differences.

Every number bnlab reports about a group of runs is an `Estimate`: the mean over n seeds and a
two-sided confidence interval. With n = 1 there is no interval, and the estimate says so rather
than inventing one (the bounds are NaN). A difference also carries the two-sided p-value of its
t-test (paired by seed, or Welch's), from `scipy.stats`.

Why t intervals, and not a bootstrap or a rank test: an effect is one number per seed, and
there are 5 seeds. A percentile bootstrap over 5 values covers the true mean far less often
than it claims (its interval can be no wider than the 5 values' range), and a Wilcoxon
signed-rank test over 5 pairs cannot reach p < 0.05 at all (its smallest exact two-sided
p-value is 2 / 2^5 = 0.0625). The t interval is exact for normal per-seed values and close for
mildly skewed ones; `METHODS` is the text the report prints about it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

NO_CI = "no CI: n=1"
METHODS = (
    "Each number is a mean over n seeds ± the half-width of its two-sided 95% Student t "
    "confidence interval (scipy.stats). An effect is the claim's network minus its comparison "
    "(BN minus the baseline in the reproductions), paired by seed "
    "(member k of both networks shares seed k's initialization stream and data order): its "
    "interval is the paired t interval of the per-seed differences and p the two-sided paired "
    "t-test of 'no difference' (scipy.stats.ttest_rel). Intervals assume roughly normal "
    "per-seed values; with 5 seeds a bootstrap interval would be too narrow and a rank test "
    "could not reach p < 0.05, so neither is used. A run that diverged (a non-finite value) "
    "has no number: it is counted and shown, never averaged in."
)


@dataclass(frozen=True)
class Estimate:
    """A mean over n runs with a two-sided confidence interval [low, high].

    `low` and `high` are NaN when no interval exists (n = 1); `method` names how the interval
    was computed, e.g. "Student t, df=4" or "Welch t, df=7.3". `p_value` is the two-sided
    p-value of the t-test that a difference is zero (NaN for a plain mean, or without one).
    """

    mean: float
    low: float
    high: float
    n: int
    method: str
    confidence: float = 0.95
    p_value: float = math.nan

    @property
    def has_ci(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high))

    @property
    def half_width(self) -> float:
        return 0.5 * (self.high - self.low)


def _as_values(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{name}: got shape {x.shape}, expected a non-empty 1-D sequence")
    if not np.all(np.isfinite(x)):
        # A diverged run has no mean; the caller decides whether to count it or report it apart.
        raise ValueError(f"{name}: got non-finite values {x.tolist()}, expected finite numbers")
    return x


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence: got {confidence!r}, expected 0 < confidence < 1")


def t_multiplier(confidence: float, df: float) -> float:
    """t_{(1+confidence)/2, df}: the half-width of the interval in standard errors."""
    _check_confidence(confidence)
    if not df > 0:
        raise ValueError(f"df: got {df!r}, expected degrees of freedom > 0")
    return float(stats.t.ppf(0.5 * (1.0 + confidence), df))


def mean_ci(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> Estimate:
    """Mean of `values` (n,) with the Student t interval mean ± t_{(1+c)/2, n-1} s / sqrt(n).

    s is the sample standard deviation (Bessel's correction: n-1). Assumes the values are
    independent (one per seed) and roughly normal; with n = 1 the bounds are NaN.
    """
    _check_confidence(confidence)
    x = _as_values(values, "values")
    n, mean = x.size, float(x.mean())
    if n == 1:
        return Estimate(mean, math.nan, math.nan, 1, NO_CI, confidence)
    sem = float(x.std(ddof=1)) / math.sqrt(n)  # Bessel's correction: n-1, not n
    half = t_multiplier(confidence, n - 1) * sem
    return Estimate(mean, mean - half, mean + half, n, f"Student t, df={n - 1}", confidence)


def diff_ci(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    paired: bool = False,
) -> Estimate:
    """Difference of means, mean(a) - mean(b), with a confidence interval and a t-test p.

    paired=True: a[i] and b[i] share seed i (same data order, same init stream), so the
    interval is the Student t interval of the per-seed differences a - b and p is the paired
    t-test's (`scipy.stats.ttest_rel`); n is the number of pairs. paired=False: independent
    groups, Welch's t interval and test (`scipy.stats.ttest_ind(equal_var=False)`, with the
    Welch-Satterthwaite degrees of freedom); n is the smaller group's size. A group with one
    run gives NaN bounds and p. Differences with zero spread are known exactly: the interval
    is the point itself and p is NaN (no test can be run on them).
    """
    _check_confidence(confidence)
    xa, xb = _as_values(a, "a"), _as_values(b, "b")
    if paired:
        if xa.size != xb.size:
            raise ValueError(
                f"paired diff_ci: got {xa.size} values in a and {xb.size} in b, "
                "expected one pair per seed (equal lengths)"
            )
        est = mean_ci(xa - xb, confidence)
        if est.n == 1:
            return est
        p = _p_value(xa - xb, lambda: stats.ttest_rel(xa, xb).pvalue)
        method = f"paired t, df={est.n - 1}"
        return Estimate(est.mean, est.low, est.high, est.n, method, confidence, p)
    return _welch(xa, xb, confidence)


def _p_value(spread: np.ndarray, test) -> float:
    """The test's p-value, or NaN when the values have no spread (t is undefined)."""
    return math.nan if float(np.ptp(spread)) == 0.0 else float(test())


def _welch(xa: np.ndarray, xb: np.ndarray, confidence: float) -> Estimate:
    """Welch's interval and test; private because diff_ci is the entry point that validates."""
    na, nb = xa.size, xb.size
    diff, n = float(xa.mean() - xb.mean()), min(na, nb)
    if n < 2:
        return Estimate(diff, math.nan, math.nan, n, f"no CI: n={na} vs {nb}", confidence)
    if float(np.ptp(xa)) == 0.0 and float(np.ptp(xb)) == 0.0:  # the difference is exact
        return Estimate(diff, diff, diff, n, f"Welch t, n={na} vs {nb}, zero variance", confidence)
    test = stats.ttest_ind(xa, xb, equal_var=False)
    ci = test.confidence_interval(confidence)
    method = f"Welch t, df={float(test.df):.1f}"
    return Estimate(diff, float(ci.low), float(ci.high), n, method, confidence, float(test.pvalue))


def mean_ci_band(
    values: np.ndarray, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pointwise mean and t interval over seeds for curves `values` (S, T) -> three (T,) arrays.

    Used for shaded bands in figures. With S = 1 the bounds are NaN (no band is drawn).
    """
    _check_confidence(confidence)
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or v.shape[0] == 0:
        raise ValueError(f"values: got shape {v.shape}, expected (seeds, steps) with seeds >= 1")
    mean = v.mean(axis=0)  # (T,)
    s = v.shape[0]
    if s == 1:
        nan = np.full_like(mean, np.nan)
        return mean, nan, nan
    half = t_multiplier(confidence, s - 1) * v.std(axis=0, ddof=1) / math.sqrt(s)  # (T,)
    return mean, mean - half, mean + half


def format_estimate(est: Estimate, digits: int = 1, scale: float = 1.0, unit: str = "") -> str:
    """'97.8% ± 0.3 (95% CI, n=5)'; with no interval, '97.8% (n=1, no CI)'.

    `scale` multiplies the numbers first (100 turns a fraction into a percentage); `unit` is
    appended to the mean as given, so pass ' steps' with its space where one is wanted.
    """
    mean = f"{est.mean * scale:.{digits}f}{unit}"
    if not est.has_ci:
        return f"{mean} (n={est.n}, no CI)"
    level = f"{est.confidence * 100:g}%"
    return f"{mean} ± {est.half_width * scale:.{digits}f} ({level} CI, n={est.n})"


def format_interval(est: Estimate, digits: int = 1, scale: float = 1.0) -> str:
    """'[97.5, 98.1]', or 'no CI' when n = 1; for tables that show the bounds themselves."""
    if not est.has_ci:
        return "no CI"
    return f"[{est.low * scale:.{digits}f}, {est.high * scale:.{digits}f}]"


def format_p(p: float) -> str:
    """', p = 0.0021' (two significant digits; '< 0.0001' below that), '' without a test."""
    if math.isnan(p):
        return ""
    return ", p < 0.0001" if p < 1e-4 else f", p = {p:.2g}"


def bounded_mean_ci(
    values: Sequence[float] | np.ndarray,
    low: float = -math.inf,
    high: float = math.inf,
    confidence: float = 0.95,
) -> Estimate:
    """`mean_ci`, unless its t interval leaves the measure's range [low, high] (an accuracy
    below 0%, a cosine above 1): then a bootstrap interval (`scipy.stats.bootstrap`, BCa, or
    percentile where BCa is degenerate), which never leaves the range of the values."""
    est = mean_ci(values, confidence)
    if not est.has_ci or (low <= est.low and est.high <= high):
        return est
    x = _as_values(values, "values")
    for method in ("BCa", "percentile"):
        res = stats.bootstrap(
            (x,), np.mean, confidence_level=confidence, method=method, random_state=0
        )
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if math.isfinite(lo) and math.isfinite(hi):
            method_text = f"bootstrap ({method}, {res.bootstrap_distribution.size} resamples)"
            return Estimate(est.mean, lo, hi, est.n, method_text, confidence)
    return Estimate(est.mean, math.nan, math.nan, est.n, "no CI: degenerate", confidence)


def proportion_ci(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson (exact) interval of a proportion k / n, e.g. the share of seeds that
    diverged: a count is an outcome with its own uncertainty."""
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"proportion_ci: got k={k}, n={n}, expected 0 <= k <= n, n >= 1")
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)
