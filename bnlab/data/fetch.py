"""`fetch(names)`: obtain, verify and cache datasets; the only code that goes to the network.

For each dataset: if `load` already finds a verified copy (explicit dir, cache or system
copy) nothing is done. Otherwise the suppliers are tried in order, everything they return
is verified against the registry *before* any byte is written, files are written
atomically into `<data_dir or cache>/<name>/`, and SOURCE.json (written last) records the
origin that `Dataset.source` then reports.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bnlab.data import formats, locate, registry, suppliers
from bnlab.data.cache import atomic_write, cache_root, pretty, write_provenance
from bnlab.data.errors import DataError, DatasetNameError, MissingDataError, SourceUnavailable
from bnlab.data.load import load, load_from
from bnlab.data.locate import explicit_dir


@dataclass(frozen=True)
class FetchReport:
    """What `fetch` did for one dataset."""

    name: str
    action: str  # "present" | "fetched" | "bundled"
    source: str  # where the data now loads from, honestly
    attempts: tuple[str, ...] = ()  # "<source>: <why it failed>" for each source skipped
    note: str = ""  # e.g. the CIFAR-10 subset warning


def resolve_names(names: str | Sequence[str]) -> list[str]:
    """Validate `names` ("all" expands to every dataset) before any work is done."""
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise DatasetNameError(f"names={names!r} is empty; expected dataset names or 'all'")
    if "all" in names:
        return list(registry.DATASETS)
    for name in names:
        registry.get_spec(name)
    return list(dict.fromkeys(names))


def target_dir(name: str, data_dir: str | os.PathLike | None) -> Path:
    return (explicit_dir(data_dir) or cache_root()) / name


def _loads_everywhere(name: str, data_dir) -> list:
    """Both splits loaded and verified from the first local source, or raises."""
    return [load(name, split, data_dir) for split in registry.SPLITS]


def _install_idx(name: str, dest: Path, blobs: suppliers.Blobs, origin: str) -> None:
    # Verify all four files first: a bad download must not replace a single good byte.
    for split in registry.SPLITS:
        for spec in registry.IDX_FILES[name][split]:
            formats.parse_idx(blobs[spec.filename], spec, f"{origin}: {spec.filename}")
    for fn, data in blobs.items():
        atomic_write(dest / fn, [data])
    write_provenance(dest, origin)


def _fetch_idx(name: str, dest: Path, progress: bool) -> tuple[str, list[str]]:
    attempts: list[str] = []
    for supplier in suppliers.IDX_SUPPLIERS[name]:
        try:
            blobs, origin = supplier(name, progress)
            _install_idx(name, dest, blobs, origin)
            return origin, attempts
        except (SourceUnavailable, DataError) as err:
            label = suppliers.LABELS.get(supplier.__name__, supplier.__name__)
            attempts.append(f"{label}: {err}")
            _say(f"{name}: {attempts[-1]} -> trying the next source", progress)
    raise DataError(f"could not fetch {name}; every source failed: " + " | ".join(attempts))


def _fetch_cifar_official(dest: Path, progress: bool) -> str:
    data = suppliers.download(suppliers.OFFICIAL_CIFAR_URL, progress, timeout=30.0)
    tmp = atomic_write(dest / f".{registry.CIFAR_TGZ_NAME}.download", [data])
    try:
        members = tuple(registry.CIFAR_BATCH_MD5)
        blobs = formats.read_cifar_tar(tmp, registry.CIFAR_TGZ_MD5, members)
        for member, blob in blobs.items():  # md5 of each member, before writing any
            formats.check_digest(blob, registry.CIFAR_BATCH_MD5[member], member, "md5")
        for member, blob in blobs.items():
            atomic_write(dest / registry.CIFAR_BATCH_DIR / member, [blob])
    finally:
        tmp.unlink(missing_ok=True)
    origin = f"official download {suppliers.OFFICIAL_CIFAR_URL}"
    write_provenance(dest, origin)
    return origin


def _fetch_cifar_subset(dest: Path, why_not_full: str) -> str:
    for path in locate.subset_candidates():
        if path.is_file():
            data = path.read_bytes()
            formats.check_digest(data, registry.CIFAR_SUBSET_SHA256, path)
            atomic_write(dest / registry.CIFAR_SUBSET_NAME, [data])
            origin = f"the real 5,000-image subset {pretty(path)}; full CIFAR-10 unavailable"
            write_provenance(dest, origin)
            return origin
    where = ", ".join(pretty(p) for p in locate.subset_candidates())
    raise DataError(f"could not fetch cifar10: {why_not_full}; no subset at {where}")


def _fetch_cifar(dest: Path, progress: bool) -> tuple[str, list[str]]:
    try:
        return _fetch_cifar_official(dest, progress), []
    except (SourceUnavailable, DataError) as err:
        attempt = f"official download: {err}"
        _say(f"cifar10: {attempt} -> using the 5,000-image subset", progress)
        return _fetch_cifar_subset(dest, attempt), [attempt]


def fetch_one(name: str, data_dir=None, progress: bool = True) -> FetchReport:
    if name == "digits":
        ds = load("digits", "train")
        return FetchReport(name, "bundled", ds.source)
    try:
        present = _loads_everywhere(name, data_dir)
        return FetchReport(name, "present", present[0].source, (), present[0].note)
    except (MissingDataError, DataError) as err:
        if isinstance(err, DataError):
            _say(f"{name}: the local copy failed verification ({err}); fetching again", progress)
    dest = target_dir(name, data_dir)
    if name == "cifar10":
        _, attempts = _fetch_cifar(dest, progress)
    else:
        _, attempts = _fetch_idx(name, dest, progress)
    label = "cache" if explicit_dir(data_dir) is None else "data dir"
    fetched = [load_from(name, split, dest, label) for split in registry.SPLITS]
    source = fetched[0].source
    return FetchReport(name, "fetched", source, tuple(attempts), fetched[0].note)


def fetch(
    names: str | Sequence[str], data_dir: str | os.PathLike | None = None, progress: bool = True
) -> list[FetchReport]:
    """Make each dataset loadable: check local copies, else obtain, verify and cache it.

    names: dataset names or "all". data_dir: where to store (default: the user cache).
    Raises DataError naming every source tried when one dataset cannot be obtained;
    datasets fetched before it stay cached.
    """
    return [fetch_one(name, data_dir, progress) for name in resolve_names(names)]


def _say(message: str, progress: bool) -> None:
    if progress:
        print(message, file=sys.stderr, flush=True)
