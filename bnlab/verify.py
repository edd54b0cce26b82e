"""`bnlab verify`: show, on real numbers, that bnlab's Batch Normalization is torch's.

Runs the core checks a user can read in one screen: forward, input/parameter gradients and
running statistics against `torch.nn.BatchNorm*` (train and eval), finite-difference gradient
checks in float64, second derivatives, numerical stability on a large offset, and BN folding.
Each line states the quantity, the max difference, the tolerance and a verdict.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

import bnlab

if TYPE_CHECKING:
    import torch

# torch is imported inside the checks: `bnlab verify --help` answers without loading it

Check = tuple[str, float, float]  # (what, max abs difference, tolerance)


def _maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.double() - b.double()).abs().max().item()


def _parity(cls_name: str, shape: tuple[int, ...]) -> list[Check]:
    import torch
    from torch import nn

    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g) * 3 + 2
    dy = torch.randn(shape, generator=g)
    ours, ref = getattr(bnlab, cls_name)(shape[1]), getattr(nn, cls_name)(shape[1])
    out = []
    for mode in ("train", "eval"):
        results = []
        for m in (ours, ref):
            m.train(mode == "train")
            xi = x.clone().requires_grad_()
            y = m(xi)
            y.backward(dy)
            results.append((y, xi.grad, m.weight.grad, m.running_var))
            m.zero_grad()
        for what, a, b in zip(["y", "dx", "dgamma", "running_var"], *results, strict=True):
            out.append((f"{cls_name}{tuple(shape)} {mode}: {what}", _maxdiff(a, b), 1e-4))
    return out


def _gradchecks() -> list[Check]:
    import torch

    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 3, 4, generator=g, dtype=torch.float64).requires_grad_()
    w = (torch.rand(3, generator=g, dtype=torch.float64) + 0.5).requires_grad_()

    def f(x, w):
        return bnlab.batch_norm(x, None, None, w, None, training=True)

    ok1 = torch.autograd.gradcheck(f, (x, w), raise_exception=False)
    ok2 = torch.autograd.gradgradcheck(f, (x, w), raise_exception=False)
    return [
        ("gradcheck, float64 finite differences", 0.0 if ok1 else float("inf"), 0.0),
        ("gradgradcheck (second derivatives)", 0.0 if ok2 else float("inf"), 0.0),
    ]


def _stability() -> list[Check]:
    import torch

    x = 1e4 + torch.randn(4096, 4, generator=torch.Generator().manual_seed(2))
    x64 = x.double()
    ref = (x64 - x64.mean(0)) / torch.sqrt(x64.var(0, unbiased=False) + 1e-5)
    y = bnlab.batch_norm(x, None, None, training=True)
    return [("float32 input 1e4 + N(0, 1) vs float64", _maxdiff(y, ref), 5e-3)]


def _fold() -> list[Check]:
    import torch
    from torch import nn

    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), bnlab.BatchNorm2d(8), nn.ReLU())
    for _ in range(3):
        model(torch.randn(16, 3, 8, 8) * 2 + 1)
    model.eval()
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        return [
            (
                "fold_batchnorm(conv, bn) vs eval model",
                _maxdiff(bnlab.fold_batchnorm(model)(x), model(x)),
                1e-4,
            )
        ]


CHECKS: list[Callable[[], list[Check]]] = [
    lambda: _parity("BatchNorm1d", (60, 100)),
    lambda: _parity("BatchNorm2d", (16, 8, 6, 6)),
    lambda: _parity("BatchNorm3d", (4, 5, 3, 4, 4)),
    _gradchecks,
    _stability,
    _fold,
]


def run(args: argparse.Namespace) -> int:
    rows = [row for check in CHECKS for row in check()]
    width = max(len(what) for what, _, _ in rows)
    print(f"{'check':{width}s}  {'max |diff|':>10s}  {'tolerance':>9s}  verdict")
    failed = 0
    for what, diff, tol in rows:
        ok = diff <= tol
        failed += not ok
        print(f"{what:{width}s}  {diff:10.2e}  {tol:9.0e}  {'ok' if ok else 'FAILED'}")
    print(f"\n{len(rows) - failed} passed, {failed} failed")
    return 1 if failed else 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="check bnlab's Batch Normalization against torch.nn, autograd and float64",
        description=__doc__,
        epilog="example:\n  bnlab verify    # exit status 1 if any check fails",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=run)
