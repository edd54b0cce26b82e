"""Batch Normalization whose running statistics go in and come out, so `vmap` can train it.

torch.func documents BN's running statistics under `vmap` as unsupported: the layer writes
its buffers in place, and inside `vmap` those writes would land in one buffer shared by every
member (`torch.func.replace_all_batch_norm_modules_` gives up the statistics instead). Here
the state is functional, as in equinox's `BatchNorm`:

    y, state = batch_norm_state(x, weight, bias, state, training=True)

returns the new running statistics instead of writing them, and nothing is modified in
place. `FunctionalBatchNorm` is the module form: `to_functional(model)` swaps each
`torch.nn` / bnlab `BatchNorm{1,2,3}d` for it (taking over the same Parameters and buffers,
under the same names), and in training the layer hands its new statistics to the
`state_updates()` collector around the call, from which the caller passes them back in as
buffers at the next step.

Under `vmap` each member normalizes with its own statistics, with the math of the layer it
replaces:

- torch.nn's BN: torch's fused `F.batch_norm` over the K*C member-channels of the
  (N, K*C, *) view of the stacked input, on *copies* of the running statistics (the inputs
  are never written), as an op with a vmap rule of its own (`_aten_members`);
- bnlab's BN: a batching rule of its own (`_BatchNormState.vmap`) gets the K members'
  tensors stacked, x laid out (N, K, C, *), and runs `bnlab.functional.normalize` over dims
  (N, *) with its hand-written backward, then the pure `update_running_stats` on (K, C)
  (Bessel's correction, momentum or cumulative average), without a copy when x comes from
  a vmapped convolution (whose output is (N, K*C, H, W) already). torch's BN with
  momentum=None (a cumulative average per member) takes this path too.

A non-finite batch is handled as the replaced layer handles it: bnlab's BN leaves that
member's statistics and batch count as they were (as it does inside a transform), torch's
takes it in; the output carries the NaN either way. The backward is ordinary autograd over
the stacked computation, outside `vmap` (what `bnlab.study` does); `torch.func.grad` inside
`vmap` is not supported by bnlab's form.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules import batchnorm

from bnlab import modules as bnlab_bn
from bnlab._checks import check_input_rank
from bnlab.functional import batch_norm_eval, normalize, update_running_stats

__all__ = [
    "BNState",
    "FunctionalBatchNorm",
    "batch_norm_state",
    "state_updates",
    "to_functional",
]

# Exactly these classes are swapped; subclasses (SyncBatchNorm, Lazy*, a user's own) are not.
_KERNELS: dict[type, str] = {
    nn.BatchNorm1d: "aten",
    nn.BatchNorm2d: "aten",
    nn.BatchNorm3d: "aten",
    bnlab_bn.BatchNorm1d: "bnlab",
    bnlab_bn.BatchNorm2d: "bnlab",
    bnlab_bn.BatchNorm3d: "bnlab",
}
_RANKS = {"1d": (2, 3), "2d": (4,), "3d": (5,)}


@dataclass(frozen=True)
class BNState:
    """BN's running statistics: mean and unbiased variance (C,) and the batch count ()."""

    running_mean: Tensor
    running_var: Tensor
    num_batches_tracked: Tensor


@dataclass(frozen=True)
class _Spec:
    """The non-tensor arguments of one call (hashable: they pass through torch.func)."""

    training: bool
    momentum: float | None
    eps: float
    kernel: str  # "bnlab" or "aten"


def _stacked(x: Tensor, weight, bias, mean, var, count, spec: _Spec):
    """bnlab's BN of K members at once. x (N, K, C, *); weight, bias, mean, var (K, C); count
    (K,). Returns (y like x, new mean, new var, new count); the state entries are None when
    no state came in (track_running_stats=False: batch statistics in training and eval).
    """
    K, C = x.shape[1], x.shape[2]
    shape = (1, K, C) + (1,) * (x.dim() - 3)  # (K, C) parameters against (N, K, C, *)
    w = None if weight is None else weight.reshape(shape)
    b = None if bias is None else bias.reshape(shape)
    if not spec.training and mean is not None:  # Alg. 2, step 10: an affine map of x
        y = batch_norm_eval(x, w, b, mean.reshape(shape), var.reshape(shape), spec.eps)
        return y, mean, var, count
    dims = (0, *range(3, x.dim()))  # statistics over N and the positions
    # compiled=False: torch.compile's kernels would cost seconds per new shape
    y, mu, sigma2 = normalize(x, w, b, dims, spec.eps, compiled=False)
    if mean is None or not spec.training:
        return y, mean, var, count
    mu, sigma2 = mu.reshape(K, C), sigma2.reshape(K, C)
    ok = (torch.isfinite(mu).all(1) & torch.isfinite(sigma2).all(1)).unsqueeze(1)  # (K, 1)
    m = x.numel() // (K * C)  # values per member and channel
    seen = (count + 1).unsqueeze(1)  # (K, 1): the count including this batch
    new_mean, new_var = update_running_stats(mean, var, mu, sigma2, m, spec.momentum, seen, ok)
    return y, new_mean, new_var, count + ok.squeeze(1).long()


