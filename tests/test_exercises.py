"""bnlab.exercises: each checker passes a correct answer, fails a wrong one with a message that
names the mistake, and reports an untouched stub as "not attempted" without raising."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bnlab import _grading, exercises

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


# ------------------------------------------------------------ typical wrong answers


def forward_variant(x, gamma, beta, eps, axes=None, ddof=0, std=None):
    """forward() with one thing changed: the axes, the variance's ddof, or how std is formed."""
    axes = axes or (0, *range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mu, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, ddof=ddof, keepdims=True)
    sd = np.sqrt(var + eps) if std is None else std(var, eps)
    return gamma.reshape(shape) * (x - mu) / sd + beta.reshape(shape)


def layernorm_forward(x, gamma, beta, eps):
    return forward_variant(x, gamma, beta, eps, axes=tuple(range(1, x.ndim)))


def backward_fused(dy, x, gamma, eps, ddof=0, sign_hat=-1.0):
    """The fused formula written out; ddof=1 is the unbiased-variance slip."""
    inv_std = 1.0 / np.sqrt(x.var(0, ddof=ddof) + eps)
    x_hat = (x - x.mean(0)) * inv_std
    dx = gamma * inv_std * (dy - dy.mean(0) + sign_hat * x_hat * (dy * x_hat).mean(0))
    return dx, (dy * x_hat).sum(0), dy.sum(0)


def backward_no_gamma(dy, x, gamma, eps):
    dx, dgamma, dbeta = backward_autograd(dy, x, gamma, eps)
    return dx / gamma, dgamma, dbeta


def backward_negated(dy, x, gamma, eps):
    dx, dgamma, dbeta = backward_autograd(dy, x, gamma, eps)
    return -dx, dgamma, dbeta


def backward_reordered(dy, x, gamma, eps):
    dx, dgamma, dbeta = backward_autograd(dy, x, gamma, eps)
    return dgamma, dbeta, dx


def running_stats_keepdims(rm, rv, mu, var, m, momentum):
    new_mean, new_var = running_stats(rm, rv, mu, var, m, momentum)
    return new_mean[None, :], new_var[None, :]  # (1, C)


def fold_float32(linear, bn):
    return fold(linear, bn).float()


def fold_broken(linear, bn):
    out = fold(linear, bn)
    out.weight = nn.Parameter(torch.zeros(linear.out_features, linear.in_features - 1).double())
    return out  # says 6 -> 4 but holds a (4, 5) weight: calling it raises


def fold_bias_unscaled(linear, bn):
    scale = bn.weight / (bn.running_var + bn.eps).sqrt()
    out = fold(linear, bn)
    out.bias.copy_(linear.bias + bn.bias - scale * bn.running_mean)
    return out


def eval_after_keras(x, k, momentum):
    mean, var = np.zeros(x.shape[1]), np.ones(x.shape[1])
    for _ in range(k):  # Keras/TF: momentum weighs the old value
        mean = momentum * mean + (1 - momentum) * x.mean(0)
        var = momentum * var + (1 - momentum) * x.var(0, ddof=1)
    return (x - mean) / np.sqrt(var + 1e-5)


def eval_after_biased(x, k, momentum):
    mean, var = np.zeros(x.shape[1]), np.ones(x.shape[1])
    for _ in range(k):
        mean = (1 - momentum) * mean + momentum * x.mean(0)
        var = (1 - momentum) * var + momentum * x.var(0)
    return (x - mean) / np.sqrt(var + 1e-5)


