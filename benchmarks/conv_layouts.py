"""Why the engine's conv stacks are channels-last grouped convolutions: the alternatives timed.

For every conv layer of the conv presets (K = 5 members, batch 64 unless `--batch`, forward +
backward, input gradient except for the first layer), one process, glibc told to keep freed
memory as the engine does (`bnlab.engine.allocator`), round-robin medians:

- grouped NCHW: one convolution with groups = K on (B, K*C, H, W) in the default layout;
- grouped channels-last: the same on a channels_last tensor (the engine's choice), including
  the copy to channels_last that one-input-channel layers need;
- grouped channels-last, input padded: for one input channel per member, a zero channel
  added to input and weight, which turns torch's depthwise kernel (NCHW output, then a copy)
  into an ordinary grouped convolution (not used: its weight gradients differ from the
  depthwise kernel's in the last bits, so stored runs would not replay bit for bit);
- K convolutions: one ordinary convolution per member on its own (B, C, H, W) slice,
  concatenated into the stack's channels-last layout (forward and backward copies included);
- K convolutions NCHW: the seed-style loop's kernel, one model at a time.

Usage: python benchmarks/conv_layouts.py [--repeat N] [--threads N] [--batch B]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from bnlab.engine.allocator import keep_freed_memory

K = 5
# (c_in, c_out, height = width): the conv layers of optstudy-convmlp, cifar10-cnn and the VGG
LAYERS = [
    (1, 32, 28),
    (32, 64, 14),
    (3, 32, 32),
    (32, 64, 16),
    (64, 128, 8),
    (3, 16, 32),
    (16, 16, 32),
    (16, 32, 16),
    (32, 64, 8),
]
CL = torch.channels_last


def variants(c_in: int, c_out: int, hw: int, batch: int) -> dict:
    first = c_in <= 3  # the data layer: no input gradient
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(K * c_out, c_in, 3, 3, generator=g, requires_grad=True)
    x = torch.randn(batch, K * c_in, hw, hw, generator=g)
    grad = torch.randn(batch, K * c_out, hw, hw, generator=g)
    x_nchw, x_cl = x.clone(), x.contiguous(memory_format=CL)
    grad_cl = grad.contiguous(memory_format=CL)
    for t in (x_nchw, x_cl):
        t.requires_grad_(not first)
    members = [w.detach().clone().requires_grad_() for w in weight.chunk(K)]
    xs = [xk.detach().clone().requires_grad_(not first) for xk in x.chunk(K, dim=1)]

    def grouped_nchw() -> None:
        F.conv2d(x_nchw, weight, padding=1, groups=K).backward(grad)

    def grouped_cl() -> None:
        y = F.conv2d(x_cl, weight, padding=1, groups=K).contiguous(memory_format=CL)
        y.backward(grad_cl)

    def grouped_cl_padded() -> None:
        if c_in != 1:  # only one input channel per group takes the depthwise kernel
            return grouped_cl()
        x_pad = torch.cat([x_cl, torch.zeros_like(x_cl)], 1)  # (B, 2K, H, W): member k's
        x_pad = x_pad.view(batch, 2, K, hw, hw).transpose(1, 2).reshape(batch, 2 * K, hw, hw)
        w_pad = torch.cat([weight, torch.zeros_like(weight)], 1)  # (K*C_out, 2, 3, 3)
        y = F.conv2d(x_pad.contiguous(memory_format=CL), w_pad, padding=1, groups=K)
        y.contiguous(memory_format=CL).backward(grad_cl)

    def per_member_cl() -> None:
        pairs = zip(x_cl.chunk(K, 1), members, strict=True)
        ys = [F.conv2d(xk, wk, padding=1) for xk, wk in pairs]
        torch.cat(ys, 1).contiguous(memory_format=CL).backward(grad_cl)

    def per_member_nchw() -> None:
        for xk, wk, gk in zip(xs, members, grad.chunk(K, 1), strict=True):
            F.conv2d(xk, wk, padding=1).backward(gk.contiguous())

    return {
        "grouped NCHW": grouped_nchw,
        "grouped channels-last": grouped_cl,
        "grouped CL, input padded": grouped_cl_padded,
        "K convs -> channels-last": per_member_cl,
        "K convs NCHW (seed loop)": per_member_nchw,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--batch", type=int, default=64, help="images per member")
    args = parser.parse_args()
    keep_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; GFLOP/s (ms), K={K}")
    names = list(variants(1, 1, 4, 1))
    print(f"{'layer':<16}" + "".join(f"{n:>27}" for n in names))
    for c_in, c_out, hw in LAYERS:
        fns = variants(c_in, c_out, hw, args.batch)
        for fn in fns.values():
            fn()
        times: dict[str, list[float]] = {n: [] for n in fns}
        for _ in range(args.repeat):
            for name, fn in fns.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        passes = 2 if c_in <= 3 else 3  # forward, weight grad (, input grad)
        flop = 2 * args.batch * K * c_out * c_in * 9 * hw * hw * passes
        cells = ""
        for name in names:
            t = statistics.median(times[name])
            cells += f"{flop / t / 1e9:>18.1f} ({t * 1e3:5.1f})"
        print(f"{f'{c_in}->{c_out} @{hw}':<16}" + cells, flush=True)


if __name__ == "__main__":
    main()
