"""bnlab.LayerNorm / GroupNorm / InstanceNorm{1,2,3}d against torch.nn's: one body, a grid.

Each case runs training steps, eval steps and a training step again on both modules from the
same state, and compares outputs, input and parameter gradients, buffers and state_dicts;
then the constructor signatures, the state_dict round trip and the errors.
"""

from __future__ import annotations

import inspect
import itertools

import pytest
import torch
from helpers import assert_close
from torch import nn

import bnlab

TOL = {torch.float32: dict(rtol=1e-4, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=1e-12)}

# (name, constructor args, input shapes, extra constructor kwargs to grid over)
CASES = [
    ("LayerNorm", ((5,),), [(6, 5), (3, 4, 5)], {"elementwise_affine": [True, False]}),
    ("LayerNorm", (((4, 3),)), [(2, 4, 3)], {"bias": [True, False]}),
    ("GroupNorm", (2, 6), [(4, 6), (3, 6, 5), (2, 6, 3, 2)], {"affine": [True, False]}),
    ("GroupNorm", (6, 6), [(2, 6, 4)], {"affine": [True]}),  # G = C: instance norm
    ("InstanceNorm1d", (5,), [(3, 5, 7), (5, 7)], {"affine": [True, False]}),
    ("InstanceNorm2d", (5,), [(3, 5, 4, 3)], {"track_running_stats": [True, False]}),
    ("InstanceNorm3d", (5,), [(2, 5, 3, 2, 2)], {"affine": [True]}),
]


def _grid():
    for name, args, shapes, extra in CASES:
        (key, values), *_ = extra.items()
        for shape, value, dtype in itertools.product(shapes, values, TOL):
            kwargs = {key: value}
            if name.startswith("InstanceNorm") and key == "affine":
                kwargs["track_running_stats"] = True
                kwargs["momentum"] = 0.3
            yield pytest.param(name, args, kwargs, shape, dtype, id=f"{name}-{shape}-{kwargs}")


def _pair(name, args, kwargs, dtype):
    ref = getattr(nn, name)(*args, **kwargs, dtype=dtype)
    ours = getattr(bnlab, name)(*args, **kwargs, dtype=dtype)
    with torch.no_grad():  # non-trivial gamma and beta, the same in both
        for p in ref.parameters():
            p.uniform_(0.5, 1.5)
    ours.load_state_dict(ref.state_dict())
    return ours, ref


@pytest.mark.parametrize(("name", "args", "kwargs", "shape", "dtype"), list(_grid()))
def test_matches_torch_nn(name, args, kwargs, shape, dtype):
    torch.manual_seed(0)
    ours, ref = _pair(name, args, kwargs, dtype)
    tol = TOL[dtype]
    for mode in ["train", "train", "eval", "train"]:
        ours.train(mode == "train")
        ref.train(mode == "train")
        x = torch.randn(shape, dtype=dtype) * 3 + 2
        x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
        y1, y2 = ours(x1), ref(x2)
        assert_close(f"{name}[{mode}] y", y1, y2, **tol)
        dy = torch.randn_like(y1)
        y1.backward(dy)
        y2.backward(dy)
        assert_close(f"{name}[{mode}] dx", x1.grad, x2.grad, **tol)
        for (key, p1), p2 in zip(ours.named_parameters(), ref.parameters(), strict=True):
            assert_close(f"{name}[{mode}] d{key}", p1.grad, p2.grad, **tol)
        sd1, sd2 = ours.state_dict(), ref.state_dict()
        assert list(sd1) == list(sd2)
        for key in sd2:
            assert_close(f"{name}[{mode}] {key}", sd1[key], sd2[key], **tol)
    assert repr(ours) == repr(ref)


@pytest.mark.parametrize("name", ["LayerNorm", "GroupNorm", "InstanceNorm1d", "InstanceNorm2d"])
def test_constructor_signature_matches_torch(name):
    ours = inspect.signature(getattr(bnlab, name).__init__).parameters
    ref = inspect.signature(getattr(nn, name).__init__).parameters
    assert [(k, p.default, p.kind) for k, p in ours.items()] == [
        (k, p.default, p.kind) for k, p in ref.items()
    ]


