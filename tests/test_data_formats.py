"""Readers on tiny files in each real format, and their refusals of damaged files."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest
from data_fixtures import (
    cifar_batch_bytes,
    idx_bytes,
    md5,
    sha256,
    write_cifar_tar,
    write_subset,
)

from bnlab.data import formats, registry
from bnlab.data.errors import ChecksumError, DataError

IMAGES = np.arange(3 * 28 * 28, dtype=np.uint64).reshape(3, 28, 28).astype(np.uint8)


def _spec(data: bytes, magic: int = 2051, shape=(3, 28, 28)) -> registry.IdxFile:
    return registry.IdxFile("x-images-idx3-ubyte", sha256(data), magic, shape)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip_raw_and_gz(tmp_path, gz):
    data = idx_bytes(IMAGES)
    path = tmp_path / ("f.gz" if gz else "f")
    path.write_bytes(gzip.compress(data) if gz else data)
    out = formats.parse_idx(formats.read_maybe_gz(path), _spec(data), path)
    assert out.dtype == np.uint8 and out.shape == (3, 28, 28)
    np.testing.assert_array_equal(out, IMAGES)


def test_idx_header_is_big_endian_with_magic_2051():
    data = idx_bytes(IMAGES)
    assert data[:4] == bytes([0, 0, 8, 3]) and int.from_bytes(data[:4], "big") == 2051
    assert int.from_bytes(data[4:8], "big") == 3 and len(data) == 16 + IMAGES.size


def test_corrupted_idx_names_file_and_both_hashes(tmp_path):
    data = idx_bytes(IMAGES)
    bad = bytearray(data)
    bad[100] ^= 0xFF  # one flipped pixel
    path = tmp_path / "train-images-idx3-ubyte"
    with pytest.raises(ChecksumError) as err:
        formats.parse_idx(bytes(bad), _spec(data), path)
    msg = str(err.value)
    assert str(path) in msg and sha256(data) in msg and sha256(bytes(bad)) in msg


def test_truncated_idx_is_refused(tmp_path):
    data = idx_bytes(IMAGES)
    with pytest.raises(ChecksumError, match="expected " + sha256(data)):
        formats.parse_idx(data[:-10], _spec(data), "f")


def test_truncated_gzip_is_refused_with_file_name(tmp_path):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(IMAGES))[:-20])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz"):
        formats.read_maybe_gz(path)


def test_idx_header_checked_even_when_hash_matches():
    # A labels file registered as images: right hash, wrong magic -> refused.
    labels = idx_bytes(np.zeros(5, np.uint8))
    with pytest.raises(DataError, match=r"magic 2049, expected 2051"):
        formats.parse_idx(labels, _spec(labels, 2051, (5,)), "f")
    with pytest.raises(DataError, match=r"shape \(5,\), expected \(6,\)"):
        formats.parse_idx(labels, _spec(labels, 2049, (6,)), "f")


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar_batch_channels_are_r_g_b_planes(protocol):
    images = np.random.default_rng(0).integers(0, 256, (2, 3, 32, 32), dtype=np.uint8)
    data = cifar_batch_bytes(images, np.array([3, 9]), protocol)
    x, y = formats.parse_cifar_batch(data, md5(data), "data_batch_1")
    np.testing.assert_array_equal(x, images)
    # Official layout: row = 1024 red, 1024 green, 1024 blue, each row-major.
    flat = images.reshape(2, -1)
    assert x[1, 1, 0, 5] == flat[1, 1024 + 5] and x[0, 2, 1, 0] == flat[0, 2048 + 32]
    assert y.dtype == np.int64 and y.tolist() == [3, 9]


def test_cifar_batch_wrong_md5_refused():
    data = cifar_batch_bytes(np.zeros((1, 3, 32, 32), np.uint8), np.array([1]))
    with pytest.raises(ChecksumError, match="md5 mismatch"):
        formats.parse_cifar_batch(data, "0" * 32, "data_batch_1")


def test_pickle_that_runs_code_is_refused_even_with_matching_md5():
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    data = pickle.dumps({b"data": Evil(), b"labels": []})
    with pytest.raises(DataError, match=r"refusing to load builtins\.print"):
        formats.parse_cifar_batch(data, md5(data), "data_batch_1")


def test_cifar_tar_reads_members_and_refuses_wrong_archive(tmp_path, monkeypatch):
    batches = write_cifar_tar(monkeypatch, tmp_path / "dl", tmp_path / "src")
    path = tmp_path / "dl" / registry.CIFAR_TGZ_NAME
    blobs = formats.read_cifar_tar(path, registry.CIFAR_TGZ_MD5, ("test_batch", "batches.meta"))
    x, _ = formats.parse_cifar_batch(
        blobs["test_batch"], registry.CIFAR_BATCH_MD5["test_batch"], "t"
    )
    np.testing.assert_array_equal(x, batches["test_batch"][0])
    path.write_bytes(path.read_bytes()[:-100])  # truncated download
    with pytest.raises(ChecksumError, match="md5 mismatch"):
        formats.read_cifar_tar(path, registry.CIFAR_TGZ_MD5, ("test_batch",))


def test_subset_npz_is_transposed_to_nchw_and_verified(tmp_path, monkeypatch):
    path = tmp_path / "cifar10_subset.npz"
    arrays = write_subset(monkeypatch, path)
    x, y = formats.read_cifar_subset(path, registry.CIFAR_SUBSET_SHA256, "test")
    assert x.shape == (4, 3, 32, 32) and y.dtype == np.int64
    np.testing.assert_array_equal(x[2, 1], arrays["x_test"][2, :, :, 1])  # green plane
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ChecksumError, match=registry.CIFAR_SUBSET_SHA256):
        formats.read_cifar_subset(path, registry.CIFAR_SUBSET_SHA256, "test")
