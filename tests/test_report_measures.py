"""Effect measures on synthetic series: a stable and an unstable one must be told apart, and
hand-computable cases must come out exactly."""

from __future__ import annotations

import numpy as np
import pytest

from bnlab.report.measures import (
    grad_norm_jitter,
    grad_norm_stability,
    highest_trainable,
    loss_smoothness,
    percentile_drift,
    spread,
    steps_to_accuracy,
)


def _percentiles(centre: np.ndarray, half_spread: float = 1.0) -> np.ndarray:
    return np.stack([centre - half_spread, centre, centre + half_spread], axis=1)  # (T, 3)


def test_percentile_drift_by_hand():
    # Each point moves by 0.2 with a spread of 2: drift = 0.1 per interval; no burn-in.
    q = _percentiles(np.arange(5) * 0.2)
    assert percentile_drift(q, burn_in=0.0) == pytest.approx(0.1)
    assert percentile_drift(_percentiles(np.zeros(20))) == 0.0


def test_percentile_drift_separates_stable_from_drifting():
    rng = np.random.default_rng(0)
    t = np.arange(100)
    stable = _percentiles(0.01 * rng.standard_normal(100))
    drifting = _percentiles(np.sin(t / 5.0) * 2 + 0.01 * rng.standard_normal(100))
    assert percentile_drift(stable) < 0.05 < percentile_drift(drifting)
    # Scale-free: the same drift on a 10x larger activation scale measures the same.
    assert percentile_drift(10 * drifting) == pytest.approx(percentile_drift(drifting))


def test_percentile_drift_skips_burn_in():
    centre = np.concatenate([np.linspace(-5, 0, 10), np.zeros(90)])  # moves only early
    assert percentile_drift(_percentiles(centre)) == 0.0
    assert percentile_drift(_percentiles(centre), burn_in=0.0) > 0.0


@pytest.mark.parametrize(
    ("series", "match"),
    [(np.zeros((5, 3)), "spread"), (np.zeros(5), "dimension"), (np.ones((1, 3)), "at least")],
)
def test_percentile_drift_rejects(series, match):
    with pytest.raises(ValueError, match=match):
        percentile_drift(series, burn_in=0.0)


def test_loss_smoothness_stable_vs_jittery():
    rng = np.random.default_rng(1)
    trend = 2.3 * np.exp(-np.arange(500) / 100)
    smooth = loss_smoothness(trend + 0.001 * rng.standard_normal(500))
    jittery = loss_smoothness(trend + 0.1 * rng.standard_normal(500))
    assert smooth < 0.01 < 0.1 < jittery
    # A straight line has constant differences: zero roughness however steep it is.
    assert loss_smoothness(np.linspace(3, 0, 50)) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="NaN"):
        loss_smoothness([1.0, 0.9, float("nan"), 0.8, 0.7])


def test_grad_norm_stability():
    assert grad_norm_stability(np.full(50, 3.0)) == 0.0
    # Alternating 1, 3: mean 2, sample std ~1 -> CV ~0.5
    alternating = np.tile([1.0, 3.0], 50)
    assert grad_norm_stability(alternating, burn_in=0.0) == pytest.approx(
        np.std(alternating, ddof=1) / 2.0
    )
    with pytest.raises(ValueError, match="zero"):
        grad_norm_stability(np.zeros(10))


def test_steps_to_accuracy():
    steps, acc = [100, 200, 300, 400], [0.5, 0.9, 0.85, 0.97]
    assert steps_to_accuracy(steps, acc, 0.9) == 200
    assert steps_to_accuracy(steps, acc, 0.95) == 400
    assert steps_to_accuracy(steps, acc, 0.99) is None
    with pytest.raises(ValueError, match="increasing"):
        steps_to_accuracy([1, 1, 2], [0.1, 0.2, 0.3], 0.5)
    with pytest.raises(ValueError, match="shapes"):
        steps_to_accuracy([1, 2], [0.1], 0.5)


def test_highest_trainable_and_spread():
    grid = [0.01, 0.1, 1.0, 10.0]
    assert highest_trainable(grid, [True, True, True, False]) == 1.0
    assert highest_trainable(grid, [False] * 4) is None
    assert spread([97.0, 95.5, 98.0]) == pytest.approx(2.5)
    with pytest.raises(ValueError, match="at least 2"):
        spread([1.0])


def test_grad_norm_jitter_is_the_noise_around_a_trend():
    """A linear trend times (1 + s e): the CV grows with the trend, the jitter is s
    sqrt(1 - 1/window) (the moving average shares 1/window of each point's noise) whatever
    the trend; a pure line has none."""
    rng = np.random.default_rng(0)
    t = np.arange(40_000)
    trend = 4.0 - 3.0 * t / t.size  # falls 4 -> 1, like BN's norm on the CIFAR-10 CNN
    s, window = 0.1, 101
    noisy = trend * (1 + s * rng.standard_normal(t.size))
    expected = s * np.sqrt(1 - 1 / window)
    assert grad_norm_jitter(noisy, window=window) == pytest.approx(expected, rel=0.02)
    flat = trend.mean() * (1 + s * rng.standard_normal(t.size))
    assert grad_norm_jitter(flat, window=window) == pytest.approx(expected, rel=0.02)
    assert grad_norm_stability(noisy) > 3 * grad_norm_stability(flat)  # the CV counts the trend
    assert grad_norm_jitter(trend, burn_in=0.0) == pytest.approx(0.0, abs=1e-12)


def test_grad_norm_jitter_by_hand():
    # window 3 over 1, 2, 1, 2, ...: level 4/3 at a 2, 5/3 at a 1; g/m - 1 = 1/2 or -2/5
    x = np.tile([1.0, 2.0], 10)  # (20,)
    residuals = np.tile([0.5, -0.4], 9)  # the 18 centred points start at x[1] = 2
    got = grad_norm_jitter(x, burn_in=0.0, window=3)
    assert got == pytest.approx(np.std(residuals, ddof=1))


@pytest.mark.parametrize(
    "norms, window, match",
    [
        (np.ones(200), 4, "window: got 4"),
        (np.ones(50), 101, "at least 102"),
        (np.r_[np.ones(200), np.nan], 3, "NaN"),
        (-np.ones(200), 3, "negative"),
        (np.zeros(200), 3, "moving average reaches 0"),
    ],
)
def test_grad_norm_jitter_rejects(norms, window, match):
    with pytest.raises(ValueError, match=match):
        grad_norm_jitter(norms, window=window)
