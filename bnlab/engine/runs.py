"""A results directory's runs: their ids, their checkpoint files, what makes a run the same
run, and the checks every executor makes, under the directory's lock, before it trains.

A run is one stack (one norm variant of a config); its id is "<preset>/<norm>". Whatever
trains it (this process, Ray tasks) writes the same `bnlab.sqlite` rows and the same
`checkpoints/<preset>__<norm>.pt`, so a run started by one executor resumes under another.

Beside its config a run stores the torch thread count it trains with (`"threads"` in the
stored config JSON; not a config field, see `bnlab.engine.context`): the count changes the
order of CPU sums, so a run still to train resumes only with the same count. Runs stored
before the count was recorded hold 0 there (then unknown) or none.
"""

from __future__ import annotations

import json
from pathlib import Path

from bnlab.engine.config import TrainConfig, from_dict, to_dict
from bnlab.engine.resume import check_no_checkpoint
from bnlab.engine.store import DB_NAME, Store
from bnlab.errors import BnlabError

THREADS_KEY = "threads"  # in the stored config: the torch threads the run trained with


def run_id(cfg: TrainConfig, norm: str) -> str:
    return f"{cfg.preset}/{norm}"


def checkpoint_path(out_dir: Path, rid: str) -> Path:
    return Path(out_dir) / "checkpoints" / (rid.replace("/", "__") + ".pt")


def identity(config: dict) -> dict:
    """The fields that define a run, as JSON values, from a stored or a new config.

    The config is read back through `from_dict`, so a field added to bnlab after the run was
    stored takes its default (new options default to what bnlab did before them) and a key
    bnlab no longer has is dropped: a run from an earlier version resumes, or is found
    finished, instead of being refused. Where a run trains (device, threads) is no config
    field: it resumes on any device (see `bnlab.engine.context`), with its thread count.
    """
    return json.loads(json.dumps(to_dict(from_dict(TrainConfig, config))))


def stored_threads(config: str | dict) -> int:
    """The torch thread count a stored run trained with; 0 when it was not recorded."""
    config = json.loads(config) if isinstance(config, str) else config
    return int(config.get(THREADS_KEY) or 0)


def open_existing(out_dir: Path) -> Store | None:
    """The directory's database for writing, or None if it has none yet (nothing created)."""
    return Store(out_dir, "w") if (Path(out_dir) / DB_NAME).exists() else None


def _differences(stored: dict, now: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(stored.keys() | now.keys()):
        a, b = stored.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: stored {a!r}, now {b!r}")
    return out


def check_out_dir(
    cfg: TrainConfig, store: Store | None, out_dir: Path, resume: bool, threads: int
) -> None:
    """Before any work: a fresh run needs a fresh directory (and no checkpoints left from a
    lost database); a resumed one the same config and, if it is still to train, the same
    thread count (`threads`, what it would train with now)."""
    status = {r["run_id"]: r["status"] for r in store.runs()} if store else {}
    for norm in cfg.norms:
        rid = run_id(cfg, norm)
        stored = store.run_config(rid) if store else None
        if stored is None:
            path = checkpoint_path(out_dir, rid)
            check_no_checkpoint(out_dir, rid, path)
            continue
        if not resume:
            raise BnlabError(
                f"--out: {out_dir} already holds run {rid!r}; "
                "pass --resume to continue it or choose another --out"
            )
        differ = _differences(identity(json.loads(stored)), identity(to_dict(cfg)))
        if differ:
            raise BnlabError(
                f"--resume: the config of run {rid!r} differs from the stored one: "
                + "; ".join(differ[:3])
            )
        trained = stored_threads(stored)
        if status[rid] != "done" and trained and trained != threads:
            raise BnlabError(
                f"--resume: run {rid!r} trained with {trained} torch threads, this run would "
                f"use {threads}: the count changes the order of CPU sums, so the run resumes "
                f"only with its own (--threads {trained}; with Ray, --ray-cpus {trained})"
            )


def create_run(store: Store, cfg: TrainConfig, norm: str, layers: list[str], threads: int) -> None:
    """Record a new run of `cfg`'s `norm` stack: its config (with the thread count it trains
    with), layers and members."""
    members = [(k, cfg.member_seed(k), cfg.member_lr(k)) for k in range(cfg.members)]
    config = {**to_dict(cfg), THREADS_KEY: threads}
    store.create_run(run_id(cfg, norm), cfg.preset, norm, config, layers, members)


__all__ = [
    "check_out_dir",
    "checkpoint_path",
    "create_run",
    "identity",
    "open_existing",
    "run_id",
    "stored_threads",
]
