"""StackedBatches, augmentation and to_tensor: shapes, independence, determinism, resume."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from bnlab.data import Augment, StackedBatches, crop_flip, first_n, per_class, pixel_zero
from bnlab.data import to_tensor as to_tensor_
from bnlab.data.load import Dataset

N, C, H, W = 50, 1, 6, 6


def _data(n=N):
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, C, H, W).contiguous()
    return x, torch.arange(n) % 10  # x[i] is filled with i, so a batch reveals its indices


def _ids(xb):
    return xb[..., 0, 0, 0].long()  # (K, B) sample indices


def test_shapes_and_labels_match_images():
    x, y = _data()
    sb = StackedBatches(x, y, seeds=[0, 1, 2], batch_size=8)
    xb, yb = sb.next()
    assert xb.shape == (3, 8, C, H, W) and yb.shape == (3, 8) and yb.dtype == torch.int64
    assert torch.equal(yb, _ids(xb) % 10)
    assert sb.steps_per_epoch == N // 8


def test_member_k_equals_a_single_member_stream_with_its_seed():
    x, y = _data()
    stacked = StackedBatches(x, y, seeds=[11, 22, 33], batch_size=7)
    single = StackedBatches(x, y, seeds=[22], batch_size=7)
    for _ in range(20):  # crosses two epoch boundaries
        assert torch.equal(stacked.next()[0][1], single.next()[0][0])
    first = StackedBatches(x, y, seeds=[11, 22], batch_size=7).next()[0]
    assert not torch.equal(first[0], first[1])  # different seeds shuffle differently


def test_each_epoch_is_a_fresh_permutation_and_is_deterministic():
    x, y = _data()
    a = StackedBatches(x, y, seeds=[5], batch_size=10)
    b = StackedBatches(x, y, seeds=[5], batch_size=10)
    e0 = torch.cat([_ids(xb)[0] for xb, _ in a.epoch()])
    e1 = torch.cat([_ids(xb)[0] for xb, _ in a.epoch()])
    assert sorted(e0.tolist()) == list(range(N)) and not torch.equal(e0, e1)
    assert torch.equal(e0, torch.randperm(N, generator=torch.Generator().manual_seed(5)))
    assert torch.equal(torch.cat([_ids(xb)[0] for xb, _ in b.epoch()]), e0)


def test_drop_last_false_covers_every_sample_once_with_a_ragged_last_batch():
    x, y = _data()
    sb = StackedBatches(x, y, seeds=[0, 1], batch_size=8, drop_last=False)
    batches = list(sb.epoch())
    assert len(batches) == sb.steps_per_epoch == 7 and batches[-1][0].shape[1] == N % 8
    for k in range(2):
        seen = torch.cat([_ids(xb)[k] for xb, _ in batches])
        assert sorted(seen.tolist()) == list(range(N))


def test_drop_last_true_serves_only_full_batches():
    x, y = _data()
    sb = StackedBatches(x, y, seeds=[0], batch_size=8)
    sizes = [xb.shape[1] for xb, _ in sb.epoch()]
    assert sizes == [8] * 6


def test_state_dict_resume_continues_bitwise_identically():
    x, y = _data()
    aug = Augment(crop_padding=2, flip=True)
    ref = StackedBatches(x, y, seeds=[3, 4], batch_size=8, augment=aug)
    for _ in range(9):  # mid second epoch
        ref.next()
    buf = io.BytesIO()
    torch.save(ref.state_dict(), buf)
    expected = [ref.next() for _ in range(12)]
    resumed = StackedBatches(x, y, seeds=[3, 4], batch_size=8, augment=aug)
    buf.seek(0)
    resumed.load_state_dict(torch.load(buf, weights_only=True))
    for (xe, ye), (xr, yr) in zip(expected, (resumed.next() for _ in range(12)), strict=True):
        assert torch.equal(xe, xr) and torch.equal(ye, yr)


def test_state_dict_from_another_config_is_refused():
    x, y = _data()
    state = StackedBatches(x, y, seeds=[0], batch_size=8).state_dict()
    with pytest.raises(ValueError, match="batch_size=8"):
        StackedBatches(x, y, seeds=[0], batch_size=10).load_state_dict(state)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seeds": []}, "seeds=.*empty"),
        ({"batch_size": N + 1}, "batch_size=51"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"seeds": [-1]}, "-1 is not an int >= 0"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, match):
    x, y = _data()
    args = {"seeds": [0], "batch_size": 8} | kwargs
    with pytest.raises(ValueError, match=match):
        StackedBatches(x, y, **args)


def _naive_crop_flip(x, oy, ox, flip, p):
    out = torch.empty_like(x)
    padded = torch.nn.functional.pad(x, (p, p, p, p))
    for i in range(x.shape[0]):
        win = padded[i, :, oy[i] : oy[i] + x.shape[2], ox[i] : ox[i] + x.shape[3]]
        out[i] = win.flip(-1) if flip[i] else win
    return out


def test_crop_flip_matches_a_per_sample_reference():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 3, 8, 8, generator=g)
    aug = Augment(crop_padding=4, flip=True)
    oy, ox, flip = aug.draw(16, g)
    assert 0 < flip.sum() < 16 and oy.min() >= 0 and oy.max() <= 8
    out = crop_flip(x, oy, ox, flip, 4)
    assert torch.equal(out, _naive_crop_flip(x, oy, ox, flip, 4))


def test_crop_identity_offsets_and_flip_mirror():
    x = torch.randn(2, 3, 5, 5)
    centre = torch.full((2,), 4)
    assert torch.equal(crop_flip(x, centre, centre, torch.tensor([False, False]), 4), x)
    assert torch.equal(crop_flip(x, centre, centre, torch.tensor([True, True]), 4), x.flip(-1))
    shifted = crop_flip(x, torch.zeros(2, dtype=torch.long), centre, torch.tensor([False] * 2), 4)
    assert torch.equal(shifted[:, :, 4:], x[:, :, :1]) and (shifted[:, :, :4] == 0).all()


def test_crop_fill_per_channel():
    x = torch.zeros(1, 2, 3, 3)
    out = crop_flip(x, torch.tensor([0]), torch.tensor([0]), torch.tensor([False]), 1, (-1.0, 5.0))
    assert out[0, 0, 0, 0] == -1.0 and out[0, 1, 0, 0] == 5.0 and out[0, 1, 1, 1] == 0.0


def test_augmented_stream_is_per_member_and_deterministic():
    x, y = _data()
    aug = Augment(crop_padding=2)
    stacked = StackedBatches(x, y, seeds=[1, 2], batch_size=8, augment=aug)
    single = StackedBatches(x, y, seeds=[2], batch_size=8, augment=aug)
    for _ in range(8):
        assert torch.equal(stacked.next()[0][1], single.next()[0][0])
    plain = StackedBatches(x, y, seeds=[2], batch_size=8).next()[0]
    auged = StackedBatches(x, y, seeds=[2], batch_size=8, augment=aug).next()[0]
    assert not torch.equal(plain, auged) and (auged == 0).any()  # padding shows


def _ds(images, labels, name="mnist"):
    return Dataset(name, "train", images, labels, tuple("0123456789"), "test")


def test_to_tensor_transforms():
    images = np.array([0, 127, 128, 255], np.uint8).reshape(4, 1, 1, 1)
    ds = _ds(images, np.arange(4, dtype=np.int64))
    x, y = to_tensor_(ds, "binarize")
    assert x.dtype == torch.float32 and x.flatten().tolist() == [0.0, 0.0, 1.0, 1.0]
    unit = to_tensor_(ds, "unit")[0].flatten()
    assert torch.allclose(unit, torch.tensor([0.0, 127 / 255, 128 / 255, 1.0]))
    assert to_tensor_(ds, "pm1")[0].flatten()[[0, 3]].tolist() == [-1.0, 1.0]
    std = to_tensor_(ds, "standardize")[0].flatten()
    assert torch.allclose(std, (torch.tensor([0, 127, 128, 255]) / 255 - 0.1307) / 0.3081)
    assert pixel_zero("mnist") == pytest.approx((-0.1307 / 0.3081,))
    assert y.dtype == torch.int64
    with pytest.raises(ValueError, match="transform='zscore'"):
        to_tensor_(ds, "zscore")


def test_subsets_are_deterministic_first_n_and_per_class():
    labels = np.array([0, 1, 0, 2, 1, 0, 2, 2], np.int64)
    ds = _ds(np.arange(8, dtype=np.uint8).reshape(8, 1, 1, 1), labels)
    assert to_tensor_(ds, "none", first_n(5))[0].flatten().tolist() == [0, 1, 2, 3, 4]
    assert per_class(2).indices(labels).tolist() == [0, 1, 2, 3, 4, 6]
    with pytest.raises(ValueError, match="class 1 has only 2"):
        per_class(3).indices(labels)
    with pytest.raises(ValueError, match="first_n\\(9\\)"):
        first_n(9).indices(labels)
