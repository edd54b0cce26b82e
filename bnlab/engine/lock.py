"""One writer per results directory: an OS lock on `DIR/bnlab.lock`, held while a run trains.

`hold(out_dir)` takes an exclusive `fcntl.flock` on the lock file before anything in the
directory is read or written, and keeps it until the block ends. The kernel releases it when
the process exits in any way (even `kill -9`), so a lock is never left stale. A second writer
fails at once with a `BnlabError` naming the holder (pid, host, command, start time), which the
holder wrote into the file after taking the lock. Readers (`bnlab results`, `report`, `replay`)
never take it: they open the database read-only.

`bnlab reproduce` trains a directory's BN and baseline stacks in two child processes. The
parent holds the lock and hands its `token` to the children, which `adopt` it: inside that
block, `hold` on the same directory is a no-op in the child. A child that is given a token not
written by the lock's current holder is refused, so the token is not a way around the lock.

    with lock.hold("results/x") as token:       # BnlabError if another process holds it
        ...                                      # write the store and the checkpoints
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import shlex
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from bnlab.errors import BnlabError

LOCK_NAME = "bnlab.lock"
_adopted: dict[str, str] = {}  # directory (realpath) -> token of the parent holding its lock


def _key(out_dir: Path) -> str:
    return os.path.realpath(out_dir)


def _open_lock_file(out_dir: Path) -> int:
    """The lock file's descriptor, creating the directory and the file if needed."""
    if out_dir.exists() and not out_dir.is_dir():
        raise BnlabError(f"--out: {out_dir} is a file; expected a results directory")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        return os.open(out_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise BnlabError(
            f"--out: cannot write to {out_dir} ({err.strerror}); "
            "choose a writable --out, or free space there"
        ) from None


def holder(out_dir: str | Path) -> dict:
    """What the current (or last) holder of the directory's lock wrote: pid, command, ..."""
    try:
        return json.loads((Path(out_dir) / LOCK_NAME).read_text() or "{}")
    except (OSError, ValueError):
        return {}


def _busy_error(out_dir: Path) -> BnlabError:
    who = holder(out_dir)
    pid, host = who.get("pid", "?"), who.get("host", "?")
    return BnlabError(
        f"--out: {out_dir} is in use by another bnlab process (pid {pid} on {host}, "
        f"since {who.get('since', '?')}: {who.get('command', '?')}); one process writes a "
        "results directory at a time: wait for it to finish, or choose another --out"
    )


def _write_holder(fd: int, token: str) -> None:
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": shlex.join(sys.orig_argv),
        "token": token,
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)


@contextlib.contextmanager
def hold(out_dir: str | Path) -> Iterator[str]:
    """Hold `out_dir`'s writer lock for the block; yields the token children may `adopt`."""
    out_dir = Path(out_dir)
    if _key(out_dir) in _adopted:  # a parent process holds it for this one
        yield _adopted[_key(out_dir)]
        return
    fd = _open_lock_file(out_dir)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            raise _busy_error(out_dir) from None
        token = secrets.token_hex(8)
        try:
            _write_holder(fd, token)
        except OSError as err:
            raise BnlabError(f"--out: cannot write to {out_dir} ({err.strerror})") from None
        yield token
    finally:
        os.close(fd)  # closing the last descriptor releases the flock


def check_free(out_dir: str | Path) -> None:
    """A BnlabError naming the holder if another process writes `out_dir` now (for checks
    that read the directory before `hold`: what it holds may be half-written)."""
    if is_held(out_dir):
        raise _busy_error(Path(out_dir))


def is_held(out_dir: str | Path) -> bool:
    """Whether some process (this one included) holds `out_dir`'s lock right now."""
    path = Path(out_dir) / LOCK_NAME
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


@contextlib.contextmanager
def adopt(out_dir: str | Path, token: str) -> Iterator[None]:
    """In a child process: write `out_dir` under the lock its parent holds (see module doc)."""
    out_dir = Path(out_dir)
    if holder(out_dir).get("token") != token or not is_held(out_dir):
        raise BnlabError(
            f"--out: {out_dir}: the process that started this one no longer holds the "
            "directory's lock; not writing to it"
        )
    _adopted[_key(out_dir)] = token
    try:
        yield
    finally:
        _adopted.pop(_key(out_dir), None)


__all__ = ["LOCK_NAME", "adopt", "check_free", "hold", "holder", "is_held"]
