"""A results directory's runs: their ids, their checkpoint files, what makes a run the same
run, and the checks every executor makes, under the directory's lock, before it trains.

A run is one stack (one norm variant of a config); its id is "<preset>/<norm>". Whatever
trains it (this process, Ray tasks) writes the same `bnlab.sqlite` rows and the same
`checkpoints/<preset>__<norm>.pt`, so a run started by one executor resumes under another.

Beside its config a run stores the torch thread count it trains with (`"threads"` in the
stored config JSON; not a config field, see `bnlab.engine.context`): the count changes the
order of CPU sums, so a run still to train resumes only with the same count. Runs stored
before the count was recorded hold 0 there (then unknown) or none.

A resumed run keeps its config, except for `RESUME_MAY_CHANGE`: its length (a finished run
trained further continues from its last checkpoint, `continue_run`) and how often it
checkpoints.
"""

from __future__ import annotations

import json
from pathlib import Path

from bnlab.engine import lock
from bnlab.engine.checkpoint import PREV_SUFFIX
from bnlab.engine.config import TrainConfig, from_dict, to_dict
from bnlab.engine.resume import check_no_checkpoint
from bnlab.engine.store import DB_NAME, Store
from bnlab.errors import BnlabError

THREADS_KEY = "threads"  # in the stored config: the torch threads the run trained with
# Fields a resumed run may change: how long it trains, and how often it checkpoints (a
# checkpoint reads the state and changes nothing; tests/test_engine_continue.py checks
# the rows stay bit-identical). Every other field changes the numbers or which rows exist:
# log_every, eval_every and hooks decide the steps that have rows, so a run that changed
# them half-way would hold rows its stored config does not describe.
RESUME_MAY_CHANGE = ("steps", "epochs", "checkpoint_every")
DIFFERENCES_SHOWN = 6  # fields named in the error; the rest are counted
NEVER_SHORTENED = "a run is extended, never shortened (train the shorter one into another --out)"
EVALUATION = ("test_loss", "test_accuracy")  # the metric rows `bnlab.engine.train` evaluates


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


def schedule(cfg: TrainConfig) -> tuple[int, int]:
    """(total steps, steps between evaluations) of each stack of `cfg`, as the engine will
    count them, from the dataset's size (`bnlab.data.status` reads the kept copy; nothing is
    loaded into the engine)."""
    if not cfg.epochs and cfg.eval_every:
        return cfg.steps, cfg.eval_every
    from bnlab import data
    from bnlab.data.batches import epoch_steps

    d = cfg.data
    n = d.train_subset or data.status(d.dataset, d.data_dir or None).sizes.get("train", 0)
    per_epoch = epoch_steps(n, cfg.batch_size, cfg.drop_last)
    return (cfg.epochs * per_epoch if cfg.epochs else cfg.steps), (cfg.eval_every or per_epoch)


def length_changed(stored: str | dict, cfg: TrainConfig) -> bool:
    """Whether `cfg` trains its run for another length than the stored config says."""
    stored = json.loads(stored) if isinstance(stored, str) else stored
    return (stored.get("steps"), stored.get("epochs")) != (cfg.steps, cfg.epochs)


def _shortened(stored: dict, cfg: TrainConfig) -> bool:
    """Whether `cfg` is shorter than the stored config, where both count alike."""
    if bool(stored.get("epochs")) != bool(cfg.epochs):
        return False  # steps against epochs: known once the data is loaded (`continue_run`)
    key = "epochs" if cfg.epochs else "steps"
    return getattr(cfg, key) < stored.get(key, 0)


def stored_threads(config: str | dict) -> int:
    """The torch thread count a stored run trained with; 0 when it was not recorded."""
    config = json.loads(config) if isinstance(config, str) else config
    return int(config.get(THREADS_KEY) or 0)


def stored_configs(out_dir: Path) -> list[TrainConfig]:
    """The configs the runs in `out_dir` were stored with, one per distinct config (a
    `bnlab train` stores one for all its norms, `bnlab reproduce` one per norm), in the
    order they were created; an error if there is none (`--resume` without `--preset`), or
    if another process writes the directory now (what it holds may be half-written)."""
    lock.check_free(out_dir)
    if not (Path(out_dir) / DB_NAME).is_file():
        kept = sorted(Path(out_dir).glob("checkpoints/*.pt"), key=lambda p: PREV_SUFFIX in p.name)
        if kept:  # as `check_no_checkpoint` says it for a new run
            raise BnlabError(
                f"--out: {kept[0]} exists but {out_dir} holds no {DB_NAME}: the database "
                f"that went with it was lost or replaced. Restore it, or move {out_dir} away "
                "to train the runs again"
            )
        raise BnlabError(
            f"--resume: {out_dir} holds no {DB_NAME}, so no run to resume; "
            "drop --resume to start training there"
        )
    with Store(out_dir, "r") as store:
        configs = [json.loads(r["config"]) for r in store.runs()]
    unique = {
        json.dumps({k: v for k, v in c.items() if k != THREADS_KEY}, sort_keys=True): c
        for c in configs
    }
    if not unique:
        raise BnlabError(f"--resume: {out_dir} holds no run to resume; drop --resume to start")
    return [from_dict(TrainConfig, c) for c in unique.values()]


