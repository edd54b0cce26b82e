"""Replay a study: does the code imported now still train what a study directory holds?

As `bnlab.engine.replay` does for the engine's runs: the first `steps` steps of every
variant are trained again, from the study file recorded at the start (refused if it has
changed since) with the stored seeds and steps, in a scratch directory, and every logged
value is compared bit for bit. The schedule is the full run's (the replay stops early, it
does not shorten the run). Records go to DIR/replay.json, which the report shows.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import tempfile
from contextlib import closing
from dataclasses import replace
from pathlib import Path

from bnlab.engine.context import RunContext
from bnlab.engine.replay import ReplayRecord, _compare, _metric_rows, _read_only, _train_rows
from bnlab.engine.runs import stored_threads
from bnlab.engine.store import DB_NAME, code_version
from bnlab.errors import BnlabError
from bnlab.study.declaration import first_difference, read_manifest
from bnlab.study.load import load_study
from bnlab.study.run import run

__all__ = ["replay_study"]


def replay_study(
    out_dir: str | Path, steps: int = 50, fallback_threads: int = 1
) -> list[ReplayRecord]:
    """Replay the first `steps` steps of every variant in the study at `out_dir`, on the CPU
    and with the torch thread count the study trained with (`fallback_threads` if it stored
    none): CPU sums run in another order on another count.
    """
    out_dir = Path(out_dir)
    if steps < 1:
        raise BnlabError(f"--steps: got {steps}, expected a positive number of steps")
    decl = read_manifest(out_dir)["declaration"]
    study = _study(decl)
    threads = stored_threads(decl) or fallback_threads
    ctx = RunContext(device="cpu", threads=threads, progress=False)
    with closing(_read_only(out_dir)) as stored:
        runs = stored.execute("SELECT run_id, config, code_version FROM runs").fetchall()
        logged = min(_logged(stored, rid) for rid, _, _ in runs)
        steps = max(1, min(steps, logged))
        with tempfile.TemporaryDirectory(prefix="bnlab-study-replay-") as scratch:
            run(study, scratch, ctx, file=decl["file"], stop_at=steps)
            with closing(sqlite3.connect(Path(scratch) / DB_NAME)) as fresh:
                return [_record(stored, fresh, *r, steps, decl) for r in runs]


def _study(decl: dict):
    """The study as the run declared it, from its file, unchanged since."""
    file = decl.get("file") or ""
    if not file or not Path(file).is_file():
        raise BnlabError(
            f"replay: the study file {file or '(none recorded)'} is not there; a study run "
            "from Python needs run(..., file=PATH) to be replayed"
        )
    if hashlib.sha256(Path(file).read_bytes()).hexdigest() != decl["file_sha256"]:
        raise BnlabError(f"replay: {file} has changed since the study ran; restore it first")
    study = load_study(file, decl["study"])
    return replace(study, seeds=decl["seeds"], steps=decl["steps"])


def _logged(db: sqlite3.Connection, rid: str) -> int:
    sql = "SELECT MAX(step) FROM train_metrics WHERE run_id = ?"
    return db.execute(sql, (rid,)).fetchone()[0] or 0


def _record(stored, fresh, rid: str, config: str, trained_by: str, steps: int, decl: dict):
    sql = "SELECT config FROM runs WHERE run_id = ?"
    found = first_difference(
        json.loads(config), json.loads(fresh.execute(sql, (rid,)).fetchone()[0])
    )
    train_rows, train_diff = _compare(
        _train_rows(stored, rid, steps), _train_rows(fresh, rid, steps), require_all=True
    )
    metric_rows, metric_diff = _compare(
        _metric_rows(stored, rid, steps), _metric_rows(fresh, rid, steps), require_all=False
    )
    difference = f"declaration differs: {found}" if found else train_diff or metric_diff
    return ReplayRecord(
        rid, trained_by, code_version(), steps, decl["seeds"], train_rows, metric_rows, difference
    )
