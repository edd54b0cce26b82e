"""Self-checking exercises for the tutorial notebook (notebooks/bn_tutorial.ipynb).

Each `check_*` takes a student's function, runs it on fixed float64 inputs, compares it with an
independent answer (`bnlab.reference`, `torch.nn.BatchNorm1d`, `bnlab.fold_batchnorm`) and
returns a `CheckResult`. A checker never raises on a wrong answer: it says which element is
furthest outside the tolerance (with the digits that tell got from expected) and, when the
answer matches a known mistake, names that mistake. A function that still raises
`NotImplementedError` is reported as "not attempted", so a notebook with blank exercises runs.

    from bnlab import exercises
    exercises.check_backward(my_backward)   # [passed] backward: dx, dgamma, dbeta match ...
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from bnlab import reference
from bnlab._grading import (
    CheckResult,
    Wrong,
    array,
    close,
    compare,
    compare_all,
    pair,
    run,
)
from bnlab.fold import fold_batchnorm

__all__ = [
    "CheckResult",
    "check_backward",
    "check_conv_stats",
    "check_eval_after_k_steps",
    "check_fold",
    "check_forward",
    "check_ghost_bn",
    "check_running_stats",
]


def _rng() -> np.random.Generator:
    return np.random.default_rng(2015)  # fixed inputs: the same check for every student


# ------------------------------------------------------------------ 1. forward


def _normalized(x, gamma, beta, axes, ddof=0, eps=1e-5, eps_inside=True):
    """A wrong answer to recognise, not a reference: statistics over `axes`, variations on eps."""
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)  # (C,) -> (1, C, 1..)
    mu, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, ddof=ddof, keepdims=True)
    std = np.sqrt(var + eps) if eps_inside else np.sqrt(var) + eps
    return gamma.reshape(shape) * (x - mu) / std + beta.reshape(shape)


def _forward_mistakes(x, gamma, beta) -> dict:
    over_m = (0, *range(2, x.ndim))  # every axis but the channel axis: BN's m values
    features = tuple(range(1, x.ndim))  # every axis but the batch axis: one example's values
    mistakes = {
        "the variance is unbiased (1/(m-1)); Algorithm 1 divides by m": _normalized(
            x, gamma, beta, over_m, ddof=1
        ),
        "eps is missing: divide by sqrt(var + eps)": _normalized(x, gamma, beta, over_m, eps=0.0),
        "eps is outside the square root: sqrt(var + eps), not sqrt(var) + eps": _normalized(
            x, gamma, beta, over_m, eps_inside=False
        ),
        "statistics over each example's features (LayerNorm); BN's are per channel, over the "
        "batch": _normalized(x, gamma, beta, features),
        "gamma and beta are swapped: y = gamma * x_hat + beta": _normalized(x, beta, gamma, over_m),
    }
    if x.ndim == 4:
        hint = "statistics over N only; for conv layers they are over N, H and W"
        mistakes[hint] = _normalized(x, gamma, beta, (0,))
    return mistakes


def check_forward(fn: Callable) -> CheckResult:
    """fn(x, gamma, beta, eps) -> y, Algorithm 1 for x (N, C) and (N, C, H, W) (per channel)."""

    def grade(fn):
        rng = _rng()
        # one channel with a variance below eps, so that where eps goes shows
        scale = np.array([3.0, 1.0, 0.002]).reshape(1, 3)  # (1, C)
        for shape in ((16, 3), (4, 3, 5, 5)):
            x = rng.normal(2.0, 1.0, size=shape) * scale.reshape(
                scale.shape + (1,) * (len(shape) - 2)
            )
            gamma, beta = rng.uniform(0.5, 2.0, 3), rng.normal(size=3)
            want, _ = reference.forward(x, gamma, beta, 1e-5)
            got = fn(x.copy(), gamma, beta, 1e-5)
            compare(f"y for x of shape {shape}", got, want, _forward_mistakes(x, gamma, beta))
        return "y matches bnlab.reference.forward for (N, C) and (N, C, H, W) inputs"

    return run("forward", fn, grade)


# ------------------------------------------------------------------ 2. backward

_ORDER = ("dx", "dgamma", "dbeta")
_NAMES = "(dx, dgamma, dbeta)"


def _wrong_order(out: tuple, want: tuple) -> str | None:
    """A message if the three outputs are the right arrays in another order, else None."""
    for perm in itertools.permutations(range(3)):
        if perm != (0, 1, 2) and all(
            close(array(f"output {i}", out[i]), want[j])
            for i, j in zip(range(3), perm, strict=True)
        ):
            got = ", ".join(_ORDER[j] for j in perm)
            return f"the right values in the wrong order: you return ({got}); expected {_NAMES}"
    shapes = [np.shape(o) for o in out]
    if shapes[0] != want[0].shape and want[0].shape in shapes:
        return (
            f"the return value: dx has shape {want[0].shape}, yours is at position "
            f"{shapes.index(want[0].shape)}; return (dx, dgamma, dbeta) in that order"
        )
    return None


def _dx(dy, x, gamma, eps=1e-5, ddof=0, denominator=None, sign_mean=-1.0, sign_hat=-1.0):
    """dx = gamma * inv_std * (dy - mean(dy) - x_hat * sum(dy * x_hat) / m) for x (N, C), with
    knobs that make the known wrong answers (the defaults give the right one)."""
    m = x.shape[0]
    inv_std = 1.0 / np.sqrt(x.var(0, ddof=ddof) + eps)  # (C,)
    x_hat = (x - x.mean(0)) * inv_std  # (N, C)
    term = (dy * x_hat).sum(0) / (denominator or m)
    return gamma * inv_std * (dy + sign_mean * dy.mean(0) + sign_hat * x_hat * term)


def _backward_mistakes(dy, x, gamma, dx) -> dict:
    m, inv_std = x.shape[0], 1.0 / np.sqrt(x.var(0) + 1e-5)
    return {
        "mu and var were treated as constants; they depend on x too": gamma * inv_std * dy,
        "the path through mu is missing (subtract mean(dy))": _dx(dy, x, gamma, sign_mean=0.0),
        "the path through var is missing (subtract x_hat * mean(dy * x_hat))": _dx(
            dy, x, gamma, sign_hat=0.0
        ),
        "gamma is missing: dx = gamma / sqrt(var + eps) * (...)": dx / gamma,
        "dx has the wrong sign": -dx,
        "mean(dy) is added; it is subtracted": _dx(dy, x, gamma, sign_mean=1.0),
        "x_hat * mean(dy * x_hat) is added; it is subtracted": _dx(dy, x, gamma, sign_hat=1.0),
        "the var path divides by m - 1 (the unbiased variance's derivative); BN's batch "
        "variance divides by m, and so does its derivative": _dx(dy, x, gamma, denominator=m - 1),
        "x_hat and 1/sqrt(var + eps) use the unbiased variance (1/(m-1)); BN's batch variance "
        "divides by m": _dx(dy, x, gamma, ddof=1),
        "the unbiased variance (1/(m-1)) throughout; BN's batch variance divides by m": _dx(
            dy, x, gamma, ddof=1, denominator=m - 1
        ),
    }


def check_backward(fn: Callable) -> CheckResult:
    """fn(dy, x, gamma, eps) -> (dx, dgamma, dbeta) for x (N, C): Algorithm 1's backward."""

    def grade(fn):
        rng = _rng()
        x = rng.normal(1.0, 2.0, size=(12, 4))
        gamma, dy = rng.uniform(0.5, 2.0, 4), rng.normal(size=(12, 4))
        _, cache = reference.forward(x, gamma, np.zeros(4), 1e-5)
        want = reference.backward(dy, cache)  # (dx, dgamma, dbeta)
        out = pair("the return value", fn(dy.copy(), x.copy(), gamma, 1e-5), 3)
        order = _wrong_order(out, want)
        if order:
            raise Wrong(order)
        x_hat_unbiased = (x - x.mean(0)) / np.sqrt(x.var(0, ddof=1) + 1e-5)
        dgamma_mistakes = {
            "dgamma is sum(dy * x_hat), not sum(dy)": want[2],
            "dgamma is a sum over the batch, not a mean": want[1] / x.shape[0],
            "x_hat uses the unbiased variance (1/(m-1)); BN's divides by m": (
                dy * x_hat_unbiased
            ).sum(0),
        }
        compare_all(
            [
                ("dx", out[0], want[0], _backward_mistakes(dy, x, gamma, want[0])),
                ("dgamma", out[1], want[1], dgamma_mistakes),
                ("dbeta", out[2], want[2], {"dbeta is sum(dy) over the batch": dy.mean(0)}),
            ]
        )
        return "dx, dgamma, dbeta match bnlab.reference.backward"

    return run("backward", fn, grade)


