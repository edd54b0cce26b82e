"""A study's data as tensors in memory, from whatever the user has: a registered dataset,
a CSV, NumPy arrays or a `torch.utils.data.Dataset`, checked before any work.

Refused with the place named: a NaN or inf anywhere, a label that is not a class index, a
test label that no training example has. Without a test split, `Data.test_fraction` of the
examples is held out, stratified by class (scikit-learn's `train_test_split`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from bnlab.errors import BnlabError
from bnlab.study.spec import Data
from bnlab.study.tabular import read_csv

__all__ = ["StudyData", "load_data", "standardized"]

VERIFIED_ROWS = 256


@dataclass(frozen=True)
class StudyData:
    x_train: Tensor  # float (N, *features), e.g. (N, C, H, W) or (N, F)
    y_train: Tensor  # int64 (N,), class indices 0 .. classes - 1
    x_test: Tensor  # float (M, *features)
    y_test: Tensor  # int64 (M,)
    classes: int
    source: str  # what the data is and where it came from
    note: str = ""  # e.g. the CIFAR-10 subset warning
    verified: bool = False  # a registered dataset: its files were checked by bnlab.data

    def fingerprint(self) -> str:
        """sha256 of the arrays: a resumed run must see the same data. For a registered
        dataset, whose files `bnlab.data` verified by checksum, the shapes, every label and
        the first VERIFIED_ROWS inputs of each split (which show the transform) suffice."""
        h = hashlib.sha256()
        rows = VERIFIED_ROWS if self.verified else None
        for t in (self.x_train, self.y_train, self.x_test, self.y_test):
            h.update(str(tuple(t.shape)).encode())
            part = t[:rows] if t.dim() > 1 else t
            h.update(np.ascontiguousarray(part.cpu().numpy()).tobytes())
        return h.hexdigest()

    def to(self, device: torch.device, dtype: torch.dtype) -> StudyData:
        x, xt = (t.to(device, dtype) for t in (self.x_train, self.x_test))
        return replace(
            self,
            x_train=x,
            x_test=xt,
            y_train=self.y_train.to(device),
            y_test=self.y_test.to(device),
        )


def load_data(data) -> StudyData:
    """The data `data` (a `Data`, or what `Data.source` takes) names, as tensors, checked
    (see the module docstring)."""
    from bnlab import data as registry

    data = data if isinstance(data, Data) else Data(data)
    source = data.source
    if isinstance(source, str | Path) and str(source).lower().endswith(".csv"):
        x, y, names = read_csv(source, data.label)
        return _split(data, x, y, len(names), f"CSV {source} ({len(y):,} rows)")
    if isinstance(source, str):
        if source not in registry.DATASETS:
            raise BnlabError(
                f"Data.source: {source!r} is neither a registered dataset "
                f"({', '.join(registry.DATASETS)}) nor a path ending in .csv"
            )
        return _registered(data)
    if isinstance(source, tuple) and len(source) == 2:
        return _pair(data, source)
    if _is_dataset(source):
        x, y = _materialize(source, "Data.source")
        return _split(data, x, y, None, f"{type(source).__name__} ({len(y):,} examples)")
    raise BnlabError(
        f"Data.source: got {type(source).__name__}, expected a dataset name, a .csv path, "
        "(x, y) arrays, ((x, y), (x_test, y_test)) or a torch.utils.data.Dataset"
    )


def _registered(data: Data) -> StudyData:
    from bnlab.data import DATASETS
    from bnlab.engine.config import DataConfig
    from bnlab.engine.data import load_data as engine_load

    cfg = DataConfig(data.source, data.transform, data.train_subset, data.test_subset)
    found = engine_load(cfg)
    source = f"{DATASETS[data.source].title}: {found.source}"
    return _checked(
        StudyData(
            found.x_train,
            found.y_train,
            found.x_test,
            found.y_test,
            DATASETS[data.source].num_classes,
            source,
            found.note,
            verified=True,
        )
    )


def _pair(data: Data, source: tuple) -> StudyData:
    first, second = source
    if isinstance(first, tuple) and isinstance(second, tuple):  # ((x, y), (x_test, y_test))
        x, y = _arrays(first, "Data.source[0]")
        xt, yt = _arrays(second, "Data.source[1]")
        return _labelled(x, y, xt, yt, None, f"arrays ({len(y):,} train, {len(yt):,} test)")
    if _is_dataset(first) and _is_dataset(second):
        x, y = _materialize(first, "Data.source[0]")
        xt, yt = _materialize(second, "Data.source[1]")
        return _labelled(x, y, xt, yt, None, f"{type(first).__name__} (train and test)")
    x, y = _arrays(source, "Data.source")
    return _split(data, x, y, None, f"arrays ({len(y):,} examples)")


def _is_dataset(obj) -> bool:
    return isinstance(obj, torch.utils.data.Dataset) and hasattr(obj, "__len__")


def _materialize(ds, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Every (x, y) item of a map-style Dataset, stacked once into memory."""
    if len(ds) == 0:
        raise BnlabError(f"{where}: the Dataset is empty")
    xs, ys = zip(*(ds[i] for i in range(len(ds))), strict=True)
    x = torch.stack([torch.as_tensor(v) for v in xs]).numpy()  # (N, *features)
    return x, np.array([int(torch.as_tensor(v)) for v in ys])


