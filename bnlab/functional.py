"""Batch Normalization as a `torch.autograd.Function` with a hand-written backward.

Ioffe & Szegedy 2015, Algorithm 1, over a mini-batch B = {x_1..m} per channel:

    mu      = 1/m sum_i x_i
    var     = 1/m sum_i (x_i - mu)^2            # biased: this is what normalizes
    x_hat_i = (x_i - mu) / sqrt(var + eps)
    y_i     = gamma * x_hat_i + beta

The backward is the fused form of the chain rule through those four lines (the staged form,
one intermediate per equation, is in `bnlab.reference.backward_staged`):

    dx_hat = dy * gamma
    dx     = inv_std * (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat))
    dgamma = sum(dy * x_hat),   dbeta = sum(dy)

The backward is itself written in differentiable torch ops, so `create_graph=True` gives
exact second derivatives (Hessian-vector products for the landscape analyses).
"""

from __future__ import annotations

import torch
from torch import Tensor

from bnlab import _fastpath
from bnlab._checks import check_batch_norm_call, compute_dtype, finite_stats

__all__ = [
    "batch_norm",
    "batch_norm_eval",
    "batch_stats",
    "eval_scale_shift",
    "normalize",
    "update_running_stats",
]


def batch_stats(x: Tensor, dims: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """Mean and biased variance of `x` over `dims`, kept as size-1 dims.

    Two passes (mean first, then the mean of squared deviations), never E[x^2] - E[x]^2:
    for x = 1e4 + N(0, 1) in float32 the latter cancels catastrophically (error ~1e3),
    the two-pass form stays within ~1e-3 of a float64 reference.
    """
    mu, _, var = _centred_stats(x, dims)
    return mu, var


def _centred_stats(x: Tensor, dims: tuple) -> tuple[Tensor, Tensor, Tensor]:
    mu = x.mean(dims, keepdim=True)
    xc = x - mu  # centred first: every later product uses x - mu, which keeps float32 precision
    var = (xc * xc).mean(dims, keepdim=True)
    return mu, xc, var


def _train_forward(x: Tensor, weight, bias, dims: tuple, eps: float):
    """y = gamma * (x - mu) * inv_std + beta, with gamma * inv_std folded into one scale."""
    mu, xc, var = _centred_stats(x, dims)
    inv_std = torch.rsqrt(var + eps)
    scale = inv_std if weight is None else weight * inv_std  # per channel
    y = xc * scale if bias is None else torch.addcmul(bias, xc, scale)  # one pass over x
    return y, mu, var, inv_std


def _train_backward(dy: Tensor, x: Tensor, weight, bias, mu, inv_std, dims: tuple, needs):
    """(dx, dweight, dbias) through the batch statistics: the fused Alg. 1 chain rule.

    With x_hat = (x - mu) * inv_std and per-channel scale = gamma * inv_std:
        dx = scale * (dy - mean(dy) - x_hat * mean(dy * x_hat))
    where the two means are what mu and var, which depend on every x_i, send back. Each
    per-channel factor is folded first, so dx costs two elementwise passes.
    """
    m = x.numel() // mu.numel()  # values per channel
    xc = x - mu
    mean_dy = dy.mean(dims, keepdim=True)
    mean_dy_x_hat = (dy * xc).mean(dims, keepdim=True) * inv_std  # mean(dy * x_hat)
    dx = dweight = dbias = None
    if needs[0]:
        scale = inv_std if weight is None else weight * inv_std
        dx = torch.addcmul(-scale * mean_dy, dy, scale)  # scale * (dy - mean(dy))
        dx = torch.addcmul(dx, xc, -scale * inv_std * mean_dy_x_hat)  # - scale * x_hat * (..)
    if needs[1]:
        dweight = (mean_dy_x_hat * m).sum_to_size(weight.shape)  # sum(dy * x_hat)
    if needs[2]:
        dbias = (mean_dy * m).sum_to_size(bias.shape)  # sum(dy)
    return dx, dweight, dbias


class _BatchNormTrain(torch.autograd.Function):
    """Normalize with the batch's own statistics; returns (y, mu, var), stats detached.

    forward and setup_context are separate, and every op is a torch op, so torch.func
    transforms (vmap, grad, jacrev) and torch.compile see through it.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x, weight, bias, dims, eps, compiled=None):
        args = (x, weight, bias, dims, eps)
        if _fastpath.wants(x, compiled):
            y, mu, var, _ = _fastpath.run("forward", _train_forward, *args)
        else:
            y, mu, var, _ = _train_forward(*args)
        return y, mu, var

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, bias, dims, eps, compiled = inputs
        _, mu, var = output
        inv_std = torch.rsqrt(var + eps)  # (C,)-sized: recomputing beats returning it
        ctx.save_for_backward(x, weight, bias, mu, inv_std)
        ctx.dims, ctx.eps, ctx.compiled = dims, eps, compiled
        ctx.mark_non_differentiable(mu, var)

    @staticmethod
    def backward(ctx, dy, _dmu, _dvar):
        x, weight, bias, mu, inv_std = ctx.saved_tensors
        needs = tuple(ctx.needs_input_grad[:3])
        if torch.is_grad_enabled():
            # create_graph=True: recompute the statistics from x with tracked ops so the
            # second derivative also flows through mu and inv_std.
            mu, var = batch_stats(x, ctx.dims)
            inv_std = torch.rsqrt(var + ctx.eps)
        elif _fastpath.wants(x, ctx.compiled):
            args = (dy, x, weight, bias, mu, inv_std, ctx.dims, needs)
            return (*_fastpath.run("backward", _train_backward, *args), None, None, None)
        dx, dweight, dbias = _train_backward(dy, x, weight, bias, mu, inv_std, ctx.dims, needs)
        return dx, dweight, dbias, None, None, None


def eval_scale_shift(
    weight: Tensor | None, bias: Tensor | None, mean: Tensor, var: Tensor, eps: float
) -> tuple[Tensor, Tensor]:
    """BN with fixed statistics as one affine map, y = scale * x + shift (the one place
    this rule is written; eval mode, `fold_batchnorm` and the engine all use it).

    Ioffe & Szegedy 2015, Alg. 2, step 11:
        scale = gamma / sqrt(var + eps),   shift = beta - scale * mean
    All arguments broadcast against each other, e.g. (C,) or (1, C, 1, 1) or (K, 1, C).
    This is also how ATen's CPU kernel computes eval-mode BN, so the roundings agree.
    """
    inv_std = torch.rsqrt(var + eps)
    scale = inv_std if weight is None else weight * inv_std  # per channel
    shift = -mean * scale if bias is None else bias - mean * scale
    return scale, shift


class _BatchNormEval(torch.autograd.Function):
    """Normalize with fixed statistics (running mean/var): an affine map of x."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, weight, bias, mu, var, eps):
        scale, shift = eval_scale_shift(weight, bias, mu, var, eps)
        return torch.addcmul(shift, x, scale)  # one pass over x

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, bias, mu, var, eps = inputs
        ctx.save_for_backward(x, weight, bias, mu, var)
        ctx.eps = eps

    @staticmethod
    def backward(ctx, dy):
        x, weight, bias, mu, var = ctx.saved_tensors
        inv_std = torch.rsqrt(var + ctx.eps)
        dx = dweight = dbias = None
        if ctx.needs_input_grad[0]:
            # d(mu)/dx = d(var)/dx = 0: the statistics are constants here
            dx = dy * inv_std if weight is None else dy * (weight * inv_std)
        if ctx.needs_input_grad[1]:
            dweight = (dy * ((x - mu) * inv_std)).sum_to_size(weight.shape)
        if ctx.needs_input_grad[2]:
            dbias = dy.sum_to_size(bias.shape)
        return dx, dweight, dbias, None, None, None


def batch_norm_eval(
    x: Tensor, weight: Tensor | None, bias: Tensor | None, mean: Tensor, var: Tensor, eps: float
) -> Tensor:
    """Normalize `x` with fixed statistics: `eval_scale_shift`'s map, with a hand-written
    backward. Parameters and statistics broadcast against x, e.g. (1, C, 1, 1)."""
    return _BatchNormEval.apply(x, weight, bias, mean, var, eps)


def normalize(
    x: Tensor,
    weight: Tensor | None,
    bias: Tensor | None,
    dims: tuple[int, ...],
    eps: float = 1e-5,
    compiled: bool | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Batch-normalize `x` over the reduction dims `dims`, with the batch's statistics.

    Args:
        x: any shape, e.g. (N, C), (N, C, H, W), or stacked (K, B, C) / (K, B, C, H, W).
        weight, bias: gamma and beta, None or broadcastable to `x` (e.g. (1, C, 1, 1), or
            (K, 1, C) for a stack of K members).
        dims: the dims the statistics are taken over, e.g. (0, 2, 3) for (N, C, H, W), or
            (1,) for stacked (K, B, C), which gives statistics per member and channel.
        eps: added to the variance before the square root.
        compiled: use the `torch.compile`d kernels (`bnlab._fastpath`): None decides by
            size (large CPU inputs only), True for any CPU input (worth it for many small
            steps of one shape), False never. Without a compiler it falls back to eager.

    Returns:
        `(y, mu, var)`: y like x; mu and the *biased* var shaped like x with `dims` kept as
        size 1, detached (feed them to `update_running_stats`). For float16/bfloat16 x the
        statistics are accumulated in float32 (and returned so), as torch.nn does.
    """
    acc = compute_dtype(x, weight, bias)
    w, b = _cast(weight, acc), _cast(bias, acc)
    y, mu, var = _BatchNormTrain.apply(x.to(acc), w, b, tuple(dims), eps, compiled)
    return y.to(x.dtype), mu, var


def _cast(t: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    return None if t is None else t.to(dtype)


def update_running_stats(
    running_mean: Tensor,
    running_var: Tensor,
    mu: Tensor,
    var: Tensor,
    m: int,
    momentum: float | None,
    num_batches_tracked: int | Tensor = 1,
    ok: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """New running statistics; pure (the inputs are not modified).

    `var` is the biased batch variance over `m` values per channel. The running variance
    estimates the population variance, so it gets Bessel's correction: m/(m-1), not 1.
    `momentum=None` gives the cumulative average, factor 1/num_batches_tracked (the count
    *including* this batch, an int or a () tensor), as in `torch.nn.BatchNorm*`.
    `ok`, a () bool tensor, keeps the old statistics where it is False (a non-finite batch
    refused without a host sync, see `_checks.finite_stats`).
    """
    acc = torch.promote_types(running_mean.dtype, torch.float32)  # as ATen: float16 in float32
    factor = momentum
    if momentum is None:  # cumulative average
        factor = 1.0 / (
            num_batches_tracked.to(acc)
            if isinstance(num_batches_tracked, Tensor)
            else num_batches_tracked
        )
    mu = mu.detach().reshape(running_mean.shape).to(acc)
    var = var.detach().reshape(running_var.shape).to(acc)
    unbiased = var * (m / (m - 1))  # Bessel's correction: m-1, not m
    new_mean = torch.lerp(running_mean.to(acc), mu, factor).to(running_mean.dtype)
    new_var = torch.lerp(running_var.to(acc), unbiased, factor).to(running_var.dtype)
    if ok is not None:
        new_mean = torch.where(ok, new_mean, running_mean)
        new_var = torch.where(ok, new_var, running_var)
    return new_mean, new_var


def _channel_shape(x: Tensor) -> tuple[int, ...]:
    # (C,) parameters broadcast against (N, C, *) as (1, C, 1, ..., 1)
    return (1, x.shape[1]) + (1,) * (x.dim() - 2)


def batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch Normalization with the contract of `torch.nn.functional.batch_norm`.

    Args:
        input: (N, C) or (N, C, *); channel axis 1.
        running_mean, running_var: (C,) buffers or None. In training they are updated in
            place (if given) with `momentum`; in eval they normalize the input.
        weight, bias: gamma and beta, (C,) or None.
        training: use the batch statistics (True) or the running ones (False).
        momentum: weight of the new batch in the running-statistics update.
        eps: added to the variance for numerical stability.

    Dtypes follow torch.nn: the output has the input's dtype; float16/bfloat16 inputs are
    computed in float32 and may come with float32 parameters and statistics.

    Raises:
        ValueError: one value per channel in training, an empty batch in training,
            non-positive eps in training, or NaN/inf in the input in training (checked on
            the batch statistics, before the running statistics change; on accelerators
            and under torch.compile the statistics are kept instead, see `_checks`).
        RuntimeError: running statistics missing in eval, or of the wrong size; a dtype
            mix torch.nn refuses ("mixed dtype").

    Ioffe & Szegedy 2015, Alg. 1 (training) and Alg. 2 step 10 (inference).
    """
    if not training:
        check_batch_norm_call(input, running_mean, running_var, weight, bias, training, eps)
        acc = compute_dtype(input, running_mean, running_var, weight, bias)
        shape = _channel_shape(input)
        w, b = (None if t is None else t.to(acc).view(shape) for t in (weight, bias))
        mu, var = running_mean.to(acc).view(shape), running_var.to(acc).view(shape)
        return _BatchNormEval.apply(input.to(acc), w, b, mu, var, eps).to(input.dtype)
    y, _ = batch_norm_train(input, running_mean, running_var, weight, bias, momentum, eps)
    return y


def batch_norm_train(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None,
    bias: Tensor | None,
    momentum: float | None,
    eps: float,
    num_batches_tracked: Tensor | None = None,
) -> tuple[Tensor, Tensor | None]:
    """`batch_norm` in training, for modules: momentum None is the cumulative average over
    `num_batches_tracked` (the count before this batch). Returns (y, ok): ok is None when
    the batch was checked finite on the host, else a () bool tensor saying whether the
    running statistics took it (the module counts the batch by it)."""
    check_batch_norm_call(input, running_mean, running_var, weight, bias, True, eps)
    acc = compute_dtype(input, running_mean, running_var, weight, bias)
    shape = _channel_shape(input)
    w, b = (None if t is None else t.to(acc).view(shape) for t in (weight, bias))
    dims = (0, *range(2, input.dim()))
    y, mu, var = _BatchNormTrain.apply(input.to(acc), w, b, dims, eps, None)
    ok = finite_stats(mu, var)
    if running_mean is not None and running_var is not None:
        m = input.numel() // input.shape[1]  # values per channel
        count = 1 if num_batches_tracked is None else num_batches_tracked + 1
        new_mean, new_var = update_running_stats(
            running_mean, running_var, mu, var, m, momentum, count, ok
        )
        with torch.no_grad():
            running_mean.copy_(new_mean)
            running_var.copy_(new_var)
    return y.to(input.dtype), ok
