"""Every norm layer of the engine equals the library layer it adapts, member by member.

A stacked layer over K members is only a layout of the member axis around the library's
functional form (bnlab/norms/), so member k of its output, of the input gradient and of
the parameter gradients, and its running statistics, must be what the library module
computes on member k's slice of the batch with member k's weights: float64, to 1e-12, over
several training steps (Batch Renorm through its warm-up, into clipping), then eval, then
precise BN on both. The library modules are tested against torch.nn and the papers'
formulas in test_norms_*.py; this file ties the engine to them.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

import bnlab
from bnlab.engine.norms import NORM_KERNELS, NORM_LAYERS, NormParams
from bnlab.engine.norms_batch import GhostParams, RenormParams
from bnlab.engine.norms_group import GroupParams
from bnlab.engine.stacked import from_groups, to_groups

K, C, B = 3, 8, 6  # C = 8: a GroupNorm group of a dense layer holds 4 features
F64 = torch.float64
TOL = {"rtol": 1e-12, "atol": 1e-12}
STEPS = 5
PARAMS = NormParams(
    momentum=0.2,
    batch_noisy=bnlab.norms.NoiseParams(mean_max=0.3, std_min=0.2, std_max=0.9),
    group=GroupParams(groups=2),
    # plain BN at step 0, d_max reached at step 2, r_max at step 4: clipping from step 1 on
    renorm=RenormParams(r_max=1.5, d_max=0.5, warmup=bnlab.RenormWarmup(1, 4, 2)),
    ghost=GhostParams(virtual_batch_size=3),  # 2 chunks of the batch of 6
)


def _library(norm: str, conv: bool, p: NormParams) -> torch.nn.Module:
    """The library module that member k of the engine's `norm` layer must equal."""
    bn = {"eps": p.eps, "momentum": p.momentum, "dtype": F64}
    if norm == "batch":
        return (bnlab.BatchNorm2d if conv else bnlab.BatchNorm1d)(C, **bn)
    if norm == "batch-noisy":
        cls = bnlab.NoisyBatchNorm2d if conv else bnlab.NoisyBatchNorm1d
        return cls(C, noise=p.batch_noisy, **bn)
    if norm == "layer":  # per-channel gamma: LayerNorm(C) on (B, C), GroupNorm(1, C) on conv
        return (
            bnlab.GroupNorm(1, C, p.eps, dtype=F64)
            if conv
            else bnlab.LayerNorm(C, p.eps, dtype=F64)
        )
    if norm == "group":
        return bnlab.GroupNorm(p.group.groups, C, p.eps, dtype=F64)
    if norm == "instance":
        return bnlab.InstanceNorm2d(C, p.eps, affine=True, dtype=F64)
    if norm == "renorm":
        r = p.renorm
        cls = bnlab.BatchRenorm2d if conv else bnlab.BatchRenorm1d
        return cls(C, r_max=r.r_max, d_max=r.d_max, warmup=r.warmup, **bn)
    cls = bnlab.GhostBatchNorm2d if conv else bnlab.GhostBatchNorm1d
    return cls(C, p.ghost.virtual_batch_size, **bn)


def _cases():
    for norm in NORM_LAYERS:
        if norm == "none":
            continue
        # Renorm and Ghost BN have bnlab's kernel only: the choice does not apply to them
        kernels = ("bnlab",) if norm in ("renorm", "ghost") else NORM_KERNELS
        for kernel in kernels:
            for conv in (False, True):
                if norm == "instance" and not conv:
                    continue  # instance statistics need positions (validation refuses it)
                yield pytest.param(
                    norm, kernel, conv, id=f"{norm}-{kernel}-{'conv' if conv else 'fc'}"
                )


def _input(conv: bool, gen: torch.Generator) -> torch.Tensor:
    shape = (K, B, C, 3, 3) if conv else (K, B, C)
    x = torch.randn(shape, generator=gen, dtype=F64) * 2 + 1
    if conv:  # the engine's layout: a view of a (B, H, W, K, C) channels-last buffer
        x = from_groups(to_groups(x).contiguous(memory_format=torch.channels_last), K)
    return x.requires_grad_()


