"""BN's two batch-statistics variants over a stack of K members: Batch Renormalization
(Ioffe 2017) and Ghost Batch Normalization (Hoffer et al. 2017), with their parameters.

Both are thin adapters over the library's functional forms, which take any reduction dims:
`bnlab.norms.batchrenorm.batch_renorm` (and its warm-up, `RenormWarmup`) and
`bnlab.norms.ghostbatchnorm.ghost_normalize`. The member axis is laid out by
`member_channels`, so every statistic is a reduction inside one member's channel and members
never interact. Both keep BN's running statistics (K, C), updated by BN's rule, and
evaluate exactly as BN does (Alg. 2, step 10), so `bnlab.fold` folds them like BN.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from bnlab.engine.norms_state import BatchStatsState, member_channels
from bnlab.errors import ConfigError
from bnlab.norms.batchrenorm import RenormWarmup, batch_renorm, renorm_limits
from bnlab.norms.ghostbatchnorm import ghost_normalize

NO_WARMUP = RenormWarmup(start=0, r_max_step=0, d_max_step=0)  # r_max, d_max from step 0


@dataclass(frozen=True)
class RenormParams:
    """Batch Renorm's clipping (Ioffe 2017, Alg. 1): r to [1/r_max, r_max], d to [-d_max,
    d_max], relaxed from plain BN by `warmup` (the paper: RenormWarmup(5000, 40000, 25000))."""

    r_max: float = 3.0  # Ioffe 2017, Sec. 4.1
    d_max: float = 5.0
    warmup: RenormWarmup = field(default=NO_WARMUP)  # steps; default: none

    def __post_init__(self) -> None:
        if not self.r_max >= 1.0:  # also refuses NaN
            raise ValueError(f"r_max: expected a number >= 1, got {self.r_max!r}")
        if not self.d_max >= 0.0:
            raise ValueError(f"d_max: expected a number >= 0, got {self.d_max!r}")


@dataclass(frozen=True)
class GhostParams:
    """Ghost BN's virtual batch (Hoffer et al. 2017; Keras's `virtual_batch_size`)."""

    virtual_batch_size: int = 16  # examples per virtual batch; must divide batch_size

    def __post_init__(self) -> None:
        if self.virtual_batch_size < 1:
            raise ValueError(
                f"virtual_batch_size: expected a positive number of examples, "
                f"got {self.virtual_batch_size!r}"
            )


def ghost_fits(p: GhostParams, key: str, fit) -> None:
    """The virtual batch divides the batch, and a dense layer's chunk has 2 examples."""
    v = p.virtual_batch_size
    if fit.batch_size % v:
        raise ConfigError(
            f"{key}.virtual_batch_size: {v} does not divide batch_size {fit.batch_size}; "
            "expected a divisor of it"
        )
    if v == 1 and fit.hidden_widths:
        raise ConfigError(
            f"{key}.virtual_batch_size: batch statistics of fully connected layers need at "
            "least 2 examples per virtual batch, got 1"
        )


class StackedBatchRenorm(BatchStatsState):
    """Batch Renormalization (Ioffe 2017, Alg. 1) per member and channel: the library's
    `batch_renorm`, with `renorm_limits(warmup, step, r_max, d_max)` in force at each step
    (step: the training batches seen, `num_batches_tracked`, counted on the host). Same
    attributes as `bnlab.BatchRenorm2d` (`r_max`, `d_max`, `warmup`), which precise BN sets
    to plain BN for its pass."""

    def __init__(
        self,
        members: int,
        channels: int,
        eps: float,
        momentum: float,
        r_max: float,
        d_max: float,
        warmup: RenormWarmup | None = None,
        dtype=None,
    ):
        super().__init__(members, channels, eps, momentum, dtype)
        self.r_max, self.d_max, self.warmup = r_max, d_max, warmup

    @classmethod
    def build(cls, members: int, channels: int, p, dtype) -> StackedBatchRenorm:
        r = p.renorm
        return cls(members, channels, p.eps, p.momentum, r.r_max, r.d_max, r.warmup, dtype)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return self._eval(x)
        return member_channels(x, self._renorm)

    def _renorm(self, v: Tensor, param, dims: tuple[int, ...]) -> Tensor:
        r_max, d_max = renorm_limits(self.warmup, self.batches_seen(), self.r_max, self.d_max)
        w, b, mu_run, var_run = map(
            param, (self.weight, self.bias, self.running_mean, self.running_var)
        )
        y, mu, var = batch_renorm(v, w, b, mu_run, var_run, dims, self.eps, r_max, d_max)
        self._track(mu, var, n=v.numel() // mu.numel())  # values per member and channel
        return y

    def extra_repr(self) -> str:
        return f"r_max={self.r_max}, d_max={self.d_max}, warmup={self.warmup}"


class StackedGhostBatchNorm(BatchStatsState):
    """Ghost Batch Normalization (Hoffer et al. 2017, Sec. 4.1) per member and channel: the
    library's `ghost_normalize` over chunks of `virtual_batch_size` consecutive examples,
    running statistics by BN's rule with each chunk's unbiased variance (Bessel per chunk), so
    virtual_batch_size = batch_size is BN exactly. The batch must be a multiple of it."""

    def __init__(
        self,
        members: int,
        channels: int,
        eps: float,
        momentum: float,
        virtual_batch_size: int,
        dtype=None,
        compiled: bool | None = False,
    ):
        super().__init__(members, channels, eps, momentum, dtype)
        self.virtual_batch_size = virtual_batch_size
        self.compiled = compiled  # passed to BN's functional.normalize

    @classmethod
    def build(cls, members: int, channels: int, p, dtype) -> StackedGhostBatchNorm:
        v = p.ghost.virtual_batch_size
        return cls(members, channels, p.eps, p.momentum, v, dtype, p.compiled)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return self._eval(x)
        return member_channels(x, self._ghost)

    def _ghost(self, v: Tensor, param, dims: tuple[int, ...]) -> Tensor:
        w, b = param(self.weight), param(self.bias)
        # the first reduction dim is the batch's (see member_channels)
        args = (dims, dims[0], self.virtual_batch_size, self.eps, self.compiled)
        y, mu, var, m = ghost_normalize(v, w, b, *args)
        self._track(mu, var, n=m)  # m: values per member and channel in one chunk
        return y

    def extra_repr(self) -> str:
        return f"virtual_batch_size={self.virtual_batch_size}"
