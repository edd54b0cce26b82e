"""The results database as a file: created whole, opened read-only or for writing, checked.

- Only a new run creates a database, and it appears whole: it is built under a temporary
  name (schema, WAL mode, schema version) and linked into place, so `bnlab.sqlite` is either
  absent or a bnlab database, never an empty file. A link, unlike a rename, never replaces a
  database another process created in the meantime.
- Readers open it with SQLite's `mode=ro`: they cannot write to it, even by accident.
- Every open checks it: not empty, a SQLite file, bnlab's tables, a schema version this code
  reads, and SQLite's `PRAGMA quick_check` (every page's structure; it cannot see a changed
  value inside an intact page: SQLite keeps no page checksums).
- Every SQLite or file error on the connection becomes a `StoreError` (a `BnlabError`: one
  line, exit status 2) naming the file and what to do: damaged, full disk, read-only, a row
  written twice.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
from pathlib import Path

from bnlab.errors import BnlabError, ResultsNotFoundError

SCHEMA_VERSION = 1  # PRAGMA user_version; 0: a database from before checkpoint checksums
BUSY_TIMEOUT_S = 60.0  # how long a writer waits for another process's transaction
TABLES = ("runs", "members", "train_metrics", "metrics")

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, preset TEXT, norm TEXT, config TEXT, code_version TEXT,
    layers TEXT, status TEXT, created REAL);
CREATE TABLE IF NOT EXISTS members (
    run_id TEXT, member INTEGER, seed INTEGER, lr REAL, PRIMARY KEY (run_id, member));
CREATE TABLE IF NOT EXISTS train_metrics (
    run_id TEXT, member INTEGER, step INTEGER, train_loss REAL, train_accuracy REAL,
    grad_norm REAL, lr REAL, layer_grad_norms BLOB,
    PRIMARY KEY (run_id, member, step)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT, member INTEGER, step INTEGER, name TEXT, value REAL,
    PRIMARY KEY (run_id, member, step, name)) WITHOUT ROWID;
"""
# One row per checkpoint written: the step it holds, the sha256 of its file, and how many
# rows of each table the store held up to that step when it was written (in the same
# transaction as those rows).
CHECKPOINTS_TABLE = """
CREATE TABLE IF NOT EXISTS checkpoints (
    run_id TEXT, step INTEGER, sha256 TEXT, train_rows INTEGER, metric_rows INTEGER,
    PRIMARY KEY (run_id, step))"""


class StoreError(BnlabError):
    """The results database is missing, damaged, or cannot be written: says which and why."""


RESTORE = "restore it from a backup, or move it away and train the runs again"


def _explain(path: Path, err: sqlite3.Error) -> StoreError | None:
    """The StoreError for an SQLite error on `path`, or None for a programming error."""
    text = str(err)
    if isinstance(err, sqlite3.IntegrityError):
        return StoreError(
            f"{path}: {text}: a row was written twice, so another process wrote this "
            "results directory too; nothing of this transaction was kept"
        )
    if "disk is full" in text:
        return StoreError(f"{path}: no space left on the device; free space, then --resume")
    if "readonly" in text or "read-only" in text:
        return StoreError(f"{path}: read-only ({text}); train into a writable --out")
    if "locked" in text:
        return StoreError(
            f"{path}: another process kept the database locked for {BUSY_TIMEOUT_S:.0f} s"
        )
    if "disk I/O error" in text or "unable to open" in text:
        return StoreError(f"{path}: cannot read or write it ({text}); check the disk")
    other = sqlite3.OperationalError | sqlite3.ProgrammingError | sqlite3.InterfaceError
    if "no such table" in text or not isinstance(err, other):  # malformed, not a database
        return StoreError(f"{path} is damaged ({text}); {RESTORE}")
    return None


def _reraise(path: Path, err: sqlite3.Error):
    explained = _explain(path, err)
    if explained is None:
        raise err
    raise explained from err


class _Cursor(sqlite3.Cursor):
    """Rows are read lazily, so damage can surface while iterating: name the file there too.
    (try/except, not a context manager: free when nothing fails, once per row.)"""

    def execute(self, *args):
        try:
            return super().execute(*args)
        except sqlite3.Error as err:
            _reraise(self.connection.path, err)

    def executemany(self, *args):
        try:
            return super().executemany(*args)
        except sqlite3.Error as err:
            _reraise(self.connection.path, err)

    def fetchone(self):
        try:
            return super().fetchone()
        except sqlite3.Error as err:
            _reraise(self.connection.path, err)

    def fetchall(self):
        try:
            return super().fetchall()
        except sqlite3.Error as err:
            _reraise(self.connection.path, err)

    def __next__(self):
        try:
            return super().__next__()
        except sqlite3.Error as err:
            _reraise(self.connection.path, err)


