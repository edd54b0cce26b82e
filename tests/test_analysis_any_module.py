"""The analyses on a plain nn.Module give the stacked versions' numbers on the same weights.

A one-member engine stack (conv, BN, MLP with BN) and the same network written with torch.nn
layers and bnlab's BN (weights copied over) are measured on the same batch.
"""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_close
from torch import nn

import bnlab
from bnlab.analysis import (
    LandscapeConfig,
    gradient_curvature,
    ics,
    landscape,
    module_activation_stats,
    module_curvature,
    module_ics,
    module_landscape,
)
from bnlab.analysis.any_module import weight_layers
from bnlab.engine import ModelConfig, OptimConfig, build_model, make_optimizer
from bnlab.engine.config import HookConfig
from bnlab.engine.hooks import ActivationRecorder

DT = torch.float64
TOL = dict(rtol=1e-9, atol=1e-11)
LR = 0.3


def _pair():
    cfg = ModelConfig(conv_channels=(3,), hidden=(6,), activation="tanh", norm_position="before")
    stack = build_model(cfg, "batch", 1, (1, 4, 4), DT)
    stack.init_members([0], "gaussian", 0.4)
    s = dict(stack.layers.named_children())
    with torch.no_grad():  # gamma, beta away from 1, 0
        for name in ("norm1", "norm2"):
            s[name].weight.uniform_(0.5, 1.5)
            s[name].bias.uniform_(-0.5, 0.5)
    layers = OrderedDict(
        conv1=nn.Conv2d(1, 3, 3, padding=1, bias=False),
        norm1=bnlab.BatchNorm2d(3),
        act1=nn.Tanh(),
        pool1=nn.MaxPool2d(2),
        flatten=nn.Flatten(),
        fc2=nn.Linear(3 * 2 * 2, 6, bias=False),
        norm2=bnlab.BatchNorm1d(6),
        act2=nn.Tanh(),
        out=nn.Linear(6, 10),
    )
    plain = nn.Sequential(layers).to(DT)
    with torch.no_grad():
        plain.conv1.weight.copy_(s["conv1"].weight[0])  # (C_out, C_in, 3, 3)
        plain.fc2.weight.copy_(s["fc2"].weight[0].T)  # stacked (in, out) -> (out, in)
        plain.out.weight.copy_(s["out"].weight[0].T)
        plain.out.bias.copy_(s["out"].bias[0])
        for name in ("norm1", "norm2"):
            getattr(plain, name).weight.copy_(s[name].weight[0])
            getattr(plain, name).bias.copy_(s[name].bias[0])
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(12, 1, 4, 4, dtype=DT, generator=gen)
    y = torch.randint(0, 10, (12,), generator=gen)
    return stack, plain, x, y


def test_same_forward_first():
    stack, plain, x, _y = _pair()
    assert_close("logits", plain(x), stack(x[None])[0], **TOL)


def test_landscape_equals_the_stacked_version():
    stack, plain, x, y = _pair()
    cfg = LandscapeConfig(lr_multiples=(0.5, 2.0, 4.0))
    ref = landscape(stack, x[None], y[None], torch.tensor([LR], dtype=DT), cfg)
    before = {k: v.clone() for k, v in plain.state_dict().items()}
    ours = module_landscape(plain, F.cross_entropy, (x, y), LR, cfg)
    assert set(ours) == set(ref)
    for key in ref:
        assert_close(key, ours[key], ref[key][0], **TOL)
    for key, value in before.items():  # the model is put back
        assert torch.equal(plain.state_dict()[key], value), key


def test_ics_equals_the_stacked_version_layer_by_layer():
    stack, plain, x, y = _pair()
    opt = make_optimizer(stack.flat, stack.flat_grad, [LR], OptimConfig(momentum=0.9))
    ref = ics(stack, opt, x[None], y[None])
    ours = module_ics(plain, F.cross_entropy, (x, y), torch.optim.SGD(plain.parameters(), LR, 0.9))
    assert (
        set(ours)
        == set(ref)
        == {f"ics_{m}/{n}" for m in ("l2", "cos") for n in ("conv1", "fc2", "out")}
    )
    for key in ref:
        assert_close(key, ours[key], ref[key][0], **TOL)
    assert float(ours["ics_l2/conv1"]) == 0.0 and float(ours["ics_l2/out"]) > 0


def test_curvature_equals_the_stacked_version():
    stack, plain, x, y = _pair()
    ref = gradient_curvature(stack, x[None], y[None])
    ours = module_curvature(plain, F.cross_entropy, (x, y))
    for key in ref:
        assert_close(key, ours[key], ref[key][0], **TOL)


def test_activation_stats_equal_the_engine_recorder():
    stack, plain, x, _y = _pair()
    cfg = HookConfig(layers=("act1", "act2"), units=(0, 2))
    recorder = ActivationRecorder(stack, cfg)
    recorder.active = True
    stack.train()(x[None])
    ref = {name: value for _, _, name, value in recorder.take_rows(step=0)}
    ours = module_activation_stats(plain, x, ["act1", "act2"], cfg)
    assert set(ours) == set(ref)
    for key, value in ref.items():
        assert ours[key].item() == pytest.approx(value, rel=1e-9, abs=1e-11), key


class Residual(nn.Module):
    """A custom forward whose execution order differs from the registration order."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(4, 3)  # registered first, called last
        self.body = nn.Linear(4, 4)
        self.bn = nn.BatchNorm1d(4)

    def forward(self, x):
        return self.head(x + torch.relu(self.bn(self.body(x))))


def test_layers_before_follow_the_forward_pass_not_registration():
    layers = weight_layers(Residual().double(), torch.randn(5, 4, dtype=DT))
    assert [(name, own) for name, own, _ in layers] == [
        ("body", ["body.weight", "body.bias"]),
        ("head", ["head.weight", "head.bias"]),
    ]
    assert layers[1][2] == ["body.weight", "body.bias", "bn.weight", "bn.bias"]
    assert layers[0][2] == []


def test_unknown_layer_is_named():
    with pytest.raises(ValueError, match="no module named 'act9'"):
        module_activation_stats(Residual(), torch.randn(5, 4), ["act9"])
