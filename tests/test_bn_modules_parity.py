"""bnlab.BatchNorm{1,2,3}d against torch.nn.BatchNorm{1,2,3}d: one body, a parametrized grid.

Each case runs several training steps then eval steps on both modules from the same state,
and compares outputs, input and parameter gradients, buffers and state_dicts.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from helpers import assert_close
from torch import nn

import bnlab

SHAPES = {  # module name -> input shapes it accepts
    "BatchNorm1d": [(16, 5), (8, 5, 7)],
    "BatchNorm2d": [(6, 5, 4, 3)],
    "BatchNorm3d": [(4, 5, 3, 2, 3)],
}
TOL = {torch.float32: dict(rtol=1e-4, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=1e-12)}

GRID = [
    (name, shape, affine, track, momentum, dtype)
    for name, shapes in SHAPES.items()
    for shape, affine, track, momentum, dtype in itertools.product(
        shapes, [True, False], [True, False], [0.1, None, 0.5], [torch.float32, torch.float64]
    )
]


def _pair(name, affine, track, momentum, dtype):
    kwargs = dict(affine=affine, track_running_stats=track, momentum=momentum, dtype=dtype)
    ours, ref = getattr(bnlab, name)(5, **kwargs), getattr(nn, name)(5, **kwargs)
    if affine:  # non-trivial gamma and beta, the same in both
        with torch.no_grad():
            ref.weight.uniform_(0.5, 1.5)
            ref.bias.uniform_(-0.5, 0.5)
    ours.load_state_dict(ref.state_dict())
    return ours, ref


def _step(name, ours, ref, x, dy, tol):
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y1, y2 = ours(x1), ref(x2)
    assert_close(f"{name} y", y1, y2, **tol)
    y1.backward(dy)
    y2.backward(dy)
    assert_close(f"{name} dx", x1.grad, x2.grad, **tol)
    for p1, p2 in zip(ours.parameters(), ref.parameters(), strict=True):
        assert_close(f"{name} dparam", p1.grad, p2.grad, **tol)
    sd1, sd2 = ours.state_dict(), ref.state_dict()
    assert list(sd1) == list(sd2)
    for key in sd2:
        assert_close(f"{name} {key}", sd1[key], sd2[key], **tol)


@pytest.mark.parametrize(("name", "shape", "affine", "track", "momentum", "dtype"), GRID)
def test_matches_torch_nn(name, shape, affine, track, momentum, dtype):
    torch.manual_seed(0)
    ours, ref = _pair(name, affine, track, momentum, dtype)
    tol = TOL[dtype]
    for mode in ["train"] * 3 + ["eval"] * 2 + ["train"]:
        ours.train(mode == "train")
        ref.train(mode == "train")
        x = torch.randn(shape, dtype=dtype) * 3 + 2
        dy = torch.randn(shape, dtype=dtype)
        _step(f"{name}[{mode}]", ours, ref, x, dy, tol)
    assert repr(ours).split("(", 1)[1] == repr(ref).split("(", 1)[1]


def test_buffers_are_none_without_running_stats():
    bn = bnlab.BatchNorm1d(3, track_running_stats=False)
    assert bn.running_mean is None and bn.running_var is None and bn.num_batches_tracked is None
    assert list(bn.state_dict()) == ["weight", "bias"]


def test_constructor_signature_matches_torch():
    import inspect

    for name in SHAPES:
        ours = inspect.signature(getattr(bnlab, name).__init__).parameters
        ref = inspect.signature(getattr(nn, name).__init__).parameters
        assert list(ours) == list(ref)
        for key in ref:
            assert ours[key].default == ref[key].default, key
            assert ours[key].kind == ref[key].kind, key


def test_bias_false_matches_torch():
    torch.manual_seed(0)
    ours, ref = bnlab.BatchNorm1d(4, bias=False), nn.BatchNorm1d(4, bias=False)
    x = torch.randn(10, 4)
    assert_close("y", ours(x), ref(x), rtol=1e-5, atol=1e-6)
    assert list(ours.state_dict()) == list(ref.state_dict())


@pytest.mark.parametrize("direction", ["torch->bnlab", "bnlab->torch"])
def test_state_dict_loads_both_ways(direction):
    torch.manual_seed(0)
    trained = nn.BatchNorm2d(3) if direction == "torch->bnlab" else bnlab.BatchNorm2d(3)
    for _ in range(3):
        trained(torch.randn(4, 3, 5, 5) * 2 + 1)
    fresh = bnlab.BatchNorm2d(3) if direction == "torch->bnlab" else nn.BatchNorm2d(3)
    fresh.load_state_dict(trained.state_dict())
    trained.eval()
    fresh.eval()
    x = torch.randn(2, 3, 5, 5)
    assert_close("eval y", fresh(x), trained(x), rtol=1e-5, atol=1e-6)
    assert int(fresh.num_batches_tracked) == 3


@pytest.mark.parametrize("cls", [nn.BatchNorm1d, bnlab.BatchNorm1d])
def test_old_checkpoint_without_num_batches_tracked(cls):
    source = nn.BatchNorm1d(3)
    source(torch.randn(8, 3))
    state = source.state_dict()
    del state["num_batches_tracked"]
    state._metadata[""]["version"] = 1  # as saved before num_batches_tracked existed
    target = cls(3)
    target.num_batches_tracked.fill_(7)
    target.load_state_dict(state)
    # torch keeps the module's own count when the checkpoint predates the buffer
    assert int(target.num_batches_tracked) == 7
    assert_close("running_mean", target.running_mean, source.running_mean, rtol=0, atol=0)


def test_channels_last_no_grad_and_float64():
    torch.manual_seed(0)
    ours, ref = bnlab.BatchNorm2d(6).double(), nn.BatchNorm2d(6).double()
    x = torch.randn(4, 6, 5, 5, dtype=torch.float64).to(memory_format=torch.channels_last)
    with torch.no_grad():
        y1, y2 = ours(x), ref(x)
    assert y1.is_contiguous(memory_format=torch.channels_last)
    assert_close("y", y1, y2, rtol=1e-10, atol=1e-12)
    assert_close("running_var", ours.running_var, ref.running_var, rtol=1e-10, atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_torch():
    torch.manual_seed(0)
    ours, ref = bnlab.BatchNorm2d(8).cuda(), nn.BatchNorm2d(8).cuda()
    x = torch.randn(16, 8, 7, 7, device="cuda", requires_grad=True)
    assert_close("y", ours(x), ref(x), rtol=1e-4, atol=1e-5)
    assert_close("running_var", ours.running_var, ref.running_var, rtol=1e-5, atol=1e-6)
