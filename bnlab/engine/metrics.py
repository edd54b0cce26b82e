"""Per-step training metrics, buffered on the tensor side and drained as database rows.

`record` writes one (K, M) slab into a preallocated (capacity, K, M) tensor with a few tensor
ops and no host sync; `drain` converts the whole buffer to rows (one host sync). The M
columns are: train_loss, train_accuracy, grad_norm (global l2 over all parameters), lr, and
the l2 gradient norm of each layer (`model.layer_names`).

The training loop drains when `due`: the buffer is full, or `every_s` seconds have passed
since the last drain. So a run can be followed in its store while it trains (`bnlab results`),
and a crash loses at most those seconds of rows, while a drain (a host sync and a SQLite
transaction, fsync'ed) stays rare next to the steps.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import Tensor

from bnlab.engine.models import StackedModel

FIXED = ("train_loss", "train_accuracy", "grad_norm", "lr")
FLUSH_EVERY_S = 2.0  # the longest a logged row waits for the store, but for one step
FLUSH_STEPS = 1000  # logged steps buffered before a drain, however fast they come


class MetricLog:
    def __init__(
        self,
        model: StackedModel,
        optimizer,
        capacity: int = FLUSH_STEPS,
        every_s: float = FLUSH_EVERY_S,
    ):
        self.model, self.optimizer, self.every_s = model, optimizer, every_s
        self.drained_at = time.monotonic()
        width = len(FIXED) + len(model.layer_names)
        self.buf = model.flat.new_zeros((max(capacity, 1), model.members, width))
        self.steps: list[int] = []
        self.rows: list[tuple[int, int, str, float]] = []  # long format: (member, step, name, v)

    def record(self, step: int, loss: Tensor, acc: Tensor) -> None:
        """Log member losses/accuracies (K,) and the current gradient norms at `step`."""
        if len(self.steps) == self.buf.shape[0]:
            self.buf = torch.cat([self.buf, torch.zeros_like(self.buf)])
        row = self.buf[len(self.steps)]  # (K, M)
        layer_sq = self.model.layer_sq_norms(self.model.flat_grad)  # (K, L)
        row[:, 0] = loss
        row[:, 1] = acc
        row[:, 2] = layer_sq.sum(1).sqrt_()
        row[:, 3] = self.optimizer.lr[:, 0]
        row[:, 4:] = layer_sq.sqrt_()
        self.steps.append(step)

    def extend(self, rows: list[tuple[int, int, str, float]]) -> None:
        self.rows.extend(rows)

    def due(self) -> bool:
        """Whether the buffered rows should be drained now (module docstring)."""
        if not (self.steps or self.rows):
            return False
        full = len(self.steps) == self.buf.shape[0]
        return full or time.monotonic() - self.drained_at >= self.every_s

    def drain(self) -> tuple[list[tuple], list[tuple]]:
        """(train_rows, metric_rows) since the last drain; the buffer is emptied."""
        n = len(self.steps)
        values = self.buf[:n].to("cpu", torch.float64).numpy()  # (n, K, M): the host sync
        layer_blobs = np.ascontiguousarray(values[:, :, len(FIXED) :]).astype("<f8")
        fixed = values[:, :, : len(FIXED)].tolist()
        train_rows = [
            (k, step, *fixed[i][k], layer_blobs[i, k].tobytes())
            for i, step in enumerate(self.steps)
            for k in range(values.shape[1])
        ]
        metric_rows, self.rows, self.steps = self.rows, [], []
        self.drained_at = time.monotonic()
        return train_rows, metric_rows
