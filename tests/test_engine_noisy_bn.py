"""Noisy BN: the noise has the configured statistics, changes every step, is absent in eval,
and is part of the module state (checkpoints, probes)."""

import pytest
import torch
import torch.nn.functional as F

from bnlab.engine import ModelConfig, build_model
from bnlab.engine.config import ConfigError, TrainConfig, validate
from bnlab.engine.noisy_bn import NoiseConfig, StackedNoisyBatchNorm

DT = torch.float64
CFG = NoiseConfig(mean_max=0.7, std_min=0.4, std_max=1.9)


def _layer(K=2, C=3):
    layer = StackedNoisyBatchNorm(K, C, 1e-5, 0.1, CFG, dtype=DT)
    for k in range(K):
        layer.init_member(k, torch.Generator().manual_seed(100 + k), "gaussian", 0.1)
    return layer


def _plain_bn(x):  # (K, B, C) -> each member normalized by torch's own batch_norm
    return torch.stack([F.batch_norm(xk, None, None, training=True, eps=1e-5) for xk in x])


def test_noise_has_the_drawn_mean_and_std():
    layer = _layer()
    x = 3.0 + 2.0 * torch.randn(2, 40_000, 3, dtype=DT, generator=torch.Generator().manual_seed(0))
    noise = layer(x) - _plain_bn(x)  # (K, B, C)
    m, s = layer.last_mean, layer.last_std  # (K, C)
    se = s / 200.0  # std / sqrt(B)
    assert ((noise.mean(1) - m).abs() < 4 * se).all(), (noise.mean(1), m)
    assert ((noise.std(1) / s - 1).abs() < 0.02).all(), (noise.std(1), s)


def test_noise_distribution_is_redrawn_each_step_with_configured_ranges():
    layer = _layer(K=1, C=50)
    x = torch.randn(1, 4, 50, dtype=DT)
    means, stds = [], []
    for _ in range(200):
        layer(x)
        means.append(layer.last_mean)
        stds.append(layer.last_std)
    m, s = torch.cat(means).flatten(), torch.cat(stds).flatten()  # 10,000 draws each
    assert m.abs().max() <= CFG.mean_max and m.std() > 0
    assert abs(m.mean()) < 0.02 and abs(m.var() / (CFG.mean_max**2 / 3) - 1) < 0.05  # U(-a, a)
    assert s.min() >= CFG.std_min and s.max() <= CFG.std_max
    assert abs(s.mean() - (CFG.std_min + CFG.std_max) / 2) < 0.02
    assert not torch.equal(means[0], means[1])  # a new distribution every step


def test_eval_adds_no_noise_to_conv_inputs():
    layer = _layer()  # one layer takes (K, B, C) and (K, B, C, H, W): the shape decides
    x = torch.randn(2, 8, 3, 4, 4, dtype=DT)
    y = layer(x)
    assert y.shape == x.shape and layer.last_mean.shape == (2, 3)
    layer.eval()
    ref = (x - layer.running_mean.view(2, 1, 3, 1, 1)) * torch.rsqrt(
        layer.running_var.view(2, 1, 3, 1, 1) + 1e-5
    )
    assert torch.allclose(layer(x), ref, rtol=1e-12, atol=1e-12)  # eval_scale_shift rounds as ATen


def test_generators_round_trip_through_state_dict():
    model = build_model(ModelConfig(hidden=(5,)), "batch-noisy", 2, (1, 4, 4), DT)
    model.init_members([0, 1], "gaussian", 0.1)
    state = {k: v for k, v in model.state_dict().items()}
    x = torch.randn(2, 6, 1, 4, 4, dtype=DT)
    first = model(x)
    model.load_state_dict(state)
    assert torch.equal(model(x), first)


def test_bad_noise_config_is_rejected():
    with pytest.raises(ConfigError, match="noise_std_max"):
        validate(
            TrainConfig(model=ModelConfig(noise_std_min=2.0, noise_std_max=1.0)), check_data=False
        )
