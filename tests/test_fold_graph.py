"""fold_batchnorm on models with a custom forward: residual blocks, shortcuts, shared outputs.

The reference is always the unfolded model in eval mode on the same input.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_close
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

import bnlab
from bnlab.engine import ModelConfig, build_model


class Block(nn.Module):
    """conv-BN-relu-conv-BN plus a shortcut (1x1 conv + BN when the shape changes)."""

    def __init__(self, bn, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = bn(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = bn(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride), bn(c_out))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """8 BN: stem, two blocks with two each, a shortcut BN in the downsampling block, the
    transposed conv, the head."""

    def __init__(self, bn2d=nn.BatchNorm2d, bn1d=nn.BatchNorm1d):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = bn2d(8)
        self.layers = nn.ModuleList([Block(bn2d, 8, 8, 1), Block(bn2d, 8, 16, 2)])
        self.up = nn.ConvTranspose2d(16, 8, 2, stride=2, groups=2)
        self.bn_up = bn2d(8)
        self.fc = nn.Linear(8, 10)
        self.bn_fc = bn1d(10)

    def forward(self, x):
        x = F.relu(self.bn(self.stem(x)))
        for block in self.layers:
            x = block(x)
        x = self.bn_up(self.up(x))
        return self.bn_fc(self.fc(x.mean((2, 3))))


def _warm_up(model, shape, steps=3):
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(torch.randn(shape) * 2 + 1)  # running statistics away from 0/1
        for m in model.modules():
            if isinstance(m, (_BatchNorm, bnlab.BatchNorm2d, bnlab.BatchNorm1d)):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model


def _count_bn(model):
    return sum(
        isinstance(m, (_BatchNorm, bnlab.BatchNorm2d, bnlab.BatchNorm1d)) for m in model.modules()
    )


@pytest.mark.parametrize("impl", ["torch", "bnlab"])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_residual_network_folds_every_bn(impl, mode):
    torch.manual_seed(0)
    bns = (
        (nn.BatchNorm2d, nn.BatchNorm1d)
        if impl == "torch"
        else (bnlab.BatchNorm2d, bnlab.BatchNorm1d)
    )
    model = _warm_up(ResNet(*bns), (8, 3, 8, 8))
    assert _count_bn(model) == 8
    model.train(mode == "train")
    folded, report = bnlab.fold_batchnorm(model, return_report=True)
    assert report.method == "fx" and report.left == ()
    assert len(report.folded) == 8 and _count_bn(folded) == 0
    assert ("layers.1.shortcut.1", "layers.1.shortcut.0") in report.folded
    assert model.training == (mode == "train"), "the input model was changed"
    model.eval()
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        assert_close(f"{impl}-{mode}", folded(x), model(x), rtol=1e-4, atol=1e-5)


def test_bn_on_a_shared_output_or_a_reused_layer_is_left_with_the_reason():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn_a, self.bn_b = (
                nn.Conv2d(2, 4, 1),
                bnlab.BatchNorm2d(4),
                nn.BatchNorm2d(4),
            )
            self.lin, self.bn_c = nn.Linear(4, 4), nn.BatchNorm1d(4)
            self.bn_d = nn.BatchNorm1d(4)

        def forward(self, x):
            z = self.conv(x)
            h = (self.bn_a(z) + self.bn_b(z)).mean((2, 3))  # conv output read twice
            h = self.bn_c(self.lin(h)) + self.lin(h)  # lin called twice
            return self.bn_d(torch.tanh(h))  # input is not a layer

    torch.manual_seed(1)
    model = _warm_up(Shared(), (8, 2, 3, 3)).eval()
    folded, report = bnlab.fold_batchnorm(model, return_report=True)
    why = dict(report.left)
    assert report.folded == () and set(why) == {"bn_a", "bn_b", "bn_c", "bn_d"}
    assert "also read by" in why["bn_a"] and "called 2 times" in why["bn_c"]
    assert "tanh" in why["bn_d"]
    x = torch.randn(4, 2, 3, 3)
    with torch.no_grad():
        assert_close("shared", folded(x), model(x), rtol=0, atol=0)


def test_untraceable_model_names_the_module_and_falls_back_to_sequential():
    class DataDependent(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x  # control flow on values: torch.fx cannot trace

    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Sequential(DataDependent()))
    _warm_up(model, (8, 3)).eval()
    with pytest.raises(bnlab.FoldTraceError, match=r"module '2\.0' \(DataDependent\)"):
        bnlab.fold_batchnorm(model, method="fx")
    with pytest.warns(UserWarning, match="nn.Sequential rule"):
        folded, report = bnlab.fold_batchnorm(model, return_report=True)
    assert report.method == "sequential" and report.folded == (("1", "0"),)
    assert "2.0" in report.trace_error
    x = torch.randn(5, 3)
    with torch.no_grad():
        assert_close("fallback", folded(x), model(x), rtol=1e-5, atol=1e-6)


def test_bad_method_is_refused():
    with pytest.raises(ValueError, match="method: got 'graph'"):
        bnlab.fold_batchnorm(nn.Linear(2, 2), method="graph")


@pytest.mark.parametrize("hidden", [(), (6,)])
def test_engine_stacked_model_folds_per_member(hidden):
    cfg = ModelConfig(conv_channels=(3,), hidden=hidden, activation="relu", norm_position="before")
    model = build_model(cfg, "batch", members=2, input_shape=(1, 4, 4))
    model.init_members([0, 1], "default", 0.1)
    x = torch.randn(2, 16, 1, 4, 4)  # (K, B, C, H, W)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(x * 2 + 1)
    folded, report = bnlab.fold_batchnorm(model, return_report=True)
    assert report.left == () and len(report.folded) == 1 + len(hidden)
    model.eval()
    with torch.no_grad():
        assert_close("stacked", folded(x), model(x), rtol=1e-4, atol=1e-5)
