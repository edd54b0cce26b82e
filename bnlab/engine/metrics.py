"""Per-step training metrics, buffered on the tensor side and drained as database rows.

`record` writes one (K, M) slab into a preallocated (capacity, K, M) tensor with a few tensor
ops and no host sync; `drain` converts the whole buffer to rows once per checkpoint. The M
columns are: train_loss, train_accuracy, grad_norm (global l2 over all parameters), lr, and
the l2 gradient norm of each layer (`model.layer_names`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from bnlab.engine.models import StackedModel

FIXED = ("train_loss", "train_accuracy", "grad_norm", "lr")


class MetricLog:
    def __init__(self, model: StackedModel, optimizer, capacity: int):
        self.model, self.optimizer = model, optimizer
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
        return train_rows, metric_rows
