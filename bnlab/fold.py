"""Fold Batch Normalization into the preceding Linear or Conv layer, for inference.

In eval mode BN is a fixed per-channel affine map, y = scale * z + shift
(`functional.eval_scale_shift`, Ioffe & Szegedy 2015, Alg. 2, step 11). If z = W x + b comes
from a Linear or Conv layer, the two compose into one layer:

    W' = scale * W   (scaling output channel c)
    b' = scale * b + shift

Which BN follows which layer is read from the model's graph, traced with `torch.fx`, so BN
inside residual blocks, shortcuts and custom `forward`s is found. A model that cannot be
traced falls back to the `nn.Sequential` rule (a BN directly after a layer in a Sequential).
"""

from __future__ import annotations

import copy
import itertools
import warnings
from collections import Counter
from dataclasses import dataclass

import torch
from torch import fx, nn
from torch.nn.modules.batchnorm import _BatchNorm

from bnlab import _layers
from bnlab.functional import eval_scale_shift

__all__ = ["FoldReport", "FoldTraceError", "fold_batchnorm"]


@dataclass(frozen=True)
class FoldReport:
    """What `fold_batchnorm` did: which BN went into which layer, which were left and why."""

    method: str  # "fx" (the traced graph) or "sequential" (the fallback rule)
    folded: tuple[tuple[str, str], ...]  # (BN name, layer it was folded into)
    left: tuple[tuple[str, str], ...]  # (BN name, why it was left in place)
    trace_error: str | None = None  # why tracing failed, when method is "sequential"


class FoldTraceError(RuntimeError):
    """torch.fx cannot trace the model; names the module where tracing failed."""


def fold_batchnorm(
    module: nn.Module, *, method: str = "auto", return_report: bool = False
) -> nn.Module | tuple[nn.Module, FoldReport]:
    """Return an eval-mode copy of `module` with every foldable BN folded into its layer.

    A BN (torch's or bnlab's, or the engine's stacked one) is folded when it tracks running
    statistics and its input comes only from a Linear, Conv1d/2d/3d or ConvTranspose1d/2d/3d
    layer (or the engine's StackedLinear / StackedConv2d) whose output nothing else reads,
    which is called once and whose parameters are not shared. A folded BN disappears from
    the copy. Every other BN is left in place and the report says why.

    Args:
        module: any `nn.Module`; it is not modified.
        method: "fx" traces `module.forward` with torch.fx and raises `FoldTraceError`
            naming the module where tracing failed; "sequential" folds only a BN directly
            after its layer inside an `nn.Sequential`; "auto" (default) tries "fx" and falls
            back to "sequential" with a warning.
        return_report: also return a `FoldReport`. Without it, BN left in place are listed
            in a warning.

    Returns:
        The folded copy in eval mode (a `torch.fx.GraphModule` when traced), or
        `(folded, report)`. Its outputs equal the unfolded eval model's within float
        rounding. A Linear followed by BatchNorm1d folds exactly when BN's channel axis is
        the Linear's output features, i.e. for (N, F) activations.
    """
    if method not in ("auto", "fx", "sequential"):
        raise ValueError(f"method: got {method!r}, expected 'auto', 'fx' or 'sequential'")
    model = copy.deepcopy(module).eval()
    report = None
    if method != "sequential":
        try:
            model, report = _fold_traced(model)
        except FoldTraceError as err:
            if method == "fx":
                raise
            warnings.warn(f"{err}; folding with the nn.Sequential rule instead", stacklevel=2)
            model, report = _fold_sequentials(model, trace_error=str(err))
    else:
        model, report = _fold_sequentials(model, trace_error=None)
    if report.left and not return_report:
        left = "; ".join(f"{name}: {why}" for name, why in report.left)
        warnings.warn(f"fold_batchnorm left {len(report.left)} BN in place: {left}", stacklevel=2)
    return (model, report) if return_report else model


