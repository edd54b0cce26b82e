"""Verified splits kept ready to load: decompressed and hashed once, stamped with their sources.

The first `load` of a split reads its files, verifies them (sha256 of the decompressed bytes,
headers, md5 for CIFAR) and keeps the arrays as two `.npy` files under `<cache>/prepared/`,
with a stamp written last: the source files' paths, sizes and modification times, the checksums
the registry expects, and the `.npy` files' own sizes and times. A later load whose stamp still
matches maps the arrays straight from disk, with no decompression and no hashing; any change to
a source file, to the expected checksums or to the prepared copy itself fails the match, and the
split is verified from its sources again.

Where the cache cannot be written (a read-only home), loading simply verifies every time.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np

from bnlab.data import registry
from bnlab.data.cache import atomic_write, cache_root
from bnlab.data.locate import Found

STAMP_VERSION = 1


def _file_facts(path: Path) -> list:
    st = path.stat()
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


def _expected(name: str) -> str:
    """What the registry expects of `name`'s files: a changed checksum invalidates the copy."""
    parts = (
        registry.IDX_FILES.get(name),
        registry.CIFAR_BATCH_MD5,
        registry.CIFAR_TGZ_MD5,
        registry.CIFAR_SUBSET_SHA256,
    )
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def _paths(found: Found) -> tuple[Path, Path, Path]:
    """(images.npy, labels.npy, stamp.json) for this split from these source files."""
    key = hashlib.sha256(repr([str(p.resolve()) for p in found.paths]).encode()).hexdigest()
    base = cache_root() / "prepared" / f"{found.name}-{found.split}-{key[:16]}"
    return (
        base.with_suffix(".images.npy"),
        base.with_suffix(".labels.npy"),
        base.with_suffix(".stamp.json"),
    )


def _stamp(found: Found, arrays: tuple[Path, Path]) -> dict:
    return {
        "version": STAMP_VERSION,
        "kind": found.kind,
        "sources": [_file_facts(p) for p in found.paths],
        "expected": _expected(found.name),
        "prepared": [_file_facts(p) for p in arrays],
    }


def read(found: Found) -> tuple[np.ndarray, np.ndarray] | None:
    """The split's verified (images, labels), memory-mapped read-only; None when stale."""
    images, labels, stamp = _paths(found)
    try:
        if json.loads(stamp.read_text()) != _stamp(found, (images, labels)):
            return None
        return np.load(images, mmap_mode="r"), np.load(labels, mmap_mode="r")
    except (OSError, ValueError):
        return None


def write(found: Found, images: np.ndarray, labels: np.ndarray) -> None:
    """Keep verified arrays for the next load (best effort: a read-only cache is no error)."""
    paths = _paths(found)
    try:
        for path, array in zip(paths[:2], (images, labels), strict=True):
            buffer = io.BytesIO()
            np.save(buffer, np.ascontiguousarray(array))
            atomic_write(path, [buffer.getvalue()])
        atomic_write(paths[2], [json.dumps(_stamp(found, paths[:2])).encode()])
    except OSError:
        pass
