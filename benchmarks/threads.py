"""Step time of every preset's stack at 1 and 2 torch threads, with the other core idle or busy.

For each preset (bnlab/engine/presets.py): the BN stack of K members (K = 5, the seeds
`bnlab reproduce` trains; an lr grid would multiply it), trained step after step (batch,
forward, backward, optimizer; no logging) in a fresh spawned process per measurement, after
a warm-up. Four conditions, run round-robin so that outside load hits them alike:

    1 thread, idle | 2 threads, idle | 1 thread, busy | 2 threads, busy

"busy" starts one process that spins on a core (a pure-Python loop) for the measurement:
the state of a shared machine, or of `bnlab reproduce` training two stacks side by side.
Printed per preset: the stack's FLOPs per step and activation elements per step (the size
measures of bnlab.engine.threads), median ms per step in each condition, the 2-thread /
1-thread ratios, and the thread count `choose_threads` picks on 2 free cores (on a busy
machine it picks 1 for every preset). The load average before and after is printed too:
other processes are outside load that no condition avoids.

On a machine shared with other work there is no idle core to measure on; `--nice -20` (root)
runs every measurement and the spinner at the highest priority, so that other processes
hardly take the cores from them: "idle" then means idle but for background work, and "busy"
means a competitor as demanding as the measurement itself.

Usage: python benchmarks/threads.py [--quick] [--presets a,b] [--repeat N] [--seconds S]
                                    [--warmup N] [--nice N]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

from bnlab.engine import get_preset
from bnlab.engine.presets import PRESETS
from bnlab.engine.threads import activations, choose_threads, stack_flops

MEMBERS = 5  # `bnlab reproduce`'s default seeds
CONDITIONS = ((1, False), (2, False), (1, True), (2, True))  # (threads, other core busy)


def _spin() -> None:
    while True:
        pass


def step_ms(preset: str, threads: int, seconds: float, warmup: int) -> float:
    """Median ms per training step of the preset's BN stack, in this (fresh) process."""
    import torch

    from bnlab.engine.data import load_data
    from bnlab.engine.train import build_stack, train_step

    torch.set_num_threads(threads)
    cfg = replace(get_preset(preset), seeds=MEMBERS)
    data = load_data(cfg.data)
    stack = build_stack(cfg, "batch", data)
    for _ in range(warmup):
        xb, yb = stack.batches.next()
        train_step(stack.model, stack.optimizer, xb.to(stack.model.flat.dtype), yb)
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 3:
        start = time.perf_counter()
        xb, yb = stack.batches.next()
        train_step(stack.model, stack.optimizer, xb.to(stack.model.flat.dtype), yb)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def measure(preset: str, threads: int, busy: bool, seconds: float, warmup: int) -> float:
    ctx = multiprocessing.get_context("spawn")
    spinner = ctx.Process(target=_spin, daemon=True) if busy else None
    if spinner is not None:
        spinner.start()
    try:
        with ProcessPoolExecutor(1, mp_context=ctx) as pool:
            return pool.submit(step_ms, preset, threads, seconds, warmup).result()
    finally:
        if spinner is not None:
            spinner.terminate()
            spinner.join()


def run(presets: list[str], repeat: int, seconds: float, warmup: int) -> list[dict]:
    times = {(p, c): [] for p in presets for c in CONDITIONS}
    for r in range(repeat):
        for preset in presets:
            for threads, busy in CONDITIONS:
                ms = measure(preset, threads, busy, seconds, warmup)
                times[preset, (threads, busy)].append(ms)
                state = "busy" if busy else "idle"
                print(f"  [{r + 1}/{repeat}] {preset} {threads}t {state}: {ms:.2f} ms", flush=True)
    rows = []
    for preset in presets:
        cfg = replace(get_preset(preset), seeds=MEMBERS)
        med = {c: statistics.median(times[preset, c]) for c in CONDITIONS}
        rows.append(
            {
                "preset": preset,
                "gflop": stack_flops(cfg) / 1e9,
                "mact": activations(cfg) / 1e6,
                "ms": med,
                "choice": choose_threads(cfg, cores=2),
            }
        )
    return rows


def print_table(rows: list[dict]) -> None:
    print(
        "\n| preset | GFLOP/step | M act./step | 1t idle | 2t idle | 2t/1t idle "
        "| 1t busy | 2t busy | 2t/1t busy | choose_threads, 2 free cores |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: r["gflop"]):
        ms = r["ms"]
        print(
            f"| {r['preset']} | {r['gflop']:.3g} | {r['mact']:.3g} "
            f"| {ms[1, False]:.2f} | {ms[2, False]:.2f} | {ms[2, False] / ms[1, False]:.2f}x "
            f"| {ms[1, True]:.2f} | {ms[2, True]:.2f} | {ms[2, True] / ms[1, True]:.2f}x "
            f"| {r['choice']} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 repeat, 0.5 s per measurement")
    parser.add_argument("--presets", help="comma-separated (default: every preset)")
    parser.add_argument("--repeat", type=int, default=3, help="round-robin repeats (median)")
    parser.add_argument("--seconds", type=float, default=2.0, help="timed per measurement")
    parser.add_argument("--warmup", type=int, default=3, help="steps before the clock starts")
    parser.add_argument(
        "--nice", type=int, default=0, help="priority of every measurement (-20: highest; root)"
    )
    args = parser.parse_args()
    if args.nice:
        os.nice(args.nice)  # the spawned measurements and the spinner inherit it
    presets = args.presets.split(",") if args.presets else list(PRESETS)
    repeat, seconds = (1, 0.5) if args.quick else (args.repeat, args.seconds)
    print(
        f"cores: {os.cpu_count()}, priority (nice): {os.getpriority(os.PRIO_PROCESS, 0)}, "
        f"load average before: {os.getloadavg()}",
        flush=True,
    )
    rows = run(presets, repeat, seconds, args.warmup)
    print(f"load average after: {os.getloadavg()}")
    print_table(rows)


if __name__ == "__main__":
    main()
