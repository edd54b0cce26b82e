"""Checks on the real files (CI fetches MNIST and Fashion-MNIST first with `make data`).

Each test is skipped, saying why, only when the data is not on this machine.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bnlab.data import DATASETS, StackedBatches, first_n, load, to_tensor
from bnlab.data.errors import MissingDataError

MNIST_HIST = {
    "train": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    "test": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
}
MEAN_PIXEL = {  # mean of all uint8 pixels, measured on the verified files
    ("mnist", "train"): 33.3184,
    ("mnist", "test"): 33.7912,
    ("fashion-mnist", "train"): 72.9404,
    ("fashion-mnist", "test"): 73.1466,
}


def _load_or_skip(name, split):
    try:
        return load(name, split)
    except MissingDataError:
        pytest.skip(f"{name} is not on this machine; run `bnlab data fetch {name}`")


@pytest.mark.parametrize("split", ["train", "test"])
def test_mnist_label_histogram_shape_and_mean(split):
    ds = _load_or_skip("mnist", split)
    n = 60000 if split == "train" else 10000
    assert ds.images.shape == (n, 1, 28, 28) and ds.images.dtype == np.uint8
    assert np.bincount(ds.labels, minlength=10).tolist() == MNIST_HIST[split]
    assert ds.images.mean() == pytest.approx(MEAN_PIXEL[("mnist", split)], abs=1e-3)
    assert ds.classes == tuple("0123456789")


def test_mnist_first_labels_in_file_order():
    assert _load_or_skip("mnist", "train").labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert _load_or_skip("mnist", "test").labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


@pytest.mark.parametrize("split", ["train", "test"])
def test_fashion_mnist_balanced_classes_shape_and_mean(split):
    ds = _load_or_skip("fashion-mnist", split)
    per_class = 6000 if split == "train" else 1000
    assert ds.images.shape == (10 * per_class, 1, 28, 28)
    assert np.bincount(ds.labels, minlength=10).tolist() == [per_class] * 10
    assert ds.images.mean() == pytest.approx(MEAN_PIXEL[("fashion-mnist", split)], abs=1e-3)
    assert ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot"


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_registry_mean_std_match_the_real_train_split(name):
    x, _ = to_tensor(_load_or_skip(name, "train"), "unit")
    spec = DATASETS[name]
    assert x.mean().item() == pytest.approx(spec.mean[0], abs=1e-4)
    assert x.std().item() == pytest.approx(spec.std[0], abs=1e-4)
    z, _ = to_tensor(_load_or_skip(name, "train"), "standardize")
    assert abs(z.mean().item()) < 1e-3 and z.std().item() == pytest.approx(1.0, abs=1e-3)


def test_seed_notebook_split_is_first_5000_and_1000():
    train, test = _load_or_skip("mnist", "train"), _load_or_skip("mnist", "test")
    x, y = to_tensor(train, "binarize", first_n(5000))
    xt, _ = to_tensor(test, "binarize", first_n(1000))
    assert x.shape == (5000, 1, 28, 28) and xt.shape == (1000, 1, 28, 28)
    assert torch.equal(y, torch.tensor(train.labels[:5000]))
    assert set(torch.unique(x).tolist()) == {0.0, 1.0}
    xb, yb = StackedBatches(x, y, seeds=range(4), batch_size=60).next()
    assert xb.shape == (4, 60, 1, 28, 28) and yb.shape == (4, 60)


def test_cifar10_subset_is_the_real_data():
    ds = _load_or_skip("cifar10", "train")
    if not ds.is_subset:
        pytest.skip("the full CIFAR-10 is present; these checks are for the subset")
    test = _load_or_skip("cifar10", "test")
    assert ds.images.shape == (4000, 3, 32, 32) and test.images.shape == (1000, 3, 32, 32)
    assert ds.labels[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert test.labels[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    red_row0 = ds.images[0, 0, 0, :10].tolist()  # image 0, red channel, row 0
    assert red_row0 == [59, 43, 50, 68, 98, 119, 139, 145, 149, 149]
    assert "5,000-image subset" in ds.note and ds.classes[0] == "airplane"
