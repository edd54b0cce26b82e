"""The final metrics of every member in a results directory, one flat dict each.

`bnlab results` prints them; scripts and notebooks read them as a table.
"""

from __future__ import annotations

import json
from pathlib import Path

from bnlab.engine.store import DB_NAME, Store
from bnlab.errors import ResultsNotFoundError


def results_dirs(root: str | Path) -> list[Path]:
    """`root` if it holds a results database, else every directory under it that does (a
    `bnlab reproduce` tree), sorted; a ResultsNotFoundError naming `root` if there is none."""
    root = Path(root)
    if (root / DB_NAME).exists():
        return [root]
    found = sorted(db.parent for db in root.rglob(DB_NAME)) if root.is_dir() else []
    if not found:
        raise ResultsNotFoundError(
            f"DIR: no {DB_NAME} in or under {root}; run `bnlab train --out DIR` first"
        )
    return found


def member_records(out_dir: str | Path) -> list[dict]:
    """One dict per member of every run in `out_dir`: config fields and final metrics."""
    if not (Path(out_dir) / DB_NAME).exists():
        raise ResultsNotFoundError(f"DIR: no {DB_NAME} in {out_dir}; run `bnlab train --out DIR`")
    with Store(out_dir, "r") as store:
        return [rec for run in store.runs() for rec in _run_records(store, run)]


def _run_records(store: Store, run: dict) -> list[dict]:
    cfg = json.loads(run["config"])
    optim = cfg.get("optim") or cfg.get("optimizer") or {}  # a `bnlab study` run: "optimizer"
    data = cfg.get("data") or {}
    records = []
    for member, seed, lr in store.members(run["run_id"]):
        last = store.last_train_row(run["run_id"], member) or {}
        final = store.last_metrics(run["run_id"], member)
        records.append(
            {
                "run_id": run["run_id"],
                "preset": run["preset"],
                "norm": run["norm"],
                "member": member,
                "seed": seed,
                "lr": lr,
                "optimizer": optim.get("name"),
                "dataset": data.get("dataset") or data.get("source"),
                "batch_size": cfg["batch_size"],
                "steps": last.get("step", 0),
                "status": run["status"],
                "code_version": run["code_version"],
                "train_loss": last.get("train_loss"),
                "train_accuracy": last.get("train_accuracy"),
                "test_loss": final.get("test_loss"),
                "test_accuracy": final.get("test_accuracy"),
            }
        )
    return records
