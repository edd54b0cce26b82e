"""Shared test helpers: a `cmp` that says exact / close / maxdiff, as in makemore part 4."""

from __future__ import annotations

import torch


def assert_close(name: str, ours: torch.Tensor, ref: torch.Tensor, rtol: float, atol: float):
    """Compare two tensors; on failure, say which quantity and by how much it is off."""
    assert ours.shape == ref.shape, f"{name}: shape {tuple(ours.shape)} != {tuple(ref.shape)}"
    assert ours.dtype == ref.dtype, f"{name}: dtype {ours.dtype} != {ref.dtype}"
    maxdiff = (ours - ref).abs().max().item() if ours.numel() else 0.0
    assert torch.allclose(ours, ref, rtol=rtol, atol=atol, equal_nan=True), (
        f"{name}: not close (maxdiff {maxdiff:.3e}, rtol {rtol}, atol {atol})"
    )
