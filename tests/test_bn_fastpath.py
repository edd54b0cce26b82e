"""The compiled fast path computes what the eager Function computes, and falls back cleanly."""

from __future__ import annotations

import pytest
import torch
from helpers import assert_close
from torch import nn

import bnlab
from bnlab import _fastpath


@pytest.fixture
def small_inputs_take_fast_path(fastpath_on, monkeypatch):
    monkeypatch.setattr(_fastpath, "MIN_NUMEL", 0)


def _train_step(bn, x, dy):
    x = x.clone().requires_grad_()
    y = bn(x)
    y.backward(dy)
    return y, x.grad, bn.weight.grad, bn.bias.grad, bn.running_var


def test_compiled_path_matches_torch(small_inputs_take_fast_path):
    torch.manual_seed(0)
    x, dy = torch.randn(8, 4, 5, 5) * 3 + 1, torch.randn(8, 4, 5, 5)
    ours = _train_step(bnlab.BatchNorm2d(4), x, dy)
    assert _fastpath._compiled, "the compiled kernels were not used"
    assert _fastpath.status() == "enabled"
    ref = _train_step(nn.BatchNorm2d(4), x, dy)
    for name, a, b in zip(["y", "dx", "dgamma", "dbeta", "running_var"], ours, ref, strict=True):
        assert_close(name, a, b, rtol=1e-4, atol=1e-5)


def test_compile_failure_warns_once_and_falls_back(small_inputs_take_fast_path, monkeypatch):
    def broken_compile(fn, **kwargs):
        def call(*args):
            raise RuntimeError("no C++ compiler found")

        return call

    monkeypatch.setattr(torch, "compile", broken_compile)
    torch.manual_seed(0)
    x, dy = torch.randn(6, 3), torch.randn(6, 3)
    with pytest.warns(UserWarning, match="no C.. compiler found"):
        ours = _train_step(bnlab.BatchNorm1d(3), x, dy)
    assert _fastpath.status().startswith("disabled (torch.compile failed")
    ref = _train_step(nn.BatchNorm1d(3), x, dy)
    for name, a, b in zip(["y", "dx", "dgamma", "dbeta", "running_var"], ours, ref, strict=True):
        assert_close(name, a, b, rtol=1e-5, atol=1e-6)


def test_normalize_compiled_true_skips_the_size_threshold(fastpath_on):
    """The engine's stacked BN asks for the compiled kernels on small (K, B, C) inputs."""
    torch.manual_seed(0)
    x = torch.randn(3, 6, 4)
    w, b = torch.rand(3, 1, 4) + 0.5, torch.randn(3, 1, 4)
    dy = torch.randn(3, 6, 4)
    outs = []
    for compiled in (False, True):
        xi, wi, bi = (t.clone().requires_grad_() for t in (x, w, b))
        y, mu, var = bnlab.normalize(xi, wi, bi, dims=(1,), compiled=compiled)
        y.backward(dy)
        outs.append((y, mu, var, xi.grad, wi.grad, bi.grad))
    assert set(_fastpath._compiled) == {"forward", "backward"}
    for name, a, b in zip(["y", "mu", "var", "dx", "dw", "db"], *outs, strict=True):
        assert_close(name, a, b, rtol=1e-5, atol=1e-6)
