"""Noisy BN: the noise has the configured statistics, changes every step, is absent in eval,
and is part of the module state (checkpoints, probes); the library module is torch's BN
plus exactly that noise."""

import copy

import pytest
import torch
import torch.nn.functional as F

import bnlab
from bnlab.engine import ModelConfig, StackedNoisyBatchNorm, build_model
from bnlab.engine.config import ConfigError, TrainConfig, apply_overrides
from bnlab.norms import NoiseParams

DT = torch.float64
CFG = NoiseParams(mean_max=0.7, std_min=0.4, std_max=1.9)


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
    with pytest.raises(ConfigError, match=r"model\.norm\.batch_noisy\.std_max: .* >= std_min"):
        apply_overrides(TrainConfig(), ["std_min=2.0", "std_max=1.0"])
    with pytest.raises(ValueError, match="mean_max"):
        NoiseParams(mean_max=-0.1)
    # both ends of the range move together in one --set list
    cfg = apply_overrides(TrainConfig(), ["std_min=2.0", "std_max=3.0"])
    assert (cfg.model.norm.batch_noisy.std_min, cfg.model.norm.batch_noisy.std_max) == (2.0, 3.0)


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 2, 2)])
def test_library_noisy_bn_is_torch_bn_plus_the_drawn_noise(shape):
    cls = bnlab.NoisyBatchNorm1d if len(shape) == 2 else bnlab.NoisyBatchNorm2d
    layer = cls(3, noise=CFG, generator=torch.Generator().manual_seed(5), dtype=DT)
    ref = (
        torch.nn.BatchNorm1d(3, dtype=DT) if len(shape) == 2 else torch.nn.BatchNorm2d(3, dtype=DT)
    )
    replica = torch.Generator().manual_seed(5)  # the same stream, drawn by hand
    x = torch.randn(shape, dtype=DT) * 2 + 1
    for _ in range(2):
        u = torch.rand(2, 3, generator=replica, dtype=DT)
        mean, std = (2 * u[0] - 1) * CFG.mean_max, CFG.std_min + u[1] * (CFG.std_max - CFG.std_min)
        z = torch.randn(shape, generator=replica, dtype=DT)
        view = (1, 3) + (1,) * (len(shape) - 2)
        expected = ref(x) + mean.view(view) + std.view(view) * z
        torch.testing.assert_close(layer(x), expected, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(layer.last_std, std, rtol=0, atol=0)
    torch.testing.assert_close(layer.running_var, ref.running_var, rtol=1e-12, atol=1e-12)
    state = copy.deepcopy(layer.state_dict())  # the generator travels with the module's state
    after = layer(x)
    layer.load_state_dict(state)
    torch.testing.assert_close(layer(x), after, rtol=0, atol=0)
    ref(x)  # the third update the layer made
    layer.eval()
    torch.testing.assert_close(layer(x), ref.eval()(x), rtol=1e-12, atol=1e-12)  # no noise