def check_resumable(out_dir: Path, configs: list[TrainConfig]) -> None:
    """`--resume` continues runs that exist: `out_dir` must hold one of `configs`' runs."""
    stored_configs(out_dir)  # raises for a directory without runs
    with Store(out_dir, "r") as store:
        held = set(store.run_ids())
    wanted = {run_id(c, n) for c in configs for n in c.norms}
    if not wanted & held:
        raise BnlabError(
            f"--resume: {out_dir} holds no run of {', '.join(sorted(wanted))}; it holds "
            f"{', '.join(sorted(held))} (`bnlab train --resume --out {out_dir}` continues "
            "those), or drop --resume to start the new runs in another --out"
        )


def open_existing(out_dir: Path) -> Store | None:
    """The directory's database for writing, or None if it has none yet (nothing created)."""
    return Store(out_dir, "w") if (Path(out_dir) / DB_NAME).exists() else None


def threads_to_resume(store: Store | None, cfg: TrainConfig) -> int:
    """The torch thread count stored with the runs of `cfg` that will train again (not
    finished, or trained further); 0 when none is stored."""
    if store is None:
        return 0
    runs = {r["run_id"]: r for r in store.runs()}
    for norm in cfg.norms:
        run = runs.get(run_id(cfg, norm))
        if run and (run["status"] != "done" or length_changed(run["config"], cfg)):
            if stored_threads(run["config"]):
                return stored_threads(run["config"])
    return 0


def _differences(stored: dict, now: dict, prefix: str = "") -> list[str]:
    """ "key: stored A, now B" for every field that differs, but those a resume may change."""
    out = []
    for key in sorted(stored.keys() | now.keys()):
        a, b = stored.get(key), now.get(key)
        if not prefix and key in RESUME_MAY_CHANGE:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: stored {a!r}, now {b!r}")
    return out


def _config_error(rid: str, differ: list[str]) -> BnlabError:
    shown = "; ".join(differ[:DIFFERENCES_SHOWN])
    if len(differ) > DIFFERENCES_SHOWN:
        shown += f"; and {len(differ) - DIFFERENCES_SHOWN} more"
    fields = f"{len(differ)} field{'s' if len(differ) > 1 else ''}"
    return BnlabError(
        f"--resume: the config of run {rid!r} differs from the stored one in {fields}: {shown}"
        f". Only {', '.join(RESUME_MAY_CHANGE)} may change on --resume: drop the --set that "
        "changed the rest (`bnlab train --resume --out DIR` alone reads the stored config), "
        "or choose another --out"
    )


def check_out_dir(
    cfg: TrainConfig, store: Store | None, out_dir: Path, resume: bool, threads: int
) -> None:
    """Before any work: a fresh run needs a fresh directory (and no checkpoints left from a
    lost database); a resumed one the same config (but `RESUME_MAY_CHANGE`), no fewer steps
    if it is finished and, if it is still to train, the same thread count (`threads`, what
    it would train with now)."""
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
            raise _config_error(rid, differ)
        done = status[rid] == "done"
        if done and _shortened(json.loads(stored), cfg):
            raise _shorter_error(rid, json.loads(stored), cfg)
        trained = stored_threads(stored)
        if (not done or length_changed(stored, cfg)) and trained and trained != threads:
            raise BnlabError(
                f"--resume: run {rid!r} trained with {trained} torch threads, this run would "
                f"use {threads}: the count changes the order of CPU sums, so the run resumes "
                f"only with its own (--threads {trained}; with Ray, --ray-cpus {trained})"
            )


def _shorter_error(rid: str, stored: dict, cfg: TrainConfig) -> BnlabError:
    key = "epochs" if cfg.epochs else "steps"
    return BnlabError(
        f"--{key}: run {rid!r} has trained {stored[key]:,} {key}, got {getattr(cfg, key):,}; "
        f"expected at least as many: {NEVER_SHORTENED}"
    )


def continue_run(
    store: Store, rid: str, stored: str, cfg: TrainConfig, step: int, threads: int
) -> bool:
    """After `rid` was restored at `step`: whether it trains on, to the end of `cfg`'s
    `schedule`, on `threads` torch threads.

    A run given another length stores `cfg` as its config (with the thread count). Trained
    further from where it had ended, its evaluation at that step goes, unless the longer
    run evaluates there too: a run trained that long from the start has no such rows, and
    the extended run holds exactly its rows (`Store.reopen`).
    """
    total, eval_every = schedule(cfg)
    if step > total:
        raise BnlabError(
            f"--steps: run {rid!r} has trained {step:,} steps, more than the {total:,} asked "
            f"for; {NEVER_SHORTENED}"
        )
    if not length_changed(stored, cfg):
        return True
    drop = EVALUATION if 0 < step < total and step % eval_every else ()
    config = {**to_dict(cfg), THREADS_KEY: threads}
    store.reopen(rid, step, config, drop)
    return step < total


def create_run(store: Store, cfg: TrainConfig, norm: str, layers: list[str], threads: int) -> None:
    """Record a new run of `cfg`'s `norm` stack: its config (with the thread count it trains
    with), layers and members."""
    members = [(k, cfg.member_seed(k), cfg.member_lr(k)) for k in range(cfg.members)]
    config = {**to_dict(cfg), THREADS_KEY: threads}
    store.create_run(run_id(cfg, norm), cfg.preset, norm, config, layers, members)


__all__ = [
    "RESUME_MAY_CHANGE",
    "check_out_dir",
    "check_resumable",
    "checkpoint_path",
    "continue_run",
    "create_run",
    "identity",
    "length_changed",
    "open_existing",
    "run_id",
    "schedule",
    "stored_configs",
    "stored_threads",
    "threads_to_resume",
]
