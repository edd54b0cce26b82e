"""One SQLite database per results directory: runs, members, configs, code version, metrics.

Tables:
- `runs`: one row per stack (one norm variant of a preset): resolved config JSON, code
  version, layer names, status.
- `members`: one row per member of a stack: its seed and learning rate.
- `train_metrics`: one row per (run, member, step) logged: loss, accuracy, global gradient
  norm, lr, and the per-layer gradient norms as a float64 blob (`runs.layers` names them).
- `metrics`: long format (run, member, step, name, value) for everything else: test loss and
  accuracy, activation statistics.

Rows are only ever written in batches inside one transaction, and primary keys make a
duplicated row an error rather than a silent double count. Resuming deletes the rows past
the checkpoint's step (`truncate`) before training continues, so no row is lost or repeated.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

DB_NAME = "bnlab.sqlite"
BUSY_TIMEOUT_S = 60.0  # how long a writer waits for another process's transaction

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


class Store:
    """The results database of one directory. All writes are single transactions."""

    def __init__(self, out_dir: str | Path):
        self.path = Path(out_dir) / DB_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # explicit transactions; `timeout` waits out the other writer, since the BN and
        # baseline stacks of an experiment train in parallel processes into one database
        self.db = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_S)
        self._enable_wal()
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)

    def _enable_wal(self) -> None:
        # Switching a new database to WAL needs a moment of exclusive access, and a second
        # process opening it in that moment gets "database is locked" without the busy
        # handler being asked: retry for up to BUSY_TIMEOUT_S.
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _transaction(self, statements: Iterable[tuple[str, list]]) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for sql, rows in statements:
                self.db.executemany(sql, rows)
        except BaseException:
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
        self._transaction(
            [
                ("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [run]),
                ("INSERT INTO members VALUES (?, ?, ?, ?)", [(run_id, *m) for m in members]),
            ]
        )

    def set_status(self, run_id: str, status: str) -> None:
        self._transaction([("UPDATE runs SET status = ? WHERE run_id = ?", [(status, run_id)])])

    def truncate(self, run_id: str, step: int) -> None:
        """Delete every metric row of `run_id` logged after `step` (resume from a checkpoint)."""
        self._transaction(
            [
                ("DELETE FROM train_metrics WHERE run_id = ? AND step > ?", [(run_id, step)]),
                ("DELETE FROM metrics WHERE run_id = ? AND step > ?", [(run_id, step)]),
            ]
        )

    def write(self, run_id: str, train_rows: list[tuple], metric_rows: list[tuple]) -> None:
        """Append rows (without run_id) to train_metrics and metrics, in one transaction."""
        self._transaction(
            [
                (
                    "INSERT INTO train_metrics VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(run_id, *r) for r in train_rows],
                ),
                ("INSERT INTO metrics VALUES (?, ?, ?, ?, ?)", [(run_id, *r) for r in metric_rows]),
            ]
        )

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
