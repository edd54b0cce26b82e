"""Reduced and mixed precision, side by side with torch.nn (CPU): the same output dtypes,
the same float32 accumulation for float16/bfloat16, and the same refusals.

torch.nn's rule: parameters and running statistics share one dtype, the input's, or float32
for a float16/bfloat16 input (the autocast / mixed-precision case); anything else raises
"mixed dtype (CPU)". The statistics of float16/bfloat16 inputs are accumulated in float32.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from helpers import assert_close
from torch import nn

import bnlab

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
# one ulp of the output dtype near 1: the two implementations round the same float32 result
TOL = {
    torch.float16: dict(rtol=1e-3, atol=2e-3),
    torch.bfloat16: dict(rtol=8e-3, atol=1.6e-2),
    torch.float32: dict(rtol=1e-4, atol=1e-5),
    torch.float64: dict(rtol=1e-10, atol=1e-12),
}
# dgamma, dbeta are sums over the batch (values ~10): one ulp there is larger
GRAD_TOL = {
    **TOL,
    torch.float16: dict(rtol=2e-3, atol=1.6e-2),
    torch.bfloat16: dict(rtol=1.6e-2, atol=1.3e-1),
}


def _torch_accepts(x_dtype, module_dtype):
    return module_dtype == x_dtype or (
        x_dtype in (torch.float16, torch.bfloat16) and module_dtype == torch.float32
    )


def _pair(affine, momentum, dtype):
    ref = nn.BatchNorm2d(4, affine=affine, momentum=momentum, dtype=dtype)
    if affine:
        with torch.no_grad():
            ref.weight.uniform_(0.5, 1.5)
            ref.bias.uniform_(-0.5, 0.5)
    ours = bnlab.BatchNorm2d(4, affine=affine, momentum=momentum, dtype=dtype)
    ours.load_state_dict(ref.state_dict())
    return ours, ref


ACCEPTED = [
    (x, m, affine, momentum)
    for x, m in itertools.product(DTYPES, DTYPES)
    if _torch_accepts(x, m)
    for affine, momentum in [(True, 0.1), (False, None)]
]


@pytest.mark.parametrize(("x_dtype", "module_dtype", "affine", "momentum"), ACCEPTED)
def test_reduced_and_mixed_precision_match_torch(x_dtype, module_dtype, affine, momentum):
    torch.manual_seed(0)
    ours, ref = _pair(affine, momentum, module_dtype)
    tol = TOL[x_dtype]
    for mode in ["train"] * 3 + ["eval"] * 2:
        ours.train(mode == "train")
        ref.train(mode == "train")
        x = (torch.randn(8, 4, 5, 5) * 3 + 2).to(x_dtype)
        x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
        y1, y2 = ours(x1), ref(x2)
        assert_close(f"{mode} y", y1, y2, **tol)  # the dtype too
        dy = torch.randn(x.shape).to(x_dtype)
        y1.backward(dy)
        y2.backward(dy)
        assert_close(f"{mode} dx", x1.grad, x2.grad, **tol)
        for p1, p2 in zip(ours.parameters(), ref.parameters(), strict=True):
            assert_close(f"{mode} dparam", p1.grad, p2.grad, **GRAD_TOL[module_dtype])
        for key, value in ref.state_dict().items():
            assert_close(f"{mode} {key}", ours.state_dict()[key], value, **TOL[module_dtype])


REFUSED = [(x, m) for x, m in itertools.product(DTYPES, DTYPES) if not _torch_accepts(x, m)]


@pytest.mark.parametrize(("x_dtype", "module_dtype"), REFUSED)
@pytest.mark.parametrize("training", [True, False])
def test_dtype_mixes_torch_refuses_are_refused(x_dtype, module_dtype, training):
    x = torch.randn(4, 3, 2, 2).to(x_dtype)
    ref = nn.BatchNorm2d(3, dtype=module_dtype).train(training)
    with pytest.raises(RuntimeError, match="mixed dtype"):
        ref(x)
    ours = bnlab.BatchNorm2d(3, dtype=module_dtype).train(training)
    with pytest.raises(RuntimeError, match=rf"mixed dtype.*input is {x_dtype}"):
        ours(x)
    assert int(ours.num_batches_tracked) == 0 and float(ours.running_mean.abs().sum()) == 0


def test_bfloat16_statistics_are_accumulated_in_float32():
    # bfloat16 keeps 8 bits: mean over 4096 values near 100 in bfloat16 would be off by ~0.5
    x = (100 + torch.randn(4096, 2, generator=torch.Generator().manual_seed(0))).bfloat16()
    bn = bnlab.BatchNorm1d(2, momentum=1.0, dtype=torch.float32)
    bn(x)
    exact = x.double().mean(0)
    assert (bn.running_mean.double() - exact).abs().max() < 1e-4