class _Connection(sqlite3.Connection):
    path: Path

    def cursor(self, factory=_Cursor):
        return super().cursor(factory)

    def execute(self, *args):
        return self.cursor().execute(*args)

    def executemany(self, *args):
        return self.cursor().executemany(*args)

    def executescript(self, script):
        try:
            return super().executescript(script)
        except sqlite3.Error as err:
            _reraise(self.path, err)


def _connect(target: str, path: Path, uri: bool = False) -> _Connection:
    try:
        db = sqlite3.connect(
            target, uri=uri, isolation_level=None, timeout=BUSY_TIMEOUT_S, factory=_Connection
        )
    except sqlite3.Error as err:
        _reraise(path, err)
    db.path = path
    return db


def check(db: _Connection) -> None:
    """Refuse a database that is not bnlab's, is newer than this code, or is damaged."""
    path = db.path
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} was written by a newer bnlab (schema {version}; this one reads up to "
            f"{SCHEMA_VERSION}); upgrade bnlab to read it"
        )
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    missing = [t for t in TABLES if t not in names]
    if missing:
        raise StoreError(f"{path} is not a bnlab results database (no table {missing[0]})")
    problems = [r[0] for r in db.execute("PRAGMA quick_check")]
    if problems != ["ok"]:
        shown = "; ".join(problems[:2]) + (f" (+{len(problems) - 2} more)" if problems[2:] else "")
        raise StoreError(f"{path} is damaged (SQLite quick_check: {shown}); {RESTORE}")


def _require_file(path: Path) -> None:
    if not path.exists():
        raise ResultsNotFoundError(
            f"{path.parent}: no {path.name} (not a results directory, or its database was "
            f"lost); run `bnlab train --out {path.parent}` to create one"
        )
    if path.stat().st_size == 0:
        raise StoreError(
            f"{path} is empty (0 bytes), so every run it held is lost; {RESTORE} "
            "(the checkpoints alone cannot rebuild the logged rows)"
        )


def open_reader(path: Path) -> _Connection:
    """The existing database at `path`, read-only and checked."""
    _require_file(path)
    db = _connect(f"file:{path.resolve()}?{_read_only_flags(path)}", path, uri=True)
    try:
        check(db)
    except BaseException:
        db.close()
        raise
    return db


def _read_only_flags(path: Path) -> str:
    """SQLite URI flags to read `path` without writing anything, even on read-only media."""
    if os.access(path.parent, os.W_OK):
        return "mode=ro"  # WAL readers still need to create the -shm index: allowed here
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise StoreError(
            f"{path}: its {wal.name} holds rows not yet in the database, and the directory is "
            "read-only, so SQLite cannot read them; copy the directory somewhere writable"
        )
    return "mode=ro&immutable=1"  # nothing can change it: SQLite needs no lock or -shm


def open_writer(path: Path, create: bool) -> _Connection:
    """The database at `path` for writing (created whole if missing and `create`), checked
    and brought to the current schema."""
    if create and not path.exists():
        _create(path)
    _require_file(path)
    db = _connect(str(path), path)
    try:
        db.execute("PRAGMA synchronous=FULL")
        check(db)
        _upgrade(db)
    except BaseException:
        db.close()
        raise
    return db


def _upgrade(db: _Connection) -> None:
    """Schema 0 -> 1: add the checkpoints table (older runs resume without checksums)."""
    if db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
        return
    db.execute("BEGIN IMMEDIATE")
    db.execute(CHECKPOINTS_TABLE)  # IF NOT EXISTS: two processes may both upgrade
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    db.execute("COMMIT")


def _create(path: Path) -> None:
    """A new database with bnlab's schema at `path`, appearing whole (see the module doc)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.new")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.unlink(missing_ok=True)
        db = _connect(str(tmp), path)  # private to this process until linked
        try:
            db.execute("PRAGMA journal_mode=WAL")  # kept in the file: readers never block
            db.executescript(f"{SCHEMA}{CHECKPOINTS_TABLE};")
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        finally:
            db.close()
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process of the same run created it first: use theirs
        except OSError as err:  # no hard links here: rename, unless one appeared meanwhile
            if err.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP):
                raise
            if not path.exists():
                os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as err:
        raise StoreError(f"{path}: cannot create it ({err.strerror})") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno != errno.EINVAL:  # some filesystems cannot sync a directory
            raise
    finally:
        os.close(fd)


__all__ = ["SCHEMA_VERSION", "StoreError", "check", "open_reader", "open_writer"]