# ------------------------------------------------------------------ 3. running statistics


def check_running_stats(fn: Callable) -> CheckResult:
    """fn(running_mean, running_var, mu, var, m, momentum) -> (new_mean, new_var).

    PyTorch's convention: new = (1 - momentum) * old + momentum * batch, and the batch
    variance `var` (biased, 1/m) gets Bessel's correction m/(m-1). The inputs must not change.
    """

    def grade(fn):
        rng = _rng()
        rm, rv = rng.normal(size=5), rng.uniform(0.5, 2.0, 5)
        mu, var, m, momentum = rng.normal(size=5), rng.uniform(0.5, 2.0, 5), 8, 0.1
        inputs = [a.copy() for a in (rm, rv, mu, var)]
        want_mean, want_var = reference.update_running_stats(rm, rv, mu, var, m, momentum)
        out = pair("the return value", fn(rm, rv, mu, var, m, momentum))
        names = ("running_mean", "running_var", "mu", "var")
        for name, before, now in zip(names, inputs, (rm, rv, mu, var), strict=True):
            if not np.array_equal(before, now):
                raise Wrong(f"{name} was changed in place; return new arrays instead")
        keras = "momentum weighs the old value (Keras/TF convention); PyTorch's weighs the batch"
        compare("new_mean", out[0], want_mean, {keras: momentum * rm + (1 - momentum) * mu})
        mistakes = {
            "no Bessel's correction: use var * m / (m - 1)": (1 - momentum) * rv + momentum * var,
            keras: momentum * rv + (1 - momentum) * var * m / (m - 1),
        }
        compare("new_var", out[1], want_var, mistakes)
        return "matches bnlab.reference.update_running_stats (PyTorch convention, momentum 0.1)"

    return run("running stats", fn, grade)


