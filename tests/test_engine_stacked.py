"""Stacked layers against torch.nn, member by member (float64)."""

import pytest
import torch
from torch import nn

from bnlab.engine.config import ModelConfig
from bnlab.engine.models import build_model
from bnlab.engine.norms_bn import NORM_KERNELS, StackedBatchNorm
from bnlab.engine.stacked import (
    StackedConv2d,
    StackedFlatten,
    StackedLinear,
    StackedMaxPool2d,
    from_groups,
    to_groups,
)

K = 3
TOL = {"rtol": 1e-10, "atol": 1e-12}
F64 = torch.float64


def _init(layer, init="torch-default"):
    for k in range(K):
        layer.init_member(k, torch.Generator().manual_seed(k), init, 0.1)
    return layer


@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch_per_member(bias):
    layer = _init(StackedLinear(K, 7, 5, bias=bias, dtype=torch.float64))
    x = torch.randn(K, 4, 7, dtype=F64)
    y = layer(x)
    for k in range(K):
        ref = nn.Linear(7, 5, bias=bias, dtype=F64)
        with torch.no_grad():
            ref.weight.copy_(layer.weight[k].T)  # (in, out) -> torch's (out, in)
            if bias:
                ref.bias.copy_(layer.bias[k])
        torch.testing.assert_close(y[k], ref(x[k]), **TOL)


@pytest.mark.parametrize("c_in", [1, 3])  # one input channel per group takes another kernel
def test_conv_and_pool_match_torch_per_member(c_in):
    conv = _init(StackedConv2d(K, c_in, 4, dtype=torch.float64))
    x = torch.randn(K, 5, c_in, 6, 6, dtype=F64, requires_grad=True)
    y = StackedMaxPool2d()(conv(x))
    assert to_groups(y).is_contiguous(memory_format=torch.channels_last)
    y.square().sum().backward()
    for k in range(K):
        ref = nn.Conv2d(c_in, 4, 3, padding=1, dtype=F64)
        with torch.no_grad():
            ref.weight.copy_(conv.weight[k])
            ref.bias.copy_(conv.bias[k])
        xk = x[k].detach().requires_grad_()
        yk = nn.functional.max_pool2d(ref(xk), 2)
        yk.square().sum().backward()
        torch.testing.assert_close(y[k], yk, **TOL)
        torch.testing.assert_close(x.grad[k], xk.grad, **TOL)
        torch.testing.assert_close(conv.weight.grad[k], ref.weight.grad, **TOL)


def test_flatten_matches_torch_and_returns_channels_last_gradients():
    conv = _init(StackedConv2d(K, 2, 4, dtype=F64))
    pooled = StackedMaxPool2d()(conv(torch.randn(K, 5, 2, 6, 6, dtype=F64)))  # (K, 5, 4, 3, 3)
    pooled.retain_grad()
    y = StackedFlatten()(pooled)  # (K, 5, 36)
    weights = torch.randn(y.shape, dtype=F64)
    (y * weights).sum().backward()
    for k in range(K):
        torch.testing.assert_close(y[k], torch.flatten(pooled[k], 1), rtol=0, atol=0)
    # the gradient is plain reshape's, laid out as the conv layers' activations are, so
    # max-pooling's backward reads it without copying it into channels-last
    torch.testing.assert_close(pooled.grad, weights.reshape(pooled.shape), rtol=0, atol=0)
    assert to_groups(pooled.grad).is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("kernel", NORM_KERNELS)
