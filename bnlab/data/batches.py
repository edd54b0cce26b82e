"""StackedBatches: (K, B, ...) batches for K models at once, each with its own shuffle stream.

Everything stays in one tensor in memory; a batch is one `index_select` with a (K, B)
index, so there is no DataLoader, no worker process and no per-sample Python.

drop_last semantics (default True): an epoch is floor(N / B) full batches and the last
N mod B samples of each permutation are not seen that epoch (they are different samples
every epoch). Why: with BatchNorm in training mode a batch of one sample has zero variance
per feature, so x_hat is 0 and nothing is learned (torch raises for it outright); small
ragged batches also give noisy statistics. With drop_last=False the last, partial batch
(N mod B samples, possibly 1) is served as-is and an epoch covers every sample exactly
once; guarding against a size-1 batch is then the caller's job.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from bnlab.data.augment import Augment, crop_flip

_AUGMENT_STREAM = 0xA06  # a second, independent stream per seed for augmentation draws


def epoch_steps(n: int, batch_size: int, drop_last: bool = True) -> int:
    """Batches in one epoch of `n` samples (module docstring: drop_last)."""
    return n // batch_size if drop_last else math.ceil(n / batch_size)


def _augment_seed(seed: int) -> int:
    """A seed for member `seed`'s augmentation generator, independent of its shuffle stream."""
    return int(np.random.SeedSequence([seed, _AUGMENT_STREAM]).generate_state(1, np.uint64)[0])


class StackedBatches:
    """Batches for K = len(seeds) models trained side by side on the same (x, y).

    x (N, C, H, W) float, y (N,) int64, on any device. Member k shuffles with a
    torch.Generator seeded with seeds[k] (a fresh permutation each epoch), so member k's
    stream equals that of a K = 1 StackedBatches with the same seed. `next()` returns
    xb (K, B, C, H, W), yb (K, B) and wraps into a new epoch by itself (step-based
    training, as the paper counts steps); `epoch()` yields the rest of the current epoch.
    `state_dict()` captures RNG states, epoch and position: a resumed run continues
    bitwise identically.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        seeds: Sequence[int],
        batch_size: int,
        drop_last: bool = True,
        augment: Augment | None = None,
    ) -> None:
        _check_args(x, y, seeds, batch_size)
        self.x, self.y = x, y
        self.seeds = tuple(int(s) for s in seeds)
        self.batch_size = batch_size
        self.drop_last = bool(drop_last)
        self.augment = augment
        self._item_shape = tuple(x.shape[1:])  # (C, H, W)
        self.steps_per_epoch = epoch_steps(x.shape[0], batch_size, drop_last)
        self._shuffle = [torch.Generator().manual_seed(s) for s in self.seeds]
        self._aug = [torch.Generator().manual_seed(_augment_seed(s)) for s in self.seeds]
        self.epoch_index = 0  # epochs started before the current one
        self.position = 0  # batches already served from the current epoch
        self._start_epoch()

    @property
    def num_members(self) -> int:
        return len(self.seeds)

    def _start_epoch(self) -> None:
        # Kept so that a resume can redraw this epoch's permutations exactly.
        self._epoch_states = [g.get_state() for g in self._shuffle]
        n, b = self.x.shape[0], self.batch_size
        perms = [torch.randperm(n, generator=g) for g in self._shuffle]
        perm = torch.stack(perms).to(self.x.device)  # (K, N)
        y_perm = self.y.index_select(0, perm.reshape(-1)).view(perm.shape)  # (K, N)
        # The epoch's batches are cut up front, so a step is one list lookup and one gather:
        # at batch 60 a step costs ~20 us, where every extra torch op would add ~2-3 us.
        starts = range(0, self.steps_per_epoch * b, b)
        self._idx_blocks = [perm[:, lo : lo + b].reshape(-1) for lo in starts]  # (K*b,) each
        self._y_blocks = [y_perm[:, lo : lo + b] for lo in starts]  # (K, b) each

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next batch: xb (K, B, C, H, W), yb (K, B); starts a new epoch when needed."""
        if self.position == self.steps_per_epoch:
            self.epoch_index += 1
            self.position = 0
            self._start_epoch()
        yb = self._y_blocks[self.position]  # (K, b), b = B except a ragged last batch
        xb = self.x.index_select(0, self._idx_blocks[self.position])  # (K*b, C, H, W)
        if self.augment is not None:
            xb = self._augmented(xb, yb.shape[1])
        self.position += 1
        return xb.view(*yb.shape, *self._item_shape), yb

    def _augmented(self, xb: torch.Tensor, b: int) -> torch.Tensor:
        # Each member draws from its own generator; the crop itself is one batched op.
        draws = [self.augment.draw(b, g) for g in self._aug]
        oy, ox, flip = (torch.cat(d) for d in zip(*draws, strict=True))  # (K*b,) each
        return crop_flip(xb, oy, ox, flip, self.augment.crop_padding, self.augment.fill)

    def epoch(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield the remaining batches of the current epoch (a whole new one if it is done)."""
        if self.position == self.steps_per_epoch:
            self.epoch_index += 1
            self.position = 0
            self._start_epoch()
        while self.position < self.steps_per_epoch:
            yield self.next()

    def _config(self) -> dict:
        return {
            "n": int(self.x.shape[0]),
            "batch_size": self.batch_size,
            "seeds": list(self.seeds),
            "drop_last": self.drop_last,
            "augment": repr(self.augment),
        }

    def state_dict(self) -> dict:
        """Plain data (ints, lists, uint8 tensors): safe for torch.save(weights_only=True)."""
        return {
            "config": self._config(),
            "epoch_index": self.epoch_index,
            "position": self.position,
            "shuffle_epoch_states": [s.clone() for s in self._epoch_states],
            "augment_states": [g.get_state() for g in self._aug],
        }

    def load_state_dict(self, d: dict) -> None:
        """Restore a state_dict from an identically configured StackedBatches."""
        mine = self._config()
        for key, value in d["config"].items():
            if mine.get(key) != value:
                raise ValueError(
                    f"state_dict config {key}={value!r} does not match this "
                    f"StackedBatches ({key}={mine.get(key)!r})"
                )
        for g, s in zip(self._shuffle, d["shuffle_epoch_states"], strict=True):
            g.set_state(s)
        self._start_epoch()  # redraws the saved epoch's permutations
        for g, s in zip(self._aug, d["augment_states"], strict=True):
            g.set_state(s)
        self.epoch_index = int(d["epoch_index"])
        self.position = int(d["position"])


def _check_args(x: torch.Tensor, y: torch.Tensor, seeds: Sequence[int], batch_size: int) -> None:
    if x.ndim < 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x {tuple(x.shape)} and y {tuple(y.shape)}: expected (N, ...) and (N,)")
    if len(seeds) == 0:
        raise ValueError("seeds=[] is empty; expected one int seed per model (K >= 1)")
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int | np.integer) or s < 0]
    if bad:
        raise ValueError(f"seeds={list(seeds)!r}: {bad[0]!r} is not an int >= 0")
    n = x.shape[0]
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= n:
        raise ValueError(f"batch_size={batch_size!r}; expected an int in [1, N={n}]")