# ------------------------------------------------------------------ 4. folding


def _trained_pair(c_in: int, c_out: int) -> tuple[nn.Linear, nn.BatchNorm1d]:
    linear, bn = nn.Linear(c_in, c_out).double(), nn.BatchNorm1d(c_out).double()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
        bn.running_mean.normal_()
        bn.running_var.uniform_(1e-4, 1e-3)  # small, so a forgotten eps shows
    return linear, bn.eval()


def _fold_mistakes(linear: nn.Linear, bn: nn.BatchNorm1d, x: torch.Tensor) -> dict:
    z = x @ linear.weight.T  # (N, C_out) without the Linear's bias
    gamma, beta, mean, var = bn.weight, bn.bias, bn.running_mean, bn.running_var
    scale = gamma * torch.rsqrt(var + bn.eps)
    return {
        "eps is missing: scale = gamma / sqrt(running_var + eps)": (
            (z + linear.bias - mean) * gamma / var.sqrt() + beta
        ).numpy(),
        "the Linear's own bias must be scaled too: b' = scale * b + shift": (
            z * scale + linear.bias + beta - scale * mean
        ).numpy(),
    }


def _apply_folded(folded, x: torch.Tensor, linear: nn.Linear) -> np.ndarray:
    """folded(x), or Wrong saying what is wrong with the layer the student's function built."""
    if not isinstance(folded, nn.Linear):
        raise Wrong(f"got {type(folded).__name__}, expected an nn.Linear")
    want = (linear.in_features, linear.out_features)
    if (folded.in_features, folded.out_features) != want:
        raise Wrong(
            f"your function returned nn.Linear({folded.in_features}, {folded.out_features}); "
            f"expected nn.Linear{want}, the shape of the Linear it folds"
        )
    if folded.weight.dtype != x.dtype:
        raise Wrong(
            f"your function returned a Linear of dtype {folded.weight.dtype}; the layers it "
            f"folds are {x.dtype}: build it with dtype=linear.weight.dtype (or .double())"
        )
    try:
        return folded(x).numpy()
    except Exception as err:  # the returned layer is broken, not the function that built it
        raise Wrong(
            f"your function returned {folded!r}, which raised {type(err).__name__} on an input "
            f"of shape {tuple(x.shape)}: {err}"
        ) from None


def check_fold(fn: Callable) -> CheckResult:
    """fn(linear, bn) -> nn.Linear computing bn(linear(x)) in eval mode (running statistics)."""

    def grade(fn):
        with torch.random.fork_rng(), torch.no_grad():  # leave the caller's RNG stream alone
            torch.manual_seed(0)
            linear, bn = _trained_pair(6, 4)
            x = torch.randn(10, 6, dtype=torch.float64)
            want = bn(linear(x)).numpy()
            reference_fold = fold_batchnorm(nn.Sequential(linear, bn))(x).numpy()
            mistakes = _fold_mistakes(linear, bn, x)
            folded = fn(copy.deepcopy(linear), copy.deepcopy(bn))
            got = _apply_folded(folded, x, linear)
        compare("folded(x)", got, want, mistakes)
        compare("folded(x) vs bnlab.fold_batchnorm", got, reference_fold)
        return "the folded Linear computes bn(linear(x)) in eval mode, as bnlab.fold_batchnorm"

    return run("fold", fn, grade)


