"""'Noisy' Batch Normalization (Santurkar et al. 2018, Sec. 2.1, Fig. 2): BN followed by
i.i.d. noise whose distribution changes at every step, so that each layer's input
distribution keeps shifting (severe covariate shift) while BN's reparametrization is kept.

After normalizing (and gamma, beta), during training only, every activation gets

    y <- y + n,   n ~ N(m_c, s_c^2) i.i.d. over the batch (and positions),
    m_c ~ U(-mean_max, mean_max),   s_c ~ U(std_min, std_max),

with (m_c, s_c) drawn afresh per channel at every training call (one per step). Evaluation
is BN's, without noise. The paper states "non-zero mean and non-unit variance" noise that
"changes at each time step"; the distributions and ranges are bnlab's choice (`NoiseParams`).

The noise comes from the layer's own `torch.Generator`, drawn on the CPU (so every device
gets the same noise) and saved with the module's state (`get_extra_state`): a restored
checkpoint draws the noise the original run drew next. `channel_noise` is the one place the
draw is written; the engine's stacked layer calls it once per member, with that member's
generator, so member k of a stack adds exactly the noise this module adds.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from bnlab.modules import _BatchNorm

__all__ = ["NoiseParams", "NoisyBatchNorm1d", "NoisyBatchNorm2d", "channel_noise"]


@dataclass(frozen=True)
class NoiseParams:
    """The noise of noisy BN (Santurkar et al. 2018, Sec. 2.1: "i.i.d. noise sampled from a
    non-zero mean and non-unit variance distribution", changing "at each time step").

    The appendix's exact distributions could not be confirmed from a source readable here, so
    these are bnlab's choices: Gaussian noise with a per-step channel mean ~ U(-0.5, 0.5) and
    std ~ U(0.5, 1.5), comparable to the unit-variance BN output.
    """

    mean_max: float = 0.5  # channel means ~ U(-mean_max, mean_max)
    std_min: float = 0.5  # channel stds ~ U(std_min, std_max)
    std_max: float = 1.5

    def __post_init__(self) -> None:
        for name in ("mean_max", "std_min"):
            if not getattr(self, name) >= 0.0:  # also refuses NaN
                raise ValueError(f"{name}: expected a number >= 0, got {getattr(self, name)!r}")
        if not self.std_max >= self.std_min:
            raise ValueError(
                f"std_max: expected a number >= std_min ({self.std_min}), got {self.std_max!r}"
            )


def channel_noise(
    shape: tuple[int, ...], generator: torch.Generator, noise: NoiseParams, dtype: torch.dtype
) -> tuple[Tensor, Tensor, Tensor]:
    """One step's noise for activations of `shape` (N, C, *), drawn from `generator`.

    Returns `(n, mean, std)`: n of `shape`, and the (C,) mean and std drawn for this step.
    The draws, in order: (2, C) uniforms for the channels' distributions, then n's normals.
    """
    channels = shape[1]
    u = torch.rand(2, channels, generator=generator, dtype=dtype)  # (2, C)
    mean = (2.0 * u[0] - 1.0) * noise.mean_max  # U(-max, max)
    std = noise.std_min + u[1] * (noise.std_max - noise.std_min)  # U(min, max)
    z = torch.randn(shape, generator=generator, dtype=dtype)  # (N, C, *)
    view = (1, channels) + (1,) * (len(shape) - 2)  # (C,) -> (1, C, 1..)
    return mean.view(view) + std.view(view) * z, mean, std


class _NoisyBatchNorm(_BatchNorm):
    """bnlab's BatchNorm, then `channel_noise` in training; subclasses set the input ranks.

    `last_mean`, `last_std` (C,) hold the distribution drawn at the latest training call.
    A torch `_BatchNorm` as bnlab's BN is, so torch's BN tools take it for BN:
    `convert_sync_batchnorm` would turn it into a SyncBatchNorm without noise.
    """

    def __init__(
        self,
        num_features: int,
        noise: NoiseParams | None = None,
        generator: torch.Generator | None = None,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self.noise = NoiseParams() if noise is None else noise
        self.generator = torch.Generator() if generator is None else generator
        self.last_mean: Tensor | None = None
        self.last_std: Tensor | None = None

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, noise={self.noise}"

    def forward(self, input: Tensor) -> Tensor:
        y = super().forward(input)
        if not self.training:
            return y
        n, self.last_mean, self.last_std = channel_noise(
            tuple(y.shape), self.generator, self.noise, y.dtype
        )
        return y + n.to(y.device)

    def get_extra_state(self) -> dict:
        return {"generator": self.generator.get_state()}

    def set_extra_state(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


class NoisyBatchNorm1d(_NoisyBatchNorm):
    """Noisy BN over (N, C) or (N, C, L). Santurkar et al. 2018, Sec. 2.1."""

    _ranks = (2, 3)


class NoisyBatchNorm2d(_NoisyBatchNorm):
    """Noisy BN over (N, C, H, W): one noise distribution per channel and step. Santurkar et
    al. 2018, Sec. 2.1 (their VGG's layers)."""

    _ranks = (4,)
