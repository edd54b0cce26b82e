"""From a verified Dataset to one float tensor in memory: subsets and input transforms.

Training never re-reads files: a split is converted once, `to_tensor(ds) -> (x, y)`,
and StackedBatches gathers batches from it by index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from bnlab.data.load import Dataset
from bnlab.data.registry import DATASETS

TRANSFORMS = ("standardize", "binarize", "unit", "pm1", "none")


@dataclass(frozen=True)
class Subset:
    """A deterministic selection of samples; no randomness, so every run picks the same ones.

    kind "first_n": the first n samples in file order (the seed notebook's
    `Subset(ds, torch.arange(5000))`). kind "per_class": the first n samples of each
    class in file order, kept in file order (a class-balanced subset).
    """

    kind: str  # "first_n" | "per_class"
    n: int

    def __post_init__(self) -> None:
        if self.kind not in ("first_n", "per_class"):
            raise ValueError(f"kind={self.kind!r}; expected 'first_n' or 'per_class'")
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"n={self.n!r}; expected an int >= 1")

    def indices(self, labels: np.ndarray) -> np.ndarray:
        """Selected row indices, increasing; raises if the split is too small."""
        labels = np.asarray(labels)
        if self.kind == "first_n":
            if self.n > len(labels):
                raise ValueError(f"first_n({self.n}) of a split with only {len(labels)} samples")
            return np.arange(self.n)
        picked = []
        for c in np.unique(labels):
            rows = np.flatnonzero(labels == c)
            if len(rows) < self.n:
                raise ValueError(f"per_class({self.n}): class {c} has only {len(rows)} samples")
            picked.append(rows[: self.n])
        return np.sort(np.concatenate(picked))


def first_n(n: int) -> Subset:
    return Subset("first_n", n)


def per_class(n: int) -> Subset:
    return Subset("per_class", n)


def to_tensor(
    ds: Dataset, transform: str = "standardize", subset: Subset | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """x float32 (N, C, H, W) and y int64 (N,) on the CPU (move them once with `.to`).

    transform:
      "standardize": (pixel/255 - mean_c) / std_c with the dataset's train statistics;
      "binarize": 1.0 where pixel > 127 else 0.0 (Ioffe & Szegedy 2015, Sec. 4.1 feed
          MNIST as binary images; threshold at half the 0..255 range);
      "unit": pixel/255 in [0, 1];  "pm1": pixel/127.5 - 1 in [-1, 1] (the seed
          notebook's Normalize((0.5,), (0.5,)));  "none": the raw 0..255 values as float.
    """
    if transform not in TRANSFORMS:
        raise ValueError(f"transform={transform!r}; expected one of {list(TRANSFORMS)}")
    images, labels = ds.images, ds.labels
    if subset is not None:
        rows = subset.indices(labels)
        images, labels = images[rows], labels[rows]
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))  # (N, C, H, W)
    y = torch.from_numpy(np.array(labels, dtype=np.int64))  # (N,)
    return apply_transform(x, ds.name, transform), y


def apply_transform(x: torch.Tensor, name: str, transform: str) -> torch.Tensor:
    """`transform` applied to float pixel values 0..255, x (N, C, H, W)."""
    if transform == "standardize":
        spec = DATASETS[name]
        mean = torch.tensor(spec.mean, dtype=x.dtype).view(1, -1, 1, 1)  # (1, C, 1, 1)
        std = torch.tensor(spec.std, dtype=x.dtype).view(1, -1, 1, 1)
        return (x / 255.0 - mean) / std
    if transform == "binarize":
        return (x > 127).to(x.dtype)
    if transform == "unit":
        return x / 255.0
    if transform == "pm1":
        return x / 127.5 - 1.0
    return x


def pixel_zero(name: str, transform: str = "standardize") -> tuple[float, ...]:
    """What a black pixel (0) becomes under `transform`, per channel.

    Pass it as `Augment(fill=...)` so crop padding is black, as torchvision's
    RandomCrop(padding=4) pads before ToTensor/Normalize, rather than the mean colour.
    """
    channels = DATASETS[name].shape[0]
    zero = torch.zeros(1, channels, 1, 1)
    return tuple(float(v) for v in apply_transform(zero, name, transform).flatten())
