"""Layer health over training (Karpathy, *makemore* part 4), for any `nn.Module`: how many
of each nonlinearity's outputs sit where its derivative is (near) zero, and how large each
weight's gradient and update are next to the weight itself.

- saturation: the fraction of a `Tanh`, `Sigmoid` or `ReLU` layer's outputs in its flat
  region: |tanh| > 0.97 (makemore's threshold), |2 sigmoid - 1| > 0.97 (the same inputs,
  since 2 sigmoid(x) - 1 = tanh(x / 2)), a ReLU output of 0;
- grad:data: std(dL/dW) / std(W) for every weight of 2+ dims (biases and BN's gamma and
  beta are left out, as in makemore);
- update:data: std(W_after - W_before) / std(W_after), the step the optimizer really took
  (momentum, Adam and weight decay included); makemore reads its log10 against -3.

Both stds of a ratio are over the same number of values, so neither ratio depends on ddof.

    health = LayerHealth(model, every=10)
    for step in range(steps):
        loss = F.cross_entropy(model(xb), yb)   # the hooks keep each activation's output
        opt.zero_grad()
        loss.backward()
        with health.step(step):                 # saturation, grad:data; then update:data
            opt.step()
    health.close()
    health.series("update_data")                # {"0.weight": (T,), ...} at health.steps
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import Tensor, nn

from bnlab.errors import BnlabError

__all__ = ["FLAT", "KINDS", "LayerHealth", "saturation", "std_ratio"]

FLAT = 0.97  # makemore part 4: a tanh output beyond +-0.97 counts as saturated
ACTIVATIONS = (nn.Tanh, nn.Sigmoid, nn.ReLU)
KINDS = ("saturation", "grad_data", "update_data")


def saturation(module: nn.Module, out: Tensor) -> float:
    """The fraction of `out`, the output of `module` (Tanh, Sigmoid or ReLU), in its flat
    region, where the local derivative is below about 6% of its peak (0 for ReLU)."""
    if isinstance(module, nn.Tanh):
        flat = out.abs() > FLAT
    elif isinstance(module, nn.Sigmoid):
        flat = (2 * out - 1).abs() > FLAT  # 2 sigmoid(x) - 1 = tanh(x / 2)
    elif isinstance(module, nn.ReLU):
        flat = out <= 0
    else:
        names = ", ".join(a.__name__ for a in ACTIVATIONS)
        raise BnlabError(f"module: got {type(module).__name__}, expected one of {names}")
    return flat.float().mean().item()


def std_ratio(num: Tensor, den: Tensor) -> float:
    """std(num) / std(den), for two tensors of one shape (a gradient or update, a weight)."""
    return (num.std() / den.std()).item()


class LayerHealth:
    """Records saturation, grad:data and update:data of `model` every `every` steps.

    `steps` lists the recorded steps; `values[f"{kind}/{name}"]` one float per recorded step,
    where kind is one of KINDS and name the activation module's or the weight's name in
    `model`. A value that could not be measured (no forward since the last record, no
    gradient) is NaN. Call `close()` to remove the forward hooks.
    """

    def __init__(self, model: nn.Module, every: int = 1):
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise BnlabError(f"every: got {every!r}, expected an integer >= 1 (steps)")
        self.every = every
        self._acts = [(n, m) for n, m in model.named_modules() if isinstance(m, ACTIVATIONS)]
        self._weights = [
            (n, p) for n, p in model.named_parameters() if p.ndim >= 2 and p.requires_grad
        ]
        if not self._acts and not self._weights:
            raise BnlabError(
                f"model: {type(model).__name__} has no Tanh, Sigmoid or ReLU module and no "
                "weight of 2+ dims; expected a network to watch"
            )
        self._last: dict[str, Tensor] = {}  # activation name -> its latest output
        self._hooks = [m.register_forward_hook(self._keeper(n)) for n, m in self._acts]
        self.steps: list[int] = []
        self.values: dict[str, list[float]] = {}

    def _keeper(self, name: str):
        def hook(module, inputs, out):
            self._last[name] = out.detach()

        return hook

    @contextmanager
    def step(self, step: int) -> Iterator[None]:
        """Wrap the optimizer step: before it, saturation (of the latest forward) and
        grad:data; after it, update:data. Steps that are not a multiple of `every` pass."""
        if step % self.every:
            yield
            return
        self.steps.append(step)
        for name, module in self._acts:
            out = self._last.pop(name, None)
            self._add("saturation", name, np.nan if out is None else saturation(module, out))
        before = []
        for name, p in self._weights:
            grad = np.nan if p.grad is None else std_ratio(p.grad, p.detach())
            self._add("grad_data", name, grad)
            before.append(p.detach().clone())
        yield
        for (name, p), old in zip(self._weights, before, strict=True):
            with torch.no_grad():
                self._add("update_data", name, std_ratio(p - old, p))

    def _add(self, kind: str, name: str, value: float) -> None:
        self.values.setdefault(f"{kind}/{name}", []).append(value)

    def series(self, kind: str) -> dict[str, np.ndarray]:
        """{name: (T,) array over `steps`} for one of KINDS."""
        if kind not in KINDS:
            raise BnlabError(f"kind: got {kind!r}, expected one of {', '.join(KINDS)}")
        prefix = f"{kind}/"
        return {
            k[len(prefix) :]: np.array(v) for k, v in self.values.items() if k.startswith(prefix)
        }

    def close(self) -> None:
        """Remove the forward hooks; the recorded values stay."""
        for hook in self._hooks:
            hook.remove()
        self._hooks, self._last = [], {}
