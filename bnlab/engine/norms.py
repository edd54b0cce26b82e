"""The norm layers a stack can use, by name: the registry `NORM_LAYERS`, and the parameters
object `ModelConfig.norm` that it defines.

Each entry says how to build the stacked layer (`make(members, channels, norm_params,
dtype)`, an adapter over the library's functional form in `bnlab/norms/`), what the rest of
the model must know of it, its own parameters (a frozen dataclass, found in the config at
`model.norm.<name>`, '-' written '_') and its own fit checks against the model and the loop.
`NormParams`, the type of `ModelConfig.norm`, is built from the registry: the parameters all
norm layers share, then one field per entry with parameters. So adding a norm layer to the
experiments takes its file in `bnlab/norms/`, its adapter, one line here, and its tests;
`--set model.norm.<name>.<field>=...` and config validation follow from the entry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from bnlab.engine.norms_batch import (
    GhostParams,
    RenormParams,
    StackedBatchRenorm,
    StackedGhostBatchNorm,
    ghost_fits,
)
from bnlab.engine.norms_bn import NORM_KERNELS, StackedBatchNorm, StackedNoisyBatchNorm
from bnlab.engine.norms_group import GroupParams, StackedGroupNorm, conv_only, group_fits
from bnlab.norms.noisy import NoiseParams

__all__ = [
    "NORM_KERNELS",
    "NORM_LAYERS",
    "NormFit",
    "NormParams",
    "NormSpec",
    "StackedBatchNorm",
    "check_fit",
    "params_key",
]


@dataclass(frozen=True)
class NormFit:
    """What a norm layer's fit checks may ask of the model and the training loop."""

    conv_widths: tuple[int, ...]  # channels of each conv layer
    hidden_widths: tuple[int, ...]  # units of each fully connected hidden layer
    batch_size: int  # examples per member per step


@dataclass(frozen=True)
class NormSpec:
    """How to build one kind of norm layer, and what the rest of the model must know of it."""

    make: Callable[..., nn.Module] | None  # (members, channels, NormParams, dtype)
    needs_batch: bool  # statistics over the batch: a batch of 1 is an error
    has_shift: bool  # has a learned shift (beta), so a preceding layer needs no bias
    params: type | None = None  # its parameters' frozen dataclass, at model.norm.<name>
    # (its parameters or None, their dotted key, NormFit): raises ConfigError if it cannot fit
    fits: Callable[[Any, str, NormFit], None] | None = None


NORM_LAYERS: dict[str, NormSpec] = {
    "none": NormSpec(None, needs_batch=False, has_shift=False),
    # Ioffe & Szegedy 2015
    "batch": NormSpec(StackedBatchNorm.build, needs_batch=True, has_shift=True),
    # BN + per-step noise before the nonlinearity (Santurkar et al. 2018, Sec. 2.1)
    "batch-noisy": NormSpec(
        StackedNoisyBatchNorm.build, needs_batch=True, has_shift=True, params=NoiseParams
    ),
    # statistics per example (Ba et al. 2016, Wu & He 2018, Ulyanov et al. 2016)
    "layer": NormSpec(StackedGroupNorm.layer, needs_batch=False, has_shift=True),
    "group": NormSpec(
        StackedGroupNorm.group,
        needs_batch=False,
        has_shift=True,
        params=GroupParams,
        fits=group_fits,
    ),
    "instance": NormSpec(
        StackedGroupNorm.instance, needs_batch=False, has_shift=True, fits=conv_only
    ),
    # BN's variants (Ioffe 2017, Hoffer et al. 2017)
    "renorm": NormSpec(
        StackedBatchRenorm.build, needs_batch=True, has_shift=True, params=RenormParams
    ),
    "ghost": NormSpec(
        StackedGhostBatchNorm.build,
        needs_batch=True,
        has_shift=True,
        params=GhostParams,
        fits=ghost_fits,
    ),
}


def params_key(name: str) -> str:
    """The field of `NormParams` that holds norm layer `name`'s parameters."""
    return name.replace("-", "_")


def _check_shared(self) -> None:
    if not self.eps > 0.0:  # also refuses NaN
        raise ValueError(f"eps: expected a number > 0, got {self.eps!r}")
    if not 0.0 <= self.momentum <= 1.0:
        raise ValueError(f"momentum: expected a value in [0, 1], got {self.momentum!r}")
    if self.kernel not in NORM_KERNELS:
        raise ValueError(f"kernel: expected one of {', '.join(NORM_KERNELS)}, got {self.kernel!r}")


SHARED_FIELDS = {  # name: (type, default, comment for `bnlab config show`)
    "eps": (float, 1e-5, "added to the variance"),
    "momentum": (float, 0.1, "running-statistics weight of the new batch (PyTorch convention)"),
    "kernel": (str, "aten", "aten: torch's fused kernels (BN, Layer/Group/Instance), or bnlab"),
    "compiled": (bool, False, "fuse the bnlab kernels' passes with torch.compile"),
}


def _norm_params() -> type:
    """The frozen dataclass of `ModelConfig.norm`: shared fields, then one per registry entry
    with parameters."""
    shared = [(name, kind, default) for name, (kind, default, _) in SHARED_FIELDS.items()]
    own = [
        (params_key(name), spec.params, dataclasses.field(default_factory=spec.params))
        for name, spec in NORM_LAYERS.items()
        if spec.params is not None
    ]
    comments = {name: comment for name, (_, _, comment) in SHARED_FIELDS.items()}
    namespace = {"__post_init__": _check_shared, "FIELD_COMMENTS": comments}
    cls = dataclasses.make_dataclass("NormParams", shared + own, frozen=True, namespace=namespace)
    cls.__module__ = __name__  # found by pickle (Ray and spawn executors send configs)
    sections = ", ".join(
        f"`{params_key(name)}` ({spec.params.__name__})"
        for name, spec in NORM_LAYERS.items()
        if spec.params is not None
    )
    cls.__doc__ = f"""The norm layers' parameters (`ModelConfig.norm`).

    Shared by every norm layer:
        eps: added to the variance (torch's 1e-5).
        momentum: running-statistics weight of the new batch (PyTorch convention).
        kernel: "aten", torch's fused kernel where one computes the layer (`batch_norm` for
            BN and noisy BN, `group_norm` for Layer/Group/Instance norm), or "bnlab", bnlab's
            functional forms; tested equal. Batch Renorm and Ghost BN are bnlab's only.
        compiled: fuse the passes of the layers built on BN's `normalize` (BN on the "bnlab"
            kernel, Ghost BN, InstanceNorm on the "bnlab" kernel) with torch.compile
            (`bnlab._fastpath`; seconds of compilation per shape, falls back to eager).
            False keeps them eager at any size.

    Then each norm layer's own parameters, one field per registry entry that has some:
    {sections}.
    """
    return cls


NormParams = _norm_params()


def check_fit(name: str, params, fit: NormFit) -> None:
    """Raise ConfigError if norm layer `name`, with `params` (a `NormParams`), cannot run in
    a model and loop described by `fit`."""
    spec = NORM_LAYERS[name]
    if spec.fits is not None:
        own = getattr(params, params_key(name)) if spec.params is not None else None
        spec.fits(own, f"model.norm.{params_key(name)}", fit)
