"""`SyncBatchNorm`: Batch Normalization whose statistics span every process of a group.

Under data parallelism each of R processes (ranks) sees a shard of B_r samples, and plain BN
normalizes every shard with its own statistics: the mini-batch of Ioffe & Szegedy 2015,
Alg. 1, silently shrinks to B / R. SyncBatchNorm restores the global batch B = sum_r B_r.
Per channel, with n_r values on rank r, local mean mu_r and M2_r = sum_i (x_i - mu_r)^2:

    forward, one all_gather of (n_r, mu_r, M2_r):
        n   = sum_r n_r
        mu  = sum_r n_r mu_r / n
        var = (sum_r M2_r + sum_r n_r (mu_r - mu)^2) / n      # Chan, Golub & LeVeque 1979
    backward, one all_reduce of the two per-channel sums dx needs:
        sum_dy    = sum over every rank's dy
        sum_dy_xc = sum over every rank's dy * (x - mu)
        dx = scale * (dy - sum_dy / n - (x - mu) * inv_std^2 * sum_dy_xc / n)
    dgamma = sum(dy * x_hat), dbeta = sum(dy): this rank's share; the data-parallel wrapper
    (DDP) reduces parameter gradients over ranks, as for every other layer.

Uneven shards, even empty ones, are weighted by their counts. In eval mode the running
statistics normalize, with no collective. Any torch.distributed backend with all_gather and
all_reduce works: gloo on CPU tensors (which torch.nn.SyncBatchNorm refuses), nccl on CUDA.

Failures. A collective waits for every rank: a rank that stops (SIGSTOP, a debugger, a
deadlock elsewhere) or skips a forward leaves its peers blocked until the process group's
timeout, `init_process_group(..., timeout=timedelta(seconds=...))` (torch's default for gloo:
30 minutes); then they raise a RuntimeError saying which layer's collective failed. Ranks
whose inputs differ in dtype or channel count would send buffers of different sizes (gloo
aborts the process: "Received data size doesn't match"), so the first training forward of
each layer first gathers every rank's (dtype, channels) and raises a ValueError on every
rank naming the mismatch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from bnlab._checks import BatchNormShapeError, finite_stats
from bnlab.functional import update_running_stats
from bnlab.modules import _BatchNorm

__all__ = ["SyncBatchNorm", "check_ranks_agree", "global_stats"]


# dtype codes for the first-forward agreement check (-1: any other dtype)
_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _collective(what: str, op, *args, **kwargs) -> None:
    """Run one collective; a failure (a peer gone or stopped past the timeout) says which."""
    try:
        op(*args, **kwargs)
    except RuntimeError as err:
        raise RuntimeError(
            f"SyncBatchNorm: the {what} over the process group failed ({err}); a rank that "
            "stopped, died or skipped this layer's forward leaves its peers waiting until the "
            "group's timeout (init_process_group(timeout=...))"
        ) from err


def check_ranks_agree(x: Tensor, group=None) -> None:
    """Raise ValueError on every rank unless all ranks' inputs share dtype and channels.

    One all_gather of (dtype code, channels) per rank: mismatched buffers in the statistics'
    collectives would abort the process instead of raising.
    """
    code = _DTYPES.index(x.dtype) if x.dtype in _DTYPES else -1
    mine = torch.tensor([code, x.shape[1]], dtype=torch.int64, device=x.device)
    gathered = [torch.empty_like(mine) for _ in range(_world_size(group))]
    _collective("dtype check (all_gather)", dist.all_gather, gathered, mine, group=group)
    seen = [tuple(int(v) for v in g) for g in gathered]  # (dtype code, channels) per rank
    if len(set(seen)) > 1:
        names = [str(_DTYPES[c]) if c >= 0 else "other" for c, _ in seen]
        ranks = ", ".join(
            f"rank {r}: {n}, {c} channels"
            for r, (n, (_, c)) in enumerate(zip(names, seen, strict=True))
        )
        raise ValueError(
            f"SyncBatchNorm: every rank must give an input of one dtype and channel count, "
            f"got {ranks}"
        )


def _world_size(group) -> int:
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size(group)


def global_stats(x: Tensor, dims: tuple[int, ...], group=None) -> tuple[Tensor, Tensor, int]:
    """Mean and biased variance per channel over `x` on every rank of `group`, and the count.

    One all_gather of each rank's (n_r, mu_r, M2_r), combined pairwise-stably; never the
    sums of x and x^2, whose difference E[x^2] - E[x]^2 cancels catastrophically in float32
    (see `bnlab.functional.batch_stats`). Every rank combines the same gathered numbers in the
    same order, so every rank gets bit-identical statistics.

    Returns `(mu, var, n)`: mu and var of shape (C,), in at least float32; n a Python int.
    """
    dtype = torch.promote_types(x.dtype, torch.float32)  # counts stay exact past 2^11
    xs = x.detach().to(dtype)
    n_local = xs.numel() // xs.shape[1]  # values per channel on this rank
    mu_local = xs.sum(dims) / max(n_local, 1)  # (C,); an empty shard contributes 0 * 0
    xc = xs - mu_local.view(_channel_shape(xs))
    m2_local = (xc * xc).sum(dims)  # (C,)
    count = torch.full((1,), float(n_local), dtype=dtype, device=x.device)
    local = torch.cat([count, mu_local, m2_local])  # (1 + 2C,)
    gathered = [torch.empty_like(local) for _ in range(_world_size(group))]
    _collective("all_gather of the batch statistics", dist.all_gather, gathered, local, group=group)
    stats = torch.stack(gathered)  # (R, 1 + 2C)
    channels = xs.shape[1]
    counts, mus, m2s = stats[:, :1], stats[:, 1 : 1 + channels], stats[:, 1 + channels :]
    n = counts.sum()
    mu = (counts * mus).sum(0) / n  # (C,)
    var = (m2s.sum(0) + (counts * (mus - mu) ** 2).sum(0)) / n  # within + between shards
    return mu, var, int(n.item())


def _channel_shape(x: Tensor) -> tuple[int, ...]:
    # (C,) statistics broadcast against (N, C, *) as (1, C, 1, ..., 1)
    return (1, x.shape[1]) + (1,) * (x.dim() - 2)


class _SyncBatchNormTrain(torch.autograd.Function):
    """y = gamma * (x - mu) * inv_std + beta with global statistics given as constants.

    mu and inv_std arrive detached; the backward adds their dependence on every rank's x
    itself, through the all-reduced sums.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, mu, inv_std, n, group):
        scale = inv_std if weight is None else weight * inv_std  # (1, C, 1..)
        xc = x - mu
        y = xc * scale if bias is None else torch.addcmul(bias, xc, scale)
        ctx.save_for_backward(x, weight, mu, inv_std)
        ctx.n, ctx.group = n, group
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        x, weight, mu, inv_std = ctx.saved_tensors
        dims = (0, *range(2, x.dim()))
        xc = x - mu
        sum_dy = dy.sum(dims)  # (C,), this rank's share
        sum_dy_xc = (dy * xc).sum(dims)  # (C,)
        dx = dweight = dbias = None
        if ctx.needs_input_grad[0]:
            sums = torch.stack([sum_dy, sum_dy_xc])  # (2, C): one collective for both
            _collective("all_reduce of the gradient sums", dist.all_reduce, sums, group=ctx.group)
            mean_dy = sums[0].view(mu.shape) / ctx.n
            mean_dy_xc = sums[1].view(mu.shape) / ctx.n
            scale = inv_std if weight is None else weight * inv_std
            # mu and var depend on every x_i on every rank: the two global means carry that
            dx = scale * (dy - mean_dy - xc * (inv_std * inv_std) * mean_dy_xc)
        if ctx.needs_input_grad[1]:
            dweight = (sum_dy_xc.view(mu.shape) * inv_std).view(weight.shape)  # sum(dy x_hat)
        if ctx.needs_input_grad[2]:
            dbias = sum_dy.view(mu.shape)
        return dx, dweight, dbias, None, None, None, None


