"""HTML rendering of the report's pages (`bnlab.report.document`).

Each page is one file with inline CSS and a sticky table of contents (a sidebar on wide
screens, a scrolling bar at the top on phones); wide tables scroll inside their own
container, so nothing else overflows the page. Figures are embedded as base64 PNG data URIs
(a local report stands alone) or, for a published report, linked by relative paths (its
figures are committed beside it). Every piece of text is escaped (`html.escape`) before the
three inline marks are turned into tags.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from bnlab.report.document import (
    Bullets,
    FigureBlock,
    Heading,
    Page,
    Para,
    TableBlock,
)
from bnlab.report.sections import ReportFigure

# Verdict colours from the Okabe-Ito palette (the verdict is also spelled out and marked).
CSS = """
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1a1a1a;
       margin: 0; }
.layout { display: flex; max-width: 1400px; margin: 0 auto; }
nav.toc { position: sticky; top: 0; align-self: flex-start; width: 230px; flex: none;
          max-height: 100vh; overflow-y: auto; padding: 16px 12px; font-size: 14px;
          border-right: 1px solid #ddd; background: #fafafa; }
nav.toc ul { list-style: none; margin: 0; padding: 0; }
nav.toc li { margin: 4px 0; }
main { flex: 1; min-width: 0; padding: 0 24px 48px; }
h1 { margin: 20px 0 6px; } h2 { margin-top: 32px; border-bottom: 1px solid #ddd; }
p.meta { color: #444; margin: 2px 0; }
.banner { background: #E69F00; color: #000; font-weight: 700; font-size: 18px;
          padding: 12px 16px; margin: 16px 0; border: 3px solid #000; text-align: center; }
.scroll { overflow-x: auto; max-width: 100%; margin: 8px 0 16px; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 4px 7px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
caption { text-align: left; font-weight: 700; padding: 4px 0; }
figure { margin: 16px 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: 14px; }
code { overflow-wrap: anywhere; }
td.verdict { font-weight: 700; }
.v-reproduced { background: #009E73; color: #fff; }
.v-not-reproduced { background: #D55E00; color: #fff; }
.v-inconclusive { background: #e4e4e4; color: #000; }
@media (max-width: 900px) {
  .layout { display: block; }
  nav.toc { width: auto; max-height: none; border-right: none; border-bottom: 1px solid #ddd;
            z-index: 1; padding: 6px 8px; }
  nav.toc ul { display: flex; overflow-x: auto; white-space: nowrap; gap: 14px; }
  main { padding: 0 12px 32px; }
}
"""

_PAGE_LINK = re.compile(r"\[([^\]]+)\]\(([^)]+)\)")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _href(target: str) -> str:
    if target.startswith("page:"):
        page, _, anchor = target[5:].partition("#")
        return f"{page}.html" + (f"#{anchor}" if anchor else "")
    return target


def inline(text: str) -> str:
    """Escaped text with links, **bold** and `code` turned into tags."""
    out = _e(text)
    out = _PAGE_LINK.sub(
        lambda m: f'<a href="{_href(html.unescape(m.group(2)))}">{m.group(1)}</a>', out
    )
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


def _figure(fig: ReportFigure, figures_from: Path | None) -> str:
    if figures_from is None:
        src = "data:image/png;base64," + base64.b64encode(fig.png.read_bytes()).decode("ascii")
    else:
        src = _e(fig.link(figures_from))
    return (
        f'<figure><img src="{src}" alt="{_e(fig.caption)}">'
        f"<figcaption>{_e(fig.caption)}</figcaption></figure>"
    )


# A verdict cell starts with its mark (bnlab.report.cells.MARKS): colour it by the verdict.
_VERDICT_CLASS = {"✓": "v-reproduced", "✗": "v-not-reproduced", "?": "v-inconclusive"}


def _td(text: str) -> str:
    cls = _VERDICT_CLASS.get(text[:1]) if text[1:2] == " " else None
    attr = f' class="verdict {cls}"' if cls else ""
    return f"<td{attr}>{inline(text)}</td>"


def _table(block: TableBlock) -> str:
    head = "".join(f"<th>{inline(c)}</th>" for c in block.columns)
    body = "".join("<tr>" + "".join(_td(c) for c in row) + "</tr>" for row in block.rows)
    caption = f"<caption>{inline(block.title)}</caption>" if block.title else ""
    return (
        f'<div class="scroll"><table>{caption}<thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _block(block, figures_from: Path | None) -> str:
    if isinstance(block, Heading):
        return f'<h{block.level} id="{block.anchor}">{_e(block.text)}</h{block.level}>'
    if isinstance(block, Para):
        if block.kind == "banner":
            return f'<div class="banner" role="alert">{inline(block.text)}</div>'
        cls = ' class="meta"' if block.kind == "meta" else ""
        return f"<p{cls}>{inline(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{inline(i)}</li>" for i in block.items) + "</ul>"
    if isinstance(block, TableBlock):
        return _table(block)
    if isinstance(block, FigureBlock):
        return _figure(block.figure, figures_from)
    raise TypeError(f"block: got {type(block).__name__}, expected a document block")


def _toc(page: Page) -> str:
    items = [f'<li><a href="#{h.anchor}">{_e(h.text)}</a></li>' for h in page.headings(2)]
    if page.stem != "report":
        items.insert(0, '<li><a href="report.html">← summary</a></li>')
    return '<nav class="toc" aria-label="contents"><ul>' + "".join(items) + "</ul></nav>"


def render_html(page: Page, figures_from: Path | None = None) -> str:
    """The page; `figures_from`: None embeds every figure, a directory links them relative
    to it (see the module docstring)."""
    body = "".join(_block(b, figures_from) for b in page.blocks)
    quick = any(isinstance(b, Para) and b.kind == "banner" for b in page.blocks)
    title = ("[QUICK] " if quick else "") + page.title
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head>"
        f'<body><div class="layout">{_toc(page)}<main>{body}</main></div></body></html>\n'
    )
