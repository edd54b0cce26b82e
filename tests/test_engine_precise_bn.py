"""Precise BN (Wu & Johnson 2021) on engine stacks, with the library's one `precise_bn`:
the equal-weight average of per-batch statistics, checked against the first layer's
statistics computed by hand and against torch's cumulative average (momentum=None) over
the same batches; too few batches raise and leave everything as it was."""

import copy

import pytest
import torch

from bnlab import precise_bn
from bnlab.engine.config import ModelConfig
from bnlab.engine.models import build_model
from bnlab.engine.norms import NormParams
from bnlab.engine.norms_batch import GhostParams
from bnlab.engine.norms_state import BatchStatsState

K, B, N = 3, 8, 5
F64 = torch.float64
TOL = {"rtol": 1e-10, "atol": 1e-12}


def running_stats_layers(model) -> list[BatchStatsState]:
    return [m for m in model.modules() if isinstance(m, BatchStatsState)]


def _model(norm: str):
    norm_params = NormParams(ghost=GhostParams(virtual_batch_size=4))
    cfg = ModelConfig(conv_channels=(4,), hidden=(6,), activation="relu", norm=norm_params)
    m = build_model(cfg, norm, K, (1, 8, 8), F64)
    m.init_members([0, 1, 2], "torch-default", 0.1)
    for layer in running_stats_layers(m):  # trained-looking state, far from the batches'
        layer.running_mean.normal_()
        layer.running_var.uniform_(0.5, 2.0)
        layer.num_batches_tracked.fill_(7)
    return m.eval()


def _batches(n: int = N) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(K, B, 1, 8, 8, generator=gen, dtype=F64) * 2 + 1 for _ in range(n)]


@pytest.mark.parametrize("norm", ["batch", "renorm", "ghost", "batch-noisy"])
def test_precise_bn_is_the_equal_weight_average_of_batch_statistics(norm):
    model, batches = _model(norm), _batches()
    params = model.flat.clone()
    reference = copy.deepcopy(model)
    layers = running_stats_layers(model)
    assert len(layers) == 2
    extra = [copy.deepcopy(m.get_extra_state()) for m in layers] if norm == "batch-noisy" else None
    assert precise_bn(model, iter(batches + _batches(3)), N) is model
    # layer 1 by hand: its input conv1(x) does not depend on any norm layer
    conv = [model.layers.conv1(x) for x in batches]  # each (K, B, C, H, W)
    mu = torch.stack([c.mean((1, 3, 4)) for c in conv]).mean(0)  # (K, C)
    per_batch_var = [c.var((1, 3, 4)) for c in conv]  # unbiased, as BN's running variance
    if norm == "ghost":  # the mean over chunks of each chunk's unbiased variance
        per_batch_var = [
            torch.stack([p.var((1, 3, 4)) for p in c.split(4, dim=1)]).mean(0) for c in conv
        ]
    torch.testing.assert_close(layers[0].running_mean, mu, **TOL)
    torch.testing.assert_close(layers[0].running_var, torch.stack(per_batch_var).mean(0), **TOL)
    # every layer: torch's cumulative average (momentum=None) over the same training forwards
    ref_layers = running_stats_layers(reference)
    for m in ref_layers:
        m.momentum = None
        m.num_batches_tracked.zero_()
        if norm == "renorm":
            m.r_max, m.d_max, m.warmup = 1.0, 0.0, None  # as BN
    reference.train()
    with torch.no_grad():
        for x in batches:
            reference(x)
    for ours, ref in zip(layers, ref_layers, strict=True):
        torch.testing.assert_close(ours.running_mean, ref.running_mean, **TOL)
        torch.testing.assert_close(ours.running_var, ref.running_var, **TOL)
    # nothing else moved
    assert torch.equal(model.flat, params) and not model.training
    for m in layers:
        assert m.momentum == 0.1 and int(m.num_batches_tracked) == 7
        if norm == "renorm":
            assert (m.r_max, m.d_max) == (3.0, 5.0) and m.warmup is not None
    if extra is not None:  # noisy BN's generators were not advanced
        for m, state in zip(layers, extra, strict=True):
            for a, b in zip(m.get_extra_state()["generators"], state["generators"], strict=True):
                assert torch.equal(a, b)


def test_precise_bn_changes_the_evaluation_of_a_model():
    model, batches = _model("batch"), _batches()
    before = model(batches[0]).clone()
    precise_bn(model, batches, N)
    assert not torch.allclose(model(batches[0]), before)


def test_precise_bn_refuses_too_few_batches_and_keeps_the_statistics():
    model = _model("batch-noisy")
    layers = running_stats_layers(model)
    stats = [(m.running_mean.clone(), m.running_var.clone()) for m in layers]
    generators = [copy.deepcopy(m.get_extra_state()) for m in layers]
    with pytest.raises(ValueError, match="num_batches"):
        precise_bn(model, _batches(), 0)
    with pytest.raises(ValueError, match="num_batches=3, but batches gave only 2"):
        precise_bn(model, _batches(2), 3)
    for m, (mean, var), state in zip(layers, stats, generators, strict=True):
        assert torch.equal(m.running_mean, mean) and torch.equal(m.running_var, var)
        assert m.momentum == 0.1 and int(m.num_batches_tracked) == 7
        for a, b in zip(m.get_extra_state()["generators"], state["generators"], strict=True):
            assert torch.equal(a, b)
    assert not model.training
