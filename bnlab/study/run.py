"""Run a study: check everything, register it, then train each variant's members.

    out = run(study, "results/my-study")               # or `bnlab study FILE --out DIR`
    out = run(study, "results/my-study", resume=True)  # after a crash: bit-identical

1. Load the data and check it, build each variant's first members and check them, and decide
   how each trains (`checks.preflight`). Nothing is written before this passes.
2. Under the directory's lock (`bnlab.engine.lock`): record the claims' decision rules in
   `preregistration.json` (`bnlab.study.rules.register`, entries on record are kept); then, in
   a fresh directory, register every variant as a run in `bnlab.sqlite` (the engine's
   `Store`) with the whole declaration, claims included, and write `study.json`; all before
   any step. A resumed one: the stored declaration must equal this one (`declaration`), and
   a run still to train resumes only with the torch thread count it trained with (it
   changes the order of CPU sums).
3. Train the variants in turn (`loop.train_variant`), each resumable from its checkpoint.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import torch

from bnlab.engine import lock
from bnlab.engine.context import RunContext, resolve_device, torch_threads
from bnlab.engine.runs import stored_threads
from bnlab.engine.store import DB_NAME, Store, code_version
from bnlab.engine.store_file import open_reader
from bnlab.errors import BnlabError
from bnlab.study.checks import preflight
from bnlab.study.data import load_data
from bnlab.study.declaration import declaration as declare
from bnlab.study.declaration import (
    first_difference,
    is_study_dir,
    new_manifest,
    read_manifest,
    run_config,
    write_manifest,
)
from bnlab.study.loop import run_id, train_variant
from bnlab.study.members import settings
from bnlab.study.rules import check_claims, register
from bnlab.study.spec import Study

__all__ = ["run"]


def run(
    study: Study,
    out_dir: str | Path,
    ctx: RunContext | None = None,
    *,
    resume: bool = False,
    seeds: int | None = None,
    steps: int | None = None,
    file: str = "",
    command: str = "",
    stop_at: int = 0,
    say: Callable[[str], None] | None = None,
) -> Path:
    """Check, register and train `study` into `out_dir`; returns `out_dir`.

    `ctx` says where and how (device, torch threads, progress; `bnlab.engine.RunContext`;
    the local executor only, for now). `seeds` and `steps` override the study's own; `file`
    is the study file (stored, so that `bnlab replay` can load the study again); `stop_at`
    ends every variant at that step (a replay: the schedule is still the full run's); `say`
    gets one line per variant: how its members train (vmapped, or one at a time and why).
    """
    ctx = ctx or RunContext()
    if ctx.executor is not None:
        raise BnlabError(
            f"--executor: {ctx.executor.name}: a study trains in this process only, for now "
            "(each variant's seeds already train as one computation)"
        )
    study = replace(study, **{k: v for k, v in (("seeds", seeds), ("steps", steps)) if v})
    out_dir, device = Path(out_dir), resolve_device(ctx.device)
    threads = ctx.threads or torch.get_num_threads()
    with torch_threads(threads):
        data = load_data(study.data)
        plans = preflight(study, data, device)
        decl = declare(study, data, plans, file, ctx.device, threads)
        decl = json.loads(json.dumps(decl))  # as stored
        check_claims(decl)
        _check_out_dir(out_dir, study, decl, _stored_runs(out_dir), resume)  # writes nothing
        with lock.hold(out_dir):
            stored = _stored_runs(out_dir)  # again: another writer may have come first
            _check_out_dir(out_dir, study, decl, stored, resume)
            register(out_dir, decl, code_version())  # before the first run is created
            with Store(out_dir, "c") as store:
                if not stored:
                    _register(store, study, decl)
                    write_manifest(out_dir, new_manifest(decl, command))
                _train(study, plans, data, store, out_dir, device, ctx.progress, stop_at, say)
    return out_dir


def _train(study, plans, data, store: Store, out_dir: Path, device, progress, stop_at, say):
    """Every variant not yet done, in turn, each from its checkpoint."""
    done = {r["run_id"] for r in store.runs() if r["status"] == "done"}
    for name, plan in plans.items():
        rid = run_id(study, name)
        if rid in done:
            continue
        if say is not None:
            how = "vmapped" if plan.mode == "vmapped" else f"one at a time: {plan.reason}"
            say(f"{rid}: {study.seeds} seeds, {how}")
        start = time.monotonic()
        train_variant(study, name, plan.mode, data, store, out_dir, device, progress, stop_at)
        if not stop_at:
            store.set_status(rid, "done")
        _add_wall_time(out_dir, name, time.monotonic() - start)


def _stored_runs(out_dir: Path) -> dict[str, dict]:
    """run_id -> (stored config, status) of the runs already in `out_dir`, read-only."""
    if not (out_dir / DB_NAME).is_file():
        return {}
    with closing(open_reader(out_dir / DB_NAME)) as db:
        rows = db.execute("SELECT run_id, config, status FROM runs").fetchall()
    return {rid: (json.loads(config), status) for rid, config, status in rows}


def _check_out_dir(out_dir: Path, study: Study, decl: dict, stored: dict, resume: bool) -> None:
    """A fresh study needs a fresh directory; a resumed one the same declaration."""
    if out_dir.exists() and not out_dir.is_dir():
        raise BnlabError(f"--out: {out_dir} exists and is not a directory")
    if not stored:
        return
    if not is_study_dir(out_dir):
        raise BnlabError(f"--out: {out_dir} holds other bnlab results; choose another --out")
    name = read_manifest(out_dir)["study"]
    if not resume:
        raise BnlabError(
            f"--out: {out_dir} already holds study {name!r}; pass --resume to continue it "
            "or choose another --out"
        )
    for rid, (config, status) in stored.items():
        found = first_difference(config, run_config(decl, config.get("variant")))
        if found:
            raise BnlabError(
                f"--resume: run {rid!r} was declared differently; {found}. A study's question "
                "and its claims are fixed at its start: choose another --out"
            )
        trained = stored_threads(config)
        if status != "done" and trained and trained != decl["threads"]:
            raise BnlabError(
                f"--resume: run {rid!r} trained with {trained} torch threads, this run would "
                f"use {decl['threads']}: the count changes the order of CPU sums, so the run "
                f"resumes only with its own (--threads {trained})"
            )
    missing = {run_id(study, v) for v in study.variants} - set(stored)
    if missing:
        raise BnlabError(f"--resume: {out_dir} has no run {sorted(missing)[0]!r}")


def _register(store: Store, study: Study, decl: dict) -> None:
    """Every variant's run, with the whole declaration, before any step is trained."""
    for name in study.variants:
        lr = settings(study, name).lr
        members = [(k, seed, lr) for k, seed in enumerate(study.member_seeds())]
        layers = decl["variants"][name]["layers"]
        config = run_config(decl, name)
        store.create_run(run_id(study, name), study.name, name, config, layers, members)


def _add_wall_time(out_dir: Path, variant: str, seconds: float) -> None:
    manifest = read_manifest(out_dir)
    times = manifest.setdefault("wall_time_s", {})
    times[variant] = times.get(variant, 0.0) + seconds
    write_manifest(out_dir, manifest)
