"""The engine against the loop a student would write, on every preset, in one run.

For each preset, K seeds x (BN, baseline), the same number of steps and one evaluation of the
whole test set at the end:

(a) the seed-style loop: one `nn.Sequential` at a time (torch.nn Conv2d/Linear, BatchNorm,
    activation, MaxPool), a DataLoader over a TensorDataset (per-sample crop + flip for the
    augmented preset, as torchvision's transforms do), torch.optim, `loss.item()` per step,
    evaluation in batches of 1,000 in eval mode;
(b) `bnlab.engine.train`: both stacks, logging every step to SQLite, checkpoints, evaluation.

Both include start-up (data to tensors, model building); (b) also writes its results database.
Reported per preset: model-steps/s of the whole runs and their ratio; the ratio of the training
steps alone (the engine's phases timed apart in a third pass); GFLOP/s (conv/matmul FLOPs of
forward and backward), the *ceiling* (the same stacked conv/matmul kernels alone: no norm, no
activation, no data, no optimizer) and the *bound* it sets on the ratio (ceiling / the seed
loop's steps: the train-only ratio if everything but those kernels cost nothing), start-up
and one evaluation's time, the evaluation's share
of a run at the preset's evaluation interval, and each run's peak resident memory. Every run
is a fresh process (nothing warm or shared), and the variants run round-robin, so load from
other processes hits both alike; ratios are the numbers to read
(this machine's absolute speed varies by ~30% between runs).

Usage: python benchmarks/engine.py [--quick] [--presets a,b] [--repeat N] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from bnlab.engine import get_preset
from bnlab.engine.allocator import keep_freed_memory
from bnlab.engine.config import TrainConfig
from bnlab.engine.context import RunContext, resolve_device
from bnlab.engine.data import load_data
from bnlab.engine.metrics import MetricLog
from bnlab.engine.models import build_model
from bnlab.engine.norms import NORM_KERNELS
from bnlab.engine.train import build_stack, evaluate, train, train_step

# preset -> (members K, steps timed, steps timed with --quick)
PRESETS = {
    "ioffe2015-mnist": (16, 600, 40),
    "optstudy-mlp": (5, 300, 20),
    "optstudy-convmlp": (5, 30, 2),
    "cifar10-cnn": (5, 30, 3),
    "santurkar2018-vgg": (5, 30, 3),
}


def flops_per_model_step(cfg: TrainConfig, input_shape: tuple[int, int, int]) -> float:
    """Conv and matmul FLOPs of one model's forward + backward (no input grad for layer 1)."""
    (c, h, w), total, first = input_shape, 0.0, True
    for i, c_out in enumerate(cfg.model.conv_channels, start=1):
        total += 2 * cfg.batch_size * c * c_out * 9 * h * w * (2 if first else 3)
        c, first = c_out, False
        if i % cfg.model.pool_every == 0:
            h, w = h // 2, w // 2
    fan_in = c * h * w
    for fan_out in (*cfg.model.hidden, cfg.model.num_classes):
        total += 2 * cfg.batch_size * fan_in * fan_out * (2 if first else 3)
        fan_in, first = fan_out, False
    return total


def in_fresh_process(fn, *args) -> dict:
    """fn(*args) -> dict of seconds, run in a fresh process (spawned, so nothing is warm or
    shared); the dict gains that process's peak resident memory in MB."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_measured, fn, *args).result()


def _measured(fn, *args) -> dict:
    threads = int(os.environ.get("BNLAB_BENCH_THREADS", "0"))
    if threads:
        torch.set_num_threads(threads)
    out = fn(*args)
    out["rss_mb"] = _peak_rss_mb()
    return out


def _peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM; ru_maxrss would carry the parent's peak
    across the spawn's fork + exec)."""
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    return kb / 1024


def torch_model(cfg: TrainConfig, norm: str, input_shape) -> nn.Sequential:
    """The preset's network as a student writes it: torch.nn layers, NCHW."""
    m, (c, h, w) = cfg.model, input_shape
    act = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "identity": nn.Identity}
    bn = norm == "batch"
    layers: list[nn.Module] = []
    for i, c_out in enumerate(m.conv_channels, start=1):
        layers += [nn.Conv2d(c, c_out, 3, padding=1, bias=not bn)]
        layers += [nn.BatchNorm2d(c_out)] if bn else []
        layers += [act[m.activation]()]
        c = c_out
        if i % m.pool_every == 0:
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
    layers.append(nn.Flatten())
    fan_in = c * h * w
    for fan_out in m.hidden:
        layers += [nn.Linear(fan_in, fan_out, bias=not bn)]
        layers += [nn.BatchNorm1d(fan_out)] if bn else []
        layers += [act[m.activation]()]
        fan_in = fan_out
    layers.append(nn.Linear(fan_in, m.num_classes))
    if m.init == "gaussian":
        for layer in layers:
            if isinstance(layer, nn.Linear | nn.Conv2d):
                nn.init.normal_(layer.weight, 0.0, m.init_std)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)


