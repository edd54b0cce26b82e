"""A rewritten subset of PyTorch's own BatchNorm tests (test_nn.py), each run twice: on
`torch.nn` (which shows the test itself holds) and on bnlab's modules swapped in.

Where bnlab differs on purpose (an empty batch in training is refused), the test says so.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd import gradcheck, gradgradcheck

import bnlab

IMPLS = {"torch": (nn, F.batch_norm), "bnlab": (bnlab, bnlab.batch_norm)}


@pytest.fixture(params=list(IMPLS))
def impl(request):
    return request.param


def _ns(impl):
    return IMPLS[impl][0]


def _eq(a, b, dtype=torch.float32):
    tol = {torch.bfloat16: (1.6e-2, 1e-5), torch.float32: (1.3e-6, 1e-5)}.get(dtype, (1e-7, 1e-7))
    torch.testing.assert_close(a, b, rtol=tol[0], atol=tol[1])


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_simple_average(impl, affine, dtype):
    # momentum=None: the running statistics are the plain average over the batches seen
    torch.manual_seed(0)
    module = _ns(impl).BatchNorm1d(3, momentum=None, affine=affine).to(dtype)
    zeros, ones = torch.zeros(3, dtype=dtype), torch.ones(3, dtype=dtype)
    data1, data2 = torch.rand(4, 3, dtype=dtype), torch.rand(4, 3, dtype=dtype)
    res1 = module(data1)
    mean1, var1 = module.running_mean.clone(), module.running_var.clone()
    module.reset_running_stats()
    _eq(module.running_mean, zeros, dtype)
    _eq(module.running_var, ones, dtype)
    res2 = module(data2)
    mean2, var2 = module.running_mean.clone(), module.running_var.clone()
    module.reset_running_stats()
    res3, res4 = module(data1), module(data2)
    _eq(res3, res1, dtype)
    _eq(res4, res2, dtype)
    _eq(module.running_mean, (mean1 + mean2) / 2, dtype)
    _eq(module.running_var, (var1 + var2) / 2, dtype)


def test_update_stats_in_train_only(impl):
    bn = _ns(impl).BatchNorm2d(3)
    x = torch.randn(4, 3, 5, 5)
    bn.eval()(x)
    assert int(bn.num_batches_tracked) == 0 and bn.running_mean.abs().sum() == 0
    bn.train()(x)
    assert int(bn.num_batches_tracked) == 1
    _eq(bn.running_mean, 0.1 * x.mean((0, 2, 3)))
    _eq(bn.running_var, 0.9 + 0.1 * x.transpose(0, 1).reshape(3, -1).var(1, unbiased=True))


def test_buffer_update_when_stats_are_not_tracked(impl):
    bn = _ns(impl).BatchNorm1d(5)
    bn.track_running_stats = False  # switched off after construction: buffers stay, frozen
    before = [b.clone() for b in bn.buffers()]
    y = bn(torch.randn(8, 5) * 3 + 1)
    for b, old in zip(bn.buffers(), before, strict=True):
        assert torch.equal(b, old)
    _eq(y.mean(0), torch.zeros(5))  # batch statistics were used


def test_less_than_one_value_per_channel_raises(impl):
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        _ns(impl).BatchNorm1d(10)(torch.randn(1, 10))


@pytest.mark.parametrize("wrong", ["running_mean", "running_var", "weight", "bias"])
def test_functional_raises_on_wrong_sizes(impl, wrong):
    args = dict(
        running_mean=torch.zeros(10),
        running_var=torch.ones(10),
        weight=torch.ones(10),
        bias=torch.zeros(10),
    )
    args[wrong] = torch.ones(11)
    with pytest.raises(RuntimeError):
        IMPLS[impl][1](torch.randn(2, 10), training=True, **args)


def test_functional_updates_running_stats(impl):
    x = torch.randn(6, 4, 3)
    mean, var = torch.zeros(4), torch.ones(4)
    IMPLS[impl][1](x, mean, var, training=True, momentum=0.3)
    flat = x.transpose(0, 1).reshape(4, -1)
    _eq(mean, 0.3 * flat.mean(1))
    _eq(var, 0.7 + 0.3 * flat.var(1, unbiased=True))


@pytest.mark.parametrize("track", [True, False])
def test_eval_is_deterministic_with_gradients(impl, track):
    module = _ns(impl).BatchNorm1d(3, track_running_stats=track).eval()
    data = torch.rand(4, 3, requires_grad=True)
    grad_out = torch.rand(4, 3)
    res1 = module(data)
    res1.backward(grad_out)
    grad1 = data.grad.clone()
    data.grad = None
    res2 = module(data)
    res2.backward(grad_out)
    assert torch.equal(res1, res2) and torch.equal(grad1, data.grad)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_gradcheck_and_gradgradcheck(impl, training, affine):
    torch.manual_seed(0)
    bn = _ns(impl).BatchNorm2d(3, affine=affine, dtype=torch.float64).train(training)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    x = torch.randn(3, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    bn.momentum = 0.0  # keep the running statistics still across gradcheck's many calls
    assert gradcheck(bn, (x,))
    assert gradgradcheck(bn, (x,))


@pytest.mark.parametrize("layout", ["channels_last", "transposed"])
def test_non_contiguous_input(impl, layout):
    torch.manual_seed(0)
    x = torch.randn(4, 3, 5, 6)
    if layout == "channels_last":
        odd = x.contiguous(memory_format=torch.channels_last)
    else:
        odd = x.transpose(2, 3).contiguous().transpose(2, 3)
    assert not odd.is_contiguous()
    bn1, bn2 = _ns(impl).BatchNorm2d(3), _ns(impl).BatchNorm2d(3)
    _eq(bn1(odd), bn2(x))
    _eq(bn1.running_var, bn2.running_var)
    if layout == "channels_last":
        assert bn1(odd).is_contiguous(memory_format=torch.channels_last)


def test_half_input_does_not_overflow(impl):
    # 65,536 values near 1.5 per channel: a float16 sum would pass 65,504 and overflow
    x = (torch.rand(1, 2, 256, 256) + 1).half()
    bn = _ns(impl).BatchNorm2d(2).float()
    y = bn(x)
    assert y.dtype == torch.float16 and torch.isfinite(y).all()
    _eq(bn.running_mean, 0.1 * x.float().mean((0, 2, 3)))


def test_large_batch(impl):
    x = torch.randn(1 << 17, 2) * 2 + 3
    y = _ns(impl).BatchNorm1d(2)(x)
    _eq(y.mean(0), torch.zeros(2))
    torch.testing.assert_close(y.var(0, unbiased=False), torch.ones(2), rtol=1e-4, atol=1e-4)


def test_load_state_dict_without_num_batches_tracked(impl):
    bn = _ns(impl).BatchNorm1d(3)
    bn.num_batches_tracked.fill_(7)
    state = bn.state_dict()
    del state["num_batches_tracked"]
    state._metadata[""]["version"] = 1  # a checkpoint from before the counter existed
    bn.load_state_dict(state)
    assert int(bn.num_batches_tracked) == 7
    state._metadata[""]["version"] = 2
    with pytest.raises(RuntimeError, match="num_batches_tracked"):
        bn.load_state_dict(state)


def test_reset_parameters(impl):
    bn = _ns(impl).BatchNorm3d(2)
    with torch.no_grad():
        bn.weight.fill_(3)
        bn.bias.fill_(2)
    bn(torch.randn(2, 2, 2, 2, 2))
    bn.reset_parameters()
    assert torch.equal(bn.weight, torch.ones(2)) and torch.equal(bn.bias, torch.zeros(2))
    assert int(bn.num_batches_tracked) == 0 and torch.equal(bn.running_var, torch.ones(2))


@pytest.mark.parametrize("training", [True, False])
def test_empty_batch(impl, training):
    bn = _ns(impl).BatchNorm2d(3).train(training)
    x = torch.randn(0, 3, 4, 4, requires_grad=True)
    if impl == "bnlab" and training:  # bnlab refuses on purpose: no statistics of 0 values
        with pytest.raises(ValueError, match="non-empty batch"):
            bn(x)
        assert int(bn.num_batches_tracked) == 0
        return
    y = bn(x)
    assert y.shape == x.shape
    y.sum().backward()
    assert x.grad.shape == x.shape
