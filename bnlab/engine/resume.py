"""Saving and resuming a stack so that the store and its checkpoint files always agree.

`save_checkpoint` stages the checkpoint file, then writes the metric rows and the
checkpoint's record (step, sha256 of the file, row counts up to the step) in one
transaction, then puts the file in place, keeping the one before it as NAME.prev.pt. Rows
may exist past the last checkpoint (a crash between the transaction and the rename, or rows
flushed as they are logged): a resume deletes them.

`restore_checkpoint` trusts a checkpoint file only if the store recorded its exact bytes and
still holds every row up to its step. It tries the latest file, then the previous one; if it
resumes from the previous one it says so, and the store is truncated to that step, so
training redoes the rest, bit-identical. With neither usable it refuses, naming the files
and the missing steps.

Runs stored before checkpoint records existed (schema 0) resume from a file whose zip CRCs
match and whose step the training rows reach.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bnlab.engine import checkpoint
from bnlab.engine.store import CheckpointRecord, Store
from bnlab.errors import BnlabError


def save_checkpoint(
    store: Store, run_id: str, state: dict, rows: tuple[list, list], path: Path
) -> None:
    """Rows and the checkpoint record in one transaction, then the file (module docstring)."""
    staged = checkpoint.stage(state, path)
    try:
        store.write(run_id, *rows, checkpoint=(int(state["step"]), staged.sha256))
    except BaseException:
        checkpoint.discard(staged)
        raise
    checkpoint.commit(staged)


def restore_checkpoint(
    store: Store, run_id: str, path: Path, log_every: int, members: int
) -> dict | None:
    """The state to resume `run_id` from (None: step 0), with the store truncated to its step."""
    records = store.checkpoints(run_id)
    problems: list[str] = []
    for candidate in (path, checkpoint.prev_path(path)):
        if not candidate.exists():
            continue
        state = _trusted(store, run_id, candidate, records, (log_every, members), problems)
        if state is not None:
            if problems:
                print(
                    f"bnlab: {'; '.join(problems)}; resuming {run_id} from {candidate.name} "
                    f"(step {state['step']:,}): the steps after it are trained again",
                    file=sys.stderr,
                )
            store.truncate(run_id, int(state["step"]))
            return state
    if problems:
        raise BnlabError(
            f"--resume: cannot resume {run_id}: {'; '.join(problems)}. To continue, restore "
            f"the {store.path.name} (and its -wal file) that goes with these checkpoints; to "
            f"train the run again, move {store.path.parent} away or choose another --out"
        )
    store.truncate(run_id, 0)  # no checkpoint yet: the run starts over
    return None


def _trusted(
    store: Store,
    run_id: str,
    path: Path,
    records: dict[str, CheckpointRecord],
    logging: tuple[int, int],
    problems: list[str],
) -> dict | None:
    """The state in `path` if the store vouches for it, else None with the reason appended."""
    try:
        data = checkpoint.read_bytes(path)
    except checkpoint.CheckpointError as err:
        problems.append(str(err))
        return None
    record = records.get(checkpoint.sha256(data))
    if record is None:
        if not records and checkpoint.intact(data):  # a run from before checkpoint records
            return _legacy(store, run_id, path, data, logging, problems)
        problems.append(_unrecorded(store, path, data, records))
        return None
    have = store.row_counts(run_id, record.step)
    if have != (record.train_rows, record.metric_rows):
        problems.append(_missing_rows(store, run_id, path, record.step, logging, have, record))
        return None
    return checkpoint.loads(data, path)


def _unrecorded(store: Store, path: Path, data: bytes, records: dict) -> str:
    """Why the store does not know `path`'s bytes: the file is damaged, or the store is old."""
    if not checkpoint.intact(data):
        return f"{path} is damaged ({len(data):,} bytes; its sha256 matches no record)"
    step = checkpoint.loads(data, path).get("step", "?")
    latest = max((r.step for r in records.values()), default=None)
    upto = "no checkpoint" if latest is None else f"checkpoints up to step {latest:,}"
    return (
        f"{path} holds step {step:,} but {store.path} records {upto}: the database is older "
        "than the checkpoints (restored from a backup, or its -wal file deleted)"
    )


def _missing_rows(store, run_id, path, step, logging, have, record) -> str:
    gaps = _missing_steps(store, run_id, step, *logging)
    where = f"rows of steps {gaps}" if gaps else "rows"
    return (
        f"{store.path} lacks {where} up to step {step:,} of {path} (train rows "
        f"{have[0]:,} of {record.train_rows:,}, other metric rows {have[1]:,} of "
        f"{record.metric_rows:,})"
    )


def _missing_steps(store: Store, run_id: str, step: int, log_every: int, members: int) -> str:
    """The logged steps up to `step` that some member lacks, as ranges: "162-231"."""
    sql = (
        "SELECT step FROM train_metrics WHERE run_id = ? AND step <= ? GROUP BY step "
        "HAVING COUNT(*) = ?"
    )
    present = {r[0] for r in store.db.execute(sql, (run_id, step, members))}
    missing = [s for s in range(log_every, step + 1, log_every) if s not in present]
    ranges, start = [], None
    for i, s in enumerate(missing):
        start = s if start is None else start
        if i + 1 == len(missing) or missing[i + 1] != s + log_every:
            ranges.append(f"{start:,}" if start == s else f"{start:,}-{s:,}")
            start = None
    return ", ".join(ranges)


def _legacy(store, run_id, path, data, logging, problems) -> dict | None:
    state = checkpoint.loads(data, path)
    step = int(state["step"])
    gaps = _missing_steps(store, run_id, step, *logging)
    if gaps:
        problems.append(f"{store.path} lacks the rows of steps {gaps} of {path}")
        return None
    return state


def load_latest(store: Store, run_id: str, path: Path) -> dict:
    """The state in `path`, checked against the store's record of it (a finished run's last
    checkpoint, read for measurements after training)."""
    records = store.checkpoints(run_id)
    data = checkpoint.read_bytes(path)
    if checkpoint.sha256(data) not in records and (records or not checkpoint.intact(data)):
        raise BnlabError(
            f"{path} is not the checkpoint {store.path} recorded for {run_id} (damaged, or "
            "replaced); train the run again into another --out"
        )
    return checkpoint.loads(data, path)


def check_no_checkpoint(out_dir: Path, run_id: str, path: Path) -> None:
    """Before a run is created: refuse if checkpoint files of that run already exist (the
    database that went with them was lost or replaced), rather than overwrite them."""
    found = [p for p in (path, checkpoint.prev_path(path)) if p.exists()]
    if found:
        raise BnlabError(
            f"--out: {found[0]} exists but {out_dir} holds no run {run_id!r} in its database: "
            "the database that went with it was lost or replaced. Restore it, or move "
            f"{path.parent} away to train the run again"
        )


__all__ = ["check_no_checkpoint", "load_latest", "restore_checkpoint", "save_checkpoint"]