# ------------------------------------------------------------------ 5. eval after k steps


def _eval_after(x: np.ndarray, k: int, momentum: float) -> np.ndarray:
    bn = nn.BatchNorm1d(x.shape[1], momentum=momentum).double()
    xt = torch.from_numpy(x)
    with torch.no_grad():
        for _ in range(k):
            bn(xt)  # train mode: updates the running statistics
        return bn.eval()(xt).numpy()


def check_eval_after_k_steps(fn: Callable) -> CheckResult:
    """fn(x, k, momentum) -> the eval-mode output of a fresh nn.BatchNorm1d(C, momentum=momentum)
    on x (N, C), after k training-mode forward passes on that same x (gamma 1, beta 0)."""

    def grade(fn):
        x = _rng().normal(3.0, 2.0, size=(20, 3))
        for k, momentum in ((0, 0.1), (1, 0.1), (5, 0.1), (50, 0.1), (3, 0.5)):
            want = _eval_after(x, k, momentum)
            batch_normed, _ = reference.forward(x, np.ones(3), np.zeros(3), 1e-5)
            decay = (1 - momentum) ** k
            biased = (x - (1 - decay) * x.mean(0)) / np.sqrt(decay + (1 - decay) * x.var(0) + 1e-5)
            keras = momentum**k  # Keras/TF convention: momentum weighs the old value
            keras_mean, keras_var = (1 - keras) * x.mean(0), keras + (1 - keras) * x.var(0, ddof=1)
            mistakes = {
                "that is the training-mode output; eval uses the running statistics, which "
                "start at mean 0, var 1 and move only part-way each step": batch_normed,
                "the running variance needs Bessel's correction m/(m-1) (the biased batch "
                "variance was used)": biased,
                "momentum weighs the old value (Keras/TF convention); in PyTorch it weighs the "
                "batch, so (1 - momentum)**k of the start is left": (x - keras_mean)
                / np.sqrt(keras_var + 1e-5),
            }
            got = fn(x.copy(), k, momentum)
            compare(f"y after k={k} steps, momentum={momentum}", got, want, mistakes)
        return "matches torch.nn.BatchNorm1d in eval mode after k training steps"

    return run("eval after k steps", fn, grade)


# ------------------------------------------------------------------ 6. Ghost BN


def check_ghost_bn(fn: Callable) -> CheckResult:
    """fn(x, num_splits, eps) -> y: x (N, C) cut into num_splits equal consecutive chunks,
    each normalized with its own batch statistics (gamma 1, beta 0; Hoffer et al. 2017)."""

    def grade(fn):
        x = _rng().normal(1.0, 2.0, size=(24, 3))
        ones, zeros = np.ones(3), np.zeros(3)
        for splits in (1, 4, 6):
            chunks = np.split(x, splits)  # (N / splits, C) each
            want = np.concatenate([reference.forward(c, ones, zeros, 1e-5)[0] for c in chunks])
            whole, _ = reference.forward(x, ones, zeros, 1e-5)
            mistakes = {"statistics of the whole batch; each chunk needs its own": whole}
            compare(f"y with num_splits={splits}", fn(x.copy(), splits, 1e-5), want, mistakes)
        return "each chunk is normalized with its own statistics, as bnlab.reference.forward"

    return run("ghost BN", fn, grade)


# ------------------------------------------------------------------ 7. conv statistics


def check_conv_stats(fn: Callable) -> CheckResult:
    """fn(x) -> (mu, var) for x (N, C, H, W): per channel, over N, H and W, var biased (1/m)."""

    def grade(fn):
        x = _rng().normal(size=(4, 3, 5, 6)) * np.array([1.0, 2.0, 3.0]).reshape(1, 3, 1, 1)
        mu, var = pair("the return value", fn(x.copy()))
        mu, var = array("mu", mu), array("var", var)
        if mu.shape == (3, 5, 6):
            raise Wrong("mu: got shape (C, H, W); a conv BN averages over N, H and W -> (C,)")
        if mu.shape == (4, 3):
            raise Wrong("mu: got shape (N, C); average over the batch too -> (C,)")
        axes = (0, 2, 3)
        compare("mu", mu, x.mean(axis=axes))
        unbiased = {
            "var is unbiased (1/(m-1)); BN's batch variance divides by m": x.var(axes, ddof=1)
        }
        compare("var", var, x.var(axis=axes), unbiased)
        return "per-channel mean and biased variance over (N, H, W) are right"

    return run("conv stats", fn, grade)
