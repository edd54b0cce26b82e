"""Write the report's pages: STEM.md and STEM.html for every page, side by side."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bnlab.errors import BnlabError
from bnlab.report._html import render_html
from bnlab.report._markdown import render_markdown
from bnlab.report.document import FigureBlock, Page


def _check(out_dir: Path, pages: Sequence[Page]) -> None:
    """Fail before writing anything: a half-written report is worse than none."""
    if out_dir.exists() and not out_dir.is_dir():
        raise BnlabError(f"out_dir: {out_dir} exists and is not a directory, expected a folder")
    stems = [p.stem for p in pages]
    if len(set(stems)) != len(stems):
        raise ValueError(f"pages: stems {stems} repeat, expected one file per page")
    for page in pages:
        for block in page.blocks:
            if isinstance(block, FigureBlock) and not block.figure.png.is_file():
                raise FileNotFoundError(
                    f"page {page.stem!r}: figure {block.figure.png} does not exist, "
                    "expected a PNG file"
                )


def write_report(
    out_dir: Path | str, pages: Sequence[Page], embed_figures: bool = True
) -> list[Path]:
    """Write every page as out_dir/STEM.md and out_dir/STEM.html; returns the paths, the
    summary page (`report`) first.

    The HTML embeds every figure's PNG, so each page stands alone (with
    `embed_figures=False`, as for a published report, it links them as the Markdown does);
    the Markdown links the PNGs by paths relative to `out_dir`.
    """
    out_dir = Path(out_dir)
    _check(out_dir, pages)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for page in sorted(pages, key=lambda p: p.stem != "report"):
        md, html = out_dir / f"{page.stem}.md", out_dir / f"{page.stem}.html"
        md.write_text(render_markdown(page, out_dir), encoding="utf-8")
        html.write_text(render_html(page, None if embed_figures else out_dir), encoding="utf-8")
        written += [md, html]
    return written
