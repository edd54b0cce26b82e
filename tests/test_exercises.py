"""bnlab.exercises: each checker passes a correct answer, fails a wrong one with a message that
names the mistake, and reports an untouched stub as "not attempted" without raising."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bnlab import exercises

AXES = (0, 2, 3)


# ------------------------------------------------------------ correct answers, written here
# independently of bnlab.reference (plain NumPy / torch, no shared code)


def forward(x, gamma, beta, eps):
    axes = (0, *range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mu, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    return gamma.reshape(shape) * (x - mu) / np.sqrt(var + eps) + beta.reshape(shape)


def backward_autograd(dy, x, gamma, eps):
    xt = torch.tensor(x, requires_grad=True)
    gt = torch.tensor(gamma, requires_grad=True)
    bt = torch.zeros(len(gamma), dtype=torch.float64, requires_grad=True)
    y = nn.functional.batch_norm(xt, None, None, gt, bt, training=True, eps=eps)
    y.backward(torch.tensor(dy))
    return xt.grad.numpy(), gt.grad.numpy(), bt.grad.numpy()


def backward_naive(dy, x, gamma, eps):  # treats mu and var as constants
    _, dgamma, dbeta = backward_autograd(dy, x, gamma, eps)
    return gamma / np.sqrt(x.var(0) + eps) * dy, dgamma, dbeta


def running_stats(rm, rv, mu, var, m, momentum):
    return (1 - momentum) * rm + momentum * mu, (1 - momentum) * rv + momentum * var * m / (m - 1)


def running_stats_keras(rm, rv, mu, var, m, momentum):
    return momentum * rm + (1 - momentum) * mu, momentum * rv + (1 - momentum) * var * m / (m - 1)


def running_stats_in_place(rm, rv, mu, var, m, momentum):
    rm *= 1 - momentum
    rm += momentum * mu
    return rm, (1 - momentum) * rv + momentum * var * m / (m - 1)


def fold(linear, bn, eps_in_scale=True):
    var = bn.running_var + bn.eps if eps_in_scale else bn.running_var
    scale = bn.weight / var.sqrt()
    out = nn.Linear(linear.in_features, linear.out_features).double()
    out.weight.copy_(linear.weight * scale[:, None])
    out.bias.copy_(scale * (linear.bias - bn.running_mean) + bn.bias)
    return out


def eval_after(x, k, momentum):
    mean, var = np.zeros(x.shape[1]), np.ones(x.shape[1])
    for _ in range(k):
        mean = (1 - momentum) * mean + momentum * x.mean(0)
        var = (1 - momentum) * var + momentum * x.var(0, ddof=1)
    return (x - mean) / np.sqrt(var + 1e-5)


def ghost(x, num_splits, eps):
    chunks = np.split(x, num_splits)
    return np.concatenate([(c - c.mean(0)) / np.sqrt(c.var(0) + eps) for c in chunks])


def conv_stats(x):
    return x.mean(axis=AXES), x.var(axis=AXES)


def stub(*args):
    raise NotImplementedError


# (checker, a correct answer, a typical wrong answer, words its message must contain)
CASES = {
    "forward": (
        exercises.check_forward,
        forward,
        lambda x, g, b, eps: forward(x, g, b, eps) * 1.01,
        "max |difference|",
    ),
    "forward-per-N": (
        exercises.check_forward,
        forward,
        lambda x, g, b, eps: (
            forward(x, g, b, eps)
            if x.ndim == 2
            else g.reshape(1, -1, 1, 1) * (x - x.mean(0)) / np.sqrt(x.var(0) + eps)
            + b.reshape(1, -1, 1, 1)
        ),
        "over N, H and W",
    ),
    "backward": (
        exercises.check_backward,
        backward_autograd,
        backward_naive,
        "treated as constants",
    ),
    "running-stats": (exercises.check_running_stats, running_stats, running_stats_keras, "Keras"),
    "running-stats-in-place": (
        exercises.check_running_stats,
        running_stats,
        running_stats_in_place,
        "running_mean was changed in place",
    ),
    "fold": (exercises.check_fold, fold, lambda lin, bn: fold(lin, bn, False), "eps is missing"),
    "eval-after-k": (
        exercises.check_eval_after_k_steps,
        eval_after,
        lambda x, k, momentum: forward(x, np.ones(x.shape[1]), np.zeros(x.shape[1]), 1e-5),
        "training-mode output",
    ),
    "ghost": (
        exercises.check_ghost_bn,
        ghost,
        lambda x, s, eps: ghost(x, 1, eps),
        "whole batch",
    ),
    "conv-stats": (
        exercises.check_conv_stats,
        conv_stats,
        lambda x: (x.mean(axis=AXES), x.var(axis=AXES, ddof=1)),
        "unbiased",
    ),
    "conv-stats-shape": (
        exercises.check_conv_stats,
        conv_stats,
        lambda x: (x.mean(0), x.var(0)),
        "(C, H, W)",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_checker_passes_correct_and_fails_wrong_with_a_hint(case):
    check, right, wrong, hint = CASES[case]
    ok = check(right)
    assert ok.passed and bool(ok), ok
    bad = check(wrong)
    assert bad.status == "failed" and not bad, bad
    assert hint in bad.message, bad.message


@pytest.mark.parametrize("check", sorted({c[0] for c in CASES.values()}, key=str))
def test_stub_is_not_attempted_and_crash_is_reported(check):
    assert check(stub).status == "not attempted"

    def crashes(*args):
        return 1 / 0

    crashed = check(crashes)
    assert crashed.status == "failed" and "ZeroDivisionError" in crashed.message
    assert repr(crashed).startswith("[failed] ")


def test_wrong_shape_and_wrong_type_are_named():
    res = exercises.check_backward(lambda dy, x, g, eps: (dy.T, g, g))
    assert "dbeta" in res.message or "dx" in res.message
    res = exercises.check_backward(lambda dy, x, g, eps: dy)
    assert "expected a tuple of 3 arrays" in res.message
    with pytest.raises(TypeError, match="fn: got int"):
        exercises.check_forward(3)


def test_fold_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    exercises.check_fold(fold)
    assert torch.equal(torch.rand(3), expected)
