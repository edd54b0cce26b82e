"""The compiled fast path of the training-mode Batch Normalization kernels.

Eager PyTorch runs the forward as ~7 separate passes over the input and the backward as ~10;
on a CPU each pass is memory-bound, so the op count *is* the cost. `torch.compile` fuses them
into a few loops (statistics, then normalize; gradient sums, then dx). The math is the same
functions as the eager path, so the two cannot drift apart.

Used only where it pays: training mode, on the CPU, float32/float64, inputs of at least
`MIN_NUMEL` elements (compilation costs seconds per new shape, which small inputs never win
back). Set `BNLAB_COMPILE=0` to turn it off. If compilation fails (no C++ compiler, an
unsupported platform), bnlab warns once and falls back to the eager Function for good.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

import torch

MIN_NUMEL = 1 << 20  # elements; below this the eager kernels are used

_compiled: dict[str, Callable] = {}
_disabled_reason: str | None = (
    "BNLAB_COMPILE=0" if os.environ.get("BNLAB_COMPILE", "1") == "0" else None
)


def status() -> str:
    """'enabled', or why the fast path is off."""
    return "enabled" if _disabled_reason is None else f"disabled ({_disabled_reason})"


def wants(x: torch.Tensor, compiled: bool | None = None) -> bool:
    """Whether a training-mode call on `x` should take the compiled kernels.

    compiled: None decides by size (`MIN_NUMEL`), True skips the size test, False says no.
    """
    if compiled is False:
        return False
    return (
        _disabled_reason is None
        and x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and (compiled or x.numel() >= MIN_NUMEL)
        and not torch.compiler.is_compiling()  # the caller's compile already fuses
        and not torch._C._are_functorch_transforms_active()  # vmap/grad: stay on torch ops
    )


def run(name: str, eager: Callable, *args):
    """Call the compiled version of `eager`; on any compile failure, fall back for good."""
    global _disabled_reason
    if name not in _compiled:
        _compiled[name] = torch.compile(eager, fullgraph=True, dynamic=False)
    try:
        return _compiled[name](*args)
    except Exception as err:  # a compiler failure surfaces as many exception types
        _disabled_reason = f"torch.compile failed: {type(err).__name__}: {err}".splitlines()[0]
        warnings.warn(f"bnlab: {_disabled_reason}; using the eager kernels", stacklevel=3)
        return eager(*args)


def disable(reason: str) -> None:
    """Turn the fast path off for this process (benchmarks compare both paths)."""
    global _disabled_reason
    _disabled_reason = reason


def enable() -> None:
    global _disabled_reason
    _disabled_reason = None
