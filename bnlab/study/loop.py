"""The training loop of one variant: K members, logged, evaluated, checkpointed, resumable.

As the engine's loop (`bnlab.engine.train`): per-step metrics stay on the device until a
checkpoint step; there the rows and the checkpoint's record (its sha256) are written in one
transaction, then the checkpoint file is put in place (`bnlab.engine.resume`). A resume
trusts only a checkpoint the store vouches for, deletes the rows past it and trains on from
its step, so a resumed run logs exactly what an uninterrupted one does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from bnlab.analysis import module_activation_stats
from bnlab.data import StackedBatches
from bnlab.engine import checkpoint
from bnlab.engine.resume import restore_checkpoint, save_checkpoint
from bnlab.engine.store import Store
from bnlab.study.data import StudyData, standardized
from bnlab.study.members import DTYPES, build_member, settings
from bnlab.study.sequential import SequentialMembers
from bnlab.study.spec import Study
from bnlab.study.vmapped import VmappedMembers

__all__ = ["checkpoint_path", "run_id", "train_variant"]

ACTIVATION_EXAMPLES = 256  # test examples whose layer inputs are summarized at evaluations


def run_id(study: Study, variant: str) -> str:
    return f"{study.name}/{variant}"


def checkpoint_path(out_dir: Path, rid: str) -> Path:
    return Path(out_dir) / "checkpoints" / (rid.replace("/", "__") + ".pt")


@dataclass
class StepLog:
    """Per-step metrics kept as tensors until `drain` (one host sync per checkpoint)."""

    steps: list[int] = field(default_factory=list)
    values: list[Tensor] = field(default_factory=list)  # (K, 3 + L) each
    rows: list[tuple] = field(default_factory=list)  # long format (member, step, name, value)

    def record(self, step: int, loss: Tensor, acc: Tensor, layer_sq: Tensor, lr: float):
        lr_col = torch.full_like(loss, lr)
        grad = layer_sq.to(loss.dtype)
        self.steps.append(step)
        self.values.append(torch.cat([torch.stack([loss, acc, lr_col], 1), grad], 1))

    def drain(self) -> tuple[list[tuple], list[tuple]]:
        """(train_metrics rows, metrics rows) since the last drain."""
        train_rows = []
        if self.steps:
            v = torch.stack(self.values).to("cpu", torch.float64).numpy()  # (n, K, 3 + L)
            for i, step in enumerate(self.steps):
                for k in range(v.shape[1]):
                    loss, acc, lr = v[i, k, :3].tolist()
                    layers = np.sqrt(v[i, k, 3:])
                    grad_norm = math.sqrt(float(v[i, k, 3:].sum()))
                    blob = np.ascontiguousarray(layers, dtype="<f8").tobytes()
                    train_rows.append((k, step, loss, acc, grad_norm, lr, blob))
        metric_rows, self.rows, self.steps, self.values = self.rows, [], [], []
        return train_rows, metric_rows


def _members(study: Study, variant: str, mode: str, device) -> VmappedMembers | SequentialMembers:
    seeds = study.member_seeds()
    models = [build_member(study, variant, seed) for seed in seeds]
    s = settings(study, variant)
    if mode == "vmapped":
        return VmappedMembers(models, study.optimizer, s.lr, device)
    return SequentialMembers(models, study.optimizer, s.lr, device, seeds)


def _eval_rows(study: Study, members, data: StudyData, step: int) -> list[tuple]:
    loss, acc = members.evaluate(data.x_test, data.y_test)
    rows = [(k, step, "test_loss", float(v)) for k, v in enumerate(loss.tolist())]
    rows += [(k, step, "test_accuracy", float(v)) for k, v in enumerate(acc.tolist())]
    if study.activations:
        x = data.x_test[:ACTIVATION_EXAMPLES]
        for k in range(members.members):
            found = module_activation_stats(
                members.member(k), x, list(study.activations), training=False
            )
            rows += [(k, step, name, float(v)) for name, v in found.items()]
    return rows


def _restore(store: Store, rid: str, path: Path, study: Study, members, batches) -> int:
    """Load the checkpoint the store vouches for into `members` and `batches` (the store is
    truncated to its step, `bnlab.engine.resume`); returns its step (0: none)."""
    checkpoint.clean_temporaries(path)
    state = restore_checkpoint(store, rid, path, study.log_every, study.seeds)
    if state is None:
        return 0
    members.load_state_dict(state["members"])
    batches.load_state_dict(state["data"])
    checkpoint.set_rng_state(state["rng"])
    return int(state["step"])


def _state(step: int, members, batches) -> dict:
    state = {"step": step, "members": members.state_dict(), "data": batches.state_dict()}
    return {**state, "rng": checkpoint.rng_state()}


def train_variant(
    study: Study,
    variant: str,
    mode: str,
    data: StudyData,
    store: Store,
    out_dir: Path,
    device: torch.device,
    progress: bool = True,
    stop_at: int = 0,
) -> None:
    """Train `variant`'s members from their checkpoint (or the start) to the last step, or
    to `stop_at` when set (a replay)."""
    s = settings(study, variant)
    d = (standardized(data) if s.standardize else data).to(device, DTYPES[study.dtype])
    members = _members(study, variant, mode, device)
    batches = StackedBatches(d.x_train, d.y_train, study.member_seeds(), s.batch_size)
    rid = run_id(study, variant)
    path = checkpoint_path(out_dir, rid)
    step = _restore(store, rid, path, study, members, batches)
    end = min(stop_at or study.steps, study.steps)
    log = StepLog()
    bar = tqdm(total=end, initial=step, desc=rid, unit="step", disable=None if progress else True)
    while step < end:
        xb, yb = batches.next()
        lr = study.optimizer.lr_at(step + 1, study.steps, s.lr)
        loss, acc = members.step(xb, yb, lr)
        step += 1
        if step % study.log_every == 0:
            log.record(step, loss, acc, members.layer_sq_norms(), lr)
        if step % study.evaluation_every == 0 or step == study.steps:
            log.rows.extend(_eval_rows(study, members, d, step))
        if step % study.checkpoint_every == 0 or step == end:
            # the rows and the checkpoint's record in one transaction, then the file
            save_checkpoint(store, rid, _state(step, members, batches), log.drain(), path)
        bar.update(1)
    bar.close()
