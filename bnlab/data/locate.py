"""Where a dataset's files are on this machine, in the documented order of sources.

1. the explicit directory (`data_dir` argument / `--data-dir`, else env `BNLAB_DATA_DIR`);
2. the user cache (`$XDG_CACHE_HOME/bnlab`, default `~/.cache/bnlab`);
3. copies installed by the system (Debian's `dataset-fashion-mnist`) and, for CIFAR-10,
   the real 5,000-image subset shared beside the repo (or env `BNLAB_CIFAR10_SUBSET`).
Nothing here touches the network; fetching is `bnlab.data.fetch`'s job.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bnlab.data import registry
from bnlab.data.cache import cache_root

# Debian's dataset-fashion-mnist installs the four gzipped IDX files here.
SYSTEM_DIRS: dict[str, tuple[str, ...]] = {
    "fashion-mnist": ("/usr/share/datasets/fashion-mnist",),
}
SUBSET_ENV = "BNLAB_CIFAR10_SUBSET"
DATA_DIR_ENV = "BNLAB_DATA_DIR"
# Layouts other tools leave behind, accepted inside an explicit data dir.
_ALIASES: dict[str, tuple[str, ...]] = {
    "mnist": ("MNIST/raw",),
    "fashion-mnist": ("FashionMNIST/raw", "fashion_mnist", "fashion"),
    "cifar10": ("cifar-10", "CIFAR10"),
}


@dataclass(frozen=True)
class Origin:
    """One place that may hold a dataset; `label` starts the Dataset.source string."""

    label: str  # "data dir" | "cache" | "system copy" | "shared subset"
    dirs: tuple[Path, ...]  # directories searched, in order


@dataclass(frozen=True)
class Found:
    """The files that hold one split, and where they were found."""

    name: str
    split: str
    kind: str  # "idx" | "cifar-batches" | "cifar-tar" | "cifar-subset"
    paths: tuple[Path, ...]
    label: str
    directory: Path


def explicit_dir(data_dir: str | os.PathLike | None) -> Path | None:
    """The `data_dir` argument, else env BNLAB_DATA_DIR, else None."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_DIR_ENV, "")
    return Path(env).expanduser() if env else None


def subset_candidates() -> list[Path]:
    """Paths where the CIFAR-10 subset npz may be: the env var, then `<repo>/../shared`."""
    out: list[Path] = []
    env = os.environ.get(SUBSET_ENV, "")
    if env:
        p = Path(env).expanduser()
        out.append(p if p.suffix == ".npz" else p / registry.CIFAR_SUBSET_NAME)
    repo = Path(__file__).resolve().parents[2]  # bnlab/data/locate.py -> repo root
    for base in (repo, Path.cwd()):
        out.append(base.parent / "shared/datasets/cifar10-subset" / registry.CIFAR_SUBSET_NAME)
    return list(dict.fromkeys(out))


def origins(name: str, data_dir: str | os.PathLike | None = None) -> list[Origin]:
    """The places searched for `name`, in order."""
    out: list[Origin] = []
    explicit = explicit_dir(data_dir)
    if explicit is not None:
        aliases = tuple(explicit / a for a in _ALIASES.get(name, ()))
        out.append(Origin("data dir", (explicit / name, *aliases, explicit)))
    out.append(Origin("cache", (cache_root() / name,)))
    system = tuple(Path(d) for d in SYSTEM_DIRS.get(name, ()))
    if system:
        out.append(Origin("system copy", system))
    if name == "cifar10":
        out.append(Origin("shared subset", tuple(p.parent for p in subset_candidates())))
    return out


def _find_idx(name: str, split: str, d: Path) -> tuple[Path, ...] | None:
    paths = []
    for spec in registry.IDX_FILES[name][split]:
        candidates = [d / spec.filename, d / (spec.filename + ".gz")]
        hit = next((p for p in candidates if p.is_file()), None)
        if hit is None:
            return None
        paths.append(hit)
    return tuple(paths)


def _find_cifar(split: str, d: Path) -> tuple[str, tuple[Path, ...]] | None:
    wanted = (*registry.CIFAR_SPLIT_BATCHES[split], "batches.meta")
    for batch_dir in (d / registry.CIFAR_BATCH_DIR, d):
        if all((batch_dir / b).is_file() for b in wanted):
            return "cifar-batches", tuple(batch_dir / b for b in wanted)
    if (d / registry.CIFAR_TGZ_NAME).is_file():
        return "cifar-tar", (d / registry.CIFAR_TGZ_NAME,)
    if (d / registry.CIFAR_SUBSET_NAME).is_file():
        return "cifar-subset", (d / registry.CIFAR_SUBSET_NAME,)
    return None


def find_in(name: str, split: str, d: Path) -> tuple[str, tuple[Path, ...]] | None:
    """(kind, paths) of the files holding `name`/`split` directly in directory `d`, or None."""
    d = Path(d)
    if not d.is_dir():
        return None
    if name in registry.IDX_FILES:
        paths = _find_idx(name, split, d)
        return ("idx", paths) if paths else None
    if name == "cifar10":
        return _find_cifar(split, d)
    return None


def find(name: str, split: str, data_dir: str | os.PathLike | None = None) -> Found | None:
    """The first source, in order, that holds `name`/`split`; None when none does."""
    for origin in origins(name, data_dir):
        if origin.label == "shared subset":
            # Checked as files: BNLAB_CIFAR10_SUBSET may name an npz of any name.
            hit_file = next((p for p in subset_candidates() if p.is_file()), None)
            if hit_file is not None:
                return Found(
                    name, split, "cifar-subset", (hit_file,), origin.label, hit_file.parent
                )
            continue
        for d in origin.dirs:
            hit = find_in(name, split, d) if d.is_dir() else None
            if hit is not None:
                return Found(name, split, hit[0], hit[1], origin.label, d)
    return None
