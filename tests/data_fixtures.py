"""Tiny files in every real dataset format, and an environment isolated from real data.

Imported by tests/test_data_*.py (the lead owns conftest.py). The tiny files are written
byte for byte in the published layouts (IDX big-endian headers, CIFAR Python pickles with
bytes keys, the official tar.gz member names, the subset's npz keys); the registry is
pointed at their hashes so the real code paths verify and read them.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from bnlab.data import locate, registry

CIFAR_CLASSES = registry.DATASETS["cifar10"].classes


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file: 0, 0, 0x08 (uint8), rank, big-endian uint32 dims, then the bytes."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, a.ndim]) + b"".join(d.to_bytes(4, "big") for d in a.shape)
    return header + a.tobytes()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def tiny_idx_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    return images, labels


def write_tiny_idx(monkeypatch, name: str, directory: Path, gz: bool = False) -> dict:
    """Write tiny IDX files for `name` into `directory` and point the registry at them.

    Returns {split: (images uint8 (n, 28, 28), labels (n,))}.
    """
    directory.mkdir(parents=True, exist_ok=True)
    arrays, table = {}, {}
    for split, n, seed in (("train", 12, 0), ("test", 6, 1)):
        images, labels = tiny_idx_split(n, seed + (10 if name == "fashion-mnist" else 0))
        specs = []
        for spec, arr in zip(registry.IDX_FILES[name][split], (images, labels), strict=True):
            data = idx_bytes(arr)
            path = directory / (spec.filename + (".gz" if gz else ""))
            path.write_bytes(gzip.compress(data) if gz else data)
            specs.append(registry.IdxFile(spec.filename, sha256(data), spec.magic, arr.shape))
        table[split] = tuple(specs)
        arrays[split] = (images, labels)
    monkeypatch.setitem(registry.IDX_FILES, name, table)
    return arrays


def cifar_batch_bytes(images: np.ndarray, labels: np.ndarray, protocol: int = 2) -> bytes:
    """A batch as the official files hold it: bytes keys, data (N, 3072) uint8, list labels."""
    batch = {
        b"batch_label": b"tiny",
        b"labels": [int(v) for v in labels],
        b"data": images.reshape(len(images), -1),
        b"filenames": [b"x.png"] * len(images),
    }
    return pickle.dumps(batch, protocol=protocol)


def tiny_cifar(n_per_batch: int = 4) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    out = {}
    for b in (*registry.CIFAR_SPLIT_BATCHES["train"], "test_batch"):
        images = rng.integers(0, 256, size=(n_per_batch, 3, 32, 32), dtype=np.uint8)
        out[b] = (images, rng.integers(0, 10, size=n_per_batch).astype(np.int64))
    return out


def write_cifar_batches(monkeypatch, directory: Path) -> dict:
    """Write `cifar-10-batches-py/` under `directory` and point the registry at its md5s."""
    batches = tiny_cifar()
    d = directory / registry.CIFAR_BATCH_DIR
    d.mkdir(parents=True, exist_ok=True)
    md5s = {}
    for b, (images, labels) in batches.items():
        data = cifar_batch_bytes(images, labels)
        (d / b).write_bytes(data)
        md5s[b] = md5(data)
    meta = pickle.dumps({b"label_names": [c.encode() for c in CIFAR_CLASSES]}, protocol=2)
    (d / "batches.meta").write_bytes(meta)
    md5s["batches.meta"] = md5(meta)
    monkeypatch.setattr(registry, "CIFAR_BATCH_MD5", md5s)
    return batches


def write_cifar_tar(monkeypatch, directory: Path, tmp: Path) -> dict:
    """The official archive layout: cifar-10-python.tar.gz holding cifar-10-batches-py/*."""
    batches = write_cifar_batches(monkeypatch, tmp)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(tmp / registry.CIFAR_BATCH_DIR, arcname=registry.CIFAR_BATCH_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / registry.CIFAR_TGZ_NAME).write_bytes(buf.getvalue())
    monkeypatch.setattr(registry, "CIFAR_TGZ_MD5", md5(buf.getvalue()))
    return batches


def write_subset(monkeypatch, path: Path) -> dict:
    """An npz with the subset's keys: x_* (N, 32, 32, 3) uint8 channels-last, y_* (N,)."""
    rng = np.random.default_rng(3)
    arrays = {
        "x_train": rng.integers(0, 256, size=(8, 32, 32, 3), dtype=np.uint8),
        "y_train": rng.integers(0, 10, size=8).astype(np.uint8),
        "x_test": rng.integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8),
        "y_test": rng.integers(0, 10, size=4).astype(np.uint8),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    monkeypatch.setattr(registry, "CIFAR_SUBSET_SHA256", sha256(path.read_bytes()))
    return arrays


@pytest.fixture
def isolated(tmp_path, monkeypatch) -> Path:
    """No real data anywhere: empty cache, no data dir, no system copy, no shared subset."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("BNLAB_DATA_DIR", raising=False)
    monkeypatch.setenv("BNLAB_CIFAR10_SUBSET", str(tmp_path / "no-subset" / "s.npz"))
    monkeypatch.setitem(locate.SYSTEM_DIRS, "fashion-mnist", (str(tmp_path / "system-fm"),))
    monkeypatch.setattr(locate, "subset_candidates", lambda: [tmp_path / "no-subset" / "s.npz"])
    return tmp_path
