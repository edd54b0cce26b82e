"""report.html: one self-contained file. Figures are embedded as base64 PNG data URIs, the
CSS is inline, and nothing is fetched from anywhere, so the file can be mailed or archived.
A published report (`figures_from` set) links its figures instead, by paths relative to the
report, as report.md does: its figures are committed beside it, and embedding them would
make the page several megabytes.

Every piece of text passes through `_e` (html.escape) before it reaches the page.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from pathlib import Path

from bnlab.report.sections import (
    HOW_TO_READ,
    MATRIX_LEGEND,
    NOT_REPRODUCED_COLUMNS,
    NOT_REPRODUCED_TITLE,
    QUICK_BANNER,
    SCORECARD_COLUMNS,
    ReportFigure,
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
from bnlab.report.verdicts import Verdict

# Verdict colours from the Okabe-Ito palette; the verdict is also spelled out, so colour is
# never the only signal.
_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1a1a1a;
       max-width: 1100px; margin: 0 auto; padding: 0 24px 48px; }
h1 { margin: 24px 0 4px; } h2 { margin-top: 36px; border-bottom: 1px solid #ddd; }
.meta { color: #555; margin: 0 0 8px; }
.banner { background: #E69F00; color: #000; font-weight: 700; font-size: 18px;
          padding: 12px 16px; margin: 16px 0; border: 3px solid #000; text-align: center; }
table { border-collapse: collapse; margin: 8px 0 16px; width: 100%; }
th, td { border: 1px solid #ccc; padding: 5px 8px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
table.protocol, table.data { width: auto; min-width: 40%; } table.protocol th { width: 14em; }
td.verdict { font-weight: 700; white-space: nowrap; text-align: center; vertical-align: middle; }
.v-reproduced { background: #009E73; color: #fff; }
.v-not-reproduced { background: #D55E00; color: #fff; }
.v-inconclusive { background: #ddd; color: #000; }
.measure { color: #555; font-size: 13px; }
figure { margin: 16px 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: 14px; }
.rule { color: #555; font-size: 13px; }
.wide { overflow-x: auto; } table.matrix td.cell { font-size: 13px; white-space: nowrap; }
table.matrix th { font-size: 13px; }
"""


_VERDICT_CLASS = {
    Verdict.REPRODUCED: "v-reproduced",
    Verdict.NOT_REPRODUCED: "v-not-reproduced",
    Verdict.INCONCLUSIVE: "v-inconclusive",
    Verdict.NOT_MEASURABLE: "v-inconclusive",
}


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "section"