def _aten(x: Tensor, weight, bias, state: BNState | None, spec: _Spec):
    """torch.nn's BN as torch computes it, on copies of the statistics: (y, new state)."""
    if state is None:
        return F.batch_norm(x, None, None, weight, bias, True, 0.0, spec.eps), None
    mean, var = state.running_mean, state.running_var
    if not spec.training:
        return F.batch_norm(x, mean, var, weight, bias, False, 0.0, spec.eps), state
    if torch._C._are_functorch_transforms_active():
        y, mean, var = _aten_op(x, weight, bias, mean, var, spec.momentum, spec.eps)
    else:
        y, mean, var = _aten_train(x, weight, bias, mean, var, spec.momentum, spec.eps)
    return y, BNState(mean, var, state.num_batches_tracked + 1)


def _aten_train(x, weight, bias, mean, var, momentum: float, eps: float) -> list[Tensor]:
    mean, var = mean.clone(), var.clone()  # F.batch_norm writes the statistics it is given
    y = F.batch_norm(x, mean, var, weight, bias, True, momentum, eps)
    return [y, mean, var]


@torch.library.custom_op("bnlab::stacked_batch_norm", mutates_args=())
def _aten_op(
    x: Tensor,
    weight: Tensor | None,
    bias: Tensor | None,
    mean: Tensor,
    var: Tensor,
    momentum: float,
    eps: float,
) -> list[Tensor]:
    """torch's BN of one member in training: [y, new mean, new var]. An op of its own for
    its vmap rule (`_aten_members`): vmap's generic rule for batch_norm with batched
    weights applies gamma and beta as separate ops, whose backward costs several times the
    fused kernel's, and an autograd.Function's rule costs Python argument binding per call.
    Applied only under vmap, where autograd records the ops inside the rule."""
    return [t.clone() for t in _aten_train(x, weight, bias, mean, var, momentum, eps)]


def _aten_members(info, in_dims, x, weight, bias, mean, var, momentum, eps):
    """All K members as one fused batch_norm over the K*C member-channels of (N, K*C, *)."""
    K = info.batch_size
    x = _front(x, in_dims[0], K, 1)  # (N, K, C, *): a view for a vmapped conv's output
    weight, bias, mean, var = (
        _front(t, d, K, 0) for t, d in zip((weight, bias, mean, var), in_dims[1:5], strict=True)
    )
    N, _, C = x.shape[:3]
    flat = [None if t is None else t.reshape(-1) for t in (weight, bias, mean, var)]
    y, new_mean, new_var = _aten_train(x.reshape(N, K * C, *x.shape[3:]), *flat, momentum, eps)
    return [y.view(x.shape), new_mean.view(K, C), new_var.view(K, C)], [1, 0, 0]


torch.library.register_vmap("bnlab::stacked_batch_norm", _aten_members)


def _front(t: Tensor | None, dim: int | None, size: int, to: int) -> Tensor | None:
    """Move the vmapped dim of `t` to position `to` (broadcasting an unbatched `t`)."""
    if t is None:
        return None
    if dim is None:
        return t.unsqueeze(to).expand(*t.shape[:to], size, *t.shape[to:])
    return t.movedim(dim, to)


class _BatchNormState(torch.autograd.Function):
    """`_stacked` as one op under vmap: the batching rule below sees all members at once.

    Autograd records the ops inside the rule (normalize's own backward node), so no backward
    is written here: this Function is applied only under vmap.
    """

    @staticmethod
    def forward(x, weight, bias, mean, var, count, spec):
        raise RuntimeError("_BatchNormState is applied only under torch.func.vmap")

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def vmap(info, in_dims, x, weight, bias, mean, var, count, spec):
        K = info.batch_size
        x = _front(x, in_dims[0], K, 1)  # (N, K, C, *)
        weight, bias, mean, var, count = (
            _front(t, d, K, 0)
            for t, d in zip((weight, bias, mean, var, count), in_dims[1:6], strict=True)
        )
        out = _stacked(x, weight, bias, mean, var, count, spec)
        return out, (1, *(None if t is None else 0 for t in out[1:]))


