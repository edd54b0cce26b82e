"""Test-set evaluation of a whole stack, in chunks of bounded memory."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from bnlab.engine.models import StackedModel

# Evaluation runs the test set through the stack in chunks whose largest activation takes at
# most this many bytes, so its memory is bounded whatever the test set's size.
EVAL_CHUNK_BYTES = 64 * 2**20


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


__all__ = ["EVAL_CHUNK_BYTES", "eval_chunk", "evaluate"]
