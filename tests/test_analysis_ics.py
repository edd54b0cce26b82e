"""Internal covariate shift (Santurkar et al. 2018, Def. 2.1): zero for a single layer, and equal
to a hand-written two-layer reference that updates the first layer with plain SGD."""

import torch
import torch.nn.functional as F
from helpers import assert_close

from bnlab.analysis.ics import ics, weight_layer_columns
from bnlab.engine import ModelConfig, OptimConfig, build_model, make_optimizer

DT = torch.float64


def _batch(K=2, B=12):
    gen = torch.Generator().manual_seed(7)
    return torch.randn(K, B, 1, 4, 4, dtype=DT, generator=gen), torch.randint(
        0, 10, (K, B), generator=gen
    )


def _model(hidden, norm="none", members=2):
    model = build_model(ModelConfig(hidden=hidden, activation="tanh"), norm, members, (1, 4, 4), DT)
    model.init_members(list(range(members)), "gaussian", 0.4)
    return model


def test_single_layer_net_has_zero_ics():
    model = _model(hidden=())
    opt = make_optimizer(model.flat, model.flat_grad, [0.5, 0.1], OptimConfig(momentum=0.9))
    out = ics(model, opt, *_batch())
    assert list(weight_layer_columns(model)) == ["out"]
    assert torch.equal(out["ics_l2/out"], torch.zeros(2, dtype=DT))
    assert_close("cos", out["ics_cos/out"], torch.ones(2, dtype=DT), 0, 1e-12)


def test_first_layer_has_zero_ics_and_bn_layers_work():
    model = _model(hidden=(8, 8), norm="batch")
    opt = make_optimizer(model.flat, model.flat_grad, [0.5, 0.1], OptimConfig())
    out = ics(model, opt, *_batch())
    assert torch.equal(out["ics_l2/fc1"], torch.zeros(2, dtype=DT))
    assert (out["ics_l2/fc2"] > 0).all() and (out["ics_l2/out"] > 0).all()


def _reference(W1, b1, W2, b2, x, y, lr):
    """Plain two-layer tanh net: G = grad of (W2, b2); G' after W1, b1 <- SGD step."""

    def loss(W1, b1, W2, b2):
        h = torch.tanh(x @ W1 + b1)  # (B, H)
        return F.cross_entropy(h @ W2 + b2, y)

    params = [p.clone().requires_grad_() for p in (W1, b1, W2, b2)]
    gW1, gb1, gW2, gb2 = torch.autograd.grad(loss(*params), params)
    moved = [(W1 - lr * gW1).requires_grad_(), (b1 - lr * gb1).requires_grad_()]
    tail = [W2.clone().requires_grad_(), b2.clone().requires_grad_()]
    hW2, hb2 = torch.autograd.grad(loss(*moved, *tail), tail)
    G, G2 = torch.cat([gW2.flatten(), gb2]), torch.cat([hW2.flatten(), hb2])
    return torch.linalg.vector_norm(G - G2), F.cosine_similarity(G, G2, dim=0)


def test_matches_two_layer_reference():
    model = _model(hidden=(7,))
    lrs = [0.5, 2.0]
    opt = make_optimizer(model.flat, model.flat_grad, lrs, OptimConfig())
    x, y = _batch()
    out = ics(model, opt, x, y)
    L = dict(model.layers.named_children())
    for k in range(2):
        l2, cos = _reference(
            L["fc1"].weight[k].detach(),
            L["fc1"].bias[k].detach(),
            L["out"].weight[k].detach(),
            L["out"].bias[k].detach(),
            x[k].reshape(12, -1),
            y[k],
            lrs[k],
        )
        assert_close(f"ics_l2[{k}]", out["ics_l2/out"][k], l2, 1e-10, 1e-13)
        assert_close(f"ics_cos[{k}]", out["ics_cos/out"][k], cos, 1e-10, 1e-13)