# (checker, a correct answer, a typical wrong answer, words its message must contain)
CASES = {
    "forward": (
        exercises.check_forward,
        forward,
        lambda x, g, b, eps: forward(x, g, b, eps) * 1.01,
        "differ beyond the tolerance",
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
    "forward-unbiased": (
        exercises.check_forward,
        forward,
        lambda x, g, b, eps: forward_variant(x, g, b, eps, ddof=1),
        "unbiased (1/(m-1))",
    ),
    "forward-eps-missing": (
        exercises.check_forward,
        forward,
        lambda x, g, b, eps: forward_variant(x, g, b, eps, std=lambda v, e: np.sqrt(v)),
        "eps is missing",
    ),
    "forward-eps-outside-sqrt": (
        exercises.check_forward,
        forward,
        lambda x, g, b, eps: forward_variant(x, g, b, eps, std=lambda v, e: np.sqrt(v) + e),
        "eps is outside the square root",
    ),
    "forward-layernorm": (exercises.check_forward, forward, layernorm_forward, "(LayerNorm)"),
    "forward-swapped": (
        exercises.check_forward,
        forward,
        lambda x, g, b, eps: forward(x, b, g, eps),
        "gamma and beta are swapped",
    ),
    "backward": (
        exercises.check_backward,
        backward_autograd,
        backward_naive,
        "treated as constants",
    ),
    "backward-no-gamma": (
        exercises.check_backward,
        backward_autograd,
        backward_no_gamma,
        "gamma is missing",
    ),
    "backward-sign": (exercises.check_backward, backward_fused, backward_negated, "wrong sign"),
    "backward-sign-x-hat-term": (
        exercises.check_backward,
        backward_fused,
        lambda dy, x, g, eps: backward_fused(dy, x, g, eps, sign_hat=1.0),
        "x_hat * mean(dy * x_hat) is added",
    ),
    "backward-no-var-path": (
        exercises.check_backward,
        backward_fused,
        lambda dy, x, g, eps: backward_fused(dy, x, g, eps, sign_hat=0.0),
        "path through var is missing",
    ),
    "backward-order": (
        exercises.check_backward,
        backward_fused,
        backward_reordered,
        "wrong order: you return (dgamma, dbeta, dx)",
    ),
    "backward-unbiased": (
        exercises.check_backward,
        backward_fused,
        lambda dy, x, g, eps: backward_fused(dy, x, g, eps, ddof=1),
        "unbiased variance",
    ),
    "running-stats": (exercises.check_running_stats, running_stats, running_stats_keras, "Keras"),
    "running-stats-in-place": (
        exercises.check_running_stats,
        running_stats,
        running_stats_in_place,
        "running_mean was changed in place",
    ),
    "running-stats-no-bessel": (
        exercises.check_running_stats,
        running_stats,
        lambda rm, rv, mu, var, m, mom: ((1 - mom) * rm + mom * mu, (1 - mom) * rv + mom * var),
        "Bessel",
    ),
    "running-stats-keepdims": (
        exercises.check_running_stats,
        running_stats,
        running_stats_keepdims,
        "got shape (1, 5), expected (5,) (the same values with extra axes of length 1",
    ),
    "fold": (exercises.check_fold, fold, lambda lin, bn: fold(lin, bn, False), "eps is missing"),
    "fold-bias-unscaled": (exercises.check_fold, fold, fold_bias_unscaled, "must be scaled too"),
    "fold-float32": (exercises.check_fold, fold, fold_float32, "dtype=linear.weight.dtype"),
    "fold-broken-layer": (
        exercises.check_fold,
        fold,
        fold_broken,
        "your function returned Linear(in_features=6, out_features=4, bias=True), which raised",
    ),
    "eval-after-k": (
        exercises.check_eval_after_k_steps,
        eval_after,
        lambda x, k, momentum: forward(x, np.ones(x.shape[1]), np.zeros(x.shape[1]), 1e-5),
        "training-mode output",
    ),
    "eval-after-k-keras": (
        exercises.check_eval_after_k_steps,
        eval_after,
        eval_after_keras,
        "(Keras/TF convention)",
    ),
    "eval-after-k-biased": (
        exercises.check_eval_after_k_steps,
        eval_after,
        eval_after_biased,
        "Bessel's correction",
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
    "conv-stats-keepdims": (
        exercises.check_conv_stats,
        conv_stats,
        lambda x: (x.mean(axis=AXES, keepdims=True), x.var(axis=AXES, keepdims=True)),
        "got shape (1, 3, 1, 1), expected (3,) (the same values with extra axes of length 1",
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


def test_the_reported_element_is_the_one_outside_the_tolerance():
    """Element 0 has the larger difference but lies within rtol * |expected|; element 1 fails."""
    want = np.array([1000.0, 0.001])
    message = _grading.difference("v", np.array([1000.0005, 0.0011]), want)
    assert "1 of 2 values" in message and "index (1,): got 0.0011, expected 0.001" in message


def test_a_near_miss_prints_digits_that_tell_got_from_expected():
    message = _grading.difference("v", np.array([1.0000021]), np.array([1.0000001]))
    assert "got 1.000002, expected 1" in message, message
    message = _grading.difference("v", np.array([4.906464]), np.array([4.906459]))
    assert "got 4.906464, expected 4.906459" in message, message


def test_the_backward_reports_every_output_that_differs():
    res = exercises.check_backward(lambda dy, x, g, eps: backward_fused(dy, x, g, eps, ddof=1))
    assert res.message.startswith("dx: ") and "\ndgamma: " in res.message, res.message
    assert "dbeta" not in res.message  # dbeta = sum(dy) does not depend on the variance
