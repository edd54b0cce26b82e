"""Bad input gets a clear error, before any state changes; edge cases stay finite."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import bnlab


def _state(bn):
    return {k: v.clone() for k, v in bn.state_dict().items()}


def _unchanged(bn, before):
    after = bn.state_dict()
    return all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize(
    ("cls", "ref_cls", "shape"),
    [
        (bnlab.BatchNorm1d, nn.BatchNorm1d, (4,)),
        (bnlab.BatchNorm1d, nn.BatchNorm1d, (2, 3, 4, 5)),
        (bnlab.BatchNorm2d, nn.BatchNorm2d, (4, 3)),
        (bnlab.BatchNorm3d, nn.BatchNorm3d, (4, 3, 2, 2)),
    ],
)
def test_wrong_rank_same_error_as_torch(cls, ref_cls, shape):
    x = torch.randn(shape)
    with pytest.raises(ValueError) as ref_err:
        ref_cls(3)(x)
    bn = cls(3)
    before = _state(bn)
    with pytest.raises(ValueError) as err:
        bn(x)
    assert str(err.value) == str(ref_err.value)
    assert _unchanged(bn, before)


@pytest.mark.parametrize("shape", [(1, 3), (1, 3, 1), (1, 3, 1, 1)])
def test_one_value_per_channel_same_error_as_torch(shape):
    cls = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d}[len(shape)]
    ours_cls = getattr(bnlab, cls.__name__)
    x = torch.randn(shape)
    with pytest.raises(ValueError) as ref_err:
        cls(3)(x)
    bn = ours_cls(3)
    before = _state(bn)
    with pytest.raises(ValueError) as err:
        bn(x)
    assert str(err.value) == str(ref_err.value)
    assert "Expected more than 1 value per channel when training" in str(err.value)
    assert _unchanged(bn, before)  # torch has already counted the batch here; we have not


def test_wrong_feature_count_is_runtime_and_value_error():
    bn = bnlab.BatchNorm1d(3)
    before = _state(bn)
    with pytest.raises(RuntimeError, match="running_mean should contain 4 elements not 3"):
        bn(torch.randn(8, 4))
    with pytest.raises(ValueError, match="input has 4 channels"):
        bn(torch.randn(8, 4))
    assert _unchanged(bn, before)


def test_empty_batch_in_training_is_refused_eval_passes_through():
    bn = bnlab.BatchNorm1d(3)
    before = _state(bn)
    with pytest.raises(ValueError, match="non-empty batch"):
        bn(torch.randn(0, 3))
    assert _unchanged(bn, before)
    bn.eval()
    assert bn(torch.randn(0, 3)).shape == (0, 3)  # no statistics needed, as in torch


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_input_in_training_is_refused(bad):
    bn = bnlab.BatchNorm1d(3)
    bn(torch.randn(8, 3))
    before = _state(bn)
    x = torch.randn(8, 3)
    x[2, 1] = bad
    with pytest.raises(ValueError, match=r"NaN or inf.*channel\(s\) 1\b"):
        bn(x)
    assert _unchanged(bn, before)


def test_non_finite_input_in_eval_propagates_elementwise():
    bn = bnlab.BatchNorm1d(3).eval()
    x = torch.randn(4, 3)
    x[1, 2] = float("nan")
    y = bn(x)
    assert torch.isnan(y[1, 2]) and torch.isfinite(y).sum() == 11


def test_constant_input_and_eval_batch_of_one_are_finite():
    bn = bnlab.BatchNorm2d(3)
    y = bn(torch.full((4, 3, 2, 2), 7.0))
    assert torch.isfinite(y).all() and torch.equal(y, torch.zeros_like(y))
    bn.eval()
    assert torch.isfinite(bn(torch.randn(1, 3, 2, 2))).all()


def test_functional_eval_needs_running_stats():
    with pytest.raises(RuntimeError, match="running_mean must be defined in evaluation mode"):
        bnlab.batch_norm(torch.randn(4, 3), None, None, training=False)


def test_functional_rejects_bad_eps():
    with pytest.raises(ValueError, match="eps must be positive during training, but got 0"):
        bnlab.batch_norm(torch.randn(4, 3), None, None, training=True, eps=0.0)
