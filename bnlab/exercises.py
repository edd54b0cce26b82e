"""Self-checking exercises for the tutorial notebook (notebooks/bn_tutorial.ipynb).

Each `check_*` takes a student's function, runs it on fixed float64 inputs, compares it with an
independent answer (`bnlab.reference`, `torch.nn.BatchNorm1d`, `bnlab.fold_batchnorm`) and
returns a `CheckResult`. A checker never raises on a wrong answer: it says what differs and,
when the answer matches a known mistake, names that mistake. A function that still raises
`NotImplementedError` is reported as "not attempted", so a notebook with blank exercises runs.

    from bnlab import exercises
    exercises.check_backward(my_backward)   # [passed] backward: dx, dgamma, dbeta match ...
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from bnlab import reference
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

RTOL, ATOL = 1e-6, 1e-9  # float64 inputs: a correct answer agrees to rounding


@dataclass(frozen=True)
class CheckResult:
    """The verdict on one exercise: status is "passed", "failed" or "not attempted"."""

    exercise: str
    status: str
    message: str

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return f"[{self.status}] {self.exercise}: {self.message}"


class _Wrong(Exception):
    """Raised inside a grader: the student's answer differs; the message says how."""


def _run(exercise: str, fn: Callable, grade: Callable[[Callable], str]) -> CheckResult:
    if not callable(fn):
        raise TypeError(f"fn: got {type(fn).__name__}, expected the function to check")
    try:
        return CheckResult(exercise, "passed", grade(fn))
    except NotImplementedError:
        return CheckResult(
            exercise, "not attempted", "the function still raises NotImplementedError"
        )
    except _Wrong as wrong:
        return CheckResult(exercise, "failed", str(wrong))
    except Exception as err:  # the student's code crashed: report it, do not crash the notebook
        return CheckResult(exercise, "failed", f"your function raised {type(err).__name__}: {err}")


def _array(name: str, got) -> np.ndarray:
    if isinstance(got, torch.Tensor):
        got = got.detach().numpy()
    try:
        return np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise _Wrong(f"{name}: got {type(got).__name__}, expected an array ({err})") from None


def _close(got, want: np.ndarray) -> bool:
    got = np.asarray(got, dtype=np.float64)
    return got.shape == want.shape and np.allclose(got, want, rtol=RTOL, atol=ATOL)


def _compare(name: str, got, want: np.ndarray, mistakes: dict | None = None) -> None:
    """Raise _Wrong unless got == want; name a known mistake that got matches."""
    got = _array(name, got)
    if got.shape != want.shape:
        raise _Wrong(f"{name}: got shape {got.shape}, expected {want.shape}")
    if _close(got, want):
        return
    diff = np.abs(got - want)
    where = np.unravel_index(int(np.argmax(diff)), diff.shape)
    msg = (
        f"{name}: max |difference| {diff.max():.3g} at index {tuple(int(i) for i in where)} "
        f"(got {got[where]:.6g}, expected {want[where]:.6g})"
    )
    for hint, wrong in (mistakes or {}).items():
        if _close(got, wrong):
            msg += f". It matches a known mistake: {hint}"
            break
    raise _Wrong(msg)


def _pair(name: str, out, n: int = 2) -> tuple:
    if not isinstance(out, tuple | list) or len(out) != n:
        raise _Wrong(f"{name}: got {type(out).__name__}, expected a tuple of {n} arrays")
    return tuple(out)


def _rng() -> np.random.Generator:
    return np.random.default_rng(2015)  # fixed inputs: the same check for every student


# ------------------------------------------------------------------ 1. forward


def _normalized(x, gamma, beta, axes, ddof):  # a wrong answer to recognise, not a reference
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)  # (C,) -> (1, C, 1..)
    mu, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, ddof=ddof, keepdims=True)
    return gamma.reshape(shape) * (x - mu) / np.sqrt(var + 1e-5) + beta.reshape(shape)


def check_forward(fn: Callable) -> CheckResult:
    """fn(x, gamma, beta, eps) -> y, Algorithm 1 for x (N, C) and (N, C, H, W) (per channel)."""

    def grade(fn):
        rng = _rng()
        for shape in ((16, 3), (4, 3, 5, 5)):
            x = rng.normal(2.0, 3.0, size=shape)
            gamma, beta = rng.uniform(0.5, 2.0, 3), rng.normal(size=3)
            want, _ = reference.forward(x, gamma, beta, 1e-5)
            over_m = (0, *range(2, x.ndim))  # every axis but the channel axis
            mistakes = {
                "the variance is unbiased (1/(m-1)); Algorithm 1 divides by m": _normalized(
                    x, gamma, beta, over_m, ddof=1
                ),
            }
            if x.ndim == 4:
                hint = "statistics over N only; for conv layers they are over N, H and W"
                mistakes[hint] = _normalized(x, gamma, beta, (0,), ddof=0)
            _compare(f"y for x of shape {shape}", fn(x.copy(), gamma, beta, 1e-5), want, mistakes)
        return "y matches bnlab.reference.forward for (N, C) and (N, C, H, W) inputs"

    return _run("forward", fn, grade)


