"""Write the report: `report.html` (self-contained) and `report.md`, side by side."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bnlab.errors import BnlabError
from bnlab.report._html import render_html
from bnlab.report._markdown import render_markdown
from bnlab.report.claims import ScorecardRow
from bnlab.report.sections import ReportMeta, Section


def _check(out_dir: Path, sections: Sequence[Section], scorecard: Sequence[ScorecardRow]):
    """Fail before writing anything: a half-written report is worse than none."""
    if out_dir.exists() and not out_dir.is_dir():
        raise BnlabError(f"out_dir: {out_dir} exists and is not a directory, expected a folder")
    for s in sections:
        if not isinstance(s, Section):
            raise TypeError(f"sections: got {type(s).__name__}, expected Section")
        for fig in s.figures:
            if not fig.png.is_file():
                raise FileNotFoundError(
                    f"section {s.title!r}: figure {fig.png} does not exist, expected a PNG file"
                )
    for row in scorecard:
        if not isinstance(row, ScorecardRow):
            raise TypeError(f"scorecard: got {type(row).__name__}, expected ScorecardRow")


def write_report(
    out_dir: Path | str,
    sections: Sequence[Section],
    scorecard: Sequence[ScorecardRow],
    meta: ReportMeta,
    embed_figures: bool = True,
) -> tuple[Path, Path]:
    """Write `out_dir/report.html` and `out_dir/report.md`; return (html_path, md_path).

    The HTML embeds every figure's PNG, so it stands alone (with `embed_figures=False`, as
    for a published report, it links them as the Markdown does); the Markdown links the PNGs
    by paths relative to `out_dir`, so keep the figures beside it. Both hold the scorecard, each
    section's protocol, data source and wall time, the code version, and, for a --quick run,
    a banner saying it is a scaled-down smoke run.
    """
    out_dir = Path(out_dir)
    _check(out_dir, sections, scorecard)
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path, md_path = out_dir / "report.html", out_dir / "report.md"
    html = render_html(sections, scorecard, meta, None if embed_figures else out_dir)
    html_path.write_text(html, encoding="utf-8")
    md_path.write_text(render_markdown(out_dir, sections, scorecard, meta), encoding="utf-8")
    return html_path, md_path
