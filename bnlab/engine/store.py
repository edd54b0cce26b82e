"""One SQLite database per results directory: runs, members, configs, code version, metrics.

Tables:
- `runs`: one row per stack (one norm variant of a preset): resolved config JSON, code
  version, layer names, status.
- `members`: one row per member of a stack: its seed and learning rate.
- `train_metrics`: one row per (run, member, step) logged: loss, accuracy, global gradient
  norm, lr, and the per-layer gradient norms as a float64 blob (`runs.layers` names them).
- `metrics`: long format (run, member, step, name, value) for everything else: test loss and
  accuracy, activation statistics.
- `checkpoints`: one row per checkpoint file written: its step, the sha256 of its bytes, and
  the row counts up to its step (`write`).

Rows are only ever written in batches inside one transaction, and primary keys make a
duplicated row an error rather than a silent double count. Training writes rows as they are
logged, a batch at a time, so rows may reach past the last checkpoint; resuming deletes the
rows past the checkpoint's step (`truncate`) before training continues, so no row is lost or
repeated.
The file itself (created whole, opened read-only or for writing, checked on every open, its
errors named) is `bnlab.engine.store_file`.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bnlab.engine import store_file
from bnlab.engine.store_file import StoreError

DB_NAME = "bnlab.sqlite"
MODES = ("r", "w", "c")


def code_version() -> str:
    """`git describe` of the bnlab checkout when available, else the package version."""
    from bnlab import __version__

    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        if out.returncode == 0 and out.stdout.strip():
            return f"{__version__}+git.{out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    return __version__


@dataclass(frozen=True)
class CheckpointRecord:
    """What the store knows of one checkpoint file: see `Store.write`."""

    step: int
    sha256: str
    train_rows: int  # rows of train_metrics up to `step` when it was written
    metric_rows: int  # rows of metrics up to `step`


class Store:
    """The results database of one directory. All writes are single transactions.

    `mode`: "r" reads an existing database (SQLite `mode=ro`: nothing can be written),
    "w" writes an existing one, "c" writes and creates it if missing. Every open checks the
    file (`bnlab.engine.store_file`); writers are expected to hold the directory's lock
    (`bnlab.engine.lock`), which `bnlab.engine.train` takes.
    """

    def __init__(self, out_dir: str | Path, mode: str = "r"):
        if mode not in MODES:
            raise ValueError(f"mode: got {mode!r}, expected one of {MODES}")
        self.path = Path(out_dir) / DB_NAME
        if mode == "r":
            self.db = store_file.open_reader(self.path)
        else:
            self.db = store_file.open_writer(self.path, create=mode == "c")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            with contextlib.suppress(sqlite3.Error, StoreError):
                self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def run_config(self, run_id: str) -> str | None:
        row = self.db.execute("SELECT config FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else row[0]

    def run_ids(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT run_id FROM runs ORDER BY created, run_id")]

    def create_run(
        self,
        run_id: str,
        preset: str,
        norm: str,
        config: dict,
        layers: list[str],
        members: list[tuple[int, int, float]],
    ) -> None:
        """Insert a run and its members (member, seed, lr) in one transaction."""
        run = (
            run_id,
            preset,
            norm,
            json.dumps(config, sort_keys=True),
            code_version(),
            json.dumps(layers),
            "running",
            time.time(),
        )
        with self._transaction() as db:
            db.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)", run)
            db.executemany(
                "INSERT INTO members VALUES (?, ?, ?, ?)", [(run_id, *m) for m in members]
            )

    def set_status(self, run_id: str, status: str) -> None:
        with self._transaction() as db:
            db.execute("UPDATE runs SET status = ? WHERE run_id = ?", (status, run_id))

    def truncate(self, run_id: str, step: int) -> None:
        """Delete every row of `run_id` logged after `step`, and the records of checkpoints
        after it (resume from the checkpoint at `step`)."""
        with self._transaction() as db:
            for table in ("train_metrics", "metrics", "checkpoints"):
                db.execute(f"DELETE FROM {table} WHERE run_id = ? AND step > ?", (run_id, step))

    def reopen(self, run_id: str, step: int, config: dict, drop: tuple[str, ...] = ()) -> None:
        """`run_id` trains on from its checkpoint at `step` under `config` (another length),
        in one transaction: its metric rows named in `drop` at `step` are deleted, the
        record of that checkpoint recounts its rows, and the run is marked running."""
        with self._transaction() as db:
            for name in drop:
                sql = "DELETE FROM metrics WHERE run_id = ? AND step = ? AND name = ?"
                db.execute(sql, (run_id, step, name))
            counts = self.row_counts(run_id, step)
            db.execute(
                "UPDATE checkpoints SET train_rows = ?, metric_rows = ? "
                "WHERE run_id = ? AND step = ?",
                (*counts, run_id, step),
            )
            db.execute(
                "UPDATE runs SET config = ?, status = 'running' WHERE run_id = ?",
                (json.dumps(config, sort_keys=True), run_id),
            )

    def write(
        self,
        run_id: str,
        train_rows: list[tuple],
        metric_rows: list[tuple],
        checkpoint: tuple[int, str] | None = None,
    ) -> None:
        """Append rows (without run_id) to train_metrics and metrics, in one transaction.

        `checkpoint` (step, sha256) records, in the same transaction, the checkpoint file
        about to be put in place, with the row counts up to its step: a resume trusts a
        checkpoint only if its bytes and those counts still match (`bnlab.engine.resume`).
        """
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO train_metrics VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(run_id, *r) for r in train_rows],
            )
            db.executemany(
                "INSERT INTO metrics VALUES (?, ?, ?, ?, ?)", [(run_id, *r) for r in metric_rows]
            )
            if checkpoint is not None:
                step, sha256 = checkpoint
                record = (run_id, step, sha256, *self.row_counts(run_id, step))
                db.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?, ?)", record)

    def row_counts(self, run_id: str, step: int) -> tuple[int, int]:
        """(train_metrics, metrics) rows of `run_id` at steps <= `step`."""
        return tuple(
            self.db.execute(
                f"SELECT COUNT(*) FROM {table} WHERE run_id = ? AND step <= ?", (run_id, step)
            ).fetchone()[0]
            for table in ("train_metrics", "metrics")
        )

    def checkpoints(self, run_id: str) -> dict[str, CheckpointRecord]:
        """The recorded checkpoints of `run_id`, by the sha256 of their files."""
        sql = "SELECT step, sha256, train_rows, metric_rows FROM checkpoints WHERE run_id = ?"
        return {r[1]: CheckpointRecord(*r) for r in self.db.execute(sql, (run_id,))}

    # ------------------------------------------------------------ reading

    def runs(self) -> list[dict]:
        cur = self.db.execute("SELECT * FROM runs ORDER BY created, run_id")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur]

    def members(self, run_id: str) -> list[tuple[int, int, float]]:
        sql = "SELECT member, seed, lr FROM members WHERE run_id = ? ORDER BY member"
        return list(self.db.execute(sql, (run_id,)))

    def train_metrics(self, run_id: str, member: int) -> dict[str, np.ndarray]:
        """Column arrays of one member's logged steps; layer_grad_norms is (steps, layers)."""
        sql = (
            "SELECT step, train_loss, train_accuracy, grad_norm, lr, layer_grad_norms "
            "FROM train_metrics WHERE run_id = ? AND member = ? ORDER BY step"
        )
        rows = self.db.execute(sql, (run_id, member)).fetchall()
        names = ("step", "train_loss", "train_accuracy", "grad_norm", "lr")
        out = {n: np.array([r[i] for r in rows]) for i, n in enumerate(names)}
        out["layer_grad_norms"] = np.array([np.frombuffer(r[5], dtype="<f8") for r in rows])
        return out

    def metric(self, run_id: str, member: int, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of one long-format metric of one member."""
        sql = (
            "SELECT step, value FROM metrics WHERE run_id = ? AND member = ? AND name = ? "
            "ORDER BY step"
        )
        rows = self.db.execute(sql, (run_id, member, name)).fetchall()
        return np.array([r[0] for r in rows]), np.array([r[1] for r in rows])

    def metric_rows(self, run_id: str) -> list[tuple[int, int, str, float | None]]:
        """Every long-format row of one run: (member, step, name, value); NaN reads as None."""
        sql = "SELECT member, step, name, value FROM metrics WHERE run_id = ? ORDER BY member, step"
        return self.db.execute(sql, (run_id,)).fetchall()

    def metric_names(self, prefix: str = "") -> list[str]:
        """Names of the long-format metrics any run logged that start with `prefix`, sorted."""
        sql = "SELECT DISTINCT name FROM metrics WHERE name LIKE ? ORDER BY name"
        return [r[0] for r in self.db.execute(sql, (prefix + "%",))]

    def last_train_row(self, run_id: str, member: int) -> dict | None:
        sql = (
            "SELECT step, train_loss, train_accuracy FROM train_metrics WHERE run_id = ? "
            "AND member = ? ORDER BY step DESC LIMIT 1"
        )
        row = self.db.execute(sql, (run_id, member)).fetchone()
        return (
            None
            if row is None
            else {"step": row[0], "train_loss": row[1], "train_accuracy": row[2]}
        )

    def last_metrics(self, run_id: str, member: int) -> dict[str, float]:
        """The latest value of each long-format metric of one member."""
        sql = (
            "SELECT name, value FROM metrics m WHERE run_id = ? AND member = ? AND step = "
            "(SELECT MAX(step) FROM metrics WHERE run_id = m.run_id AND member = m.member "
            "AND name = m.name)"
        )
        return dict(self.db.execute(sql, (run_id, member)).fetchall())

    # ------------------------------------------------------------ matrices over members

    def metric_matrix(self, run_id: str, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps (T,), values (K, T)) of one long-format metric for every member of a run.

        Steps are those at which any member logged `name`; a missing or NULL value (SQLite
        stores NaN as NULL, e.g. a diverged member's loss) is NaN.
        """
        sql = "SELECT member, step, value FROM metrics WHERE run_id = ? AND name = ?"
        return self._matrix(run_id, self.db.execute(sql, (run_id, name)).fetchall())

    def train_matrix(self, run_id: str, column: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps (T,), values (K, T)) of one train_metrics column (e.g. "train_loss")."""
        if column not in ("train_loss", "train_accuracy", "grad_norm", "lr"):
            raise ValueError(
                f"column: got {column!r}, expected train_loss, train_accuracy, grad_norm or lr"
            )
        sql = f"SELECT member, step, {column} FROM train_metrics WHERE run_id = ?"
        return self._matrix(run_id, self.db.execute(sql, (run_id,)).fetchall())

    def _matrix(self, run_id: str, rows: list[tuple]) -> tuple[np.ndarray, np.ndarray]:
        K = len(self.members(run_id))
        steps = np.array(sorted({r[1] for r in rows}), dtype=np.int64)
        index = {int(s): i for i, s in enumerate(steps)}
        values = np.full((K, steps.size), np.nan)  # (K, T)
        for member, step, value in rows:
            if value is not None:
                values[member, index[step]] = value
        return steps, values


def first_run_time(out_dir: str | Path) -> float | None:
    """When the first run under `out_dir` (any depth) was created, in seconds since the epoch,
    read without opening any database for writing; None if there is none."""
    times = []
    for path in sorted(Path(out_dir).rglob(DB_NAME)):
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            (first,) = db.execute("SELECT MIN(created) FROM runs").fetchone()
        finally:
            db.close()
        if first is not None:
            times.append(float(first))
    return min(times) if times else None
