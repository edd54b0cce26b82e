"""Engine throughput on the Ioffe & Szegedy 2015 MNIST protocol (Sec. 4.1): 784-100-100-100-10
sigmoid + BN, batch 60, SGD. One process, so the numbers are comparable as ratios (this
machine varies by ~30% between processes).

(a) the idiomatic seed-style loop: DataLoader over a TensorDataset, nn.Sequential with
    nn.BatchNorm1d, torch.optim.SGD, `loss.item()` per step;
(b) bnlab's stacked engine at K = 1, 4, 16, 64: the per-step work of `train_stack` (batch
    gather, forward, backward, one optimizer update, per-step metric logging incl. per-layer
    gradient norms), eager and with the BN kernels compiled (ModelConfig.compile_norm), and
    optionally the whole model forward compiled (compile time reported apart).

Usage: python benchmarks/engine.py [--seconds S] [--ks 1,4,16,64] [--compile] [--threads N]
"""

from __future__ import annotations

import argparse
import itertools
import resource
import time
from dataclasses import replace

import torch
from torch import nn

from bnlab import data
from bnlab.engine.data import TrainData
from bnlab.engine.metrics import MetricLog
from bnlab.engine.presets import ioffe2015_mnist
from bnlab.engine.train import build_stack, train_step

WIDTHS = (784, 100, 100, 100, 10)
BATCH = 60


def flops_per_model_step() -> float:
    """Matmul FLOPs: forward + weight grads for every layer, input grads after the first."""
    macs = [a * b for a, b in itertools.pairwise(WIDTHS)]
    return 2.0 * BATCH * (2 * sum(macs) + sum(macs[1:]))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def timed(step, seconds: float, warmup: int = 20) -> float:
    """Steps per second of `step()` run for about `seconds`."""
    for _ in range(warmup):
        step()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(10):
            step()
        n += 10
    return n / (time.perf_counter() - start)


def matmul_floor(members: int, seconds: float) -> float:
    """Model-steps/s of the step's matmuls alone (the bmm calls of forward and backward,
    same shapes and layouts as the engine): no stacked design can beat this rate."""
    g = torch.Generator().manual_seed(0)
    ws = [torch.randn(members, a, b, generator=g) for a, b in itertools.pairwise(WIDTHS)]
    x = torch.randn(members, BATCH, WIDTHS[0], generator=g)

    def step() -> None:
        acts = [x]
        for w in ws:
            acts.append(torch.bmm(acts[-1], w))  # forward (K, B, out)
        grad = acts[-1]
        for i in range(len(ws) - 1, -1, -1):
            torch.bmm(acts[i].transpose(1, 2), grad)  # dW (K, in, out)
            if i > 0:
                grad = torch.bmm(grad, ws[i].transpose(1, 2))  # dx (K, B, in)

    return timed(step, seconds) * members


def seed_style(x: torch.Tensor, y: torch.Tensor, seconds: float) -> float:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(WIDTHS[:-1]):
        layers += [nn.Linear(a, b, bias=False), nn.BatchNorm1d(b), nn.Sigmoid()]
    model = nn.Sequential(nn.Flatten(), *layers, nn.Linear(WIDTHS[-2], WIDTHS[-1]))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=BATCH, shuffle=True, drop_last=True
    )
    batches = iter(loader)
    losses = []

    def step() -> None:
        nonlocal batches
        try:
            xb, yb = next(batches)
        except StopIteration:
            batches = iter(loader)
            xb, yb = next(batches)
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        losses.append(loss.item())

    return timed(step, seconds)


def bnlab_stack(tdata: TrainData, members: int, seconds: float, mode: str) -> tuple:
    """mode: "eager", "compiled BN" (ModelConfig.compile_norm) or "compiled model"."""
    cfg = replace(ioffe2015_mnist(), seeds=members, norms=("batch",))
    if mode == "compiled BN":
        cfg = replace(cfg, model=replace(cfg.model, compile_norm=True))
    stack = build_stack(cfg, "batch", tdata)
    log = MetricLog(stack.model, stack.optimizer, capacity=1024)
    start = time.perf_counter()
    if mode == "compiled model":
        stack.model.forward = torch.compile(stack.model.forward, dynamic=False)
    train_step(stack.model, stack.optimizer, *stack.batches.next())  # compiles, if anything
    compile_s = time.perf_counter() - start

    def step() -> None:
        xb, yb = stack.batches.next()
        loss, acc = train_step(stack.model, stack.optimizer, xb, yb)
        if len(log.steps) == 1000:
            log.drain()
        log.record(0, loss, acc)

    return timed(step, seconds) * members, compile_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="timed seconds per config")
    parser.add_argument("--ks", default="1,4,16,64", help="stack sizes K")
    parser.add_argument(
        "--compile", action="store_true", help="also time torch.compile of the whole model"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    train = data.load("mnist", "train")
    x, y = data.to_tensor(train, "binarize")
    tdata = TrainData(x, y, x[:1000], y[:1000], train.source, "")
    gflop = flops_per_model_step() / 1e9
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"{gflop * 1e3:.1f} MFLOP per model-step (matmuls)"
    )
    base = seed_style(x, y, args.seconds)
    print(f"{'config':<34}{'model-steps/s':>14}{'x seed':>8}{'GFLOP/s':>9}{'peak RSS MB':>13}")
    print(
        f"{'seed-style loop':<34}{base:>14.0f}{1.0:>8.2f}{base * gflop:>9.1f}{peak_rss_mb():>13.0f}"
    )
    for k in (int(v) for v in args.ks.split(",")):
        rate = matmul_floor(k, args.seconds)
        name = f"matmuls alone K={k} (ceiling)"
        print(f"{name:<34}{rate:>14.0f}{rate / base:>8.2f}{rate * gflop:>9.1f}{'':>13}")
    modes = ["eager", "compiled BN"] + (["compiled model"] if args.compile else [])
    for mode in modes:
        for k in (int(v) for v in args.ks.split(",")):
            rate, compile_s = bnlab_stack(tdata, k, args.seconds, mode)
            name = f"bnlab K={k} {mode}" + (f" ({compile_s:.0f}s)" if mode != "eager" else "")
            print(
                f"{name:<34}{rate:>14.0f}{rate / base:>8.2f}{rate * gflop:>9.1f}"
                f"{peak_rss_mb():>13.0f}"
            )


if __name__ == "__main__":
    main()
