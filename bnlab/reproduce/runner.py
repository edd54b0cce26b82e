"""Run experiments into a results tree and build the report from whatever the tree holds.

    results/reproduce/                 <- `bnlab reproduce all` (the report goes here)
        ioffe2015-mnist/ bnlab.sqlite manifest.json figures/ checkpoints/
        ioffe2015-lr/    ...

`bnlab report DIR` accepts that tree or one experiment directory inside it.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

from bnlab.engine import RunContext, replay
from bnlab.errors import BnlabError, ResultsNotFoundError, did_you_mean
from bnlab.report import QUICK_BANNER, ReportMeta, Section, write_report
from bnlab.report.sections import machine_description
from bnlab.reproduce import overrides
from bnlab.reproduce.common import MANIFEST, QUICK_SEEDS, new_manifest, read_manifest, say
from bnlab.reproduce.experiment import ExperimentResult
from bnlab.reproduce.registry import experiments


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


def seeds_for(name: str, seeds: int | None, quick: bool) -> int:
    if seeds is None:
        return QUICK_SEEDS if quick else experiments()[name].default_seeds
    if seeds < 1:
        raise BnlabError(f"--seeds: got {seeds}, expected a number of seeds >= 1")
    return seeds


def _check_existing(out: Path, seeds: int, quick: bool) -> None:
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
    stored, now = list(old.get("overrides", [])), list(overrides.current())
    if stored != now:
        raise BnlabError(
            f"--out: {out} holds a run with --set {stored or 'none'}, but this one has "
            f"--set {now or 'none'}; choose another --out"
        )


def run_experiment(
    name: str, root: Path, seeds: int, quick: bool, ctx: RunContext | None = None
) -> Path:
    """Train one experiment into root/name under the run context `ctx` (default: here, with
    progress bars) and record how (manifest.json)."""
    out = Path(root) / name
    _check_existing(out, seeds, quick)
    out.mkdir(parents=True, exist_ok=True)
    if quick:
        say(name, QUICK_BANNER)
    say(name, f"{seeds} seed(s) per setting, results in {out}")
    start = time.monotonic()
    experiments()[name].run(out, seeds, quick, ctx or RunContext())
    wall = time.monotonic() - start
    # A resumed run adds its time to what the earlier, interrupted call measured.
    if (out / MANIFEST).is_file():
        wall += read_manifest(out).wall_time_s
    (out / MANIFEST).write_text(json.dumps(new_manifest(name, seeds, quick, wall).__dict__))
    say(name, f"trained in {wall:.1f} s")
    return out


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


def build_report(
    root: Path, publish: Path | None = None, regenerate: str = ""
) -> tuple[Path, Path, list[ExperimentResult]]:
    """Analyze every experiment under `root` and write root/report.html and root/report.md.

    With `publish`, write them to that directory instead, with a copy of every figure (PNG
    and SVG) under publish/figures/ and nothing else: no database, no checkpoint; both
    reports link those figures (the HTML embeds none). That directory can be committed
    (docs/results/); `regenerate` names the command that rebuilds it from scratch.
    """
    root = Path(root)
    results = analyze_all(root)
    manifests = [read_manifest(d) for d in experiment_dirs(root)]
    versions = {v for d in experiment_dirs(root) for v in replay.trained_versions(d)}
    meta = ReportMeta(
        title="bnlab: Batch Normalization reproductions",
        code_version=", ".join(sorted(versions or {m.code_version for m in manifests})),
        wall_time_s=sum(r.wall_time_s for r in results),
        quick=any(r.quick for r in results),
        created=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        command="; ".join(sorted({m.command for m in manifests if m.command})),
        machine=machine_description(),
        regenerate=regenerate,
    )
    sections = [s for r in results for s in r.sections]
    scorecard = [row for r in results for row in r.scorecard]
    out = root
    if publish is not None:
        out = Path(publish)
        sections = [_copy_figures(s, root, out / "figures") for s in sections]
    html, md = write_report(out, sections, scorecard, meta, embed_figures=publish is None)
    return html, md, results


def _copy_figures(section: Section, root: Path, dest: Path) -> Section:
    """`section` with every figure file copied from under `root` to the same place under
    `dest`, and its paths pointing at the copies."""
    figures = []
    for fig in section.figures:
        paths = {}
        for kind in ("png", "svg"):
            source = getattr(fig, kind)
            if source is None:
                continue
            # figures of <root>/<experiment>/figures/... keep <experiment>/... below dest
            relative = Path(source).resolve().relative_to(root.resolve())
            target = dest / Path(*(p for p in relative.parts if p != "figures"))
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            paths[kind] = target
        figures.append(replace(fig, **paths))
    return replace(section, figures=tuple(figures))


def print_scorecard(results: list[ExperimentResult]) -> None:
    """The scorecard as text: every number printed here was measured by the runs."""
    for r in results:
        if r.quick:
            print(f"  [{r.name}] {QUICK_BANNER}")
        for row in r.scorecard:
            diverged = f" ({row.divergence_text})" if row.divergence_text else ""
            print(
                f"  {row.verdict.value:15s} {row.claim.id:24s} {row.experiment}: "
                f"{row.effect_text}{diverged}"
            )
        if not r.scorecard:
            print(f"  [{r.name}] measures no claim")