class _Tracer(fx.Tracer):
    """Keeps BN and the foldable layers as single nodes, and names the module that fails."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return _is_batchnorm(m) or _layers.is_foldable(m) or super().is_leaf_module(m, qualname)

    def call_module(self, m, forward, args, kwargs):
        try:
            return super().call_module(m, forward, args, kwargs)
        except FoldTraceError:
            raise
        except Exception as err:  # torch.fx raises TraceError, TypeError, AttributeError, ...
            name = self.path_of_module(m)
            raise FoldTraceError(
                f"fold_batchnorm: torch.fx cannot trace module '{name}' "
                f"({type(m).__name__}): {type(err).__name__}: {err}".splitlines()[0]
            ) from err


def _fold_traced(model: nn.Module) -> tuple[fx.GraphModule, FoldReport]:
    try:
        graph = _Tracer().trace(model)
    except FoldTraceError:
        raise
    except Exception as err:
        raise FoldTraceError(
            f"fold_batchnorm: torch.fx cannot trace {type(model).__name__}.forward: "
            f"{type(err).__name__}: {err}".splitlines()[0]
        ) from err
    gm = fx.GraphModule(model, graph)
    modules = dict(gm.named_modules())
    calls = Counter(n.target for n in graph.nodes if n.op == "call_module")
    shared = _shared_parameter_owners(gm)
    folded, left = [], []
    for node in list(graph.nodes):
        if node.op != "call_module" or not _is_batchnorm(modules[node.target]):
            continue
        why = _why_not_traced(node, modules, calls, shared)
        if why is not None:
            left.append((node.target, why))
            continue
        layer_node = node.args[0]
        _fold_pair(modules[layer_node.target], modules[node.target])
        node.replace_all_uses_with(layer_node)
        graph.erase_node(node)
        folded.append((node.target, layer_node.target))
    graph.lint()
    gm.recompile()
    gm.delete_all_unused_submodules()
    return gm.eval(), FoldReport("fx", tuple(folded), tuple(left))


def _why_not_traced(node: fx.Node, modules, calls, shared) -> str | None:
    bn = modules[node.target]
    if bn.running_mean is None:
        return "uses batch statistics in eval (track_running_stats=False): not an affine map"
    src = node.args[0] if node.args else None
    if not isinstance(src, fx.Node) or len(node.args) != 1 or node.kwargs:
        return "called with arguments other than one input tensor"
    if src.op != "call_module":
        what = src.target if src.op == "placeholder" else getattr(src.target, "__name__", src)
        return f"input comes from {src.op} '{what}', not from a Linear/Conv layer"
    layer = modules[src.target]
    if not _layers.is_foldable(layer):
        return f"input comes from '{src.target}' ({type(layer).__name__}), not a Linear/Conv"
    if len(src.users) > 1:
        others = sorted(u.name for u in src.users if u is not node)
        return f"the output of '{src.target}' is also read by {', '.join(others)}"
    if calls[src.target] > 1:
        return f"'{src.target}' is called {calls[src.target]} times; folding changes every call"
    if src.target in shared:
        return f"'{src.target}' shares its parameters with another module"
    out = _layers.out_channels(layer)
    if _num_features(bn) != out:
        return f"{_num_features(bn)} channels, but '{src.target}' has {out} output channels"
    return None


def _fold_sequentials(model: nn.Module, trace_error: str | None):
    folded, left = [], []
    names = {m: n for n, m in model.named_modules()}
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        prefix = names[seq] + "." if names[seq] else ""
        for prev, name in itertools.pairwise(list(seq._modules)):
            layer, bn = seq._modules[prev], seq._modules[name]
            if _is_batchnorm(bn) and _layers.is_foldable(layer) and _seq_foldable(bn, layer):
                _fold_pair(layer, bn)
                seq._modules[name] = nn.Identity()
                folded.append((prefix + name, prefix + prev))
    done = {bn for bn, _ in folded}
    why = "not directly after a Linear/Conv layer in an nn.Sequential, or not foldable there"
    for name, m in model.named_modules():
        if _is_batchnorm(m) and name not in done:
            left.append((name, why))
    return model, FoldReport("sequential", tuple(folded), tuple(left), trace_error)


def _seq_foldable(bn: nn.Module, layer: nn.Module) -> bool:
    return bn.running_mean is not None and _num_features(bn) == _layers.out_channels(layer)


def _is_batchnorm(m: nn.Module) -> bool:
    # bnlab's modules subclass torch's _BatchNorm, so this covers torch's and bnlab's
    return isinstance(m, _BatchNorm) or _layers.is_stacked_batchnorm(m)


def _num_features(bn: nn.Module) -> int:
    return bn.running_mean.shape[-1]


def _shared_parameter_owners(model: nn.Module) -> set[str]:
    """Names of modules holding a parameter that some other module also holds (tied)."""
    owners: dict[int, set[str]] = {}
    for name, m in model.named_modules(remove_duplicate=False):
        for p in m.parameters(recurse=False):
            owners.setdefault(id(p), set()).add(name)
    return {n for names in owners.values() if len(names) > 1 for n in names}


@torch.no_grad()
def _fold_pair(layer: nn.Module, bn: nn.Module) -> None:
    # (C,) for torch.nn layers, (K, C) for the engine's stacked ones
    scale, shift = eval_scale_shift(bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.eps)
    _layers.scale_out_channels(layer, scale)
    old_bias = layer.bias if layer.bias is not None else torch.zeros_like(shift)
    new_bias = (old_bias * scale + shift).to(layer.weight.dtype)
    if layer.bias is None:
        layer.bias = nn.Parameter(new_bias)
    else:
        layer.bias.copy_(new_bias)
