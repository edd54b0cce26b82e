"""Which kernel the engine's norm layers default to: torch's fused ATen kernels against
bnlab's functional forms, on the stacked layers themselves.

For BN, noisy BN's BN, and LayerNorm / GroupNorm / InstanceNorm, `model.norm.kernel` picks
torch's fused `batch_norm` / `group_norm` ("aten") or bnlab's hand-written forms ("bnlab");
both compute the same rule (tests/test_engine_norm_parity.py). Batch Renorm and Ghost BN
have bnlab's only, timed for reference. Each layer is timed in training mode, forward +
backward (input and parameter gradients), on activations of the presets' shapes (K = 5
members, conv activations and their gradients in the engine's channels-last layout), one
process, glibc told to keep freed memory as the engine does, round-robin medians; the ratio
is bnlab's time over ATen's (above 1: ATen is faster).

Usage: python benchmarks/norm_kernels.py [--repeat N] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import torch

from bnlab.engine.allocator import keep_freed_memory
from bnlab.engine.norms import NORM_KERNELS, NORM_LAYERS, NormParams
from bnlab.engine.stacked import from_groups, to_groups

K = 5
# (label, activation shape per member): conv layers of cifar10-cnn / the VGG, dense layers
SHAPES = [
    ("conv 32 @ 32x32, B=64", (64, 32, 32, 32)),
    ("conv 64 @ 16x16, B=64", (64, 64, 16, 16)),
    ("conv 128 @ 8x8, B=64", (64, 128, 8, 8)),
    ("dense 512, B=128", (128, 512)),
    ("dense 100, B=60", (60, 100)),
]
NORMS = ("batch", "layer", "group", "instance", "renorm", "ghost")


def _input(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    x = torch.randn(K, *shape, generator=gen)
    if x.dim() == 5:  # the engine's layout: a view of a (B, H, W, K, C) buffer
        x = from_groups(to_groups(x).contiguous(memory_format=torch.channels_last), K)
    return x.requires_grad_()


def _step(layer, x: torch.Tensor, dy: torch.Tensor) -> float:
    """Seconds of one training forward + backward."""
    layer.zero_grad(set_to_none=False)
    x.grad = None
    start = time.perf_counter()
    layer(x).backward(dy)
    return time.perf_counter() - start


def _layers(norm: str, channels: int, batch: int) -> dict:
    """The stacked layer of `norm` per kernel it has (float32)."""
    kernels = NORM_KERNELS if norm in ("batch", "layer", "group", "instance") else ("bnlab",)
    layers = {}
    for kernel in kernels:
        p = NormParams(kernel=kernel)
        groups = 8 if channels % 8 == 0 else 4
        p = replace(p, group=replace(p.group, groups=groups))
        p = replace(p, ghost=replace(p.ghost, virtual_batch_size=batch // 4))  # 4 chunks
        layers[kernel] = NORM_LAYERS[norm].make(K, channels, p, torch.float32)
    return layers


def run(repeat: int) -> None:
    gen = torch.Generator().manual_seed(0)
    print(f"{'shape':24s} {'norm':9s} {'aten ms':>9s} {'bnlab ms':>9s} {'bnlab/aten':>11s}")
    for label, shape in SHAPES:
        x = _input(shape, gen)
        dy = _input(shape, gen).detach()  # the gradient arrives in the activations' layout
        for norm in NORMS:
            if norm == "instance" and len(shape) == 2:
                continue  # instance statistics need positions
            layers = _layers(norm, shape[1], shape[0])
            times = {kernel: [] for kernel in layers}
            for layer in layers.values():
                _step(layer, x, dy)  # first call: dispatch, allocator
            for _ in range(repeat):  # round-robin: load changes hit both kernels alike
                for kernel, layer in layers.items():
                    times[kernel].append(_step(layer, x, dy))
            ms = {kernel: 1e3 * statistics.median(t) for kernel, t in times.items()}
            aten = f"{ms['aten']:9.2f}" if "aten" in ms else f"{'-':>9s}"
            ratio = f"{ms['bnlab'] / ms['aten']:10.2f}x" if "aten" in ms else f"{'-':>11s}"
            print(f"{label:24s} {norm:9s} {aten} {ms['bnlab']:9.2f} {ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="timed calls per layer")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    keep_freed_memory()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, K = {K}, float32")
    run(args.repeat)


if __name__ == "__main__":
    main()
