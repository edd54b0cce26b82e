"""What the full `small-batch`, `train-test-stats` and `bn-placement` protocols cost here.

Every stack of each full protocol (5 seeds) is timed for `--steps` training steps with one
torch thread (as `train_variants` runs it), plus one test-set evaluation, and projected:

    stack_s = total_steps * step_s + evaluations * eval_s

`train-test-stats` adds its after-training measurements (precise BN over one epoch of
batches, a batch-statistics pass over the test set), timed once per batch size. The
projection on C cores is sum / C (stacks are independent; `train_variants` runs the norms of
one batch size side by side). Projections from short measurements, not measured full runs.

Usage: python benchmarks/norm_studies.py [--steps 30] [--cores 2]
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from bnlab.engine import build_stack, evaluate, train_step
from bnlab.engine.data import load_data
from bnlab.norms import precise_bn
from bnlab.reproduce import bn_placement, small_batch, train_test_stats

SEEDS = 5


def full_configs() -> list[tuple[str, object]]:
    configs = [
        (f"small-batch B={b}", small_batch.config(SEEDS, False, b)) for b in small_batch.BATCH_SIZES
    ]
    configs += [
        (f"train-test-stats B={b}", train_test_stats.config(SEEDS, False, b))
        for b in train_test_stats.BATCH_SIZES
    ]
    configs += [
        (f"bn-placement {a}/{p}", bn_placement.config(SEEDS, False, a, p))
        for a in bn_placement.ACTIVATIONS
        for p in bn_placement.POSITIONS
    ]
    return configs


_DATA: dict = {}


def _data(cfg):
    key = (cfg.data.dataset, cfg.data.train_subset, cfg.data.test_subset)
    if key not in _DATA:
        _DATA[key] = load_data(cfg.data)
    return _DATA[key]


def stack_cost(cfg, norm: str, steps: int) -> dict:
    data = _data(cfg)
    stack = build_stack(cfg, norm, data)
    model, dtype = stack.model, stack.model.flat.dtype
    for _ in range(3):  # warm-up: allocator, first-call dispatch
        xb, yb = stack.batches.next()
        train_step(model, stack.optimizer, xb.to(dtype), yb)
    start = time.perf_counter()
    for _ in range(steps):
        xb, yb = stack.batches.next()
        train_step(model, stack.optimizer, xb.to(dtype), yb)
    step_s = (time.perf_counter() - start) / steps
    start = time.perf_counter()
    evaluate(model, data.x_test, data.y_test)
    eval_s = time.perf_counter() - start
    evaluations = math.ceil(stack.total_steps / stack.eval_every)
    extra_s = 0.0
    if cfg.preset.startswith(train_test_stats.NAME):
        start = time.perf_counter()
        train_test_stats.batch_stats_accuracy(model, data.x_test, data.y_test, cfg.batch_size)
        n = max(1, min(train_test_stats.PRECISE_IMAGES, len(data.y_train)) // cfg.batch_size)
        precise_bn(model, (stack.batches.next()[0].to(dtype) for _ in range(n)), n)
        extra_s = time.perf_counter() - start + eval_s
    projected = stack.total_steps * step_s + evaluations * eval_s + extra_s
    return dict(steps=stack.total_steps, step_ms=1e3 * step_s, eval_s=eval_s, projected_s=projected)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="steps timed per stack")
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{'stack':36s} {'steps':>7s} {'ms/step':>8s} {'eval s':>7s} {'projected':>10s}")
    per_study: dict[str, float] = {}
    for label, cfg in full_configs():
        for norm in cfg.norms:
            c = stack_cost(cfg, norm, args.steps)
            study = label.split()[0]
            per_study[study] = per_study.get(study, 0.0) + c["projected_s"]
            print(f"{label + ' / ' + norm:36s} {c['steps']:7,d} {c['step_ms']:8.2f} "
                  f"{c['eval_s']:7.2f} {c['projected_s'] / 60:8.1f} min")  # fmt: skip
    total = sum(per_study.values())
    for study, cost in per_study.items():
        print(f"{study:20s} one core {cost / 60:6.1f} min; {args.cores} cores "
              f">= {cost / 60 / args.cores:6.1f} min")  # fmt: skip
    print(f"{'all three':20s} one core {total / 60:6.1f} min; {args.cores} cores "
          f">= {total / 60 / args.cores:6.1f} min (projected)")  # fmt: skip


if __name__ == "__main__":
    main()
