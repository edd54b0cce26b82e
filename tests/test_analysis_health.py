"""bnlab.analysis.health: saturation, grad:data and update:data, against hand computation in
float64 NumPy (a two-layer tanh network small enough to differentiate by hand)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bnlab.analysis import LayerHealth, saturation
from bnlab.errors import BnlabError

DT = torch.float64


def test_saturation_counts_the_flat_region_of_each_nonlinearity():
    tanh_out = torch.tensor([0.5, 0.98, -0.99, 0.1, -0.96])
    assert saturation(nn.Tanh(), tanh_out) == pytest.approx(2 / 5)
    sigmoid_out = torch.tensor([0.99, 0.5, 0.01, 0.2, 0.984])  # flat: < 0.015 or > 0.985
    assert saturation(nn.Sigmoid(), sigmoid_out) == pytest.approx(2 / 5)
    relu_out = torch.tensor([0.0, 1.0, 0.0, 2.0])
    assert saturation(nn.ReLU(), relu_out) == pytest.approx(2 / 4)
    with pytest.raises(BnlabError, match="module: got GELU, expected one of Tanh"):
        saturation(nn.GELU(), relu_out)


def _net_and_data():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4, bias=False), nn.Tanh(), nn.Linear(4, 1, bias=False))
    net = net.to(DT)
    with torch.no_grad():
        net[0].weight.mul_(6.0)  # large weights: some tanh outputs saturate
    return net, torch.randn(20, 3, dtype=DT)


def _by_hand(w1, w2, x):
    """h = tanh(x W1^T), L = sum(h W2^T); returns h, dL/dW1, dL/dW2 (float64)."""
    h = np.tanh(x @ w1.T)  # (N, 4)
    dw2 = h.sum(0, keepdims=True)  # (1, 4)
    dpre = (1 - h**2) * w2  # (N, 4): dL/d(x W1^T)
    return h, dpre.T @ x, dw2


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_one_recorded_step_matches_hand_computation(optimizer):
    net, x = _net_and_data()
    w1, w2 = net[0].weight.detach().numpy().copy(), net[2].weight.detach().numpy().copy()
    lr = 0.1
    opt = (torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam)(net.parameters(), lr=lr)
    health = LayerHealth(net)
    net(x).sum().backward()
    with health.step(0):
        opt.step()
    health.close()

    h, dw1, dw2 = _by_hand(w1, w2, x.numpy())
    assert health.steps == [0]
    assert health.values["saturation/1"] == pytest.approx([np.mean(np.abs(h) > 0.97)])
    assert 0 < health.values["saturation/1"][0] < 1  # the check can tell
    for name, w, g in (("0.weight", w1, dw1), ("2.weight", w2, dw2)):
        assert health.values[f"grad_data/{name}"] == pytest.approx([g.std() / w.std()], rel=1e-9)
        # SGD steps -lr g; Adam's first step is -lr g / (|g| + eps) (bias-corrected moments)
        update = -lr * g if optimizer == "sgd" else -lr * g / (np.abs(g) + 1e-8)
        expected = update.std() / (w + update).std()
        assert health.values[f"update_data/{name}"] == pytest.approx([expected], rel=1e-6)


def test_only_every_nth_step_is_recorded_and_close_removes_the_hooks():
    net, x = _net_and_data()
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    health = LayerHealth(net, every=3)
    for step in range(7):
        opt.zero_grad()
        net(x).sum().backward()
        with health.step(step):
            opt.step()
    assert health.steps == [0, 3, 6]
    assert set(health.series("update_data")) == {"0.weight", "2.weight"}
    assert all(len(v) == 3 for v in health.values.values())
    health.close()
    assert not net[1]._forward_hooks
    net(x)
    with health.step(9):  # no forward since close: saturation is not measurable
        pass
    assert np.isnan(health.values["saturation/1"][-1])


def test_bad_arguments_are_named():
    with pytest.raises(BnlabError, match="every: got 0, expected an integer >= 1"):
        LayerHealth(nn.Linear(2, 2), every=0)
    with pytest.raises(BnlabError, match="model: Identity has no Tanh"):
        LayerHealth(nn.Identity())
    with pytest.raises(BnlabError, match="kind: got 'loss'"):
        LayerHealth(nn.Linear(2, 2)).series("loss")
