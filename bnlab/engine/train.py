"""The training loop: one stack of K members per norm variant, logged, evaluated, resumable.

`train(cfg, out_dir)` runs every stack of a config. A stack's life:

1. build the model (member k initialized from seed k) and the optimizer;
2. if resuming, restore the checkpoint and delete metric rows logged after its step; a
   finished run given more steps continues from its last checkpoint (`runs.continue_run`);
3. loop: forward on (K, B, ...) batches, backward, one optimizer update for all members;
   metrics go into a preallocated buffer (no per-step host sync), which reaches the store a
   transaction at a time every few seconds (`MetricLog.due`), so the run can be followed;
4. at each checkpoint step: write the rest of the rows and the checkpoint's record (step,
   sha256, row counts) in one transaction, then put the checkpoint file in place
   (`bnlab.engine.resume`). Rows past the last checkpoint (flushed since, or a crash between
   the two) are deleted by step 2, and the steps after it trained again, bit-identical.

SIGINT or SIGTERM ends the step in flight, checkpoints there and raises `Interrupted`
(`bnlab.engine.interrupt`). The results directory is locked for the whole call
(`bnlab.engine.lock`): one writer at a time.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch.nn.functional as F
from torch import Tensor

from bnlab.engine import checkpoint, lock, runs
from bnlab.engine.allocator import keep_freed_memory
from bnlab.engine.config import DTYPES, TrainConfig, validate
from bnlab.engine.context import RunContext, resolve_device, resolve_threads, torch_threads
from bnlab.engine.data import TrainData, load_data, make_batches
from bnlab.engine.evaluation import eval_chunk, evaluate
from bnlab.engine.hooks import ActivationRecorder
from bnlab.engine.interrupt import Interrupted, StopFlag, stop_requests
from bnlab.engine.metrics import MetricLog
from bnlab.engine.models import StackedModel, build_model
from bnlab.engine.optim import make_optimizer
from bnlab.engine.progress import Progress
from bnlab.engine.resume import restore_checkpoint, save_checkpoint
from bnlab.engine.runs import checkpoint_path, run_id
from bnlab.engine.store import Store

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


def _evaluate(stack: Stack, data: TrainData, log: MetricLog, display: Progress | None) -> None:
    loss, acc = evaluate(stack.model, data.x_test, data.y_test)
    log.extend([(k, stack.step, "test_loss", v) for k, v in enumerate(loss.tolist())])
    log.extend([(k, stack.step, "test_accuracy", v) for k, v in enumerate(acc.tolist())])
    if display is not None:
        display.evaluated(float(acc.mean()))


def _save(stack: Stack, log: MetricLog, store: Store, out_dir: Path) -> None:
    """Metrics and the checkpoint's record (one transaction), then the file: see the module
    docstring."""
    path = checkpoint_path(out_dir, stack.run_id)
    save_checkpoint(store, stack.run_id, stack.state_dict(), log.drain(), path)


def _stopping(stop: StopFlag | None) -> bool:
    return stop is not None and stop.signum is not None


def train_stack(
    stack: Stack,
    data: TrainData,
    store: Store,
    out_dir: Path,
    display: Progress | None = None,
    probes: Sequence[Probe] = (),
    stop: StopFlag | None = None,
) -> None:
    """Run one stack from its current step to the end, logging and checkpointing; rows reach
    `store` as `MetricLog.due` says. Once `stop` is raised (`bnlab.engine.interrupt`), the
    stack checkpoints after the step in flight and `Interrupted` is raised."""
    cfg, model = stack.cfg, stack.model
    log = MetricLog(model, stack.optimizer)
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
            _evaluate(stack, data, log, display)
        last = step == stack.total_steps
        if step % cfg.checkpoint_every == 0 or last or _stopping(stop):
            _save(stack, log, store, out_dir)
        elif log.due():
            store.write(stack.run_id, *log.drain())
        if display is not None:
            display.advance(loss)
        if _stopping(stop) and not last:
            raise Interrupted(stop.signum, stack.run_id, step)
    if display is not None:
        display.finish()


def _resume_or_create(stack: Stack, store: Store, out_dir: Path, threads: int) -> bool:
    """Restore `stack` from a checkpoint the store vouches for, or create its run (trained on
    `threads` torch threads); returns False if it is finished."""
    run = {r["run_id"]: r for r in store.runs()}.get(stack.run_id)
    path = checkpoint_path(out_dir, stack.run_id)
    checkpoint.clean_temporaries(path)
    if run is None:
        runs.create_run(store, stack.cfg, stack.norm, stack.model.layer_names, threads)
        return True
    if run["status"] == "done" and not runs.length_changed(run["config"], stack.cfg):
        return False
    state = restore_checkpoint(store, stack.run_id, path, stack.cfg.log_every, stack.cfg.members)
    if state is not None:
        stack.load_state_dict(state)
    return runs.continue_run(store, stack.run_id, run["config"], stack.cfg, stack.step, threads)


def _train_stacks(
    cfg: TrainConfig,
    store: Store,
    out_dir: Path,
    data: TrainData,
    threads: int,
    display: Progress | None,
    probes: Sequence[Probe],
) -> None:
    """Every stack of `cfg`, one after another; a stop request ends the call once the stack
    in training has checkpointed."""
    with stop_requests() as stop:
        for norm in cfg.norms:
            stack = build_stack(cfg, norm, data)
            trains = _resume_or_create(stack, store, out_dir, threads)
            if trains:
                if display is not None:
                    display.start(stack.run_id, stack.step, stack.total_steps, threads)
                train_stack(stack, data, store, out_dir, display, probes, stop)
            elif display is not None:
                display.skip(stack.total_steps)
            store.set_status(stack.run_id, "done")
            if _stopping(stop):  # it came during the last step: no other stack starts
                raise Interrupted(stop.signum, stack.run_id, stack.step)


def train(
    cfg: TrainConfig,
    out_dir: str | Path,
    ctx: RunContext | None = None,
    resume: bool = False,
    probes: Sequence[Probe] = (),
    display: Progress | None = None,
) -> Path:
    """Validate, then train every stack of `cfg` into `out_dir`; returns the directory.

    `ctx` says where and how (device, torch threads, progress, executor; see
    `bnlab.engine.context`); the default trains here, on CUDA when present. A run resumed
    trains with the thread count it stored, unless `ctx` sets another (then refused).
    `probes` take measurements between steps (see `Probe`); their rows are stored as
    metrics. `display` shows the progress of several trainings at once (`bnlab train`);
    by default, with `ctx.progress`, a bar for this call's stacks.
    """
    ctx = ctx or RunContext()
    validate(cfg)
    if ctx.executor is not None:
        return ctx.executor.train(cfg, Path(out_dir), ctx, resume, tuple(probes))
    device = resolve_device(ctx.device)  # CUDA asked for but absent fails before any write
    out_dir = Path(out_dir)
    own = display is None and ctx.progress
    with lock.hold(out_dir):
        store = runs.open_existing(out_dir)  # a new run creates it once its data has loaded
        try:
            threads = resolve_threads(ctx, cfg, runs.threads_to_resume(store, cfg))
            runs.check_out_dir(cfg, store, out_dir, resume, threads)
            display = Progress.for_configs([cfg]) if own else display
            with torch_threads(threads):
                data = load_data(cfg.data).to(device)
                store = store or Store(out_dir, "c")
                shown = display if ctx.progress else None
                _train_stacks(cfg, store, out_dir, data, threads, shown, probes)
        finally:
            if own and display is not None:
                display.close()
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