@pytest.mark.parametrize("conv", [False, True])  # (K, B, C) or (K, B, C, H, W) inputs
@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm_matches_torch_train_and_eval(conv, momentum, kernel):
    C = 4
    bn = StackedBatchNorm(K, C, eps=1e-5, momentum=momentum, dtype=torch.float64, kernel=kernel)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.normal_()
    refs = [
        (nn.BatchNorm2d if conv else nn.BatchNorm1d)(C, momentum=momentum, dtype=F64)
        for _ in range(K)
    ]
    for k, ref in enumerate(refs):
        with torch.no_grad():
            ref.weight.copy_(bn.weight[k])
            ref.bias.copy_(bn.bias[k])
    shape = (K, 6, C, 3, 3) if conv else (K, 6, C)
    for step in range(3):  # train steps update the running statistics
        x = (torch.randn(shape, dtype=F64) * 2 + 1).requires_grad_()
        # conv activations arrive as views of a channels-last buffer (the engine's layout)
        y = bn(from_groups(to_groups(x), K) if conv and step == 1 else x)
        (y * torch.arange(y.numel(), dtype=F64).view(y.shape).sin()).sum().backward()
        for k, ref in enumerate(refs):
            xk = x[k].detach().requires_grad_()
            yk = ref(xk)
            (yk * torch.arange(y.numel(), dtype=F64).view(y.shape)[k].sin()).sum().backward()
            torch.testing.assert_close(y[k], yk, **TOL)
            torch.testing.assert_close(x.grad[k], xk.grad, **TOL)
            torch.testing.assert_close(bn.running_var[k], ref.running_var, **TOL)
            torch.testing.assert_close(bn.running_mean[k], ref.running_mean, **TOL)
        for k, ref in enumerate(refs):
            torch.testing.assert_close(bn.weight.grad[k], ref.weight.grad, **TOL)
            torch.testing.assert_close(bn.bias.grad[k], ref.bias.grad, **TOL)
    bn.eval()
    x = torch.randn(shape, dtype=F64)
    for k, ref in enumerate(refs):
        torch.testing.assert_close(bn(x)[k], ref.eval()(x[k]), **TOL)


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_member_k_init_equals_single_model_with_seed_k(norm):
    cfg = ModelConfig(conv_channels=(4,), hidden=(8,), init="torch-default")
    stack = build_model(cfg, norm, 3, (1, 8, 8), torch.float64)
    stack.init_members([10, 11, 12], cfg.init, cfg.init_std)
    for k, seed in enumerate([10, 11, 12]):
        single = build_model(cfg, norm, 1, (1, 8, 8), torch.float64)
        single.init_members([seed], cfg.init, cfg.init_std)
        assert torch.equal(stack.flat[k], single.flat[0])


def test_parameters_are_views_of_the_flat_buffer():
    cfg = ModelConfig(hidden=(5,))
    model = build_model(cfg, "batch", 2, (1, 4, 4), torch.float64)
    assert not hasattr(model.layers.fc1, "bias") or model.layers.fc1.bias is None  # BN follows
    with torch.no_grad():
        model.flat.fill_(0.5)
    assert all(bool((p == 0.5).all()) for p in model.parameters())
    assert model.layer_names == ["fc1", "norm1", "out"]
    x = torch.randn(2, 3, 1, 4, 4, dtype=F64)
    model(x).sum().backward()
    assert model.flat_grad.abs().sum() > 0
    start, end = model.slices["layers.out.bias"]
    torch.testing.assert_close(model.flat_grad[:, start:end], model.layers.out.bias.grad)


def test_conv_stack_folds_on_its_traced_graph():
    """bnlab.fold rewrites the torch.fx graph; a stacked layer fx cannot trace sends it to
    its nn.Sequential fallback (with a warning), so every stacked layer must trace."""
    import bnlab

    cfg = ModelConfig(conv_channels=(4,), hidden=(6,))
    model = build_model(cfg, "batch", K, (1, 6, 6), F64)
    model.init_members(list(range(K)), "torch-default", 0.1)
    folded, report = bnlab.fold_batchnorm(model, method="fx", return_report=True)
    assert report.method == "fx" and len(report.folded) == 2
    x = torch.randn(K, 5, 1, 6, 6, dtype=F64)
    torch.testing.assert_close(folded(x), model.eval()(x), rtol=1e-12, atol=1e-12)
