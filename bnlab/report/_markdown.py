"""report.md: the same content as report.html, with figures linked as relative PNG paths."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bnlab.report.sections import (
    HOW_TO_READ,
    MATRIX_LEGEND,
    NOT_REPRODUCED_COLUMNS,
    NOT_REPRODUCED_TITLE,
    QUICK_BANNER,
    SCORECARD_COLUMNS,
    ReportMeta,
    Section,
    Table,
    claims_matrix,
    format_duration,
    matrix_cell,
    not_reproduced_cells,
    scorecard_cells,
)
from bnlab.report.verdicts import Row as ScorecardRow


def _cell(text: str) -> str:
    # A pipe ends a Markdown table cell and a newline ends the row; neutralize both.
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(_cell(c) for c in columns) + " |"]
    lines.append("|" + "---|" * len(columns))
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _header(meta: ReportMeta) -> list[str]:
    lines = [f"# {meta.title}", ""]
    if meta.quick:
        lines += [f"> **{QUICK_BANNER}**", ""]
    lines.append(f"- Code version: {meta.code_version}")
    lines.append(f"- Wall time: {format_duration(meta.wall_time_s)}")
    if meta.created:
        lines.append(f"- Created: {meta.created}")
    if meta.command:
        lines.append(f"- Command: `{meta.command}`")
    if meta.machine:
        lines.append(f"- Machine: {meta.machine}")
    if meta.regenerate:
        lines.append(f"- Regenerate: `{meta.regenerate}`")
    return [*lines, ""]


def _scorecard(scorecard: Sequence[ScorecardRow]) -> list[str]:
    lines = ["## Claims scorecard", ""]
    if not scorecard:
        return [*lines, "No claims were measured in this run.", ""]
    matrix = claims_matrix(scorecard)
    cells = [
        (c.statement, *(matrix_cell(matrix.cells.get((c.id, s), ())) for s in matrix.settings))
        for c in matrix.claims
    ]
    lines += [*_table(("Claim", *matrix.settings), cells), "", MATRIX_LEGEND, ""]
    rows = [scorecard_cells(r) for r in scorecard]
    rows = [(*cells[:-1], f"**{cells[-1]}**") for cells in rows]
    lines += ["### Every measured claim in detail", "", *_table(SCORECARD_COLUMNS, rows), ""]
    lines += [f"{t}\n" for t in HOW_TO_READ]
    failed = not_reproduced_cells(scorecard)
    if failed:
        lines += [f"### {NOT_REPRODUCED_TITLE}", "", *_table(NOT_REPRODUCED_COLUMNS, failed), ""]
    return lines


def _extra_table(table: Table) -> list[str]:
    return [f"**{table.title}**", "", *_table(table.columns, table.rows), ""]


def _section(section: Section, out_dir: Path) -> list[str]:
    lines = [f"## {section.title}", "", f"**Data source:** {section.data_source}", ""]
    if section.wall_time_s is not None:  # an experiment's first section carries its time
        lines += [f"**Wall time:** {format_duration(section.wall_time_s)}", ""]
    if section.protocol:
        protocol = _table(("Field", "Value"), list(section.protocol.items()))
        lines += ["**Protocol**", "", *protocol, ""]
    for fig in section.figures:
        lines += [f"![{_cell(fig.caption)}]({fig.link(out_dir)})", "", f"*{fig.caption}*", ""]
    for table in section.tables:
        lines += _extra_table(table)
    lines += [f"- {note}" for note in section.notes]
    return [*lines, ""]


def render_markdown(
    out_dir: Path, sections: Sequence[Section], scorecard: Sequence[ScorecardRow], meta: ReportMeta
) -> str:
    lines = _header(meta) + _scorecard(scorecard)
    for section in sections:
        lines += _section(section, out_dir)
    return "\n".join(lines).rstrip() + "\n"
