"""The engine's view of `bnlab.data`: tensors once in memory, and per-member batch streams."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from bnlab.engine.config import DataConfig, TrainConfig


@dataclass(frozen=True)
class TrainData:
    x_train: Tensor  # float32 (N, C, H, W)
    y_train: Tensor  # int64 (N,)
    x_test: Tensor  # float32 (M, C, H, W)
    y_test: Tensor  # int64 (M,)
    source: str  # where the data came from, as bnlab.data reports it
    note: str  # e.g. the CIFAR-10 subset warning

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])

    def to(self, device: torch.device) -> TrainData:
        """The same data on `device`: it goes there once, before training starts."""
        moved = [t.to(device) for t in (self.x_train, self.y_train, self.x_test, self.y_test)]
        return TrainData(*moved, self.source, self.note)


def load_data(cfg: DataConfig) -> TrainData:
    from bnlab import data

    data_dir = cfg.data_dir or None
    train = data.load(cfg.dataset, "train", data_dir)
    test = data.load(cfg.dataset, "test", data_dir)
    train_subset = data.first_n(cfg.train_subset) if cfg.train_subset else None
    test_subset = data.first_n(cfg.test_subset) if cfg.test_subset else None
    x, y = data.to_tensor(train, transform=cfg.transform, subset=train_subset)
    xt, yt = data.to_tensor(test, transform=cfg.transform, subset=test_subset)
    note = " ".join(n for n in {train.note, test.note} if n)
    return TrainData(x, y, xt, yt, train.source, note)


def make_batches(data: TrainData, seeds: list[int], cfg: TrainConfig):
    """A `bnlab.data.StackedBatches` stream: member k shuffles with its own seed."""
    from bnlab import data as bdata

    # pad with black pixels, as torchvision's RandomCrop(padding=4) before normalization
    fill = bdata.pixel_zero(cfg.data.dataset, cfg.data.transform)
    augment = bdata.Augment(crop_padding=4, flip=True, fill=fill) if cfg.data.augment else None
    return bdata.StackedBatches(
        data.x_train, data.y_train, seeds, cfg.batch_size, cfg.drop_last, augment
    )
