"""Checkpoint files: written atomically with their sha256, the previous one kept, read checked.

Saving is split in two so that the store can record a checkpoint in the same transaction as
the rows it covers (`bnlab.engine.resume.save`):

1. `stage(state, path)` serializes the state, hashes the bytes and writes them to a temporary
   file beside `path` (`.NAME.*.tmp`), flushed and fsync'ed;
2. the caller records (step, sha256) in the store;
3. `commit` renames the current file to `NAME.prev.pt` and the temporary file to `NAME.pt`
   (`os.replace`, atomic on POSIX), then fsyncs the directory so the renames survive a power
   cut.

A crash at any moment leaves files whose bytes the store either vouches for or not; a
temporary file is never read, and `clean_temporaries` removes those a crash left. `torch.load`
does not check a zip's CRCs, so a damaged file could load with wrong numbers: files are
checked against their recorded sha256 (`load(path, sha256)`), or at least their zip CRCs.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from bnlab.errors import BnlabError

PREV_SUFFIX = ".prev.pt"


class CheckpointError(BnlabError):
    """A checkpoint file cannot be written or read, or its bytes are not what was saved."""


@dataclass(frozen=True)
class Staged:
    """A checkpoint written to `tmp`, waiting for `commit` to put it at `path`."""

    tmp: Path
    path: Path
    sha256: str


def prev_path(path: str | Path) -> Path:
    """Where the checkpoint before `path`'s current one is kept: NAME.prev.pt."""
    path = Path(path)
    return path.with_name(path.stem + PREV_SUFFIX)


def _write_error(path: Path, err: OSError) -> CheckpointError:
    return CheckpointError(
        f"{path}: cannot write the checkpoint ({err.strerror}); free space or make the "
        "directory writable, then --resume"
    )


def stage(state: dict, path: str | Path) -> Staged:
    """Write `state` to a temporary file beside `path`; nothing is replaced yet."""
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise _write_error(path, err) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise _write_error(path, err) from None
        raise
    return Staged(Path(tmp), path, hashlib.sha256(data).hexdigest())


def commit(staged: Staged) -> None:
    """Put a staged checkpoint in place, keeping the one it replaces as NAME.prev.pt."""
    path = staged.path
    try:
        if path.exists():
            os.replace(path, prev_path(path))
        os.replace(staged.tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as err:
        raise _write_error(path, err) from None


def discard(staged: Staged) -> None:
    staged.tmp.unlink(missing_ok=True)


def save_atomic(state: dict, path: str | Path) -> str:
    """torch.save `state` to `path` atomically (no store record); returns its sha256."""
    staged = stage(state, path)
    commit(staged)
    return staged.sha256


def clean_temporaries(path: str | Path) -> list[Path]:
    """Delete the temporary files a crash left while staging `path` (call under the lock)."""
    path = Path(path)
    removed = sorted(path.parent.glob(f".{path.name}.*.tmp")) if path.parent.is_dir() else []
    for tmp in removed:
        tmp.unlink(missing_ok=True)
    return removed


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read the checkpoint ({err.strerror})") from None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def intact(data: bytes) -> bool:
    """Whether `data` is a whole zip whose members all match their CRCs (torch's format)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return archive.testzip() is None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return False


def loads(data: bytes, path: Path) -> dict:
    """The state in `data` (the bytes of `path`), on the CPU."""
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
    except Exception as err:
        raise CheckpointError(f"{path} cannot be loaded ({type(err).__name__}: {err})") from None


def load(path: str | Path, sha256_expected: str | None = None) -> dict | None:
    """The checkpoint at `path`, or None when there is none yet.

    Checked before loading: against `sha256_expected` when given (the store's record), else
    its zip CRCs. A file that fails raises CheckpointError naming it.
    """
    path = Path(path)
    if not path.exists():
        return None
    data = read_bytes(path)
    if sha256_expected is not None and sha256(data) != sha256_expected:
        raise CheckpointError(f"{path} is damaged: its sha256 is not the one recorded for it")
    if sha256_expected is None and not intact(data):
        raise CheckpointError(f"{path} is damaged (truncated, or its zip CRCs do not match)")
    return loads(data, path)


def rng_state() -> dict:
    return {"torch": torch.get_rng_state()}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
