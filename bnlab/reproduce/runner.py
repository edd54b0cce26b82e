"""Run experiments into a results tree and build the report from whatever the tree holds.

    results/reproduce/                 <- `bnlab reproduce all` (the report goes here)
        ioffe2015-mnist/ bnlab.sqlite manifest.json figures/ checkpoints/
        ioffe2015-lr/    ...

`bnlab report DIR` accepts that tree or one experiment directory inside it.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

from bnlab.engine import RunContext, replay
from bnlab.engine.interrupt import sigterm_as_interrupt
from bnlab.engine.store import code_version
from bnlab.errors import BnlabError, ResultsNotFoundError, did_you_mean
from bnlab.report import QUICK_BANNER, registration
from bnlab.reproduce.common import MANIFEST, QUICK_SEEDS, new_manifest, read_manifest, say
from bnlab.reproduce.experiment import ExperimentResult, Seeds
from bnlab.reproduce.registry import experiments

STOPPED = "stopped.json"  # the time of this run's calls that were interrupted (s)


def resolve_names(name: str) -> list[str]:
    known = experiments()
    if name == "all":
        return list(known)
    if name not in known:
        raise BnlabError(
            f"EXPERIMENT: unknown {name!r}; {did_you_mean(name, known)}"
            f"expected all or one of: {', '.join(known)}"
        )
    return [name]


def seeds_for(name: str, seeds: int | None, quick: bool) -> Seeds:
    """`--seeds` for every setting, or the experiment's pre-registered plan."""
    if seeds is None:
        return QUICK_SEEDS if quick else experiments()[name].default_seeds
    if seeds < 2:
        raise BnlabError(f"--seeds: got {seeds}, expected at least 2 (an interval needs 2)")
    return seeds


def _check_existing(out: Path, seeds: Seeds, quick: bool, changes: tuple[str, ...]) -> None:
    """A directory may be resumed by the same protocol only: fail before any training."""
    path = out / MANIFEST
    if not path.is_file():
        return
    old = json.loads(path.read_text())
    if (old["seeds"], old["quick"]) != (seeds, quick):
        raise BnlabError(
            f"--out: {out} holds a run with seeds={old['seeds']}, quick={old['quick']}, "
            f"but this one has seeds={seeds}, quick={quick}; choose another --out"
        )
    stored, now = list(old.get("overrides", [])), list(changes)
    if stored != now:
        raise BnlabError(
            f"--out: {out} holds a run with --set {stored or 'none'}, but this one has "
            f"--set {now or 'none'}; choose another --out"
        )


def run_experiment(
    name: str, root: Path, seeds: Seeds, quick: bool, ctx: RunContext | None = None
) -> Path:
    """Train one experiment into root/name under the run context `ctx` (default: here, with
    progress bars) and record how (manifest.json). Its decision rules are registered before
    the first training step (`registration.register`)."""
    out, ctx = Path(root) / name, ctx or RunContext()
    _check_existing(out, seeds, quick, ctx.overrides)
    out.mkdir(parents=True, exist_ok=True)
    registration.register(out, experiments()[name].rules(seeds), code_version())
    if quick:
        say(name, QUICK_BANNER)
    say(name, f"{seeds} seed(s) per setting, results in {out}")
    start = time.monotonic()
    try:
        with sigterm_as_interrupt():
            experiments()[name].run(out, seeds, quick, ctx)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM, in training or not: its time still counts
        _record_stopped(out, time.monotonic() - start)
        raise
    wall = time.monotonic() - start + _stopped_time(out)
    # A call over a finished run adds its time to what the earlier calls measured.
    if (out / MANIFEST).is_file():
        wall += read_manifest(out).wall_time_s
    manifest = new_manifest(name, seeds, quick, wall, ctx.overrides)
    (out / MANIFEST).write_text(json.dumps(manifest.__dict__))
    (out / STOPPED).unlink(missing_ok=True)
    say(name, f"trained in {wall:.1f} s")
    return out


def _stopped_time(out: Path) -> float:
    """Seconds the interrupted calls of this run spent before they stopped (STOPPED)."""
    path = out / STOPPED
    return float(json.loads(path.read_text())["wall_time_s"]) if path.is_file() else 0.0


def _record_stopped(out: Path, seconds: float) -> None:
    """Add an interrupted call's time to STOPPED, which the call that finishes the run adds
    to its own: an experiment's wall time is all of its calls, end to end."""
    tmp = out / (STOPPED + ".tmp")
    tmp.write_text(json.dumps({"wall_time_s": _stopped_time(out) + seconds}))
    tmp.replace(out / STOPPED)


def experiment_dirs(root: Path) -> list[Path]:
    """The experiment directories under `root` (or `root` itself), in registry order."""
    root = Path(root)
    if not root.is_dir():
        raise ResultsNotFoundError(f"DIR: {root} is not a directory")
    if (root / MANIFEST).is_file():
        return [root]
    order = list(experiments())
    found = [p for p in root.iterdir() if (p / MANIFEST).is_file()]
    found.sort(key=lambda p: order.index(p.name) if p.name in order else len(order))
    if not found:
        raise ResultsNotFoundError(
            f"DIR: no experiment results in {root}; expected what `bnlab reproduce` writes"
        )
    return found


def analyze_all(root: Path) -> list[ExperimentResult]:
    results = []
    for d in experiment_dirs(root):
        name = read_manifest(d).name
        if name not in experiments():
            raise BnlabError(f"DIR: {d} holds experiment {name!r}, which is not registered")
        say(name, f"analyzing {d}")
        result = experiments()[name].analyze(d)
        first = result.sections[0]
        protocol = with_replay(first.protocol, d)
        sections = (replace(first, protocol=protocol), *result.sections[1:])
        results.append(replace(result, sections=sections))
    return results


def with_replay(protocol: dict, experiment_dir: Path) -> dict:
    """`protocol` with its "code version" row naming the versions that trained the runs
    under `experiment_dir` (from the runs themselves: a later `bnlab reproduce` call that only
    added settings must not relabel the earlier ones), plus a "replay" row when `bnlab
    replay` checked them (a report that cites runs trained by an earlier code version says
    whether the current code still trains them bit for bit)."""
    out = dict(protocol)
    versions = replay.trained_versions(experiment_dir)
    if versions:
        out["code version"] = ", ".join(versions)
    records = [r for d in replay.results_dirs(experiment_dir) for r in replay.read_records(d)]
    if records:
        out["replay"] = replay.summary(records)
    return out