def _start(layer, refs, gen: torch.Generator) -> None:
    """Random gamma, beta and running statistics far from the batches' (so that Batch
    Renorm's r and d clip), the same in the stack and in each member's library module."""
    with torch.no_grad():
        layer.weight.uniform_(0.5, 1.5, generator=gen)
        layer.bias.normal_(generator=gen)
        if hasattr(layer, "running_mean"):
            layer.running_mean.uniform_(-3.0, 3.0, generator=gen)
            layer.running_var.uniform_(0.05, 20.0, generator=gen)
        for k, ref in enumerate(refs):
            ref.weight.copy_(layer.weight[k])
            ref.bias.copy_(layer.bias[k])
            if hasattr(layer, "running_mean"):
                ref.running_mean.copy_(layer.running_mean[k])
                ref.running_var.copy_(layer.running_var[k])
            if hasattr(layer, "generators"):  # noisy BN: member k's noise stream
                ref.generator.set_state(layer.generators[k].get_state())


def _compare(layer, refs, x: torch.Tensor, gen: torch.Generator, what: str) -> torch.Tensor:
    """One forward and backward through the stack and through each member's module."""
    layer.zero_grad()
    y = layer(x)
    dy = torch.randn(y.shape, generator=gen, dtype=F64)  # a non-uniform upstream gradient
    (y * dy).sum().backward()
    for k, ref in enumerate(refs):
        ref.zero_grad()
        xk = x[k].detach().clone().requires_grad_()
        yk = ref(xk)
        (yk * dy[k]).sum().backward()
        for name, ours, theirs in (
            ("y", y[k], yk),
            ("dx", x.grad[k], xk.grad),
            ("dgamma", layer.weight.grad[k], ref.weight.grad),
            ("dbeta", layer.bias.grad[k], ref.bias.grad),
        ):
            torch.testing.assert_close(ours, theirs, **TOL, msg=f"{what}, member {k}: {name}")
        _compare_state(layer, ref, k, what)
    return y


def _compare_state(layer, ref, k: int, what: str) -> None:
    if not hasattr(layer, "running_mean"):
        return
    for name in ("running_mean", "running_var"):
        ours, theirs = getattr(layer, name)[k], getattr(ref, name)
        torch.testing.assert_close(ours, theirs, **TOL, msg=f"{what}, member {k}: {name}")
    assert int(layer.num_batches_tracked) == int(ref.num_batches_tracked), what


@pytest.mark.parametrize(("norm", "kernel", "conv"), list(_cases()))
def test_engine_layer_equals_the_library_layer_member_by_member(norm, kernel, conv):
    gen = torch.Generator().manual_seed(0)
    p = replace(PARAMS, kernel=kernel)
    layer = NORM_LAYERS[norm].make(K, C, p, F64)
    refs = [_library(norm, conv, p) for _ in range(K)]
    _start(layer, refs, gen)
    for step in range(STEPS):
        x = _input(conv, gen)
        y = _compare(layer, refs, x, gen, f"training step {step}")
        if norm == "renorm":  # plain BN in the warm-up, corrected by r and d after it
            plain = torch.nn.functional.batch_norm(
                x[k := 0].detach(), None, None, layer.weight[k], layer.bias[k], True
            )
            gap = (y[k] - plain).abs().max().item()
            assert gap < 1e-9 if step <= p.renorm.warmup.start else gap > 1e-3, (step, gap)
    layer.eval()
    for ref in refs:
        ref.eval()
    _compare(layer, refs, _input(conv, gen), gen, "eval")
    if hasattr(layer, "running_mean"):  # precise BN: one function for the stack and a model
        batches = [_input(conv, gen).detach() for _ in range(3)]
        bnlab.precise_bn(layer, batches, num_batches=3)
        for k, ref in enumerate(refs):
            bnlab.precise_bn(ref, [xb[k] for xb in batches], num_batches=3)
            _compare_state(layer, ref, k, "precise BN")
        assert not layer.training  # modes, warm-up and counts restored on both
        _compare(layer, refs, _input(conv, gen), gen, "eval after precise BN")