def batch_norm_state(
    x: Tensor,
    weight: Tensor | None,
    bias: Tensor | None,
    state: BNState | None,
    training: bool,
    momentum: float | None = 0.1,
    eps: float = 1e-5,
    kernel: str = "bnlab",
) -> tuple[Tensor, BNState | None]:
    """Batch Normalization with functional running statistics: (y, new state).

    Args:
        x: (N, C) or (N, C, *), channel axis 1 (per member, under vmap).
        weight, bias: gamma and beta, (C,) or None.
        state: the running statistics, or None (batch statistics in training and eval).
        training: batch statistics, and a new state; else the state's statistics.
        momentum: weight of this batch in the running statistics; None: cumulative average.
        kernel: "bnlab" (`bnlab.functional.normalize`) or "aten" (torch's `F.batch_norm`,
            and torch's semantics; with momentum=None, bnlab's kernel).

    Nothing is written in place: the returned state is new tensors (equal values when not
    training). Ioffe & Szegedy 2015, Alg. 1 (training) and Alg. 2 (inference).
    """
    spec = _Spec(bool(training), momentum, float(eps), kernel)
    if kernel == "aten" and momentum is not None:
        return _aten(x, weight, bias, state, spec)
    stats = (None, None, None) if state is None else _state_tensors(state)
    if torch._C._are_functorch_transforms_active():
        y, mean, var, count = _BatchNormState.apply(x, weight, bias, *stats, spec)
    else:  # one model: a stack of one, on plain autograd
        stacked = [None if t is None else t.unsqueeze(0) for t in (weight, bias, *stats)]
        y, mean, var, count = _stacked(x.unsqueeze(1), *stacked, spec)
        y = y.squeeze(1)
        mean, var, count = (None if t is None else t.squeeze(0) for t in (mean, var, count))
    if state is None:
        return y, None
    return y, BNState(mean, var, count)


def _state_tensors(state: BNState) -> tuple[Tensor, Tensor, Tensor]:
    return state.running_mean, state.running_var, state.num_batches_tracked


_UPDATES: contextvars.ContextVar[dict[str, Tensor] | None] = contextvars.ContextVar(
    "bnlab_study_state_updates", default=None
)


@contextmanager
def state_updates() -> Iterator[dict[str, Tensor]]:
    """Collect the new running statistics of every `FunctionalBatchNorm` called inside, by
    buffer name ("layer1.0.bn1.running_mean", ...), into the yielded dict."""
    updates: dict[str, Tensor] = {}
    token = _UPDATES.set(updates)
    try:
        yield updates
    finally:
        _UPDATES.reset(token)


class FunctionalBatchNorm(nn.Module):
    """BatchNorm{1,2,3}d whose training step hands its new statistics to `state_updates()`
    instead of writing its buffers. Same Parameters, buffers and names as the layer it
    replaces (`to_functional`), so state_dicts move between the two unchanged."""

    def __init__(self, bn: batchnorm._BatchNorm, name: str, kernel: str):
        super().__init__()
        self.name, self.kernel = name, kernel
        self.eps, self.momentum = bn.eps, bn.momentum
        self.num_features = bn.num_features
        self._ranks = _RANKS[type(bn).__name__[-2:]]
        self.weight, self.bias = bn.weight, bn.bias
        for buffer in ("running_mean", "running_var", "num_batches_tracked"):
            self.register_buffer(buffer, getattr(bn, buffer))
        self.train(bn.training)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, {self.kernel}"

    def forward(self, x: Tensor) -> Tensor:
        check_input_rank(x, self._ranks)
        state = None
        if self.running_mean is not None:
            state = BNState(self.running_mean, self.running_var, self.num_batches_tracked)
        y, new = batch_norm_state(
            x, self.weight, self.bias, state, self.training, self.momentum, self.eps, self.kernel
        )
        if self.training and new is not None:
            updates = _UPDATES.get()
            if updates is None:
                raise RuntimeError(
                    f"{self.name}: a FunctionalBatchNorm in training returns its running "
                    "statistics; call the model inside `with state_updates() as new:`"
                )
            updates[f"{self.name}.running_mean"] = new.running_mean
            updates[f"{self.name}.running_var"] = new.running_var
            updates[f"{self.name}.num_batches_tracked"] = new.num_batches_tracked
        return y


def to_functional(model: nn.Module) -> list[str]:
    """Swap every torch.nn / bnlab BatchNorm{1,2,3}d in `model` for a `FunctionalBatchNorm`,
    in place; returns the swapped layers' names. Parameters and buffers are taken over."""
    swapped = []
    for parent_name, parent in list(model.named_modules()):
        for child_name, child in list(parent.named_children()):
            kernel = _KERNELS.get(type(child))
            if kernel is None:
                continue
            name = f"{parent_name}.{child_name}" if parent_name else child_name
            setattr(parent, child_name, FunctionalBatchNorm(child, name, kernel))
            swapped.append(name)
    return swapped
