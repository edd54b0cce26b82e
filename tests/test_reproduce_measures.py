"""The experiment-level rules on synthetic inputs whose answer is known: divergence vs stall in
the learning-rate sweep, and pairing over seeds when some runs are not measurable."""

from __future__ import annotations

import math

import numpy as np

from bnlab.reproduce.common import paired_effect
from bnlab.reproduce.ioffe2015_lr import classify, highest_lr_log2

T = 200
LN10 = math.log(10)


def _curves() -> np.ndarray:
    learns = np.linspace(2.3, 0.2, T)  # trains
    stalls = np.full(T, LN10 - 0.001)  # never leaves chance (class-prior guessing)
    breaks = np.concatenate([np.linspace(2.3, 0.3, T // 2), np.full(T // 2, LN10)])
    blows_up = np.full(T, 40.0)  # far worse than guessing, still finite
    nan = np.concatenate([np.linspace(2.3, 1.0, T // 2), np.full(T // 2, np.nan)])
    return np.stack([learns, stalls, breaks, blows_up, nan])  # (K=5, T)


def test_classify_tells_divergence_from_a_stall():
    diverged, stalled = classify(_curves())
    assert diverged.tolist() == [False, False, True, True, True]
    assert stalled.tolist() == [False, True, False, False, False]


def test_highest_trainable_lr_per_seed_ignores_diverged_and_chance_runs():
    grid = np.array([0.1, 1.0, 10.0])
    acc = np.array([[90.0, 95.0, 97.0], [90.0, 30.0, 97.0], [10.0, 10.0, 10.0]])  # (S, G)
    diverged = np.array([[False, False, True], [False, False, False], [False] * 3])
    best = highest_lr_log2(grid, acc, diverged)
    assert best[0] == 0.0  # lr 1: lr 10 diverged
    assert best[1] == math.log2(10.0)  # lr 1 fell below 50% but lr 10 trained
    assert math.isnan(best[2])  # nothing trained


def test_paired_effect_drops_unmeasurable_pairs_and_counts_them():
    bn = np.array([1.0, 2.0, np.nan, 4.0])
    base = np.array([0.0, 1.0, 1.0, np.nan])
    effect, dropped = paired_effect(bn, base)
    assert dropped == 2 and effect.n == 2 and effect.mean == 1.0
    assert paired_effect([np.nan], [1.0]) == (None, 1)