class CropFlip(torch.utils.data.Dataset):
    """torchvision's RandomCrop(32, padding=4) + RandomHorizontalFlip, one sample at a time."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        img = nn.functional.pad(self.x[i], (4, 4, 4, 4))
        top, left = torch.randint(0, 9, (2,)).tolist()
        img = img[:, top : top + 32, left : left + 32]
        return (img.flip(-1) if torch.rand(()) < 0.5 else img), self.y[i]


def seed_style_run(cfg: TrainConfig, steps: int, device: torch.device) -> dict:
    """K seeds x (BN, baseline), one model at a time; seconds for start-up, steps, evaluation."""
    times = {"startup": 0.0, "train": 0.0, "eval": 0.0}
    start = time.perf_counter()
    data = load_data(cfg.data).to(device)
    times["startup"] += time.perf_counter() - start
    for norm in ("batch", "none"):
        for seed in range(cfg.seeds):
            start = time.perf_counter()
            torch.manual_seed(seed)
            model = torch_model(cfg, norm, data.input_shape).to(device)
            o = cfg.optim
            opt = (
                torch.optim.SGD(
                    model.parameters(), o.lr, momentum=o.momentum, weight_decay=o.weight_decay
                )
                if o.name == "sgd"
                else torch.optim.Adam(model.parameters(), o.lr, weight_decay=o.weight_decay)
            )
            train_set = (
                CropFlip(data.x_train, data.y_train)
                if cfg.data.augment
                else torch.utils.data.TensorDataset(data.x_train, data.y_train)
            )
            loader = torch.utils.data.DataLoader(
                train_set, batch_size=cfg.batch_size, shuffle=True, drop_last=True
            )
            times["startup"] += time.perf_counter() - start
            start = time.perf_counter()
            batches, losses = iter(loader), []
            for _ in range(steps):
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
            times["train"] += time.perf_counter() - start
            start = time.perf_counter()
            seed_style_eval(model, data.x_test, data.y_test)
            times["eval"] += time.perf_counter() - start
    return times


@torch.no_grad()
def seed_style_eval(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    correct = sum(
        int((model(x[i : i + 1000]).argmax(1) == y[i : i + 1000]).sum())
        for i in range(0, len(y), 1000)
    )
    model.train()
    return correct / len(y)


def bnlab_run(cfg: TrainConfig, steps: int, device: torch.device) -> dict:
    """`bnlab.engine.train` of both stacks; eval time measured by a second, eval-only pass."""
    cfg = replace(cfg, steps=steps, epochs=0, eval_every=steps, checkpoint_every=steps)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        train(cfg, Path(out), RunContext(device=device.type, progress=False))
        total = time.perf_counter() - start
    return {"total": total}


def bnlab_parts(cfg: TrainConfig, steps: int, device: torch.device) -> dict:
    """The engine's phases timed apart: start-up (data + both stacks), the steps of both
    stacks with per-step metric logging (no store, no checkpoints), one evaluation of each."""
    start = time.perf_counter()
    data = load_data(cfg.data).to(device)
    stacks = [build_stack(cfg, norm, data) for norm in ("batch", "none")]
    times = {"startup": time.perf_counter() - start, "train": 0.0, "eval": 0.0}
    for stack in stacks:
        log = MetricLog(stack.model, stack.optimizer, capacity=steps)
        start = time.perf_counter()
        for step in range(1, steps + 1):
            xb, yb = stack.batches.next()
            loss, acc = train_step(stack.model, stack.optimizer, xb, yb)
            log.record(step, loss, acc)
        log.drain()  # the host sync the engine does at a checkpoint
        times["train"] += time.perf_counter() - start
        start = time.perf_counter()
        evaluate(stack.model, data.x_test, data.y_test)[0].tolist()
        times["eval"] += time.perf_counter() - start
    return times


def ceiling(cfg: TrainConfig, input_shape, device: torch.device, seconds: float) -> float:
    """Model-steps/s of the stacked conv/matmul kernels alone (forward + backward)."""
    keep_freed_memory()  # as the engine's processes do (bnlab.engine.allocator)
    bare = replace(cfg.model, activation="identity")
    model = build_model(bare, "none", cfg.members, input_shape)
    model.init_members(list(range(cfg.members)), bare.init, bare.init_std)
    model.to_device(device)
    x = torch.randn(cfg.members, cfg.batch_size, *input_shape, device=device)
    # a dense output gradient: sum().backward()'s is an expanded (stride-0) tensor, which
    # sends the matmuls down a slow path
    grad = torch.randn_like(model(x))

    def step() -> None:
        model(x).backward(grad)

    step()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        n += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n * cfg.members / (time.perf_counter() - start)


def bench_preset(
    name: str, members: int, steps: int, repeat: int, device, quick: bool, norm_kernel: str
):
    cfg = replace(get_preset(name), seeds=members, norms=("batch", "none"))
    norm = replace(cfg.model.norm, kernel=norm_kernel)
    cfg = replace(cfg, model=replace(cfg.model, norm=norm))
    if quick:
        cfg = replace(cfg, data=replace(cfg.data, test_subset=200))
    data = load_data(cfg.data)
    shape, n_train = data.input_shape, len(data.y_train)
    gflop = flops_per_model_step(cfg, shape) / 1e9
    seed_t, bnlab_t, parts_t = [], [], []
    for _ in range(repeat):  # round-robin, each run in a fresh process
        seed_t.append(in_fresh_process(seed_style_run, cfg, steps, device))
        bnlab_t.append(in_fresh_process(bnlab_run, cfg, steps, device))
        parts_t.append(in_fresh_process(bnlab_parts, cfg, steps, device))
    model_steps = 2 * members * steps

    def median(runs: list[dict], key: str) -> float:
        return statistics.median(t[key] for t in runs)

    seed_total = statistics.median(t["startup"] + t["train"] + t["eval"] for t in seed_t)
    seed_train, seed_eval = median(seed_t, "train"), median(seed_t, "eval")
    ours_total, ours_train = median(bnlab_t, "total"), median(parts_t, "train")
    parts = {key: median(parts_t, key) for key in ("startup", "eval")}
    top = ceiling(cfg, shape, device, 0.5 if quick else 3.0)
    # The evaluation's share of a run at the preset's own interval (epochs: once per epoch).
    interval = cfg.eval_every or n_train // cfg.batch_size
    share = parts["eval"] / (parts["eval"] + interval * ours_train / steps)  # both stacks
    return {
        "preset": name,
        "K": members,
        "steps": steps,
        "seed": model_steps / seed_total,
        "ours": model_steps / ours_total,
        "seed_train": model_steps / seed_train,
        "ours_train": model_steps / ours_train,
        "ceiling": top,
        "gflop": gflop,
        "startup": parts["startup"],
        "eval": parts["eval"],
        "seed_eval": seed_eval,
        "eval_share": share,
        "interval": interval,
        "seed_mb": max(t["rss_mb"] for t in seed_t),
        "ours_mb": max(t["rss_mb"] for t in bnlab_t),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few steps each (< 1 minute)")
    parser.add_argument("--presets", default=",".join(PRESETS), help="comma-separated")
    parser.add_argument("--repeat", type=int, default=0, help="round-robin repeats (default 2)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument(
        "--norm-kernel", default="aten", choices=NORM_KERNELS, help="model.norm.kernel: BN's"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ["BNLAB_BENCH_THREADS"] = str(args.threads)  # for the measuring processes
    device = resolve_device(args.device)
    repeat = args.repeat or (1 if args.quick else 2)
    print(
        f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
        f"{'quick' if args.quick else 'full'} run, {repeat} round-robin repeat(s), "
        f"engine BN kernel {args.norm_kernel}; "
        "model-steps/s over K seeds x (BN, baseline), start-up and final evaluation included"
    )
    header = (
        f"{'preset':<19}{'K':>3}{'steps':>6}{'seed loop':>10}{'bnlab':>8}{'ratio':>7}"
        f"{'train-only':>11}{'GFLOP/s':>9}{'ceiling':>9}{'of ceil':>8}{'start s':>8}"
        f"{'bound':>7}{'eval s':>7}{'(seed)':>7}{'eval %':>7}{'MB seed':>8}{'MB ours':>8}"
    )
    print(header)
    for name in args.presets.split(","):
        members, steps, quick_steps = PRESETS[name]
        steps = quick_steps if args.quick else steps
        r = bench_preset(name, members, steps, repeat, device, args.quick, args.norm_kernel)
        print(
            f"{r['preset']:<19}{r['K']:>3}{r['steps']:>6}{r['seed']:>10.1f}{r['ours']:>8.1f}"
            f"{r['ours'] / r['seed']:>6.2f}x{r['ours_train'] / r['seed_train']:>10.2f}x"
            f"{r['ours_train'] * r['gflop']:>9.1f}{r['ceiling']:>9.1f}"
            f"{r['ours_train'] / r['ceiling']:>7.0%} {r['startup']:>7.1f}"
            f"{r['ceiling'] / r['seed_train']:>6.2f}x{r['eval']:>7.2f}"
            f"{r['seed_eval']:>7.2f}{r['eval_share']:>6.1%} "
            f"{r['seed_mb']:>7.0f}{r['ours_mb']:>8.0f}",
            flush=True,
        )
    print(
        "ratio: whole runs (start-up, steps, evaluation); train-only: steps alone; ceiling: the "
        "stacked kernels alone, model-steps/s; bound: ceiling / the seed loop's steps, the "
        "train-only ratio if everything but those kernels cost nothing; eval %: one "
        "evaluation's share of a run at the preset's interval (every eval_every steps, or once "
        "per epoch)"
    )


if __name__ == "__main__":
    main()
