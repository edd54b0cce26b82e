"""What every experiment shares: training stacks with visible progress, reading a results
directory back as (seeds, T) arrays, paired effects over seeds, protocol/data text, and the
one `analyze` skeleton that turns results directories into an `ExperimentResult`.

Each experiment directory holds the engine's `bnlab.sqlite` (one run per norm variant, its
members the seeds, or seeds x learning rates) and a `manifest.json` the runner writes: how
many seeds, whether the run was --quick, and the wall time.
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from bnlab.engine import Probe, RunContext, Store, TrainConfig, lock, train
from bnlab.engine.config import from_dict, to_dict
from bnlab.engine.interrupt import child_init, forward_stops
from bnlab.engine.store import code_version
from bnlab.errors import ResultsNotFoundError
from bnlab.report import Estimate, Row, Rule, Section, diff_ci
from bnlab.report.rules import seeds_text
from bnlab.report.sections import machine_description
from bnlab.reproduce import overrides
from bnlab.reproduce.experiment import Experiment, ExperimentResult, Seeds
from bnlab.reproduce.preregistered import seeds_of

MANIFEST = "manifest.json"
QUICK_SEEDS = 2  # --quick default: the fewest seeds that still give an interval
NORM_LABELS = {"batch": "BN", "none": "no BN", "batch-noisy": "BN + noise"}
# Baseline first in every figure, as in Ioffe & Szegedy 2015 Fig. 1b (no BN) then 1c (BN),
# so each variant keeps its colour across the report.
FIGURE_ORDER = ("none", "batch")


@dataclass(frozen=True)
class Manifest:
    """How one experiment directory was produced."""

    name: str
    seeds: Seeds  # one number, or the pre-registered plan per setting
    quick: bool
    wall_time_s: float
    code_version: str
    created: str
    command: str = ""
    overrides: tuple[str, ...] = ()  # `--set` items applied to every config (overrides.py)
    machine: str = ""  # where it trained (`machine_description`); "" before it was recorded


def write_manifest(out_dir: Path, manifest: Manifest) -> None:
    (Path(out_dir) / MANIFEST).write_text(json.dumps(asdict(manifest), indent=2))


def read_manifest(out_dir: Path) -> Manifest:
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        raise ResultsNotFoundError(
            f"DIR: no {MANIFEST} in {out_dir}; expected a directory written by `bnlab reproduce`"
        )
    return Manifest(**json.loads(path.read_text()))


def new_manifest(
    name: str, seeds: Seeds, quick: bool, wall_time_s: float, changes: Sequence[str] = ()
) -> Manifest:
    created = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    command = " ".join(sys.argv)
    return Manifest(
        name,
        seeds,
        quick,
        wall_time_s,
        code_version(),
        created,
        command,
        tuple(changes),
        machine_description(),
    )


def quick_suffix(manifest: Manifest) -> str:
    """Appended to every section title of a --quick run, and of a run with `--set`."""
    text = " — QUICK smoke run" if manifest.quick else ""
    if manifest.overrides:
        text += f" — {overrides.label(manifest.overrides)}"
    return text


def say(name: str, text: str) -> None:
    """One progress line, flushed: visible in a terminal and in CI logs alike."""
    print(f"[{name}] {text}", flush=True)


def train_variants(
    name: str,
    cfg: TrainConfig,
    out_dir: Path,
    ctx: RunContext,
    parallel: bool = True,
    probes: Sequence[Probe] = (),
) -> None:
    """Train each norm variant of `cfg` as one stack into `out_dir` under the run context
    `ctx`, with progress lines.

    With two or more cores the variants train side by side, one process each with
    cores / variants torch threads; in one process, stacks train one after another with one
    thread. A stack of a few small models is bound by per-op overhead, and measured on two
    cores one thread is 5-10x faster than two threads competing with another process.
    `ctx.threads`, when set, replaces both choices. `parallel=False` (quick runs) trains in
    this process: starting processes would cost more than it saves. With an executor in
    `ctx` (Ray), the variants are its parallel tasks instead. Resumes what a previous call
    left; the engine refuses a changed config, so a directory never mixes two protocols.
    `probes` measure during training (e.g. `bnlab.analysis.AnalysisProbe`); each process
    gets its own copy.
    """
    cfg = overrides.apply(cfg, ctx)  # `bnlab reproduce --set`: every config the experiment trains
    total = f"{cfg.epochs} epochs" if cfg.epochs else f"{cfg.steps:,} steps"
    for norm in cfg.norms:
        say(name, f"{NORM_LABELS.get(norm, norm)}: {cfg.members} members x {total}")
    if ctx.executor is not None:  # its own progress lines, --quiet or not
        train(cfg, Path(out_dir), replace(ctx, progress=True), resume=True, probes=probes)
        return
    jobs = [(name, replace(cfg, norms=(norm,)), Path(out_dir), tuple(probes)) for norm in cfg.norms]
    cores = os.cpu_count() or 1
    if cores < 2 or len(jobs) < 2 or not parallel:
        for job in jobs:
            _train_job(*job, replace(ctx, threads=ctx.threads or 1))
        return
    side_by_side = replace(ctx, threads=ctx.threads or max(1, cores // len(jobs)), progress=False)
    # this process holds the directory's lock for both children (see bnlab.engine.lock)
    with lock.hold(out_dir) as token, _children(len(jobs)) as pool:
        futures = [pool.submit(_train_job, *job, side_by_side, token) for job in jobs]
        for future in futures:
            future.result()  # re-raises a stack's error here, or its `Interrupted`


def train_side_by_side(
    name: str,
    jobs: Sequence[tuple[str, TrainConfig, Path]],
    ctx: RunContext,
    parallel: bool = True,
) -> None:
    """Train several one-stack configs (label, cfg, out_dir) side by side in processes, one
    per core with one thread each, as `train_variants` trains a config's variants; with one
    core, an executor or `parallel=False`, one after another."""
    cores = os.cpu_count() or 1
    if cores < 2 or len(jobs) < 2 or not parallel or ctx.executor is not None:
        for label, cfg, out in jobs:
            train_variants(f"{name} {label}", cfg, out, ctx, parallel=False)
        return
    side_by_side = replace(ctx, threads=ctx.threads or 1, progress=False)
    with contextlib.ExitStack() as held:
        # this process holds each directory's lock for its child (see bnlab.engine.lock)
        tokens = [held.enter_context(lock.hold(out)) for _, _, out in jobs]
        pool = held.enter_context(_children(min(cores, len(jobs))))
        futures = [
            pool.submit(
                _train_job,
                f"{name} {label}",
                overrides.apply(cfg, ctx),
                Path(out),
                (),
                side_by_side,
                token,
            )
            for (label, cfg, out), token in zip(jobs, tokens, strict=True)
        ]
        for future in futures:
            future.result()


@contextlib.contextmanager
def _children(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A pool of `workers` spawned processes (fork after torch's thread pools can hang) that
    a signal to this process stops at a checkpoint (`bnlab.engine.interrupt.forward_stops`)."""
    spawn = multiprocessing.get_context("spawn")
    # forwarding outlasts the pool: its shutdown waits for the children's checkpoints
    with (
        forward_stops(),
        ProcessPoolExecutor(workers, mp_context=spawn, initializer=child_init) as pool,
    ):
        yield pool