def _table(columns: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _scorecard_row(row: ScorecardRow) -> str:
    claim, source, experiment, _, reference, verdict = scorecard_cells(row)
    extra = [t for t in (row.divergence_text, row.note) if t]
    measure = "; ".join(_e(t) for t in (row.rule.effect_text, *extra))
    cls = _VERDICT_CLASS[row.verdict]
    return (
        f"<tr><td>{_e(claim)}</td><td>{_e(source)}</td><td>{_e(experiment)}</td>"
        f'<td>{_e(row.effect_text)}<div class="measure">{measure}</div></td>'
        f'<td>{_e(reference)}</td><td class="verdict {cls}">{_e(verdict)}</td></tr>'
    )


def _matrix_cell(rows: Sequence[ScorecardRow]) -> str:
    if not rows:
        return '<td class="cell"></td>'
    verdicts = {r.verdict for r in rows}
    cls = _VERDICT_CLASS[rows[0].verdict] if len(verdicts) == 1 else "v-inconclusive"
    words = ", ".join(r.verdict.value for r in rows)
    return f'<td class="cell {cls}" title="{_e(words)}">{_e(matrix_cell(rows))}</td>'


def _claims_matrix(scorecard: Sequence[ScorecardRow]) -> str:
    """Claims x settings, each cell coloured by its verdict and marked with its shape."""
    matrix = claims_matrix(scorecard)
    head = "<th>Claim</th>" + "".join(f"<th>{_e(s)}</th>" for s in matrix.settings)
    body = "".join(
        f"<tr><td>{_e(c.statement)}</td>"
        + "".join(_matrix_cell(matrix.cells.get((c.id, s), ())) for s in matrix.settings)
        + "</tr>"
        for c in matrix.claims
    )
    table = f'<table class="matrix"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    return f'<div class="wide">{table}</div><p class="rule">{_e(MATRIX_LEGEND)}</p>'


def _scorecard(scorecard: Sequence[ScorecardRow]) -> str:
    title = '<h2 id="scorecard">Claims scorecard</h2>'
    if not scorecard:
        return title + "<p>No claims were measured in this run.</p>"
    head = "".join(f"<th>{_e(c)}</th>" for c in SCORECARD_COLUMNS)
    rows = "".join(_scorecard_row(r) for r in scorecard)
    table = f'<table class="scorecard"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'
    notes = "".join(f'<p class="rule">{_e(text)}</p>' for text in HOW_TO_READ)
    detail = "<h3>Every measured claim in detail</h3>"
    return f"{title}{_claims_matrix(scorecard)}{detail}{table}{notes}{_not_reproduced(scorecard)}"


def _not_reproduced(scorecard: Sequence[ScorecardRow]) -> str:
    failed = not_reproduced_cells(scorecard)
    if not failed:
        return ""
    title = f'<h3 id="not-reproduced">{_e(NOT_REPRODUCED_TITLE)}</h3>'
    return title + _table(NOT_REPRODUCED_COLUMNS, failed, cls="why")


def _figure(fig: ReportFigure, figures_from: Path | None) -> str:
    if figures_from is None:
        src = "data:image/png;base64," + base64.b64encode(fig.png.read_bytes()).decode("ascii")
    else:
        src = _e(fig.link(figures_from))
    return (
        f'<figure><img src="{src}" alt="{_e(fig.caption)}">'
        f"<figcaption>{_e(fig.caption)}</figcaption></figure>"
    )


def _extra_table(table: Table) -> str:
    return f"<h3>{_e(table.title)}</h3>" + _table(table.columns, table.rows, cls="data")


def _section(section: Section, figures_from: Path | None) -> str:
    parts = [f'<section id="{_slug(section.title)}"><h2>{_e(section.title)}</h2>']
    parts.append(f"<p><strong>Data source:</strong> {_e(section.data_source)}")
    if section.wall_time_s is not None:  # an experiment's first section carries its time
        parts.append(f"<br><strong>Wall time:</strong> {_e(format_duration(section.wall_time_s))}")
    parts.append("</p>")
    if section.protocol:
        parts.append("<h3>Protocol</h3>")
        parts.append(_table(("Field", "Value"), list(section.protocol.items()), cls="protocol"))
    parts += [_figure(f, figures_from) for f in section.figures]
    parts += [_extra_table(t) for t in section.tables]
    if section.notes:
        parts.append("<ul>" + "".join(f"<li>{_e(n)}</li>" for n in section.notes) + "</ul>")
    return "".join(parts) + "</section>"


def _header(meta: ReportMeta) -> str:
    parts = []
    if meta.quick:
        parts.append(f'<div class="banner" role="alert">{_e(QUICK_BANNER)}</div>')
    parts.append(f"<h1>{_e(meta.title)}</h1>")
    facts = [
        f"Code version: {meta.code_version}",
        f"Wall time: {format_duration(meta.wall_time_s)}",
    ]
    if meta.created:
        facts.append(f"Created: {meta.created}")
    parts.append(f'<p class="meta">{" · ".join(_e(f) for f in facts)}</p>')
    if meta.command:
        parts.append(f'<p class="meta">Command: <code>{_e(meta.command)}</code></p>')
    if meta.machine:
        parts.append(f'<p class="meta">Machine: {_e(meta.machine)}</p>')
    if meta.regenerate:
        parts.append(f'<p class="meta">Regenerate: <code>{_e(meta.regenerate)}</code></p>')
    return "".join(parts)


def _contents(sections: Sequence[Section]) -> str:
    items = ['<li><a href="#scorecard">Claims scorecard</a></li>']
    items += [f'<li><a href="#{_slug(s.title)}">{_e(s.title)}</a></li>' for s in sections]
    return "<nav><ul>" + "".join(items) + "</ul></nav>"


def render_html(
    sections: Sequence[Section],
    scorecard: Sequence[ScorecardRow],
    meta: ReportMeta,
    figures_from: Path | None = None,
) -> str:
    """The page; `figures_from`: None embeds every figure, a directory links them relative
    to it (see the module docstring)."""
    title = ("[QUICK] " if meta.quick else "") + meta.title
    body = _header(meta) + _contents(sections) + _scorecard(scorecard)
    body += "".join(_section(s, figures_from) for s in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n<body>{body}</body></html>\n"
    )
