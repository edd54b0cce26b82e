"""Verified copies kept ready to load: used while the sources are unchanged, redone otherwise."""

import os

import data_fixtures
import numpy as np
import pytest
from data_fixtures import write_tiny_idx

from bnlab.data import ChecksumError, formats, load, prepared, registry

isolated = data_fixtures.isolated  # fixture: no real data anywhere (see data_fixtures)


def _refuse_to_parse(*args, **kwargs):
    raise AssertionError("the split was parsed and verified again")


def _touch(path, delta_ns=10**9):
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + delta_ns))


def test_second_load_maps_the_verified_copy_without_verifying(isolated, monkeypatch):
    arrays = write_tiny_idx(monkeypatch, "mnist", isolated / "xdg/bnlab/mnist", gz=True)
    first = load("mnist", "train")
    monkeypatch.setattr(formats, "parse_idx", _refuse_to_parse)
    second = load("mnist", "train")
    np.testing.assert_array_equal(second.images[:, 0], arrays["train"][0])
    np.testing.assert_array_equal(second.labels, first.labels)
    assert second.source == first.source and not second.images.flags.writeable


def test_a_changed_source_file_is_verified_again(isolated, monkeypatch):
    write_tiny_idx(monkeypatch, "mnist", isolated / "xdg/bnlab/mnist")
    load("mnist", "train")
    labels = isolated / "xdg/bnlab/mnist/train-labels-idx1-ubyte"
    data = bytearray(labels.read_bytes())
    data[-1] ^= 1  # same size, one label changed
    labels.write_bytes(bytes(data))
    _touch(labels)
    with pytest.raises(ChecksumError):
        load("mnist", "train")


def test_changed_expected_checksums_or_a_tampered_copy_are_verified_again(isolated, monkeypatch):
    arrays = write_tiny_idx(monkeypatch, "mnist", isolated / "xdg/bnlab/mnist")
    load("mnist", "test")
    kept = next((isolated / "xdg/bnlab/prepared").glob("mnist-test-*.images.npy"))
    np.save(kept, np.zeros((6, 1, 28, 28), np.uint8))  # same shape, other values
    _touch(kept)
    np.testing.assert_array_equal(load("mnist", "test").images[:, 0], arrays["test"][0])
    images, labels = registry.IDX_FILES["mnist"]["test"]
    wrong = registry.IdxFile(images.filename, "0" * 64, images.magic, images.shape)
    monkeypatch.setitem(registry.IDX_FILES["mnist"], "test", (wrong, labels))
    with pytest.raises(ChecksumError):
        load("mnist", "test")


def test_an_unwritable_cache_still_loads(isolated, monkeypatch):
    arrays = write_tiny_idx(monkeypatch, "mnist", isolated / "xdg/bnlab/mnist")

    def refuse(*args, **kwargs):
        raise PermissionError("read-only")

    monkeypatch.setattr(prepared, "atomic_write", refuse)
    np.testing.assert_array_equal(load("mnist", "train").images[:, 0], arrays["train"][0])
    assert not (isolated / "xdg/bnlab/prepared").exists()