def _train_job(
    name: str,
    cfg: TrainConfig,
    out_dir: Path,
    probes: tuple,
    ctx: RunContext,
    lock_token: str | None = None,
) -> None:
    """Train one stack under `ctx` (which restores the caller's torch threads after);
    `lock_token`: the parent process holds `out_dir`'s lock for this one."""
    label = NORM_LABELS.get(cfg.norms[0], cfg.norms[0])
    start = time.monotonic()
    probes = (ProgressLine(f"{name}: {label}"), *probes)
    adopted = lock.adopt(out_dir, lock_token) if lock_token else contextlib.nullcontext()
    with adopted:
        train(cfg, out_dir, ctx, resume=True, probes=probes)
    say(f"{name}: {label}", f"done in {time.monotonic() - start:.1f} s")


class ProgressLine(Probe):
    """Prints one line every 5% of a stack's steps: visible in CI logs, where tqdm is off.

    Measures nothing and touches nothing, so it returns no rows (see `Probe`).
    """

    every = 1

    def __init__(self, name: str):
        self.name, self.start = name, time.monotonic()

    def __call__(self, stack, step, xb, yb) -> list[tuple]:
        interval = max(1, stack.total_steps // 20)
        if step % interval == 0:
            elapsed = time.monotonic() - self.start
            say(self.name, f"step {step:,}/{stack.total_steps:,} ({elapsed:.0f} s)")
        return []


# ---------------------------------------------------------------- reading back


class Results:
    """Read-only view of one experiment directory's store, keyed by norm variant (in the
    order they were trained). Use it as a context manager: `with Results(d) as res:`."""

    def __init__(self, out_dir: Path):
        self.store = Store(out_dir, "r")
        self.runs = {r["norm"]: r for r in self.store.runs()}
        if not self.runs:
            self.store.close()
            raise ResultsNotFoundError(f"DIR: {out_dir} holds no training runs")

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Results:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def config(self, norm: str) -> dict:
        """The stored config of `norm`'s run, in this version's layout (a config stored by an
        earlier version is upgraded, `bnlab.engine.upgrade`), as JSON-like dicts and lists."""
        stored = from_dict(TrainConfig, json.loads(self.runs[norm]["config"]))
        return json.loads(json.dumps(to_dict(stored)))

    def members(self, norm: str) -> list[tuple[int, int, float]]:
        return self.store.members(self.runs[norm]["run_id"])

    def metric(self, norm: str, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps (T,), values (K, T)) of a long-format metric (test_accuracy, act/...)."""
        return self.store.metric_matrix(self.runs[norm]["run_id"], name)

    def train_series(self, norm: str, column: str) -> tuple[np.ndarray, np.ndarray]:
        return self.store.train_matrix(self.runs[norm]["run_id"], column)

    def metric_names(self, prefix: str = "") -> list[str]:
        """Long-format metric names starting with `prefix` ("ics_l2/" -> per-layer ICS)."""
        return self.store.metric_names(prefix)


def paired_effect(bn: np.ndarray, base: np.ndarray) -> tuple[Estimate | None, int]:
    """BN minus baseline over seeds, paired by seed (same init stream and data order).

    Pairs where either value is not finite (a diverged or unmeasurable run) are dropped;
    returns the estimate (None if no pair is left) and how many pairs were dropped.
    """
    bn, base = np.asarray(bn, dtype=float), np.asarray(base, dtype=float)
    ok = np.isfinite(bn) & np.isfinite(base)
    dropped = int(ok.size - ok.sum())
    if not ok.any():
        return None, dropped
    return diff_ci(bn[ok], base[ok], paired=True), dropped


def per_member(values: list[float | None]) -> np.ndarray:
    """Per-member measures with None (not measurable) as NaN."""
    return np.array([math.nan if v is None else v for v in values], dtype=float)


def data_source(dataset: str) -> str:
    """Where `dataset` came from, with any subset note (e.g. the CIFAR-10 5,000-image subset)."""
    from bnlab import data

    status = {s.name: s for s in data.available()}.get(dataset)
    if status is None:
        return f"{dataset}: source not recorded"
    sizes = " / ".join(f"{n:,} {split}" for split, n in status.sizes.items())
    text = f"{dataset}: {sizes}; {status.source}"
    return f"{text}. {status.note}" if status.note else text


def steps_per_epoch(cfg: dict) -> int:
    """Optimizer steps per epoch of a stored config: its training images over its batch."""
    from bnlab import data

    d = cfg["data"]
    n = data.status(d["dataset"], d["data_dir"] or None).sizes["train"]
    n = min(n, d["train_subset"]) if d["train_subset"] else n
    full, rest = divmod(n, cfg["batch_size"])
    return full + (1 if rest and not cfg.get("drop_last", True) else 0)


def describe(cfg: dict) -> dict[str, str]:
    """A stored config as protocol lines for the report."""
    m, d, o = cfg["model"], cfg["data"], cfg["optim"]
    arch = f"{m['num_classes']}-way softmax"
    if m["hidden"]:
        arch = f"hidden {'x'.join(map(str, m['hidden']))}, {arch}"
    if m["conv_channels"]:
        pool = "max-pool" if m["pool_every"] == 1 else f"max-pool after every {m['pool_every']}"
        arch = f"conv {'/'.join(map(str, m['conv_channels']))} (3x3, {pool}), {arch}"
    opt = o["name"].upper() if o["name"] == "sgd" else "Adam"
    if o["momentum"]:
        opt += f", momentum {o['momentum']:g}"
    if o["weight_decay"]:
        opt += f", weight decay {o['weight_decay']:g}"
    lrs = o["lrs"] or [o["lr"]]
    length = f"{cfg['steps']:,} steps"
    if cfg["epochs"]:
        per_epoch = steps_per_epoch(cfg)
        length = (
            f"{cfg['epochs']} epochs of {per_epoch:,} steps = {cfg['epochs'] * per_epoch:,} steps"
        )
    init = "PyTorch default" if m["init"] == "torch-default" else f"N(0, {m['init_std']:g}^2)"
    subset = ""
    if d["train_subset"] or d["test_subset"]:
        train = f"first {d['train_subset']:,}" if d["train_subset"] else "all"
        test = f"first {d['test_subset']:,}" if d["test_subset"] else "all"
        subset = f" ({train} train / {test} test images)"
    return {
        "data": f"{d['dataset']}{subset}, inputs {d['transform']}"
        + (", crop+flip" if d["augment"] else ""),
        "network": f"{arch}; {m['activation']}; BN (where used) {m['norm_position']} it",
        "init": init,
        "optimizer": f"{opt}, lr {', '.join(f'{lr:g}' for lr in lrs)}",
        "batch": f"{cfg['batch_size']}, each epoch's last partial batch "
        + ("dropped" if cfg.get("drop_last", True) else "kept (BN over fewer examples)"),
        "length": length,
        "seeds": seeds_text(cfg["seeds"], cfg.get("seed", 0)),
    }


def describe_runs(configs: Sequence[dict]) -> dict[str, str]:
    """`describe` of every stored config a section reports on, merged: a row the runs share
    is shown once; a row that differs lists each distinct value, with its run's preset when
    the presets differ (e.g. one lr per batch size)."""
    if not configs:
        raise ValueError("configs: expected the stored configs of at least one run")
    rows = [describe(c) for c in configs]
    presets = [c["preset"] for c in configs]
    labelled = len(set(presets)) > 1
    out = {}
    for key in rows[0]:
        values = dict.fromkeys(
            f"{r[key]} ({p})" if labelled else r[key] for r, p in zip(rows, presets, strict=True)
        )
        distinct = dict.fromkeys(r[key] for r in rows)
        out[key] = next(iter(distinct)) if len(distinct) == 1 else " | ".join(values)
    return out


def check_protocol(section: Section) -> None:
    """Raise ValueError if a protocol row that `describe_runs` derives from the section's
    stored configs is missing or says something else: the protocol table must be the
    configs the runs were trained with, not text written beside them."""
    if not section.configs:
        return
    expected = describe_runs(section.configs)
    wrong = {
        key: (section.protocol.get(key), text)
        for key, text in expected.items()
        if section.protocol.get(key) != text
    }
    if wrong:
        lines = "; ".join(
            f"{k}: shows {got!r}, the configs say {want!r}" for k, (got, want) in wrong.items()
        )
        raise ValueError(
            f"section {section.title!r}: protocol rows disagree with the runs: {lines}"
        )


def stored_configs(res: Results) -> list[dict]:
    """The stored config of every run in `res`, in training order."""
    return [res.config(norm) for norm in res.runs]


def vs_source(source: str, differences: Sequence[str]) -> dict[str, str]:
    """Protocol rows, one per difference from `source` (the paper or seed reproduced), so the
    protocol table says every way this run is not the source's."""
    n = len(differences)
    return {f"vs. {source} ({i}/{n})": text for i, text in enumerate(differences, start=1)}


RUNS_VS_ONE = "runs: one per seed (see seeds), paired by seed; the source reports one run each"


# ---------------------------------------------------------------- the analyze() skeleton

# What one results directory adds to the report: its section and its scorecard rows.
Part = tuple[Section, list[Row]]


def analyze_dirs(
    name: str,
    out_dir: Path,
    part: Callable[[Results, Path, Seeds], Part],
    dirs: Sequence[Path] | None = None,
) -> ExperimentResult:
    """The `analyze` every experiment shares: read the manifest, open each results directory
    (`out_dir` itself unless `dirs` names them) and let `part(res, directory, seeds)` build
    its section and rows (`seeds` as the manifest records them, for the rules), then mark
    them as the manifest says (`experiment_result`)."""
    manifest = read_manifest(out_dir)
    sections, rows = [], []
    for directory in dirs if dirs is not None else [Path(out_dir)]:
        with Results(directory) as res:
            section, part_rows = part(res, Path(directory), manifest.seeds)
        sections.append(section)
        rows += part_rows
    return experiment_result(name, manifest, sections, rows)


def experiment_result(
    name: str, manifest: Manifest, sections: list[Section], rows: list[Row]
) -> ExperimentResult:
    """One experiment's report contribution: every section title marked if the run was
    --quick, the wall time and the code version that trained it shown once, on the first
    section."""
    sections = [replace(s, title=s.title + quick_suffix(manifest)) for s in sections]
    first = sections[0]
    protocol = {**first.protocol, "code version": manifest.code_version}
    if manifest.overrides:
        protocol["--set"] = (
            f"{' '.join(manifest.overrides)}, applied to every config this experiment "
            f"trained: {overrides.NOT_PUBLISHED}"
        )
    sections[0] = replace(first, wall_time_s=manifest.wall_time_s, protocol=protocol)
    return ExperimentResult(
        name, tuple(sections), tuple(rows), manifest.wall_time_s, manifest.quick
    )


def one_config_experiment(
    name: str,
    title: str,
    config: Callable[[int, bool], TrainConfig],
    part: Callable[[Results, Path, Seeds], Part],
    rules: Callable[[Seeds], tuple[Rule, ...]],
    default_seeds: int,
) -> Experiment:
    """An experiment of one config, `config(seeds, quick)`: each norm variant trained as a stack
    into `out_dir` by `train_variants`, and read back into one section by `part`."""

    def run(out_dir: Path, seeds: Seeds, quick: bool, ctx: RunContext) -> None:
        n = seeds_of(seeds, name)
        train_variants(name, config(n, quick), out_dir, ctx, parallel=not quick)

    def analyze(out_dir: Path) -> ExperimentResult:
        return analyze_dirs(name, out_dir, part)

    return Experiment(name, title, run, analyze, rules, default_seeds)
