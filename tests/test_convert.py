"""bnlab.convert: swapping torch.nn's BN for bnlab's and back keeps state and outputs."""

from __future__ import annotations

import pytest
import torch
from helpers import assert_close
from torch import nn

import bnlab


def _model():
    return nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.BatchNorm2d(4),
        nn.Sequential(nn.Flatten(), nn.Linear(4 * 4 * 4, 5, bias=False)),
        nn.BatchNorm1d(5, momentum=None, affine=False),
        nn.BatchNorm1d(5, track_running_stats=False, bias=False),
    )


def test_round_trip_keeps_state_outputs_and_parameter_identity():
    torch.manual_seed(0)
    model = _model().double()
    x = torch.randn(8, 3, 6, 6, dtype=torch.float64)
    ref = _model().double()
    ref.load_state_dict(model.state_dict())
    params = list(model.parameters())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    opt_ref = torch.optim.SGD(ref.parameters(), lr=0.1)

    ours = bnlab.convert(model, to="bnlab")
    assert ours is model and isinstance(ours[1], bnlab.BatchNorm2d)
    assert isinstance(ours[3], bnlab.BatchNorm1d) and ours[3].momentum is None
    assert ours[4].bias is None and ours[4].running_mean is None
    assert [p is q for p, q in zip(ours.parameters(), params, strict=True)] == [True] * len(params)
    for _ in range(3):  # training, both update running statistics the same way
        for m, o in ((ours, opt), (ref, opt_ref)):
            o.zero_grad()
            m(x).square().sum().backward()
            o.step()
    for key, value in ref.state_dict().items():
        assert_close(key, ours.state_dict()[key], value, rtol=1e-10, atol=1e-12)

    back = bnlab.convert(ours, to="torch").eval()
    assert type(back[1]) is nn.BatchNorm2d and type(back[3]) is nn.BatchNorm1d
    with torch.no_grad():
        assert_close("eval", back(x), ref.eval()(x), rtol=1e-10, atol=1e-12)


def test_a_bn_module_itself_is_returned_converted_and_others_are_left():
    bn = nn.BatchNorm3d(2, dtype=torch.float64)
    ours = bnlab.convert(bn, to="bnlab")
    assert isinstance(ours, bnlab.BatchNorm3d) and ours.weight is bn.weight
    assert ours.running_mean.dtype == torch.float64
    sync = nn.SyncBatchNorm(2)
    assert bnlab.convert(sync, to="bnlab") is sync  # no bnlab equivalent (yet)
    assert bnlab.convert(ours, to="bnlab") is ours


def test_bad_target_is_refused():
    with pytest.raises(ValueError, match="to: got 'jax'"):
        bnlab.convert(nn.BatchNorm1d(2), to="jax")
