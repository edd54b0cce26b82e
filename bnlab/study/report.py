"""A study's report: its claims decided by their pre-registered rules, written as the lab's
pages (`bnlab.report.write_report`): a summary page `report` (the verdicts, the control
check, the registration), the study's page `study` (`bnlab.report.pages.experiment_page`:
every row, the rules as recorded, the protocol, curves and tables) and the `appendix`
(measures, tests, gates). Nothing is trained; `bnlab report DIR` calls `build_report` on a
study directory.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from bnlab.report import ReportFigure, ReportMeta, Row, Verdict, cells, counts, write_report
from bnlab.report.document import Bullets, FigureBlock, Heading, Page, Para, link, table
from bnlab.report.forest import forest_figure
from bnlab.report.pages import ExperimentPage, appendix_page, experiment_page
from bnlab.report.sections import machine_description
from bnlab.report.summary import header_facts
from bnlab.study.analyze import StudyResults, read_results
from bnlab.study.controls import Control
from bnlab.study.decide import Decided, decide
from bnlab.study.sections import study_section

__all__ = ["STUDY_PAGE", "build_report"]

STUDY_PAGE = "study"  # the study's own page; its name may be anything, so not the stem


def build_report(out_dir: str | Path) -> tuple[list[Path], list[Row]]:
    """Write the study's pages into out_dir (report.md/.html first); returns the files
    written and the decided rows."""
    out_dir = Path(out_dir)
    results = read_results(out_dir)
    decided = decide(results, out_dir)
    decl = results.declaration
    wall = sum(results.manifest.get("wall_time_s", {}).values())
    meta = ReportMeta(
        title=f"bnlab study: {decl['study']}",
        code_version=", ".join(sorted({v.code_version for v in results.variants.values()})),
        wall_time_s=wall,
        created=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        machine=machine_description(),
        regenerate=f"bnlab report {out_dir}",
    )
    page = ExperimentPage(
        STUDY_PAGE,
        f"Study {decl['study']}: every verdict, the rules, the protocol",
        (study_section(results, out_dir, decided.controls, wall),),
        tuple(decided.rows),
        wall,
        registered=decided.registered,
    )
    measurable = [r for r in decided.rows if r.tests is not None]
    forest = forest_figure(out_dir, measurable, "Every measurable claim")
    pages = [
        summary_page(meta, results, decided, forest),
        experiment_page(page),
        appendix_page(decided.rows),
    ]
    return write_report(out_dir, pages), decided.rows


def _verdicts_table(rows: Sequence[Row]):
    body = [
        (
            r.claim.statement,
            f"{r.rule.treatment} vs {r.rule.comparison}",
            cells.effect_cell(r),
            cells.prediction_cell(r.rule),
            cells.n_cell(r),
            cells.test_cell(r),
            cells.verdict_cell(r),
        )
        for r in rows
    ]
    columns = ("claim", "compared", "effect [95% CI]", "claim predicts", "n", "test", "verdict")
    return table(columns, body, "Every claim of the study")


def _counts_line(rows: Sequence[Row]) -> str:
    tally = counts(rows)
    counted = sum(tally.values())
    parts = [f"{tally[v]} {v.value}" for v in Verdict if tally[v]]
    text = f"{counted} claims counted (Holm's correction over the study's claims): "
    text += ", ".join(parts) if parts else "none"
    exploratory = len(rows) - counted
    if exploratory:
        text += (
            f"; {exploratory} shown as exploratory, never counted: their rules were not "
            "fixed before the runs (no record, changed since, or recorded from uncommitted "
            f"code; see {link('the rules', STUDY_PAGE, 'pre-registered-rules')})"
        )
    return text + "."


def _controls_bullets(controls: dict[str, Control]) -> Bullets:
    items = [
        f"**{c.variant}**: " + ("trains" if c.trains else f"FLAGGED, does not train: {c.reason}")
        for c in controls.values()
    ]
    return Bullets(tuple(items))


def summary_page(
    meta: ReportMeta, results: StudyResults, decided: Decided, forest: ReportFigure | None
) -> Page:
    blocks = [Heading(1, meta.title)]
    blocks += [Para(text, "meta") for text in header_facts(meta)]
    blocks.append(Para(f"**Rules recorded:** {decided.registered}", "meta"))
    command = results.manifest.get("command", "")
    if command:
        blocks.append(Para(f"**Command:** `{command}`", "meta"))
    blocks.append(Heading(2, "Verdicts"))
    if decided.rows:
        blocks += [Para(_counts_line(decided.rows)), _verdicts_table(decided.rows)]
        blocks.append(Para(cells.LEGEND))
    else:
        blocks.append(Para("The study declares no claim, or its variants have not run yet."))
    if forest is not None:
        blocks.append(FigureBlock(forest))
    blocks += [Heading(2, "Control: does each variant train?"), _controls_bullets(decided.controls)]
    more = (
        f"Every row with its rule as recorded, the protocol, curves and final numbers: "
        f"{link('the study page', STUDY_PAGE)}. Measures, tests and gates: "
        f"{link('appendix', 'appendix')}."
    )
    blocks += [Heading(2, "More"), Para(more)]
    return Page("report", meta.title, tuple(blocks))
