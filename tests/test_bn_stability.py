"""Numerically stable statistics: a large offset must not cancel the variance away."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import bnlab
from bnlab import reference


def _offset_input(n=4096, c=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (1e4 + torch.randn(n, c, generator=g)).float()  # float32 values, as stored


def _float64_reference(x32):
    x = x32.double()
    return (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + 1e-5)


@pytest.mark.parametrize("impl", ["functional", "module", "numpy"])
def test_large_offset_normalizes_within_5e_3(impl):
    x = _offset_input()
    if impl == "functional":
        y = bnlab.batch_norm(x, None, None, training=True)
    elif impl == "module":
        y = bnlab.BatchNorm1d(4, affine=False)(x)
    else:
        c = x.shape[1]
        y = torch.from_numpy(reference.forward(x.numpy(), np.ones(c, "f4"), np.zeros(c, "f4"))[0])
    err = (y.double() - _float64_reference(x)).abs().max().item()
    assert err < 5e-3, f"{impl}: max error {err:.2e}"


def test_naive_one_pass_variance_fails_the_same_check():
    """The check can fail: E[x^2] - E[x]^2 in float32 is far off on this input."""
    x = _offset_input()
    mean = x.mean(0)
    var = (x * x).mean(0) - mean * mean
    y = (x - mean) / torch.sqrt(var.clamp_min(0) + 1e-5)
    assert (y.double() - _float64_reference(x)).abs().max().item() > 5e-3
