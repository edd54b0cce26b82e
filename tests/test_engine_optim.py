"""Stacked SGD / Adam against torch.optim, member by member (float64)."""

import pytest
import torch

from bnlab.engine.config import OptimConfig
from bnlab.engine.optim import make_optimizer

K, P, STEPS = 3, 17, 6
LRS = [0.05, 0.2, 0.7]


def _grad(step: int, k: int, params: torch.Tensor) -> torch.Tensor:
    # a deterministic, parameter-dependent "gradient" of member k
    g = torch.Generator().manual_seed(100 * step + k)
    return torch.randn(params.shape, generator=g, dtype=torch.float64) + params.sin()


@pytest.mark.parametrize(
    "cfg",
    [
        OptimConfig(name="sgd"),
        OptimConfig(name="sgd", momentum=0.9, weight_decay=1e-2),
        OptimConfig(name="adam"),
        OptimConfig(name="adam", weight_decay=1e-2, beta1=0.8, beta2=0.99, adam_eps=1e-6),
    ],
    ids=["sgd", "sgd-momentum-wd", "adam", "adam-wd"],
)
def test_stacked_optimizer_matches_torch_optim_per_member(cfg):
    init = torch.randn(K, P, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    flat, flat_grad = init.clone(), torch.zeros(K, P, dtype=torch.float64)
    ours = make_optimizer(flat, flat_grad, LRS, cfg)
    refs = []
    for k in range(K):
        p = torch.nn.Parameter(init[k].clone())
        if cfg.name == "sgd":
            opt = torch.optim.SGD(
                [p], lr=LRS[k], momentum=cfg.momentum, weight_decay=cfg.weight_decay
            )
        else:
            opt = torch.optim.Adam(
                [p],
                lr=LRS[k],
                betas=(cfg.beta1, cfg.beta2),
                eps=cfg.adam_eps,
                weight_decay=cfg.weight_decay,
            )
        refs.append((p, opt))
    for step in range(STEPS):
        flat_grad.copy_(torch.stack([_grad(step, k, flat[k]) for k in range(K)]))
        ours.step()
        for k, (p, opt) in enumerate(refs):
            p.grad = _grad(step, k, p.detach())
            opt.step()
    for k, (p, _) in enumerate(refs):
        torch.testing.assert_close(flat[k], p.detach(), rtol=1e-12, atol=1e-13)


def test_optimizer_state_round_trip():
    cfg = OptimConfig(name="adam")
    a = make_optimizer(torch.ones(2, 3), torch.full((2, 3), 0.5), [0.1, 0.2], cfg)
    a.step()
    b = make_optimizer(torch.ones(2, 3), torch.full((2, 3), 0.5), [0.1, 0.2], cfg)
    b.load_state_dict(a.state_dict())
    assert b.t == 1 and torch.equal(b.m, a.m) and torch.equal(b.v, a.v)
