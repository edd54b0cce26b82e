"""Readers for the on-disk formats: IDX (raw or .gz), CIFAR pickle batches and tar.gz, npz.

Each reader checks the published hash first, then the header/structure, and only then
builds arrays. Images come back as uint8 (N, C, H, W), labels as int64 (N,).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np

from bnlab.data.errors import ChecksumError, DataError
from bnlab.data.registry import IdxFile

_IDX_UBYTE = 0x08  # IDX type code for unsigned byte


def read_maybe_gz(path: Path) -> bytes:
    """The file's decompressed bytes (`.gz` by suffix); a truncated gzip is a DataError."""
    raw = Path(path).read_bytes()
    if path.suffix != ".gz":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as err:
        raise DataError(
            f"{path}: not a complete gzip file ({err}); delete it and fetch again"
        ) from err


def check_digest(data: bytes, expected: str, path: object, algorithm: str = "sha256") -> None:
    actual = hashlib.new(algorithm, data).hexdigest()
    if actual != expected:
        hint = f"size {len(data):,} bytes; delete the file and run `bnlab data fetch`"
        raise ChecksumError(path, algorithm, expected, actual, hint)


def parse_idx(data: bytes, spec: IdxFile, path: object) -> np.ndarray:
    """Check sha256 and the IDX header, then view the payload as uint8 `spec.shape`."""
    check_digest(data, spec.sha256, path)
    # Header: 2 zero bytes, type code, rank, then rank big-endian uint32 dims.
    # Checked even after the hash so that a wrong entry in the registry cannot slip by.
    if len(data) < 4:
        raise DataError(f"{path}: {len(data)} bytes is too short for an IDX header")
    magic = int.from_bytes(data[:4], "big")
    rank = data[3]
    if magic != spec.magic or data[2] != _IDX_UBYTE:
        raise DataError(f"{path}: IDX magic {magic}, expected {spec.magic} (uint8, rank {rank})")
    header_len = 4 + 4 * rank
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank))
    if dims != spec.shape:
        raise DataError(f"{path}: IDX header shape {dims}, expected {spec.shape}")
    payload = len(data) - header_len
    if payload != int(np.prod(dims)):
        raise DataError(f"{path}: {payload} payload bytes, header promises {int(np.prod(dims))}")
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(dims)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Builds numpy arrays and nothing else: a pickle can run arbitrary code otherwise."""

    _ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
            ("numpy._core.numeric", "_frombuffer"),
            ("numpy.core.numeric", "_frombuffer"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes
        }
    )

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")
        return super().find_class(module, name)


def _unpickle(data: bytes, path: object) -> dict:
    try:
        # encoding="bytes": the official batches are Python 2 pickles with bytes keys.
        obj = _NumpyOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as err:
        raise DataError(f"{path}: not a readable CIFAR pickle ({err})") from err
    if not isinstance(obj, dict):
        raise DataError(f"{path}: CIFAR pickle holds {type(obj).__name__}, expected dict")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def parse_cifar_batch(data: bytes, md5: str, path: object) -> tuple[np.ndarray, np.ndarray]:
    """One `data_batch_*`/`test_batch`: md5 check, then (N, 3, 32, 32) uint8 and (N,) int64."""
    check_digest(data, md5, path, "md5")
    batch = _unpickle(data, path)
    if "data" not in batch or "labels" not in batch:
        raise DataError(f"{path}: CIFAR batch keys {sorted(batch)}, expected 'data' and 'labels'")
    flat = np.asarray(batch["data"])
    labels = np.asarray(batch["labels"], dtype=np.int64)
    if flat.dtype != np.uint8 or flat.ndim != 2 or flat.shape[1] != 3 * 32 * 32:
        raise DataError(f"{path}: data {flat.dtype} {flat.shape}, expected uint8 (N, 3072)")
    if labels.shape != (flat.shape[0],) or labels.min(initial=0) < 0 or labels.max(initial=0) > 9:
        raise DataError(f"{path}: {labels.shape} labels for {flat.shape[0]} images, or not 0..9")
    # Each row is R (1024), G, B planes, row-major: exactly (3, 32, 32).
    return flat.reshape(-1, 3, 32, 32), labels


def parse_cifar_meta(data: bytes, md5: str, path: object) -> tuple[str, ...]:
    check_digest(data, md5, path, "md5")
    names = _unpickle(data, path).get("label_names")
    if names is None or len(names) != 10:
        raise DataError(f"{path}: batches.meta has no 10 'label_names'")
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


def read_cifar_tar(path: Path, tgz_md5: str, members: tuple[str, ...]) -> dict[str, bytes]:
    """Check the archive's md5, then return the named `cifar-10-batches-py/*` members' bytes."""
    data = Path(path).read_bytes()
    check_digest(data, tgz_md5, path, "md5")
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in members:
                f = tar.extractfile(f"cifar-10-batches-py/{member}")
                if f is None:
                    raise KeyError(member)
                out[member] = f.read()
    except (KeyError, tarfile.TarError, EOFError, OSError) as err:
        raise DataError(f"{path}: archive lacks cifar-10-batches-py/{err} or is damaged") from err
    return out


def read_cifar_subset(path: Path, sha256: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The subset npz: sha256 of the file, then x_{split} (N,32,32,3) -> (N,3,32,32)."""
    check_digest(Path(path).read_bytes(), sha256, path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            x, y = npz[f"x_{split}"], npz[f"y_{split}"]
    except (KeyError, ValueError, OSError) as err:
        raise DataError(f"{path}: cannot read x_{split}/y_{split} ({err})") from err
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (32, 32, 3) or y.shape != x.shape[:1]:
        raise DataError(f"{path}: x_{split} {x.dtype} {x.shape}, expected uint8 (N, 32, 32, 3)")
    images = np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # (N, H, W, C) -> (N, C, H, W)
    return images, y.astype(np.int64)
