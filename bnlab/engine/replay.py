"""Replay: does the code imported now still train what a results directory holds?

A full-scale run takes hours, and the code moves on while it runs. `replay(out_dir, steps)`
re-trains the first `steps` steps of every run stored in `out_dir` with the code imported
now, from the stored config, in a scratch directory, and compares what both logged at those
steps bit for bit: every member's training loss, accuracy, gradient norm, learning rate and
per-layer gradient norms, and the metric rows both have (activation statistics, test
evaluations). The loss at step t depends on every parameter after t - 1 updates, on the
data order and on the initialization, so a change to any of them shows within a few steps.

Identical rows mean the stored run is what this code trains, so a report may cite it as
this version's result. A replay does not re-run analysis probes (`bnlab.analysis`), whose
rows the engine did not produce; they are compared only where the replay logged them too.

CPU kernels may sum in a different order with another thread count, so a replay trains with
the thread count each run stored, under the run context `ctx` otherwise: by default
`REPLAY_CONTEXT`, on the CPU, where the full runs trained, and for runs stored before the
count was recorded, one thread (they trained with one per stack, see
`bnlab.reproduce.common.train_variants`).

    records = replay("results/full/cifar10-cnn", steps=50)
    records[0].identical      # True: the first 50 steps match bit for bit
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import closing
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from bnlab.engine.config import TrainConfig, from_dict
from bnlab.engine.context import RunContext
from bnlab.engine.runs import stored_threads
from bnlab.engine.store import DB_NAME, code_version
from bnlab.engine.store_file import open_reader
from bnlab.engine.train import train
from bnlab.errors import BnlabError

REPLAY_FILE = "replay.json"
REPLAY_CONTEXT = RunContext(device="cpu", threads=1, progress=False)
TRAIN_COLUMNS = ("train_loss", "train_accuracy", "grad_norm", "lr", "layer_grad_norms")


@dataclass(frozen=True)
class ReplayRecord:
    """The replay of one stored run: how much was compared and the first difference, if any."""

    run_id: str
    trained_by: str  # the code version that trained the stored run
    replayed_by: str  # the code version that replayed it
    steps: int  # steps replayed (the run's first `steps`)
    members: int
    train_rows: int  # (member, step) rows compared, every column
    metric_rows: int  # (member, step, name) rows both logged
    difference: str = ""  # the first difference found; "" when identical

    @property
    def identical(self) -> bool:
        return not self.difference and self.train_rows > 0


def replay(
    out_dir: str | Path, steps: int = 50, ctx: RunContext = REPLAY_CONTEXT
) -> list[ReplayRecord]:
    """Replay the first `steps` steps of every run in `out_dir` (see the module docstring)."""
    out_dir = Path(out_dir)
    if steps < 1:
        raise BnlabError(f"--steps: got {steps}, expected a positive number of steps")
    if not (out_dir / DB_NAME).exists():
        raise BnlabError(f"DIR: {out_dir} holds no {DB_NAME}; expected a results directory")
    with closing(_read_only(out_dir)) as stored:
        sql = "SELECT run_id, norm, config, code_version FROM runs ORDER BY created, run_id"
        runs = stored.execute(sql).fetchall()
        if not runs:
            raise BnlabError(f"DIR: {out_dir} holds no training runs")
        return [_replay_run(stored, *run, steps, ctx) for run in runs]


def _read_only(directory: Path) -> sqlite3.Connection:
    """The results database of `directory`, checked and opened so that nothing can write to
    it (`bnlab.engine.store_file`)."""
    return open_reader(Path(directory) / DB_NAME)


def _replay_run(
    stored: sqlite3.Connection,
    run_id: str,
    norm: str,
    config: str,
    trained_by: str,
    steps: int,
    ctx: RunContext,
) -> ReplayRecord:
    sql = "SELECT MAX(step) FROM train_metrics WHERE run_id = ?"
    logged = stored.execute(sql, (run_id,)).fetchone()[0] or 0
    steps = min(steps, logged)  # a run that stopped early is replayed as far as it went
    cfg = from_dict(TrainConfig, json.loads(config))
    cfg = replace(cfg, norms=(norm,), epochs=0, steps=max(steps, 1))
    ctx = replace(ctx, threads=stored_threads(config) or ctx.threads)
    with tempfile.TemporaryDirectory(prefix="bnlab-replay-") as scratch:
        train(cfg, scratch, ctx)
        with closing(sqlite3.connect(Path(scratch) / DB_NAME)) as fresh:
            train_rows, train_diff = _compare(
                _train_rows(stored, run_id, steps),
                _train_rows(fresh, run_id, steps),
                require_all=True,
            )
            metric_rows, metric_diff = _compare(
                _metric_rows(stored, run_id, steps),
                _metric_rows(fresh, run_id, steps),
                require_all=False,
            )
    return ReplayRecord(
        run_id,
        trained_by,
        code_version(),
        steps,
        cfg.members,
        train_rows,
        metric_rows,
        train_diff or metric_diff,
    )


def _train_rows(db: sqlite3.Connection, run_id: str, steps: int) -> dict[tuple, tuple]:
    sql = (
        f"SELECT member, step, {', '.join(TRAIN_COLUMNS)} FROM train_metrics "
        "WHERE run_id = ? AND step <= ?"
    )
    return {(r[0], r[1]): r[2:] for r in db.execute(sql, (run_id, steps))}


def _metric_rows(db: sqlite3.Connection, run_id: str, steps: int) -> dict[tuple, tuple]:
    sql = "SELECT member, step, name, value FROM metrics WHERE run_id = ? AND step <= ?"
    return {(r[0], r[1], r[2]): (r[3],) for r in db.execute(sql, (run_id, steps))}


def _compare(stored: dict, fresh: dict, require_all: bool) -> tuple[int, str]:
    """(rows compared, first difference or ""). With `require_all`, both must log the same
    rows; otherwise only the rows both logged are compared (probe rows exist in one only)."""
    if require_all and stored.keys() != fresh.keys():
        missing = sorted(stored.keys() ^ fresh.keys())[0]
        where = "stored run" if missing not in stored else "replay"
        return 0, f"row (member, step) {missing} is missing from the {where}"
    common = sorted(stored.keys() & fresh.keys())
    for key in common:
        if stored[key] != fresh[key]:  # exact: floats bit for bit, NaN stored as NULL
            return len(common), f"{key}: stored {stored[key]!r:.80}, replay {fresh[key]!r:.80}"
    return len(common), ""


def results_dirs(root: str | Path) -> Iterator[Path]:
    """Every directory under `root` (itself included) that holds a results database."""
    for db in sorted(Path(root).rglob(DB_NAME)):
        yield db.parent


def trained_versions(root: str | Path) -> list[str]:
    """The code versions that trained the runs stored under `root`, sorted: the runs'
    own record, not the manifest's (which names the latest `bnlab reproduce` call)."""
    versions = set()
    for directory in results_dirs(root):
        with closing(_read_only(directory)) as db:
            versions |= {row[0] for row in db.execute("SELECT code_version FROM runs")}
    return sorted(versions)