class SyncBatchNorm(_BatchNorm):
    """Batch Normalization over the global batch of a `torch.distributed` process group.

    Same arguments, buffers and state_dict as `bnlab.BatchNorm*d` / `torch.nn.SyncBatchNorm`,
    for input (N, C) or (N, C, *). In training, with a process group of more than one rank,
    the statistics are those of the concatenation of every rank's batch (see the module
    docstring for the formulas); the running statistics are then identical on every rank.
    Otherwise (eval mode, no initialized process group, or one rank) it is plain BN.

    Args:
        process_group: the ranks whose batches form one batch; None for the default group.

    Warning: every rank of the group must call forward (and backward) together, with an
    input of the same rank and channel count, as for any collective. A rank that does not
    blocks the others until the process group's `timeout` (see the module docstring); a
    dtype or channel mismatch is caught at the first training forward (ValueError).
    """

    _ranks = tuple(range(2, 33))  # (N, C, *) of any rank, as torch.nn.SyncBatchNorm

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        process_group=None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self.process_group = process_group
        self._ranks_checked = False  # set after the first forward's dtype/channel agreement

    def forward(self, input: Tensor) -> Tensor:
        """Normalize `input` (N, C, *) with the statistics of every rank's batch."""
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")
        if not (self.training and _world_size(self.process_group) > 1):
            return super().forward(input)
        if not getattr(self, "_ranks_checked", False):  # first: then every rank raises
            check_ranks_agree(input, self.process_group)
            self._ranks_checked = True
        if input.shape[1] != self.num_features:
            raise BatchNormShapeError(
                f"SyncBatchNorm({self.num_features}) got input with {input.shape[1]} channels "
                f"on axis 1 (shape {tuple(input.shape)})"
            )
        dims = (0, *range(2, input.dim()))
        mu, var, n = global_stats(input, dims, self.process_group)
        if n <= 1:  # every rank sees the same n, so every rank raises: no rank hangs
            raise ValueError(
                f"Expected more than 1 value per channel across all ranks when training, "
                f"got {n} (this rank's input size {tuple(input.size())})"
            )
        ok = finite_stats(mu, var)  # raises on the CPU; on a device, None or a () bool tensor
        self._update_running_stats(mu, var, n, ok)
        shape = _channel_shape(input)
        inv_std = torch.rsqrt(var + self.eps).to(input.dtype).view(shape)
        w = None if self.weight is None else self.weight.view(shape)
        b = None if self.bias is None else self.bias.view(shape)
        mu = mu.to(input.dtype).view(shape)
        return _SyncBatchNormTrain.apply(input, w, b, mu, inv_std, n, self.process_group)

    def _update_running_stats(self, mu: Tensor, var: Tensor, n: int, ok: Tensor | None) -> None:
        if not self.track_running_stats:
            return
        if self.momentum is None:
            factor = 1.0 / float(self.num_batches_tracked + 1)  # cumulative average
        else:
            factor = self.momentum
        new_mean, new_var = update_running_stats(
            self.running_mean, self.running_var, mu, var, n, factor, ok=ok
        )
        with torch.no_grad():
            self.running_mean.copy_(new_mean)
            self.running_var.copy_(new_var)
            self.num_batches_tracked.add_(1 if ok is None else ok.long())

    @classmethod
    def convert_sync_batchnorm(cls, module: nn.Module, process_group=None) -> nn.Module:
        """Replace every `torch.nn` and bnlab BatchNorm*d in `module` with a SyncBatchNorm.

        Parameters, buffers, `requires_grad` and the train/eval flag carry over; like
        `torch.nn.SyncBatchNorm.convert_sync_batchnorm`, the module is changed in place and
        returned (a BN module passed itself is returned as its replacement).
        """
        converted = module
        is_bn = isinstance(module, nn.modules.batchnorm._BatchNorm | _BatchNorm)
        if is_bn and not isinstance(module, cls):
            converted = cls(
                module.num_features,
                module.eps,
                module.momentum,
                module.affine,
                module.track_running_stats,
                process_group,
            )
            _copy_state(module, converted)
        for name, child in module.named_children():
            converted.add_module(name, cls.convert_sync_batchnorm(child, process_group))
        return converted


def _copy_state(source: nn.Module, target: nn.Module) -> None:
    with torch.no_grad():
        if source.affine:
            target.weight = source.weight  # the same Parameter, as torch's conversion does
            target.bias = source.bias
        if source.track_running_stats:
            target.running_mean = source.running_mean
            target.running_var = source.running_var
            target.num_batches_tracked = source.num_batches_tracked
    target.train(source.training)
    if hasattr(source, "qconfig"):
        target.qconfig = source.qconfig