# ------------------------------------------------------------------ 2. backward


def check_backward(fn: Callable) -> CheckResult:
    """fn(dy, x, gamma, eps) -> (dx, dgamma, dbeta) for x (N, C): Algorithm 1's backward."""

    def grade(fn):
        rng = _rng()
        x = rng.normal(1.0, 2.0, size=(12, 4))
        gamma, dy = rng.uniform(0.5, 2.0, 4), rng.normal(size=(12, 4))
        _, cache = reference.forward(x, gamma, np.zeros(4), 1e-5)
        dx, dgamma, dbeta = reference.backward(dy, cache)
        inv_std = 1.0 / np.sqrt(cache.var + 1e-5)
        x_hat = cache.x_hat
        out = _pair("the return value", fn(dy.copy(), x.copy(), gamma, 1e-5), 3)
        _compare("dbeta", out[2], dbeta, {"dbeta is sum(dy) over the batch": dy.mean(0)})
        _compare("dgamma", out[1], dgamma, {"dgamma is sum(dy * x_hat), not sum(dy)": dbeta})
        mistakes = {
            "mu and var were treated as constants; they depend on x too": gamma * inv_std * dy,
            "the path through mu is missing (subtract mean(dy))": gamma
            * inv_std
            * (dy - x_hat * (dy * x_hat).mean(0)),
            "the path through var is missing (subtract x_hat * mean(dy * x_hat))": gamma
            * inv_std
            * (dy - dy.mean(0)),
        }
        _compare("dx", out[0], dx, mistakes)
        return "dx, dgamma, dbeta match bnlab.reference.backward"

    return _run("backward", fn, grade)


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
        out = _pair("the return value", fn(rm, rv, mu, var, m, momentum))
        names = ("running_mean", "running_var", "mu", "var")
        for name, before, now in zip(names, inputs, (rm, rv, mu, var), strict=True):
            if not np.array_equal(before, now):
                raise _Wrong(f"{name} was changed in place; return new arrays instead")
        keras = "momentum weighs the old value (Keras/TF convention); PyTorch's weighs the batch"
        _compare("new_mean", out[0], want_mean, {keras: momentum * rm + (1 - momentum) * mu})
        mistakes = {
            "no Bessel's correction: use var * m / (m - 1)": (1 - momentum) * rv + momentum * var,
            keras: momentum * rv + (1 - momentum) * var * m / (m - 1),
        }
        _compare("new_var", out[1], want_var, mistakes)
        return "matches bnlab.reference.update_running_stats (PyTorch convention, momentum 0.1)"

    return _run("running stats", fn, grade)


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
            if not isinstance(folded, nn.Linear):
                raise _Wrong(f"got {type(folded).__name__}, expected an nn.Linear")
            got = folded(x).numpy()
        _compare("folded(x)", got, want, mistakes)
        _compare("folded(x) vs bnlab.fold_batchnorm", got, reference_fold)
        return "the folded Linear computes bn(linear(x)) in eval mode, as bnlab.fold_batchnorm"

    return _run("fold", fn, grade)


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
            mistakes = {
                "that is the training-mode output; eval uses the running statistics, which "
                "start at mean 0, var 1 and move only part-way each step": batch_normed,
                "the running variance is unbiased: Bessel's correction m/(m-1)": biased,
            }
            got = fn(x.copy(), k, momentum)
            _compare(f"y after k={k} steps, momentum={momentum}", got, want, mistakes)
        return "matches torch.nn.BatchNorm1d in eval mode after k training steps"

    return _run("eval after k steps", fn, grade)


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
            _compare(f"y with num_splits={splits}", fn(x.copy(), splits, 1e-5), want, mistakes)
        return "each chunk is normalized with its own statistics, as bnlab.reference.forward"

    return _run("ghost BN", fn, grade)


# ------------------------------------------------------------------ 7. conv statistics


def check_conv_stats(fn: Callable) -> CheckResult:
    """fn(x) -> (mu, var) for x (N, C, H, W): per channel, over N, H and W, var biased (1/m)."""

    def grade(fn):
        x = _rng().normal(size=(4, 3, 5, 6)) * np.array([1.0, 2.0, 3.0]).reshape(1, 3, 1, 1)
        mu, var = _pair("the return value", fn(x.copy()))
        mu, var = _array("mu", mu), _array("var", var)
        if mu.shape == (3, 5, 6):
            raise _Wrong("mu: got shape (C, H, W); a conv BN averages over N, H and W -> (C,)")
        if mu.shape == (4, 3):
            raise _Wrong("mu: got shape (N, C); average over the batch too -> (C,)")
        axes = (0, 2, 3)
        _compare("mu", mu.reshape(-1), x.mean(axis=axes))
        unbiased = {
            "var is unbiased (1/(m-1)); BN's batch variance divides by m": x.var(axes, ddof=1)
        }
        _compare("var", var.reshape(-1), x.var(axis=axes), unbiased)
        return "per-channel mean and biased variance over (N, H, W) are right"

    return _run("conv stats", fn, grade)
