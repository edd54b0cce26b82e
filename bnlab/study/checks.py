"""Everything about a study that can be wrong is found before any work or any write.

`preflight(study, data, device)` builds each variant's first members and refuses, with a
`BnlabError` naming the variant: a model that fails on a batch or whose output is not one
logit per class of the data; a variant whose transform leaves the model as it was, or two
variants that train the same thing; a logged activation layer the model does not have; a
batch larger than the training split. It also decides how each variant trains: vmapped, or
one member at a time with the reason in one line (`members.vmap_blocker`, then a trial
vmapped step compared with each member's own forward).
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass

import torch
from torch import nn

from bnlab.errors import BnlabError
from bnlab.study.data import StudyData
from bnlab.study.members import build_member, layer_groups, member_loss, settings
from bnlab.study.spec import Study
from bnlab.study.vmapped import VmappedMembers, stacked_loss

__all__ = ["VariantPlan", "preflight"]

TRIAL_MEMBERS = 2  # members stacked to check that a model trains under vmap
TRIAL_RTOL = {torch.float32: 1e-4, torch.float64: 1e-9}


@dataclass(frozen=True)
class VariantPlan:
    """What preflight found about one variant (all of it goes into the stored config)."""

    mode: str  # "vmapped" or "sequential"
    reason: str  # why sequential; "" when vmapped
    layers: tuple[str, ...]  # layers whose gradient norms are logged
    parameters: int  # trainable parameters of one member
    model: str  # repr of member 0's model
    signature: str  # model repr + initial state, hashed: what the variant trains


def preflight(study: Study, data: StudyData, device: torch.device) -> dict[str, VariantPlan]:
    """Check every variant (see the module docstring); returns its plan, by name."""
    plans = {name: _variant(study, name, data, device) for name in study.variants}
    _distinct(study, plans)
    return plans


def _variant(study: Study, name: str, data: StudyData, device) -> VariantPlan:
    s = settings(study, name)
    if s.batch_size > len(data.y_train):
        raise BnlabError(
            f"Study.variants[{name!r}]: batch_size {s.batch_size} is larger than the "
            f"{len(data.y_train):,} training examples"
        )
    model = build_member(study, name, study.seed)
    _check_output(name, model, data, s.batch_size)
    _check_changes(study, name, model)
    _check_activations(study, name, model)
    mode, reason = _mode(study, name, data, s.batch_size, device)
    layers, _ = layer_groups(model)
    count = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return VariantPlan(mode, reason, tuple(layers), count, repr(model), _signature(model))


def _check_output(name: str, model: nn.Module, data: StudyData, batch: int) -> None:
    """One training-mode forward of a copy on `batch` training examples: (B, classes)."""
    x = data.x_train[:batch].to(next(iter(model.parameters()), data.x_train).dtype)
    try:
        out = copy.deepcopy(model)(x)
    except Exception as err:
        raise BnlabError(
            f"Study.variants[{name!r}]: the model fails on a batch of {batch} training "
            f"examples of shape {tuple(x.shape)}: {type(err).__name__}: {err}"
        ) from err
    want = (batch, data.classes)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != want:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise BnlabError(
            f"Study.variants[{name!r}]: the model's output is {got} for a batch of {batch}, "
            f"expected {want}: one logit per class of the data ({data.classes} classes)"
        )


def _signature(model: nn.Module) -> str:
    """The architecture and the initial values: equal signatures train the same thing."""
    h = hashlib.sha256(repr(model).encode())
    for m in model.modules():  # bnlab's and torch's BatchNorm2d print alike
        h.update(f"{type(m).__module__}.{type(m).__qualname__}".encode())
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _check_changes(study: Study, name: str, model: nn.Module) -> None:
    transform = study.variants[name].model
    if transform is None:
        return
    if _signature(build_member(study, None, study.seed)) == _signature(model):
        raise BnlabError(
            f"Study.variants[{name!r}]: its model transform {transform!r} does not change the "
            "model (same layers, same initial values); it would compare the model with itself"
        )


def _distinct(study: Study, plans: dict[str, VariantPlan]) -> None:
    seen: dict[tuple, str] = {}
    for name, plan in plans.items():
        key = (plan.signature, settings(study, name))
        if key in seen:
            raise BnlabError(
                f"Study.variants: {seen[key]!r} and {name!r} train the same thing (same model, "
                f"{settings(study, name)}); a variant must change something"
            )
        seen[key] = name


def _check_activations(study: Study, name: str, model: nn.Module) -> None:
    known = dict(model.named_modules())
    for layer in study.activations:
        if layer not in known:
            raise BnlabError(
                f"Study.activations: variant {name!r} has no module {layer!r}; its modules "
                f"include {', '.join(n for n in list(known)[1:12])}"
            )


def _mode(study: Study, name: str, data: StudyData, batch: int, device) -> tuple[str, str]:
    """("vmapped", "") or ("sequential", why), from a trial vmapped step of a few members."""
    if not study.vmap:
        return "sequential", "the study sets vmap=False"
    seeds = study.member_seeds()[:TRIAL_MEMBERS]
    models = [build_member(study, name, seed) for seed in seeds]
    members = VmappedMembers(models, study.optimizer, settings(study, name).lr, device)
    if members.blocker:
        return "sequential", members.blocker
    return _trial(members, models, data, batch, device)


def _trial(members: VmappedMembers, models, data: StudyData, batch: int, device):
    """One vmapped forward and backward against each member's own forward on a copy."""
    dtype = members.flat.dtype
    x = data.x_train[:batch].to(device, dtype)
    y = data.y_train[:batch].to(device)
    K = members.members
    try:
        logits, _ = members.forward(x.expand(K, *x.shape))
        loss, _ = stacked_loss(logits, y.expand(K, -1))
        loss.sum().backward()
    except Exception as err:  # any refusal of torch.func's is a reason to train apart
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        return "sequential", f"vmap refused the model: {type(err).__name__}: {first}"
    finally:
        members.flat_grad.zero_()
    for k, model in enumerate(models):
        own, _ = member_loss(copy.deepcopy(model).to(device)(x), y)
        if not torch.allclose(loss[k].detach(), own.detach(), rtol=TRIAL_RTOL[dtype], atol=0):
            return "sequential", (
                f"the vmapped forward differs from member {k}'s own ({float(loss[k]):.6g} vs "
                f"{float(own):.6g}): the model does not treat members apart"
            )
    return "vmapped", ""
