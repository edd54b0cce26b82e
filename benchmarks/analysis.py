"""Cost of the Santurkar analyses as a fraction of training time, at the default probing
intervals of the experiments (bnlab.reproduce.santurkar2018.SETTINGS).

    .venv/bin/python benchmarks/analysis.py [--steps 20] [--seeds 2] [--threads 0]

For each setting: the mean time of one training step and of one probe (on a stack of `seeds`
members, BN and no-BN stacks separately), and cost = probe time / (every x step time), the
probes' share of training time added. Timings are wall clock on this machine's CPU.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from bnlab.analysis.probes import AnalysisProbe
from bnlab.engine.data import load_data
from bnlab.engine.presets import get_preset
from bnlab.engine.train import build_stack, train_step
from bnlab.reproduce.santurkar2018 import SETTINGS


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def measure(preset: str, probe_cfg, norm: str, seeds: int, steps: int) -> tuple[float, float]:
    cfg = replace(get_preset(preset), seeds=seeds)
    stack = build_stack(cfg, norm, load_data(cfg.data))
    xb, yb = stack.batches.next()
    xb = xb.to(stack.model.flat.dtype)
    step = _time(lambda: train_step(stack.model, stack.optimizer, xb, yb), steps)
    probe = AnalysisProbe(probe_cfg)
    probe_s = _time(lambda: probe(stack, 1, xb, yb), max(1, steps // 10))
    return step, probe_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--seeds", type=int, default=2, help="members per stack")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = default")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, K={args.seeds}")
    print(f"{'experiment/setting':42s} {'norm':6s} {'step ms':>8s} {'probe ms':>9s} "
          f"{'every':>5s} {'cost':>6s}")  # fmt: skip
    seen = set()
    for name, settings in SETTINGS.items():
        for s in settings:
            if s.probe is None or (s.preset, s.probe) in seen:
                continue
            seen.add((s.preset, s.probe))
            for norm in ("batch", "none"):
                step, probe = measure(s.preset, s.probe, norm, args.seeds, args.steps)
                cost = probe / (s.probe.every * step)
                print(f"{name + '/' + s.name:42s} {norm:6s} {step * 1e3:8.1f} "
                      f"{probe * 1e3:9.1f} {s.probe.every:5d} {cost:6.1%}")  # fmt: skip


if __name__ == "__main__":
    main()
