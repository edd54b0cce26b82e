"""Verified splits kept ready to load: decompressed and verified once, stamped with their sources.

The first `load` of a split reads its files, verifies them (sha256 of the decompressed bytes,
headers, md5 for CIFAR) and keeps the arrays as two `.npy` files under `<cache>/prepared/`,
with a stamp written last: the source files' paths, sizes and modification times, the checksums
the registry expects, and the `.npy` files' own sizes, times and sha256. A later load whose
stamp still matches maps the arrays straight from disk, with no decompression, after hashing
the two `.npy` files (sha256, which `benchmarks/data.py` times against blake2b, with what
the check adds to a load). Any change to a source file's size or time, to the expected
checksums or to the prepared copy's bytes fails the match, and the split is verified from its
sources again. A source file changed with its size and time kept is seen only by a full
verification from the sources (`bnlab data verify`, `verify_sources=True` in `load`).

Where the cache cannot be written (a read-only home), loading simply verifies every time.
"""

from __future__ import annotations

import hashlib
import io
import json
import mmap
from pathlib import Path

import numpy as np

from bnlab.data import registry
from bnlab.data.cache import atomic_write, cache_root
from bnlab.data.locate import Found

STAMP_VERSION = 2  # 2: the prepared files' sha256


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


# Digests already taken in this process, by the file's identity and times: any write to a
# file changes its ctime (which, unlike mtime, cannot be set back), so a hit is the same
# bytes. Validation and loading read a split more than once per start-up; it is hashed once.
_digests: dict[tuple, str] = {}


def _digest(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key not in _digests:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            _digests[key] = hashlib.sha256(mapped).hexdigest()  # no copy: in the page cache
    return _digests[key]


def _stamp(found: Found, arrays: tuple[Path, Path]) -> dict:
    """What must hold for the kept arrays to be trusted, except their content hashes."""
    return {
        "version": STAMP_VERSION,
        "kind": found.kind,
        "sources": [_file_facts(p) for p in found.paths],
        "expected": _expected(found.name),
        "prepared": [_file_facts(p) for p in arrays],
    }


def read(found: Found, check_content: bool = True) -> tuple[np.ndarray, np.ndarray] | None:
    """The split's verified (images, labels), memory-mapped read-only; None when stale.

    `check_content=False` trusts the kept files' sizes and times alone (benchmarks only)."""
    images, labels, stamp = _paths(found)
    try:
        kept = json.loads(stamp.read_text())
        content = kept.pop("content", None)
        if kept != _stamp(found, (images, labels)):
            return None
        if check_content and content != [_digest(images), _digest(labels)]:
            return None
        return np.load(images, mmap_mode="r"), np.load(labels, mmap_mode="r")
    except (OSError, ValueError):
        return None


def write(found: Found, images: np.ndarray, labels: np.ndarray) -> None:
    """Keep verified arrays for the next load (best effort: a read-only cache is no error)."""
    paths = _paths(found)
    try:
        content = []
        for path, array in zip(paths[:2], (images, labels), strict=True):
            buffer = io.BytesIO()
            np.save(buffer, np.ascontiguousarray(array))
            atomic_write(path, [buffer.getvalue()])
            content.append(hashlib.sha256(buffer.getvalue()).hexdigest())
        stamp = {**_stamp(found, paths[:2]), "content": content}
        atomic_write(paths[2], [json.dumps(stamp).encode()])
    except OSError:
        pass
