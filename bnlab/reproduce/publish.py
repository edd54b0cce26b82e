"""Build the report from a results tree: analyze every experiment, decide the verdicts, and
write the layered document (summary, one page per experiment, appendix) with its figures.

    results/full/            <- `bnlab reproduce all --out results/full`
        ioffe2015-mnist/ bnlab.sqlite manifest.json preregistration.json figures/ ...

`bnlab report DIR` accepts that tree or one experiment directory inside it; `--publish DEST`
writes the pages and copies of their figures to DEST (docs/results/), with no database or
checkpoint, plus `verdicts.json` (every row as plain numbers, for the tutorial and tools).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import replace
from pathlib import Path

from bnlab.engine import replay
from bnlab.engine.store import first_run_time
from bnlab.report import (
    ReportMeta,
    Row,
    Section,
    check_symmetric,
    decide_families,
    registration,
    write_report,
)
from bnlab.report.forest import forest_figure
from bnlab.report.pages import ExperimentPage, appendix_page, experiment_page
from bnlab.report.sections import machine_description
from bnlab.report.summary import ExperimentLink, summary_page
from bnlab.reproduce import records
from bnlab.reproduce.common import read_manifest
from bnlab.reproduce.experiment import ExperimentResult
from bnlab.reproduce.runner import analyze_all, experiment_dirs

TITLE = "bnlab: what Batch Normalization does, measured"
WALL_CLOCK = "wall_clock.json"  # every `bnlab reproduce` call's end-to-end time, appended


def registered_rows(result: ExperimentResult, directory: Path) -> tuple[list[Row], str]:
    """The experiment's rows with their registration status, and one line saying when its
    rules were recorded and when its first run started."""
    record = registration.read(directory)
    first = first_run_time(directory)
    first_text = None if first is None else registration.format_time(first)
    rows = [
        replace(row, registration=registration.status(record, row.rule, first_text))
        for row in result.scorecard
    ]
    commits = sorted({e["commit"] for e in record.values()})
    when = sorted(e["registered"] for e in record.values())
    line = (
        "no record"
        if not record
        else (f"{len(record)} rules at {', '.join(commits)} ({when[0]}); first run {first_text}")
    )
    return rows, line


def end_to_end(root: Path, command: str | None = None) -> float | None:
    """The summed wall-clock time of every `bnlab reproduce` call that wrote `root` (only
    those of `command`, e.g. "reproduce small-batch", when given); None if none is recorded."""
    path = Path(root) / WALL_CLOCK
    if not path.is_file():
        return None
    entries = json.loads(path.read_text())
    seconds = [e["seconds"] for e in entries if command is None or e["command"] == command]
    return float(sum(seconds)) if seconds else None


def record_wall_clock(root: Path, command: str, seconds: float) -> None:
    path = Path(root) / WALL_CLOCK
    entries = json.loads(path.read_text()) if path.is_file() else []
    entries.append({"command": command, "seconds": round(seconds, 1), "ended": time.time()})
    path.write_text(json.dumps(entries, indent=1))


def build_report(
    root: Path, publish: Path | None = None, regenerate: str = ""
) -> tuple[list[Path], list[Row]]:
    """Analyze every experiment under `root` and write the report's pages to `root` (or to
    `publish`, with copies of the figures, no run state, and a record of each experiment's
    analysis: `bnlab.reproduce.records`). Publishing to a DEST that holds records of
    experiments whose runs are not under `root` keeps them in the report, read back from
    their records. Returns the files written and every decided row."""
    root = Path(root)
    out = Path(publish) if publish is not None else root
    dirs = experiment_dirs(root)
    analyzed = [_analyze(r, d, root) for r, d in zip(analyze_all(root), dirs, strict=True)]
    if publish is not None:
        analyzed = [replace(r, result=_published_figures(r.result, root, out)) for r in analyzed]
        for r in analyzed:
            records.write(out, r)
    carried = _carried(out, analyzed) if publish is not None else []
    order = list(_registered())
    everything = sorted(
        [*analyzed, *carried],
        key=lambda r: order.index(r.name) if r.name in order else len(order),
    )
    results = [r.result for r in everything]
    rows = decide_families([row for r in results for row in r.scorecard])
    check_symmetric(rows)
    wall = end_to_end(root)
    if wall is None:
        wall = sum(r.result.wall_time_s for r in analyzed)
    meta = ReportMeta(
        title=TITLE,
        code_version=", ".join(sorted({v for r in everything for v in r.versions})),
        wall_time_s=wall + sum(r.wall_time_s for r in carried),
        quick=any(r.quick for r in results),
        created=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        machine=_machines(everything),
        regenerate=regenerate,
        carried=len(carried),
    )
    pages, by_name = [], {}
    for row in rows:
        by_name.setdefault(row.experiment.split("/")[0], []).append(row)
    for r in everything:
        exp = ExperimentPage(
            r.name,
            f"{r.name}: {_title(r.result)}",
            r.result.sections,
            tuple(by_name.get(r.name, ())),
            r.result.wall_time_s,
            r.result.quick,
            r.registration,
        )
        pages.append(experiment_page(exp))
    forest = forest_figure(out, [r for r in rows if r.counted], "Every primary verdict")
    links = [ExperimentLink(r.name, _title(r), r.wall_time_s) for r in results]
    pending = _pending(results)
    pages = [summary_page(meta, rows, links, forest, pending), *pages, appendix_page(rows)]
    written = write_report(out, pages, embed_figures=publish is None)
    write_verdicts(out / "verdicts.json", rows)
    return written, rows


def _analyze(result: ExperimentResult, directory: Path, root: Path) -> records.Record:
    """An analyzed experiment directory as a record: rows with their registration status,
    and its `bnlab reproduce NAME` calls' end-to-end time (its training time when it was
    trained by `reproduce all`)."""
    rows, line = registered_rows(result, directory)
    manifest = read_manifest(directory)
    versions = replay.trained_versions(directory) or [manifest.code_version]
    # runs from before manifests named their machine: the one analyzing them, where
    # `make results` trains and publishes on one machine
    machine = manifest.machine or machine_description()
    wall = end_to_end(root, f"reproduce {result.name}")
    wall = result.wall_time_s if wall is None else wall
    scored = replace(result, scorecard=tuple(rows))
    return records.Record(scored, line, tuple(versions), machine, wall)


def _machines(parts: list[records.Record]) -> str:
    """The machine that trained every experiment, or each machine with its experiments."""
    by_machine: dict[str, list[str]] = {}
    for r in parts:
        by_machine.setdefault(r.machine, []).append(r.name)
    if len(by_machine) == 1:
        return next(iter(by_machine))
    return "; ".join(f"{m} ({', '.join(names)})" for m, names in by_machine.items())


def _carried(dest: Path, analyzed: list[records.Record]) -> list[records.Record]:
    """The experiments published to `dest` earlier whose runs are not among `analyzed`."""
    here = {r.name for r in analyzed}
    return [r for r in records.read_all(dest) if r.name not in here]


def _published_figures(result: ExperimentResult, root: Path, dest: Path) -> ExperimentResult:
    sections = tuple(_copy_figures(s, root, dest / "figures") for s in result.sections)
    return replace(result, sections=sections)


def _registered() -> dict:
    from bnlab.reproduce.registry import experiments

    return experiments()


def _pending(results: list[ExperimentResult]) -> list[str]:
    """The registered experiments that have no results in this report."""
    done = {r.name for r in results}
    return [name for name in _registered() if name not in done]


def _title(result: ExperimentResult) -> str:
    exp = _registered().get(result.name)
    return exp.title if exp is not None else result.name


def write_verdicts(path: Path, rows: list[Row]) -> None:
    """Every row as plain numbers (JSON): what the tutorial quotes and tools can read."""
    out = []
    for r in rows:
        out.append(
            {
                "claim": r.claim.id,
                "statement": r.claim.statement,
                "family": r.claim.family,
                "setting": r.experiment,
                "experiment": r.experiment.split("/")[0],
                "role": r.role.value,
                "measure": r.rule.measure.text,
                "scale": r.rule.scale.value,
                "unit": r.rule.unit.strip(),
                "effect": _number(r.effect.mean),
                "low": _number(r.effect.low),
                "high": _number(r.effect.high),
                "n": r.seeds,
                "verdict": r.verdict.value,
                "p": _number(r.p_shown),
                "p_holm": _number(r.p_holm),
            }
        )
    path.write_text(json.dumps(out, indent=1, allow_nan=False) + "\n")


def _number(x: float) -> float | None:
    """JSON has no NaN: a missing number is null."""
    return None if x is None or math.isnan(x) else float(x)


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


def print_scorecard(rows: list[Row]) -> None:
    """The verdicts as text lines: every number printed here was measured by the runs."""
    for row in rows:
        role = "" if row.counted else f" [{row.role.value}]"
        print(f"  {row.verdict.value:15s} {row.rule.id}{role}: {row.effect_text}")
    if not rows:
        print("  no claims measured")
