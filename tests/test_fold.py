"""fold_batchnorm: the folded eval model computes what the unfolded eval model computes."""

from __future__ import annotations

import pytest
import torch
from helpers import assert_close
from torch import nn

import bnlab


def _trained(model, shape, steps=5):
    model.train()
    for _ in range(steps):
        model(torch.randn(shape) * 2 + 1)  # moves the running statistics away from 0/1
    return model


def _randomize_affine(model):
    with torch.no_grad():
        for m in model.modules():
            if getattr(m, "weight", None) is not None and m.weight.dim() == 1:
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)


CASES = {
    "mlp-bnlab": (
        lambda: nn.Sequential(
            nn.Linear(8, 16),
            bnlab.BatchNorm1d(16),
            nn.ReLU(),
            nn.Linear(16, 4, bias=False),
            nn.BatchNorm1d(4),
        ),
        (32, 8),
    ),
    "conv1d": (lambda: nn.Sequential(nn.Conv1d(3, 5, 3), bnlab.BatchNorm1d(5)), (8, 3, 10)),
    "conv2d-nested": (
        lambda: nn.Sequential(
            nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6)),
            nn.ReLU(),
            nn.Conv2d(6, 4, 3, groups=2),
            bnlab.BatchNorm2d(4, affine=False),
        ),
        (8, 3, 9, 9),
    ),
    "conv3d": (lambda: nn.Sequential(nn.Conv3d(2, 3, 2), bnlab.BatchNorm3d(3)), (4, 2, 5, 5, 5)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_folded_matches_unfolded_eval(case):
    torch.manual_seed(0)
    build, shape = CASES[case]
    model = _trained(build(), shape)
    _randomize_affine(model)
    model.eval()
    folded = bnlab.fold_batchnorm(model)
    bn_types = (
        nn.BatchNorm1d,
        nn.BatchNorm2d,
        nn.BatchNorm3d,
        bnlab.BatchNorm1d,
        bnlab.BatchNorm2d,
        bnlab.BatchNorm3d,
    )
    assert not any(isinstance(m, bn_types) for m in folded.modules()), "a BN was not folded"
    assert any(isinstance(m, bn_types) for m in model.modules()), "the input was modified"
    x = torch.randn(shape)
    with torch.no_grad():
        assert_close(case, folded(x), model(x), rtol=1e-4, atol=1e-5)
    assert not folded.training


@pytest.mark.parametrize("method", ["fx", "sequential"])
def test_bn_without_running_stats_or_preceding_layer_is_kept(method):
    model = nn.Sequential(
        nn.Linear(4, 4),
        nn.BatchNorm1d(4, track_running_stats=False),
        nn.ReLU(),
        bnlab.BatchNorm1d(4),
    )
    folded, report = bnlab.fold_batchnorm(model, method=method, return_report=True)
    assert report.method == method and report.folded == ()
    assert [name for name, _ in report.left] == ["1", "3"]
    assert isinstance(folded.get_submodule("1"), nn.BatchNorm1d)
    assert isinstance(folded.get_submodule("3"), bnlab.BatchNorm1d)
    with pytest.warns(UserWarning, match="left 2 BN in place"):
        bnlab.fold_batchnorm(model, method=method)