def write_records(out_dir: str | Path, records: list[ReplayRecord]) -> Path:
    """Store `records` as out_dir/replay.json (what `read_records` and the report read)."""
    path = Path(out_dir) / REPLAY_FILE
    path.write_text(json.dumps([asdict(r) for r in records], indent=2) + "\n")
    return path


def read_records(out_dir: str | Path) -> list[ReplayRecord]:
    """The records `write_records` stored in `out_dir`, or [] if it holds none."""
    path = Path(out_dir) / REPLAY_FILE
    if not path.exists():
        return []
    return [ReplayRecord(**r) for r in json.loads(path.read_text())]


def summary(records: list[ReplayRecord]) -> str:
    """One line for a report: what was replayed by which version, and whether it matched."""
    if not records:
        return ""
    now = ", ".join(sorted({r.replayed_by for r in records}))
    steps = ", ".join(str(s) for s in sorted({r.steps for r in records}))
    bad = [r for r in records if not r.identical]
    if not bad:
        members = sum(r.members for r in records)
        runs = {1: "the one run", 2: "both runs"}.get(len(records), f"all {len(records)} runs")
        return (
            f"replayed by {now}: the first {steps} steps of {runs} ({members} models) are "
            "bit-identical to the stored ones"
        )
    first = bad[0]
    return (
        f"replayed by {now}: {len(bad)} of {len(records)} runs DIFFER in their first "
        f"{steps} steps (first: {first.run_id}, {first.difference or 'nothing compared'}); "
        "this code does not train what is reported"
    )


__all__ = [
    "ReplayRecord",
    "read_records",
    "replay",
    "results_dirs",
    "summary",
    "trained_versions",
    "write_records",
]
