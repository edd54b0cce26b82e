"""The members of a variant: one model per seed, built by the study's factory, and what the
two trainers (`vmapped`, `sequential`) share about them.

Member k is built with torch's global RNG seeded from its seed alone (forked, so the caller's
stream is untouched), then modified by the variant's transform: a member of any stack is the
model a one-model run with that seed starts from.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bnlab.engine.models import INIT_SEED_OFFSET
from bnlab.errors import BnlabError
from bnlab.study.spec import Study

__all__ = ["Settings", "build_member", "layer_groups", "settings", "vmap_blocker"]

DTYPES = {"float32": torch.float32, "float64": torch.float64}

# Layers that draw random numbers in training: under vmap every member would share one
# draw, where a one-model run draws its own, so such models train one member at a time.
_RANDOM = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)


@dataclass(frozen=True)
class Settings:
    """What one variant trains with, after its overrides of the study's defaults."""

    lr: float
    batch_size: int
    standardize: bool


def settings(study: Study, variant: str) -> Settings:
    v = study.variants[variant]
    return Settings(
        lr=study.optimizer.lr if v.lr is None else float(v.lr),
        batch_size=study.batch_size if v.batch_size is None else v.batch_size,
        standardize=bool(v.standardize),
    )


def build_member(study: Study, variant: str | None, seed: int) -> nn.Module:
    """The model of member `seed` of `variant`, in training mode, in the study's dtype;
    `variant=None` gives the factory's model without any variant's transform."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + INIT_SEED_OFFSET)
        model = study.model()
        if not isinstance(model, nn.Module):
            raise BnlabError(f"Study.model: returned {type(model).__name__}, expected an nn.Module")
        transform = None if variant is None else study.variants[variant].model
        if transform is not None:
            model = transform(model)
            if not isinstance(model, nn.Module):
                raise BnlabError(
                    f"Study.variants[{variant!r}].model: returned {type(model).__name__}, "
                    "expected the nn.Module to train"
                )
    return model.to(DTYPES[study.dtype]).train()


def layer_groups(model: nn.Module) -> tuple[list[str], Tensor]:
    """The layers gradient norms are logged for (modules owning trainable parameters, in
    registration order) and which layer owns each trainable parameter: (names, (P, L))."""
    owners = [n.rsplit(".", 1)[0] if "." in n else "" for n, p in trainable(model)]
    names = list(dict.fromkeys(owners))
    onehot = torch.zeros(len(owners), len(names), dtype=torch.float64)  # (params, layers)
    for i, owner in enumerate(owners):
        onehot[i, names.index(owner)] = 1.0
    return [n or "(root)" for n in names], onehot


def trainable(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def vmap_blocker(model: nn.Module) -> str:
    """Why `model` cannot train its members under vmap, in one line; "" when it can (as far
    as its layers show: the first vmapped step is also checked, see `vmapped.trial`)."""
    for name, module in model.named_modules():
        if isinstance(module, _RANDOM) and module.p > 0:
            return (
                f"{name} ({type(module).__name__}) draws random numbers in training, which "
                "vmap would share across members"
            )
        tracked = getattr(module, "track_running_stats", False)
        if tracked and type(module).__name__ != "FunctionalBatchNorm":
            return (
                f"{name} ({type(module).__name__}) updates running statistics in place; only "
                "BatchNorm1d/2d/3d have a functional form"
            )
    return ""


def member_loss(logits: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Cross-entropy () and accuracy () of one model on one batch: (B, classes), (B,)."""
    loss = F.cross_entropy(logits, y)
    correct = logits.detach().argmax(-1) == y
    return loss, correct.to(loss.dtype).mean()
