"""What `bnlab reproduce all` costs per stack, and a projection over N Ray workers.

Every stack that `--executor ray` would submit (each experiment's full config, 5 seeds, one
stack per norm variant) is timed on this machine for `--steps` steps through the very code
a Ray task runs (`train_segment`, one torch thread, as a 1-CPU task), plus one test-set
evaluation; the stack's cost is then projected to its full length:

    stack_s = total_steps * step_s + evaluations * eval_s + segments * segment_overhead_s

Spread over N workers of this machine's speed, the stacks cannot finish sooner than
max(longest stack, sum / N); a greedy longest-first schedule (printed) lands close to it.
`bnlab reproduce` on one machine trains each config's stacks side by side, one per core,
and the configs one after another; that sum is printed too (the default is 2 cores).
These are projections from short measurements, not measured full runs. The Santurkar et al.
experiments' stacks are included without the cost of their probes (1-30% of training,
`benchmarks/analysis.py`).

Usage: python benchmarks/ray_stacks.py [--steps 200] [--workers 1,2,4,8,16,32] [--cores 2]
"""

from __future__ import annotations

import argparse
import heapq
import math
import time
from dataclasses import replace

import norm_studies  # benchmarks/norm_studies.py, beside this script
import torch

from bnlab.engine.context import RunContext, resolve_device
from bnlab.engine.executors import _cached_data, train_segment
from bnlab.engine.train import build_stack, evaluate
from bnlab.reproduce import (
    cifar10_cnn,
    init_sensitivity,
    ioffe2015_lr,
    ioffe2015_mnist,
    matrix,
    mnist_notebook,
    santurkar2018,
)

SEEDS = 5  # the default of every experiment
TASK = RunContext(threads=1, progress=False)  # a 1-CPU Ray task: one torch thread


def full_configs() -> list[tuple[str, object]]:
    """(label, config) of every experiment config that `reproduce all` trains in stacks."""
    configs = [
        ("ioffe2015-mnist", ioffe2015_mnist.config(SEEDS, False)),
        ("ioffe2015-lr", ioffe2015_lr.config(SEEDS, False)),
        ("mnist-notebook", mnist_notebook.config(SEEDS, False)),
        ("cifar10-cnn", cifar10_cnn.config(SEEDS, False)),
    ]
    configs += [
        (f"init-sensitivity std={std:g}", init_sensitivity.config(SEEDS, False, std))
        for std in init_sensitivity.SCALES
    ]
    configs += [
        (f"matrix {ds}/{arch}", matrix.config(SEEDS, False, ds, arch))
        for ds in matrix.DATASETS
        for arch in matrix.ARCHS
    ]
    configs += [
        (f"{name} {setting.name}", santurkar2018.setting_config(setting, SEEDS, False)[0])
        for name, settings in santurkar2018.SETTINGS.items()
        for setting in settings
    ]
    configs += norm_studies.full_configs()  # small-batch, train-test-stats, bn-placement
    return configs


def stack_cost(cfg, norm: str, steps: int) -> dict:
    """Measured per-step, per-evaluation and per-segment seconds; the projected total."""
    data = _cached_data(cfg.data, resolve_device(TASK.device))  # read once, as a task does
    stack = build_stack(cfg, norm, data)
    total = stack.total_steps
    steps = min(steps, total)
    start = time.perf_counter()
    train_segment(replace(cfg, checkpoint_every=1), norm, None, TASK)  # build + 1 step
    one = time.perf_counter() - start
    start = time.perf_counter()
    train_segment(replace(cfg, checkpoint_every=steps), norm, None, TASK)
    step_s = (time.perf_counter() - start - one) / max(steps - 1, 1)
    start = time.perf_counter()
    evaluate(stack.model, data.x_test, data.y_test)
    eval_s = time.perf_counter() - start
    overhead_s = max(one - step_s, 0.0)  # building the stack and restoring it, per segment
    evaluations = math.ceil(total / stack.eval_every)
    segments = math.ceil(total / cfg.checkpoint_every)
    projected = total * step_s + evaluations * eval_s + segments * overhead_s
    return dict(steps=total, step_ms=1e3 * step_s, eval_s=eval_s, segments=segments,
                overhead_s=overhead_s, projected_s=projected)  # fmt: skip


def greedy_makespan(costs: list[float], workers: int) -> float:
    """Longest stack first onto the least-loaded worker."""
    loads = [0.0] * workers
    for cost in sorted(costs, reverse=True):
        heapq.heapreplace(loads, loads[0] + cost)
    return max(loads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="steps timed per stack")
    parser.add_argument("--workers", default="1,2,4,8,16,32")
    parser.add_argument("--cores", type=int, default=2, help="for the local `reproduce` line")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{'stack':44s} {'steps':>7s} {'ms/step':>8s} {'eval s':>7s} {'segs':>5s} "
          f"{'seg ovh s':>9s} {'projected':>10s}")  # fmt: skip
    costs, here = [], 0.0
    for label, cfg in full_configs():
        config_costs = []
        for norm in cfg.norms:
            c = stack_cost(cfg, norm, args.steps)
            config_costs.append(c["projected_s"])
            print(f"{label + ' / ' + norm:44s} {c['steps']:7,d} {c['step_ms']:8.2f} "
                  f"{c['eval_s']:7.2f} {c['segments']:5d} {c['overhead_s']:9.3f} "
                  f"{c['projected_s'] / 60:8.1f} min")  # fmt: skip
        costs += config_costs
        # `bnlab reproduce` on this machine: configs in turn, the stacks of each side by side
        here += greedy_makespan(config_costs, args.cores)
    total, longest = sum(costs), max(costs)
    print(f"\n{len(costs)} stacks, sum {total / 3600:.2f} h, longest {longest / 60:.1f} min "
          "(projections from the timed steps)")  # fmt: skip
    for n in map(int, args.workers.split(",")):
        bound = max(longest, total / n)
        print(f"N={n:3d} workers: >= {bound / 60:7.1f} min; greedy schedule "
              f"{greedy_makespan(costs, n) / 60:7.1f} min")  # fmt: skip
    print(f"bnlab reproduce all on {args.cores} cores (each config's stacks side by side, "
          f"configs in turn): {here / 60:.1f} min")  # fmt: skip


if __name__ == "__main__":
    main()
