"""A study's vmapped path against the loop a student would write and against the engine.

Two workloads, each run whole (start-up, every step logged, one evaluation of the test set)
in a fresh process, round-robin, medians of the repeats:

1. The `ioffe2015-mnist` network (784-100-100-100-10 sigmoid, BN, batch 60), K seeds x (BN,
   baseline): (a) the seed-style loop of `benchmarks/engine.py` (one torch.nn model at a time,
   DataLoader, torch.optim, `loss.item()` per step); (b) `bnlab.engine.train`, the
   hand-stacked engine; (c) `bnlab.study.run` of the same two networks (torch.nn modules
   built by the same `torch_model`), vmapped. Then member 0 and member K-1 of the study are
   run again alone (a one-model study of that seed) and their logged losses compared with
   the stack's, step by step.
2. The ResNet of `examples/study_resnet_norms.py`, its six variants (BN, GroupNorm, none at
   batch 8 and 128), K seeds: (a) the seed-style loop on each variant's model (built as the
   study builds it); (c) the study, vmapped.

Prints model-steps/s and the ratios. Usage:
    python benchmarks/study.py [--quick] [--repeat N] [--threads N]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sqlite3
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from engine import bnlab_run, in_fresh_process, seed_style_eval, seed_style_run, torch_model
from torch import nn

from bnlab.engine import DataConfig, RunContext, get_preset
from bnlab.engine.data import load_data
from bnlab.study import Data, Optimizer, Study, Variant, run

ROOT = Path(__file__).resolve().parents[1]
IOFFE = {"K": 16, "steps": 600, "quick": 40}
# the example's six variants as it declares them (BN / GN / none at batch 8 and 128)
RESNET = {"K": 3, "steps": 30, "quick": 4}


def _no_bn(model: nn.Module) -> nn.Module:
    """The baseline network of the seed loop (torch_model(..., "none")), built afresh."""
    cfg = get_preset("ioffe2015-mnist")
    return torch_model(cfg, "none", (1, 28, 28))


def _ioffe_model() -> nn.Module:
    return torch_model(get_preset("ioffe2015-mnist"), "batch", (1, 28, 28))


def ioffe_study(K: int, steps: int, seed: int = 0) -> Study:
    cfg = get_preset("ioffe2015-mnist")
    return Study(
        "bench-ioffe",
        _ioffe_model,
        Data("mnist", transform="binarize"),
        {"batch": Variant(), "none": Variant(model=_no_bn)},
        optimizer=Optimizer("sgd", lr=cfg.optim.lr),
        batch_size=cfg.batch_size,
        steps=steps,
        seeds=K,
        seed=seed,
        eval_every=steps,
        checkpoint_every=steps,
    )


def study_run(study: Study) -> dict:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        run(study, out, RunContext(progress=False))
        total = time.perf_counter() - start
        db = sqlite3.connect(Path(out) / "bnlab.sqlite")
        sql = "SELECT run_id, member, step, train_loss FROM train_metrics ORDER BY 1, 2, 3"
        rows = db.execute(sql).fetchall()
        db.close()
    return {"total": total, "rows": rows}


def _ioffe_study_run(K: int, steps: int, seed: int = 0) -> dict:
    return study_run(ioffe_study(K, steps, seed))


def _losses(rows, member: int) -> dict[tuple[str, int], float]:
    return {(r[0], r[2]): r[3] for r in rows if r[1] == member}


def bench_ioffe(steps: int, repeat: int) -> None:
    K = IOFFE["K"]
    cfg = replace(get_preset("ioffe2015-mnist"), seeds=K, norms=("batch", "none"))
    device = torch.device("cpu")
    seed, engine, study = [], [], []
    for _ in range(repeat):
        seed.append(in_fresh_process(seed_style_run, cfg, steps, device))
        engine.append(in_fresh_process(bnlab_run, cfg, steps, device))
        study.append(in_fresh_process(_ioffe_study_run, K, steps))
    model_steps = 2 * K * steps
    s = model_steps / statistics.median(t["startup"] + t["train"] + t["eval"] for t in seed)
    e = model_steps / statistics.median(t["total"] for t in engine)
    v = model_steps / statistics.median(t["total"] for t in study)
    print(
        f"ioffe2015-mnist, K={K} x (BN, baseline), {steps} steps: seed loop {s:,.0f}, engine "
        f"{e:,.0f}, study (vmapped) {v:,.0f} model-steps/s; study / seed loop {v / s:.2f}x, "
        f"study / engine {v / e:.2f}x",
        flush=True,
    )
    stack = study[0]["rows"]
    for k in (0, K - 1):
        alone = in_fresh_process(_ioffe_study_run, 1, steps, k)["rows"]
        ours, ref = _losses(stack, k), _losses(alone, 0)
        diff = max(abs(ours[key] - ref[key]) for key in ref)
        same = "bit-identical" if ours == ref else f"max |difference| {diff:.2e}"
        print(
            f"  member {k} of the stack vs a one-model study of seed {k}: {len(ref)} losses, {same}"
        )


def _example():
    path = ROOT / "examples" / "study_resnet_norms.py"
    spec = importlib.util.spec_from_file_location("study_resnet_norms", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def resnet_seed_loop(variants: tuple[str, ...], K: int, steps: int) -> dict:
    """Each variant's model, one at a time, as a student trains it (see the module docstring)."""
    from bnlab.study.members import build_member

    example = _example()
    study = example.study
    times = {"startup": 0.0, "train": 0.0, "eval": 0.0}
    start = time.perf_counter()
    data = load_data(DataConfig(dataset="cifar10"))  # as the example's Data("cifar10")
    times["startup"] += time.perf_counter() - start
    for name in variants:
        variant = study.variants[name]
        for k in range(K):
            start = time.perf_counter()
            model = build_member(study, name, k)
            lr = variant.lr or study.optimizer.lr
            o = study.optimizer
            opt = torch.optim.SGD(
                model.parameters(), lr, momentum=o.momentum, weight_decay=o.weight_decay
            )
            loader = torch.utils.data.DataLoader(
                torch.utils.data.TensorDataset(data.x_train, data.y_train),
                batch_size=variant.batch_size or study.batch_size,
                shuffle=True,
                drop_last=True,
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


def resnet_study_run(variants: tuple[str, ...], K: int, steps: int) -> dict:
    study = _example().study
    study = replace(
        study,
        variants={n: study.variants[n] for n in variants},
        claims=(),
        seeds=K,
        steps=steps,
        eval_every=steps,
        checkpoint_every=steps,
    )
    return study_run(study)


def bench_resnet(steps: int, repeat: int) -> None:
    K, variants = RESNET["K"], tuple(_example().study.variants)
    seed, study = [], []
    for _ in range(repeat):
        seed.append(in_fresh_process(resnet_seed_loop, variants, K, steps))
        study.append(in_fresh_process(resnet_study_run, variants, K, steps))
    model_steps = len(variants) * K * steps
    s = model_steps / statistics.median(t["startup"] + t["train"] + t["eval"] for t in seed)
    v = model_steps / statistics.median(t["total"] for t in study)
    print(
        f"ResNet (examples/study_resnet_norms.py), {len(variants)} variants, K={K}, {steps} "
        f"steps: seed loop {s:.2f}, study (vmapped) {v:.2f} model-steps/s; study / seed loop "
        f"{v / s:.2f}x",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few steps each")
    parser.add_argument("--repeat", type=int, default=0, help="round-robin repeats (default 2)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        os.environ["BNLAB_BENCH_THREADS"] = str(args.threads)  # for the measuring processes
        torch.set_num_threads(args.threads)
    repeat = args.repeat or (1 if args.quick else 2)
    print(
        f"torch {torch.__version__}, CPU, threads {torch.get_num_threads()}, "
        f"{repeat} round-robin repeat(s); whole runs: start-up, steps, one evaluation"
    )
    bench_ioffe(IOFFE["quick"] if args.quick else IOFFE["steps"], repeat)
    bench_resnet(RESNET["quick"] if args.quick else RESNET["steps"], repeat)


if __name__ == "__main__":
    main()
