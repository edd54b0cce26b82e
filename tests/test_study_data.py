"""A study's data from what a user has: a CSV (numeric or named labels), NumPy arrays with or
without a test split, a torch Dataset; the split is stratified and reproducible, and the
standardized variant uses the training split's statistics only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bnlab.errors import BnlabError
from bnlab.study import Data
from bnlab.study.data import load_data, standardized
from bnlab.study.tabular import read_csv


def test_csv_with_named_labels(tmp_path):
    path = tmp_path / "t.csv"
    rows = [f"{i},{i * 0.5},{'spam' if i % 3 else 'ham'}" for i in range(30)]
    path.write_text("a,b,kind\n" + "\n".join(rows) + "\n")
    x, y, names = read_csv(path, "kind")
    assert names == ("ham", "spam") and x.shape == (30, 2)
    assert y.tolist() == [0 if i % 3 == 0 else 1 for i in range(30)]
    np.testing.assert_array_equal(x[:, 1], np.arange(30) * 0.5)
    data = load_data(Data(str(path), label="kind", test_fraction=0.2))
    assert (len(data.y_train), len(data.y_test), data.classes) == (24, 6, 2)
    assert "20% held out as test, stratified, seed 0" in data.source
    assert data.fingerprint() == load_data(Data(str(path), label="kind")).fingerprint()


def test_csv_refuses_a_non_number_with_its_place(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b,label\n1,2,0\n1,x,1\n")
    with pytest.raises(BnlabError, match=r"line 3, column 'b': got 'x', expected a number"):
        read_csv(path, "label")


def test_arrays_with_and_without_a_test_split():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(50, 3)), np.arange(50) % 5
    split = load_data(Data((x, y), test_fraction=0.2, split_seed=3))
    assert (len(split.y_train), len(split.y_test), split.classes) == (40, 10, 5)
    assert sorted(split.y_test.tolist()) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]  # stratified
    given = load_data(((x[:40], y[:40]), (x[40:], y[40:])))
    assert torch.equal(given.x_test, torch.as_tensor(x[40:], dtype=torch.float32))


def test_a_torch_dataset_is_materialized():
    x, y = torch.randn(40, 2, 4, 4), torch.arange(40) % 4
    data = load_data(Data(torch.utils.data.TensorDataset(x, y), test_fraction=0.25))
    assert data.x_train.shape == (30, 2, 4, 4) and data.classes == 4


def test_standardized_uses_the_training_split_only():
    x = np.concatenate([np.full((20, 1), 10.0), np.arange(20.0)[:, None]], axis=1)
    data = load_data(Data((x, np.arange(20) % 2), test_fraction=0.5))
    z = standardized(data)
    assert torch.allclose(z.x_train.mean(0), torch.zeros(2), atol=1e-6)
    assert torch.equal(z.x_train[:, 0], torch.zeros(10))  # constant feature: centred only
    mean, std = data.x_train[:, 1].mean(), data.x_train[:, 1].std()
    assert torch.allclose(z.x_test[:, 1], (data.x_test[:, 1] - mean) / std)


def test_unknown_sources_are_named():
    with pytest.raises(BnlabError, match="neither a registered dataset"):
        load_data(Data("imagenet"))
    with pytest.raises(BnlabError, match="got dict"):
        load_data(Data({"x": 1}))