def test_state_dict_round_trip_with_running_stats():
    torch.manual_seed(0)
    trained = bnlab.InstanceNorm2d(3, affine=True, track_running_stats=True)
    for _ in range(3):
        trained(torch.randn(4, 3, 5, 5) * 2 + 1)
    fresh = nn.InstanceNorm2d(3, affine=True, track_running_stats=True)
    fresh.load_state_dict(trained.state_dict())
    back = bnlab.InstanceNorm2d(3, affine=True, track_running_stats=True)
    back.load_state_dict(fresh.state_dict())
    for m in (trained, fresh, back):
        m.eval()
    x = torch.randn(2, 3, 5, 5)
    assert_close("eval y", back(x), fresh(x), rtol=1e-5, atol=1e-6)
    assert_close("eval y", trained(x), fresh(x), rtol=1e-5, atol=1e-6)


ERRORS = [  # (module, input shape): torch raises, and so must bnlab, the same way
    ("LayerNorm", (5,), {}, (3, 4)),
    ("LayerNorm", ((2, 5),), {}, (3, 5)),
    ("GroupNorm", (2, 4), {}, (3, 6)),
    ("GroupNorm", (2, 4), {}, (3,)),
    ("GroupNorm", (4, 4), {"affine": False}, (1, 4)),
    ("GroupNorm", (2, 4), {"affine": False}, (3, 5)),
    ("InstanceNorm1d", (3,), {}, (3, 3, 1)),
    ("InstanceNorm2d", (3,), {"affine": True}, (2, 4, 3, 3)),
    ("InstanceNorm2d", (3,), {}, (2, 3, 3, 3, 3)),
]


@pytest.mark.parametrize(("name", "args", "kwargs", "shape"), ERRORS)
def test_errors_match_torch(name, args, kwargs, shape):
    x = torch.randn(shape)
    with pytest.raises(Exception) as theirs:
        getattr(nn, name)(*args, **kwargs)(x)
    with pytest.raises(Exception) as ours:
        getattr(bnlab, name)(*args, **kwargs)(x)
    assert type(ours.value) is type(theirs.value)
    assert str(ours.value) == str(theirs.value)


def test_constructor_errors_are_torchs():
    with pytest.raises(ValueError, match="must be divisible by num_groups"):
        bnlab.GroupNorm(3, 4)


def test_mixed_precision_and_bfloat16_follow_torch():
    torch.manual_seed(0)
    x = torch.randn(4, 6, 3).to(torch.bfloat16)
    for ours, ref in [
        (bnlab.LayerNorm(3), nn.LayerNorm(3)),
        (bnlab.GroupNorm(3, 6), nn.GroupNorm(3, 6)),
    ]:
        y1, y2 = ours(x), ref(x)  # float32 parameters, bfloat16 input
        assert y1.dtype == y2.dtype == torch.bfloat16
        assert_close("bf16 y", y1.float(), y2.float(), rtol=2e-2, atol=2e-2)
    with pytest.raises(RuntimeError, match="mixed dtype"):
        bnlab.LayerNorm(3)(torch.randn(2, 3, dtype=torch.float64))


def test_channels_last_and_transposed_inputs():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 4, 3, dtype=torch.float64).to(memory_format=torch.channels_last)
    for ours, ref in [
        (bnlab.GroupNorm(3, 6, dtype=torch.float64), nn.GroupNorm(3, 6, dtype=torch.float64)),
        (bnlab.LayerNorm(2, dtype=torch.float64), nn.LayerNorm(2, dtype=torch.float64)),
        (bnlab.InstanceNorm2d(6), nn.InstanceNorm2d(6)),
    ]:
        inp = x if not isinstance(ours, nn.LayerNorm) else x.transpose(1, 3)[..., :2]
        x1, x2 = inp.clone().requires_grad_(), inp.clone().requires_grad_()
        y1, y2 = ours(x1), ref(x2)
        assert_close("y", y1, y2, rtol=1e-10, atol=1e-12)
        y1.sum().backward()
        y2.sum().backward()
        assert_close("dx", x1.grad, x2.grad, rtol=1e-10, atol=1e-12)


def test_layer_norm_works_at_batch_size_one_and_is_the_same_in_eval():
    ln = bnlab.LayerNorm(4)
    x = torch.randn(1, 4)
    y_train = ln(x)
    ln.eval()
    assert torch.equal(ln(x), y_train)
