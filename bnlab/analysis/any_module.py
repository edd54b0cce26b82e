"""The Santurkar et al. 2018 analyses and Ioffe & Szegedy's activation statistics on any
`nn.Module`, with a loss function and a batch: a user's own ResNet, not only an engine stack.

Each function has the definitions of its stacked counterpart (`landscape`, `ics`,
`gradient_curvature`, `engine.hooks.activation_stats`), for one model:

- the model is evaluated in training mode (batch statistics: the loss the optimizer sees);
- parameters are all `model.parameters()` that require grad, as one flat vector theta;
- everything a measurement could change (parameters, gradients, buffers such as BN running
  statistics, the train/eval flag, the optimizer state, the global RNG) is put back after.

`loss_fn(model(inputs), targets)` must return a scalar, e.g. `F.cross_entropy`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from bnlab import _layers
from bnlab.analysis.landscape import LandscapeConfig, along_gradient
from bnlab.engine.config import HookConfig
from bnlab.engine.hooks import activation_stats

LossFn = Callable[[Tensor, Tensor], Tensor]  # (outputs, targets) -> scalar loss

__all__ = [
    "module_activation_stats",
    "module_curvature",
    "module_ics",
    "module_landscape",
    "weight_layers",
]


def _params(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


@contextmanager
def module_preserved(model: nn.Module, optimizer=None) -> Iterator[None]:
    """Run a measurement, then write parameters, grads, buffers, mode, optimizer state and
    the global RNG back in place."""
    params = [
        (p, p.detach().clone(), None if p.grad is None else p.grad.clone())
        for _, p in _params(model)
    ]
    buffers = [(b, b.clone()) for b in model.buffers()]
    modes = [(m, m.training) for m in model.modules()]
    opt_state = None if optimizer is None else _clone(optimizer.state_dict())
    rng = torch.get_rng_state()
    try:
        yield
    finally:
        with torch.no_grad():
            for p, value, grad in params:
                p.copy_(value)
                p.grad = grad
            for b, value in buffers:
                b.copy_(value)
        for m, training in modes:
            m.training = training
        if optimizer is not None:
            optimizer.load_state_dict(opt_state)
        torch.set_rng_state(rng)


def _clone(obj):
    if isinstance(obj, Tensor):
        return obj.clone()
    if isinstance(obj, dict):
        return {k: _clone(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clone(v) for v in obj]
    return obj


def _flat(model: nn.Module) -> Tensor:
    return torch.cat([p.detach().reshape(-1) for _, p in _params(model)])  # (P,)


@torch.no_grad()
def _load_flat(model: nn.Module, theta: Tensor) -> None:
    start = 0
    for _, p in _params(model):
        p.copy_(theta[start : start + p.numel()].view_as(p))
        start += p.numel()


def _loss_and_grad(model, loss_fn, batch, create_graph=False) -> tuple[Tensor, Tensor]:
    """Loss () and flat gradient (P,) in training mode; a parameter the loss does not use
    gets a zero gradient."""
    params = [p for _, p in _params(model)]
    model.train()
    inputs, targets = batch
    loss = loss_fn(model(inputs), targets)
    grads = torch.autograd.grad(loss, params, create_graph=create_graph, allow_unused=True)
    g = torch.cat(
        [
            (torch.zeros_like(p) if d is None else d).reshape(-1)
            for p, d in zip(params, grads, strict=True)
        ]
    )
    return (loss, g) if create_graph else (loss.detach(), g.detach())


def module_landscape(
    model: nn.Module,
    loss_fn: LossFn,
    batch: tuple[Tensor, Tensor],
    lr: float,
    cfg: LandscapeConfig | None = None,
) -> dict[str, Tensor]:
    """`along_gradient` for one model: loss variation, gradient predictiveness and effective
    beta-smoothness along -g over the grid of `cfg` at learning rate lr (Santurkar et al.
    2018, Sec. 3.1). Each point starts from the same buffers. Returns name -> () tensor."""
    cfg = cfg or LandscapeConfig()
    etas = cfg.etas(torch.tensor([lr], dtype=torch.float64))  # (1, S)
    with module_preserved(model):
        buffers = [(b, b.clone()) for b in model.buffers()]

        def loss_grad(theta: Tensor) -> tuple[Tensor, Tensor]:  # (1, P) -> (1,), (1, P)
            with torch.no_grad():
                for b, value in buffers:
                    b.copy_(value)
            _load_flat(model, theta[0])
            loss, g = _loss_and_grad(model, loss_fn, batch)
            return loss[None], g[None]

        theta = _flat(model)[None]  # (1, P)
        found = along_gradient(loss_grad, theta, etas.to(theta.dtype))
    return {k: v[0] for k, v in found.items()}


def weight_layers(model: nn.Module, inputs: Tensor) -> list[tuple[str, list[str], list[str]]]:
    """The weight layers (Linear, Conv, ConvTranspose and the engine's stacked ones) in the
    order the forward pass first calls them: (name, its own parameters, the parameters of
    every module called before it). The last is "the layers before layer i" of Santurkar
    et al.'s Def. 2.1, read from the model's execution (one forward pass with hooks, state
    preserved), not from the order the modules were registered in."""
    owners = {n: m for n, m in model.named_modules() if _own_params(n, m)}
    order: list[str] = []

    def first_call(name):
        return lambda module, args: order.append(name) if name not in order else None

    hooks = [m.register_forward_pre_hook(first_call(n)) for n, m in owners.items()]
    try:
        with module_preserved(model), torch.no_grad():
            model.train()(inputs)
    finally:
        for h in hooks:
            h.remove()
    return [
        (
            name,
            _own_params(name, owners[name]),
            [p for n in order[:i] for p in _own_params(n, owners[n])],
        )
        for i, name in enumerate(order)
        if _layers.is_foldable(owners[name])
    ]


def _own_params(name: str, m: nn.Module) -> list[str]:
    prefix = f"{name}." if name else ""
    return [prefix + n for n, p in m.named_parameters(recurse=False) if p.requires_grad]


def module_ics(
    model: nn.Module, loss_fn: LossFn, batch: tuple[Tensor, Tensor], optimizer
) -> dict[str, Tensor]:
    """Internal covariate shift per weight layer, Santurkar et al. 2018, Def. 2.1:
    'ics_l2/<layer>' = ||G_i - G'_i|| and 'ics_cos/<layer>' = cos(G_i, G'_i), () tensors.

    G_i is the layer's gradient at W^t; G'_i the same after only the layers before it (see
    `weight_layers`) took `optimizer`'s actual step from G. One optimizer step and one
    forward/backward per layer, each from the same buffers; everything is restored.
    """
    named = _params(model)
    spans, start = {}, 0
    for n, p in named:
        spans[n] = (start, start + p.numel())
        start += p.numel()

    def columns(names: list[str]) -> Tensor:
        return torch.cat(
            [torch.arange(*spans[n]) for n in names] or [torch.zeros(0, dtype=torch.long)]
        )

    layers = weight_layers(model, batch[0])
    out: dict[str, Tensor] = {}
    with module_preserved(model, optimizer):
        theta = _flat(model)  # (P,), W^t
        with module_preserved(model):
            _, G = _loss_and_grad(model, loss_fn, batch)  # (P,)
        for n, p in named:
            p.grad = G[slice(*spans[n])].view_as(p).clone()
        optimizer.step()  # the update training would make from this batch
        theta_next = _flat(model)  # W^{t+1}
        for layer, own, before in layers:
            moved = theta.clone()
            idx = columns(before)
            moved[idx] = theta_next[idx]  # layers before i moved
            with module_preserved(model):
                _load_flat(model, moved)
                _, G_shift = _loss_and_grad(model, loss_fn, batch)
            idx = columns(own)
            g, g2 = G[idx], G_shift[idx]  # (P_i,) each
            out[f"ics_l2/{layer}"] = torch.linalg.vector_norm(g - g2)
            out[f"ics_cos/{layer}"] = torch.nn.functional.cosine_similarity(g, g2, dim=0)
    return out


def module_curvature(
    model: nn.Module, loss_fn: LossFn, batch: tuple[Tensor, Tensor]
) -> dict[str, Tensor]:
    """g^T H g / ||g||^2, the second derivative of the loss along the unit gradient, by one
    double backward (H g = d(g . g)/2 d theta); 'curvature' and 'grad_norm', () tensors."""
    params = [p for _, p in _params(model)]
    with module_preserved(model):
        _, g = _loss_and_grad(model, loss_fn, batch, create_graph=True)  # (P,), with graph
        v = g.detach()
        Hv = torch.autograd.grad((g * v).sum(), params, allow_unused=True)
        Hg = torch.cat(
            [
                (torch.zeros_like(p) if h is None else h).reshape(-1)
                for p, h in zip(params, Hv, strict=True)
            ]
        )
    g_sq = v.square().sum()
    return {"curvature": (v * Hg).sum() / g_sq, "grad_norm": g_sq.sqrt()}


def module_activation_stats(
    model: nn.Module,
    inputs: Tensor,
    layers: list[str],
    cfg: HookConfig | None = None,
    training: bool = True,
) -> dict[str, Tensor]:
    """Statistics of the *input* of each named module (e.g. the activation after a BN), as
    the engine records them (Ioffe & Szegedy 2015, Fig. 1b,c): 'act/<layer>/mean', '/std',
    '/u<unit>/p<percentile>' over the batch (units are channels for (N, C, H, W) inputs).
    One forward pass in training (or eval) mode; the model is restored."""
    cfg = cfg or HookConfig()
    modules = dict(model.named_modules())
    unknown = [n for n in layers if n not in modules]
    if unknown:
        raise ValueError(f"layers: no module named {unknown[0]!r} in {type(model).__name__}")
    seen: dict[str, Tensor] = {}
    hooks = [
        modules[n].register_forward_pre_hook(lambda m, a, n=n: seen.setdefault(n, a[0].detach()))
        for n in layers
    ]
    try:
        with module_preserved(model), torch.no_grad():
            model.train(training)(inputs)
    finally:
        for h in hooks:
            h.remove()
    out = {}
    for n in layers:
        stats = activation_stats(seen[n][None], cfg)  # a stack of one: (1, B, ...)
        out.update({f"act/{n}/{k}": v[0] for k, v in stats.items()})
    return out
