"""'Noisy' BatchNorm (Santurkar et al. 2018, Sec. 2.1, Fig. 2): BN followed by i.i.d. noise
whose distribution changes at every step, so each layer's input distribution keeps shifting
(severe covariate shift) while BN's reparametrization is kept.

After normalizing (and gamma, beta), during training only, every activation gets

    y <- y + n,   n ~ N(m_c, s_c^2) i.i.d. over the batch (and space),
    m_c ~ U(-noise_mean_max, noise_mean_max),  s_c ~ U(noise_std_min, noise_std_max),

with (m_c, s_c) drawn afresh per member and channel at every training forward (one per step).
The norm layer sits before the nonlinearity, so the noise does too. Evaluation adds no noise.
The paper states "non-zero mean and non-unit variance" noise that "changes at each time step";
the distributions and ranges above are our choice (documented in `NoiseConfig`).

Each member has its own generator, seeded from its init seed, so member k's noise does not
depend on how many members the stack has; the generators are extra state, saved in
checkpoints and restored by probes.

Importing this module (as `bnlab.engine` does) registers the layer as "batch-noisy" in
`NORM_LAYERS`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from bnlab.engine.norms import NORM_LAYERS, NormSpec, StackedBatchNorm

NOISE_SEED_OFFSET = 7_919  # keeps the noise stream apart from the init stream it derives from


@dataclass(frozen=True)
class NoiseConfig:
    """Noise of 'noisy BN' (Santurkar et al. 2018, Sec. 2.1: "i.i.d. noise sampled from a
    non-zero mean and non-unit variance distribution", changing "at each time step").

    The appendix's exact distributions could not be confirmed from a source readable here, so
    these are our choices: Gaussian noise with per-step channel mean ~ U(-0.5, 0.5) and std
    ~ U(0.5, 1.5) (comparable to the unit-variance BN output). Set through ModelConfig
    (`noise_mean_max`, `noise_std_min`, `noise_std_max`).
    """

    mean_max: float = 0.5
    std_min: float = 0.5
    std_max: float = 1.5

    @classmethod
    def from_model(cls, model_cfg) -> NoiseConfig:
        return cls(model_cfg.noise_mean_max, model_cfg.noise_std_min, model_cfg.noise_std_max)


class StackedNoisyBatchNorm(StackedBatchNorm):
    """`StackedBatchNorm`, then per-step noise in training (see the module docstring).

    `last_mean`, `last_std` (K, C) hold the noise distribution drawn at the latest training
    forward, for inspection and tests.
    """

    def __init__(
        self, members, channels, eps, momentum, noise: NoiseConfig, dtype=None, kernel="aten"
    ):
        super().__init__(members, channels, eps, momentum, dtype=dtype, kernel=kernel)
        self.noise = noise
        self.generators = [torch.Generator().manual_seed(k) for k in range(members)]
        self.last_mean: Tensor | None = None
        self.last_std: Tensor | None = None

    def init_member(self, k: int, gen: torch.Generator, init: str, std: float) -> None:
        super().init_member(k, gen, init, std)
        # Derived from the member's seed without drawing from `gen`: init stays as plain BN's.
        self.generators[k].manual_seed(gen.initial_seed() + NOISE_SEED_OFFSET)

    def forward(self, x: Tensor) -> Tensor:
        y = super().forward(x)  # (K, B, C) or (K, B, C, H, W)
        if not self.training:
            return y
        return y + self._sample(y)

    @torch.no_grad()
    def _sample(self, y: Tensor) -> Tensor:
        """Noise shaped like y: a fresh (mean, std) per member and channel, then N(m, s^2)."""
        C, cfg = y.shape[2], self.noise
        means, stds, noise = [], [], []
        for k, gen in enumerate(self.generators):
            u = torch.rand(2, C, generator=gen, dtype=y.dtype)  # (2, C)
            m = (2.0 * u[0] - 1.0) * cfg.mean_max  # U(-max, max)
            s = cfg.std_min + u[1] * (cfg.std_max - cfg.std_min)  # U(min, max)
            z = torch.randn(y[k].shape, generator=gen, dtype=y.dtype)  # (B, C[, H, W]), CPU
            shape = (1, C) + (1,) * (y.dim() - 3)
            noise.append(m.view(shape) + s.view(shape) * z)
            means.append(m)
            stds.append(s)
        self.last_mean, self.last_std = torch.stack(means), torch.stack(stds)  # (K, C)
        # drawn on the CPU (the generators are), so every device gets the same noise
        return torch.stack(noise).to(y.device)  # (K, B, C[, H, W])

    def get_extra_state(self) -> dict:
        return {"generators": [g.get_state() for g in self.generators]}

    def set_extra_state(self, state: dict) -> None:
        for gen, s in zip(self.generators, state["generators"], strict=True):
            gen.set_state(s)


def _make_batch_noisy(members, channels, model_cfg, dtype) -> StackedNoisyBatchNorm:
    noise = NoiseConfig.from_model(model_cfg)
    return StackedNoisyBatchNorm(
        members,
        channels,
        model_cfg.bn_eps,
        model_cfg.bn_momentum,
        noise,
        dtype=dtype,
        kernel=model_cfg.bn_kernel,
    )


# BN + per-step noise before the nonlinearity (Santurkar et al. 2018, Sec. 2.1)
NORM_LAYERS["batch-noisy"] = NormSpec(make=_make_batch_noisy, needs_batch=True, has_shift=True)
