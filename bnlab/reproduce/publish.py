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


def end_to_end(root: Path) -> float | None:
    """The summed wall-clock time of every `bnlab reproduce` call that wrote `root`."""
    path = Path(root) / WALL_CLOCK
    if not path.is_file():
        return None
    return float(sum(entry["seconds"] for entry in json.loads(path.read_text())))


def record_wall_clock(root: Path, command: str, seconds: float) -> None:
    path = Path(root) / WALL_CLOCK
    entries = json.loads(path.read_text()) if path.is_file() else []
    entries.append({"command": command, "seconds": round(seconds, 1), "ended": time.time()})
    path.write_text(json.dumps(entries, indent=1))


def build_report(
    root: Path, publish: Path | None = None, regenerate: str = ""
) -> tuple[list[Path], list[Row]]:
    """Analyze every experiment under `root` and write the report's pages to `root` (or to
    `publish`, with copies of the figures and no run state). Returns the files written and
    every decided row."""
    root = Path(root)
    dirs = experiment_dirs(root)
    results = analyze_all(root)
    registered = [registered_rows(r, d) for r, d in zip(results, dirs, strict=True)]
    rows = decide_families([row for rs, _ in registered for row in rs])
    check_symmetric(rows)
    versions = {v for d in dirs for v in replay.trained_versions(d)}
    manifests = [read_manifest(d) for d in dirs]
    wall = end_to_end(root)
    meta = ReportMeta(
        title=TITLE,
        code_version=", ".join(sorted(versions or {m.code_version for m in manifests})),
        wall_time_s=wall if wall is not None else sum(r.wall_time_s for r in results),
        quick=any(r.quick for r in results),
        created=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        machine=machine_description(),
        regenerate=regenerate,
    )
    out = Path(publish) if publish is not None else root
    pages, by_name = [], {}
    for row in rows:
        by_name.setdefault(row.experiment.split("/")[0], []).append(row)
    for result, (_, line) in zip(results, registered, strict=True):
        sections = result.sections
        if publish is not None:
            sections = tuple(_copy_figures(s, root, out / "figures") for s in sections)
        exp = ExperimentPage(
            result.name,
            f"{result.name}: {_title(result)}",
            tuple(sections),
            tuple(by_name.get(result.name, ())),
            result.wall_time_s,
            result.quick,
            line,
        )
        pages.append(experiment_page(exp))
    forest = forest_figure(out, [r for r in rows if r.counted], "Every primary verdict")
    links = [ExperimentLink(r.name, _title(r), r.wall_time_s) for r in results]
    pending = _pending(results)
    pages = [summary_page(meta, rows, links, forest, pending), *pages, appendix_page(rows)]
    written = write_report(out, pages, embed_figures=publish is None)
    write_verdicts(out / "verdicts.json", rows)
    return written, rows


def _pending(results: list[ExperimentResult]) -> list[str]:
    """The registered experiments that have no results in this report."""
    from bnlab.reproduce.registry import experiments

    done = {r.name for r in results}
    return [name for name in experiments() if name not in done]


def _title(result: ExperimentResult) -> str:
    from bnlab.reproduce.registry import experiments

    exp = experiments().get(result.name)
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
