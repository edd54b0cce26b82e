"""Batch Normalization forward+backward, float32, training mode: bnlab vs ATen and friends.

    .venv/bin/python benchmarks/bn_op.py [--repeat N] [--no-mallopt]

All variants run in one process, on the same inputs, so the ratios are comparable even
though this machine's absolute speed varies by +-30% between processes. Reported per shape:
median time of forward+backward, the ratio to ATen (torch.nn.BatchNorm*), and the effective
bandwidth (5 tensor-sized transfers: read x, write y, read x and dy, write dx) against the
measured copy bandwidth (clone of the same tensor: one read + one write).

By default glibc's malloc is told to keep large blocks (mallopt M_MMAP_MAX=0, a large
M_TRIM_THRESHOLD): otherwise every fresh 32 MiB tensor is mmap'ed and page-faulted in, and
the page faults, not the arithmetic, dominate every variant.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch
from torch import nn

import bnlab
from bnlab import _fastpath, reference
from bnlab.engine.allocator import keep_freed_memory

SHAPES = [(128, 64, 32, 32), (60, 100), (1024, 4096)]


def interleaved_medians(fns: dict, repeat: int) -> dict[str, float]:
    """Median seconds per call, timing the variants round-robin so that load from other
    processes hits every variant alike (this machine's speed drifts within a run too)."""
    for fn in fns.values():
        fn()  # warm-up (and compilation, which is timed separately)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def naive_bn(x, weight, bias, eps=1e-5):
    """Autograd-composed torch ops: what people write first."""
    dims = (0, *range(2, x.dim()))
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mu = x.mean(dims, keepdim=True)
    var = ((x - mu) ** 2).mean(dims, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * weight.view(shape) + bias.view(shape)


def variants(shape):
    c = shape[1]
    cls = {2: "BatchNorm1d", 4: "BatchNorm2d"}[len(shape)]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g).requires_grad_()
    dy = torch.randn(shape, generator=g)
    aten, ours = getattr(nn, cls)(c), getattr(bnlab, cls)(c)
    weight, bias = nn.Parameter(torch.ones(c)), nn.Parameter(torch.zeros(c))

    def module(m):
        def run():
            x.grad = None
            m(x).backward(dy)

        return run

    def plain():
        _fastpath.disable("benchmark: plain Function")
        try:
            x.grad = None
            bnlab.batch_norm(x, None, None, weight, bias, training=True).backward(dy)
        finally:
            _fastpath.enable()

    def naive():
        x.grad = None
        naive_bn(x, weight, bias).backward(dy)

    xn, dyn = x.detach().numpy(), dy.numpy()
    gn, bn_ = np.ones(c, np.float32), np.zeros(c, np.float32)

    def numpy_ref():
        _, cache = reference.forward(xn, gn, bn_)
        reference.backward(dyn, cache)

    return x, {
        "torch.nn (ATen)": module(aten),
        "bnlab module (default)": module(ours),
        "bnlab Function (plain)": plain,
        "naive autograd ops": naive,
        "NumPy reference": numpy_ref,
    }


def first_call_cost(shape) -> float:
    """Seconds for the first forward+backward of a fresh shape: includes compilation."""
    _x, table = variants(shape)
    t0 = time.perf_counter()
    table["bnlab module (default)"]()
    return time.perf_counter() - t0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="timed repetitions per variant")
    parser.add_argument("--no-mallopt", action="store_true", help="keep glibc's defaults")
    args = parser.parse_args(argv)
    mallopt = False if args.no_mallopt else keep_freed_memory()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, mallopt={mallopt}")
    print(f"bnlab fast path: {_fastpath.status()} (inputs >= {_fastpath.MIN_NUMEL} elements)\n")
    for shape in SHAPES:
        compile_s = first_call_cost(shape)
        x, table = variants(shape)
        table["copy (x.clone())"] = lambda x=x: x.detach().clone()
        medians = interleaved_medians(table, args.repeat)
        copy_s = medians.pop("copy (x.clone())")
        nbytes = x.numel() * x.element_size()
        print(
            f"shape {shape}  ({nbytes / 2**20:.1f} MiB; copy {2 * nbytes / copy_s / 1e9:.1f} GB/s;"
            f" first call of the bnlab module {compile_s:.2f} s)"
        )
        print(f"  {'variant':26s} {'fwd+bwd ms':>11s} {'vs ATen':>8s} {'GB/s':>7s} {'% copy':>7s}")
        base = medians["torch.nn (ATen)"]
        for name, t in medians.items():
            gbs = 5 * nbytes / t / 1e9
            pct = 100 * gbs / (2 * nbytes / copy_s / 1e9)
            print(f"  {name:26s} {t * 1e3:11.2f} {base / t:7.2f}x {gbs:7.1f} {pct:6.0f}%")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
