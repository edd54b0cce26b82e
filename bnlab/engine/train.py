"""The training loop: one stack of K members per norm variant, logged, evaluated, resumable.

`train(cfg, out_dir)` runs every stack of a config. A stack's life:

1. build the model (member k initialized from seed k) and the optimizer;
2. if resuming, restore the checkpoint and delete metric rows logged after its step;
3. loop: forward on (K, B, ...) batches, backward, one optimizer update for all members;
   metrics go into a preallocated buffer (no per-step host sync);
4. at each checkpoint step: flush the buffered metric rows and the checkpoint's record
   (step, sha256) in one transaction, then put the checkpoint file in place
   (`bnlab.engine.resume`). A crash between the two leaves rows past the checkpoint, which
   step 2 deletes; rows are never written past the buffer, so none are lost.

The results directory is locked for the whole call (`bnlab.engine.lock`): one writer at a time.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from bnlab.engine import checkpoint, lock
from bnlab.engine.allocator import keep_freed_memory
from bnlab.engine.config import DTYPES, TrainConfig, validate
from bnlab.engine.context import RunContext, resolve_device, resolve_threads, torch_threads
from bnlab.engine.data import TrainData, load_data, make_batches
from bnlab.engine.hooks import ActivationRecorder
from bnlab.engine.metrics import MetricLog
from bnlab.engine.models import StackedModel, build_model
from bnlab.engine.optim import make_optimizer
from bnlab.engine.resume import restore_checkpoint, save_checkpoint
from bnlab.engine.runs import check_out_dir, checkpoint_path, create_run, open_existing, run_id
from bnlab.engine.store import Store

# Evaluation runs the test set through the stack in chunks whose largest activation takes at
# most this many bytes, so its memory is bounded whatever the test set's size.
EVAL_CHUNK_BYTES = 64 * 2**20
# Parameters and their gradients are strided views of the (K, P) buffers `model.flat` and
# `model.flat_grad`, on purpose (one-op optimizer updates); torch warns, once per process,
# that such gradients break its layout contract. Silenced only around the backward pass.
GRAD_LAYOUT_WARNING = "grad and param do not obey the gradient layout contract"


@dataclass
class Stack:
    """Everything one stack needs to train and to be checkpointed."""

    run_id: str
    cfg: TrainConfig
    norm: str
    model: StackedModel
    optimizer: object
    batches: object
    recorder: ActivationRecorder | None
    total_steps: int
    eval_every: int
    step: int = 0

    def state_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "data": self.batches.state_dict(),
            "rng": checkpoint.rng_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.batches.load_state_dict(state["data"])
        checkpoint.set_rng_state(state["rng"])


class Probe:
    """A measurement taken during training, between steps (the seam for the analyses).

    Every `every` steps, before step `step` trains on the batch (xb, yb), the loop calls
    `probe(stack, step, xb, yb)` and stores the returned (member, step, name, value) rows
    with the other metrics. A probe must leave the stack exactly as it found it: parameters,
    gradients, optimizer state, BN running statistics and RNG streams.
    """

    every: int = 0

    def __call__(self, stack: Stack, step: int, xb: Tensor, yb: Tensor) -> list[tuple]:
        raise NotImplementedError


def build_stack(cfg: TrainConfig, norm: str, data: TrainData) -> Stack:
    """A stack of `cfg.members` models, on the device that holds `data`."""
    keep_freed_memory()  # a stack's activations are big: reuse their memory between steps
    dtype = DTYPES[cfg.dtype]
    K = cfg.members
    seeds = [cfg.member_seed(k) for k in range(K)]
    model = build_model(cfg.model, norm, K, data.input_shape, dtype)
    model.init_members(seeds, cfg.model.init, cfg.model.init_std)
    model.to_device(data.x_train.device)
    lrs = [cfg.member_lr(k) for k in range(K)]
    optimizer = make_optimizer(model.flat, model.flat_grad, lrs, cfg.optim)
    batches = make_batches(data, seeds, cfg)
    recorder = ActivationRecorder(model, cfg.hooks) if cfg.hooks.layers else None
    total = cfg.epochs * batches.steps_per_epoch if cfg.epochs else cfg.steps
    eval_every = cfg.eval_every or batches.steps_per_epoch
    return Stack(
        run_id(cfg, norm), cfg, norm, model, optimizer, batches, recorder, total, eval_every
    )


def train_step(model: StackedModel, optimizer, xb: Tensor, yb: Tensor) -> tuple[Tensor, Tensor]:
    """One SGD/Adam step of every member; returns per-member (loss, accuracy), each (K,)."""
    model.flat_grad.zero_()
    logits = model(xb)  # (K, B, classes)
    K, B, C = logits.shape
    loss = F.cross_entropy(logits.reshape(K * B, C), yb.reshape(K * B), reduction="none")
    loss = loss.view(K, B).mean(1)  # (K,): member k's loss depends on member k only
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=GRAD_LAYOUT_WARNING)
        loss.sum().backward()  # so d(sum)/d(theta_k) = d(loss_k)/d(theta_k)
    optimizer.step()
    correct = logits.detach().argmax(-1) == yb  # (K, B)
    return loss.detach(), correct.to(loss.dtype).mean(1)


def eval_chunk(model: StackedModel) -> int:
    """Test images per evaluation chunk: the largest activation of the whole stack for one
    chunk stays within EVAL_CHUNK_BYTES."""
    per_image = model.members * model.widest * model.flat.element_size()  # bytes
    return max(1, EVAL_CHUNK_BYTES // per_image)


@torch.no_grad()
def evaluate(
    model: StackedModel, x: Tensor, y: Tensor, chunk: int | None = None
) -> tuple[Tensor, Tensor]:
    """Test loss and accuracy of every member, in eval mode (running BN statistics): (K,), (K,).

    x (N, C, H, W), y (N,) on the model's device; every member sees the same images, `chunk`
    at a time (default: `eval_chunk(model)`), so memory does not grow with N.
    """
    was_training = model.training
    model.eval()
    K, chunk = model.members, chunk or eval_chunk(model)
    loss_sum = torch.zeros(K, dtype=model.flat.dtype, device=model.flat.device)
    correct = torch.zeros_like(loss_sum)
    for i in range(0, len(y), chunk):
        xb = x[i : i + chunk].to(model.flat.dtype)
        logits = model(xb.expand(K, *xb.shape))  # (K, n, classes): same images, every member
        yb = y[i : i + chunk].expand(K, -1)  # (K, n)
        loss = F.cross_entropy(logits.transpose(1, 2), yb, reduction="none")  # (K, n)
        loss_sum += loss.sum(1)
        correct += (logits.argmax(-1) == yb).to(correct.dtype).sum(1)
    model.train(was_training)
    return loss_sum / len(y), correct / len(y)


def _eval_rows(stack: Stack, data: TrainData) -> list[tuple[int, int, str, float]]:
    loss, acc = evaluate(stack.model, data.x_test, data.y_test)
    rows = [(k, stack.step, "test_loss", v) for k, v in enumerate(loss.tolist())]
    rows += [(k, stack.step, "test_accuracy", v) for k, v in enumerate(acc.tolist())]
    return rows


def _save(stack: Stack, log: MetricLog, store: Store, out_dir: Path) -> None:
    """Metrics and the checkpoint's record (one transaction), then the file: see the module
    docstring."""
    path = checkpoint_path(out_dir, stack.run_id)
    save_checkpoint(store, stack.run_id, stack.state_dict(), log.drain(), path)


def _progress_text(loss: Tensor, acc: Tensor) -> dict[str, str]:
    return {"loss": f"{float(loss.mean()):.4f}", "acc": f"{float(acc.mean()):.3f}"}


def train_stack(
    stack: Stack,
    data: TrainData,
    store: Store,
    out_dir: Path,
    progress: bool = True,
    probes: Sequence[Probe] = (),
) -> None:
    """Run one stack from its current step to the end, logging and checkpointing."""
    cfg, model = stack.cfg, stack.model
    log = MetricLog(model, stack.optimizer, capacity=cfg.checkpoint_every // cfg.log_every + 1)
    bar = tqdm(
        total=stack.total_steps,
        initial=stack.step,
        desc=stack.run_id,
        unit="step",
        disable=None if progress else True,
        dynamic_ncols=True,
    )
    next_refresh = time.monotonic()
    while stack.step < stack.total_steps:
        step = stack.step + 1
        if stack.recorder is not None:
            stack.recorder.active = step % cfg.hooks.every == 0
        xb, yb = stack.batches.next()
        xb = xb.to(model.flat.dtype)
        for probe in probes:
            if probe.every and step % probe.every == 0:
                log.extend(probe(stack, step, xb, yb))
        loss, acc = train_step(model, stack.optimizer, xb, yb)
        stack.step = step
        if step % cfg.log_every == 0:
            log.record(step, loss, acc)
        if stack.recorder is not None:
            stack.recorder.active = False  # evaluation forwards are not training statistics
            log.extend(stack.recorder.take_rows(step))
        if step % stack.eval_every == 0 or step == stack.total_steps:
            log.extend(_eval_rows(stack, data))
        if step % cfg.checkpoint_every == 0 or step == stack.total_steps:
            _save(stack, log, store, out_dir)
        bar.update(1)
        if not bar.disable and time.monotonic() >= next_refresh:
            bar.set_postfix(_progress_text(loss, acc), refresh=False)
            next_refresh = time.monotonic() + 0.5
    bar.close()


def _resume_or_create(stack: Stack, store: Store, out_dir: Path, threads: int) -> bool:
    """Restore `stack` from a checkpoint the store vouches for, or create its run (trained on
    `threads` torch threads); returns False if it is finished."""
    runs = {r["run_id"]: r for r in store.runs()}
    path = checkpoint_path(out_dir, stack.run_id)
    checkpoint.clean_temporaries(path)
    if stack.run_id not in runs:
        create_run(store, stack.cfg, stack.norm, stack.model.layer_names, threads)
        return True
    if runs[stack.run_id]["status"] == "done":
        return False
    state = restore_checkpoint(store, stack.run_id, path, stack.cfg.log_every, stack.cfg.members)
    if state is not None:
        stack.load_state_dict(state)
    return True


def train(
    cfg: TrainConfig,
    out_dir: str | Path,
    ctx: RunContext | None = None,
    resume: bool = False,
    probes: Sequence[Probe] = (),
) -> Path:
    """Validate, then train every stack of `cfg` into `out_dir`; returns the directory.

    `ctx` says where and how (device, torch threads, progress, executor; see
    `bnlab.engine.context`); the default trains here, on CUDA when present. `probes` take
    measurements between steps (see `Probe`); their rows are stored as metrics.
    """
    ctx = ctx or RunContext()
    validate(cfg)
    if ctx.executor is not None:
        return ctx.executor.train(cfg, Path(out_dir), ctx, resume, tuple(probes))
    device = resolve_device(ctx.device)  # CUDA asked for but absent fails before any write
    out_dir, threads = Path(out_dir), resolve_threads(ctx, cfg)
    with lock.hold(out_dir), torch_threads(threads):
        store = open_existing(out_dir)  # a new run creates it once its data has loaded
        try:
            check_out_dir(cfg, store, out_dir, resume, threads)
            data = load_data(cfg.data).to(device)
            store = store or Store(out_dir, "c")
            for norm in cfg.norms:
                stack = build_stack(cfg, norm, data)
                if _resume_or_create(stack, store, out_dir, threads):
                    train_stack(stack, data, store, out_dir, ctx.progress, probes)
                    store.set_status(stack.run_id, "done")
        finally:
            if store is not None:
                store.close()
    return out_dir


__all__ = [
    "Probe",
    "Stack",
    "build_stack",
    "eval_chunk",
    "evaluate",
    "train",
    "train_stack",
    "train_step",
]