def _arrays(pair, where: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = (np.asarray(t.cpu() if isinstance(t, Tensor) else t) for t in pair)
    if x.ndim < 2 or y.ndim != 1 or len(x) != len(y):
        raise BnlabError(
            f"{where}: got x {x.shape} and y {y.shape}, expected x (N, *features), y (N,)"
        )
    if not np.issubdtype(x.dtype, np.number):
        raise BnlabError(f"{where}: x has dtype {x.dtype}, expected numbers")
    return x, _integer_labels(y, where)


def _integer_labels(y: np.ndarray, where: str) -> np.ndarray:
    """Labels as int64 class indices; a fraction or a negative value is refused by row."""
    if not np.issubdtype(y.dtype, np.number):
        raise BnlabError(f"{where}: labels have dtype {y.dtype}, expected class indices 0, 1, ...")
    bad = np.flatnonzero(~np.isfinite(y) | (y < 0) | (y != np.round(y)))
    if bad.size:
        i = int(bad[0])
        raise BnlabError(
            f"{where}: label {y[i].item()!r} of example {i} is not a class index (0, 1, 2, ...)"
        )
    return y.astype(np.int64)


def _split(data: Data, x, y, classes: int | None, source: str) -> StudyData:
    from sklearn.model_selection import train_test_split

    try:
        x, xt, y, yt = train_test_split(
            x, y, test_size=data.test_fraction, random_state=data.split_seed, stratify=y
        )
    except ValueError as err:
        raise BnlabError(
            f"Data.test_fraction: cannot hold out a stratified test set: {err}"
        ) from err
    held_out = f"; {data.test_fraction:.0%} held out as test, stratified, seed {data.split_seed}"
    return _labelled(x, y, xt, yt, classes, source + held_out)


def _labelled(x, y, xt, yt, classes: int | None, source: str) -> StudyData:
    classes = classes or int(y.max()) + 1
    missing = sorted(set(np.unique(yt).tolist()) - set(np.unique(y).tolist()))
    if missing:
        raise BnlabError(
            f"Data: the test split has label {missing[0]}, which no training example has "
            f"(training labels: {sorted(set(y.tolist()))[:20]})"
        )
    tensors = [torch.as_tensor(np.ascontiguousarray(a)) for a in (x, y, xt, yt)]
    x, y, xt, yt = (t.to(torch.float32) if i % 2 == 0 else t for i, t in enumerate(tensors))
    return _checked(StudyData(x, y, xt, yt, classes, source))


def _checked(data: StudyData) -> StudyData:
    """Finite inputs (a verified dataset's pixels are) and labels in 0 .. classes - 1."""
    for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
        if not data.verified:
            _finite(split, x)
        outside = torch.nonzero((y < 0) | (y >= data.classes)).flatten()
        if outside.numel():
            i = int(outside[0])
            raise BnlabError(
                f"Data: the {split} split has label {int(y[i])} at example {i}, outside the "
                f"{data.classes} classes 0 .. {data.classes - 1}"
            )
    return data


def _finite(split: str, x: Tensor) -> None:
    bad = ~torch.isfinite(x.reshape(len(x), -1))  # (N, features)
    if bad.any():
        row, col = (int(v) for v in torch.nonzero(bad)[0])
        raise BnlabError(
            f"Data: the {split} split has a NaN or inf at example {row}, feature {col}; "
            "expected finite inputs"
        )


def standardized(data: StudyData) -> StudyData:
    """Every input feature z-scored with the training split's mean and std (a feature that
    never varies is only centred)."""
    mean = data.x_train.mean(0, keepdim=True)  # (1, *features)
    std = data.x_train.std(0, keepdim=True)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return replace(
        data,
        x_train=(data.x_train - mean) / std,
        x_test=(data.x_test - mean) / std,
        source=data.source + "; standardized with the training split's per-feature mean/std",
    )
