"""Noisy BN's test accuracy with the noise off everywhere, its statistics included.

Noisy BN adds its noise only in training (`bnlab.norms.noisy`), yet every BN layer's
running statistics are an EMA of inputs that the noise upstream had shifted and spread: at
test time, with the noise off, each layer normalizes with statistics of a distribution it no
longer sees. After training, this pass re-estimates every BN layer's population statistics
with the noise off (the engine's precise BN, Wu & Johnson 2021, Sec. 3: an equal-weight
average over PRECISE_IMAGES training images in batches of the training size), then evaluates
the test set. BN is re-estimated the same way (for it this is plain precise BN), so the two
compare like for like; no BN has no statistics and is evaluated as trained. The accuracy is
stored at the final step as METRIC, next to the engine's EMA `test_accuracy`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from bnlab.engine import RunContext, Store, TrainConfig, build_stack, evaluate, lock
from bnlab.engine.context import resolve_device, torch_threads
from bnlab.engine.data import load_data
from bnlab.engine.resume import load_latest
from bnlab.engine.runs import checkpoint_path, run_id
from bnlab.reproduce.common import Results

METRIC = "test_accuracy_noise_free"
PRECISE_IMAGES = 4_000  # training images per re-estimate: one epoch of the CIFAR-10 subset


def reestimate_without_noise(model, batches, num_batches: int) -> None:
    """Every BN layer's running statistics set to their precise-BN estimate over `batches`
    (inputs (K, B, ...)) with noisy BN's noise off; the noise is restored after. The one
    place that uses the norm layers' API (`precise_bn`, the noisy layer's `noise`)."""
    from bnlab.engine.norms_bn import StackedNoisyBatchNorm
    from bnlab.norms import precise_bn
    from bnlab.norms.noisy import NoiseParams

    noisy = [m for m in model.modules() if isinstance(m, StackedNoisyBatchNorm)]
    saved = [m.noise for m in noisy]
    for m in noisy:
        m.noise = NoiseParams(0.0, 0.0, 0.0)  # mean 0, std 0: the layer adds exactly zero
    try:
        precise_bn(model, batches, num_batches)
    finally:
        for m, noise in zip(noisy, saved, strict=True):
            m.noise = noise


def measure(cfg: TrainConfig, out: Path, ctx: RunContext) -> None:
    """Store METRIC for every network of `cfg` trained into `out` (once per network), on the
    device and with the threads of `ctx`."""
    data = None
    threads = torch_threads(ctx.threads or torch.get_num_threads())
    with lock.hold(out), Store(out, "w") as store, threads:
        for norm in cfg.norms:
            rid = run_id(cfg, norm)
            if store.metric_matrix(rid, METRIC)[0].size:
                continue  # measured by an earlier call
            if data is None:
                data = load_data(cfg.data).to(resolve_device(ctx.device))
            stack = build_stack(cfg, norm, data)
            stack.load_state_dict(load_latest(store, rid, checkpoint_path(out, rid)))
            model = stack.model
            if norm != "none":
                n = max(1, min(PRECISE_IMAGES, len(data.y_train)) // cfg.batch_size)
                batches = (stack.batches.next()[0].to(model.flat.dtype) for _ in range(n))
                reestimate_without_noise(model, batches, n)
            _, acc = evaluate(model, data.x_test, data.y_test)
            rows = [(k, stack.step, METRIC, v) for k, v in enumerate(acc.tolist())]
            store.write(rid, [], rows)


def noise_free_accuracy(res: Results, norm: str) -> np.ndarray:
    """(seeds,) METRIC in percent; NaN for every seed where the pass has not run."""
    _, acc = res.metric(norm, METRIC)  # (seeds, 1), or (seeds, 0) before the pass
    if acc.shape[1] == 0:
        return np.full(acc.shape[0], np.nan)
    return 100.0 * acc[:, -1]
