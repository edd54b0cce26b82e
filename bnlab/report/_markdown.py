"""Markdown rendering of the report's pages (`bnlab.report.document`): one .md per page,
figures linked as relative PNG paths, links between pages as STEM.md#anchor."""

from __future__ import annotations

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

_PAGE_LINK = re.compile(r"\]\(page:([^)#]+)(#[^)]*)?\)")


def _inline(text: str) -> str:
    """Page links to .md files; every other mark is Markdown already."""
    return _PAGE_LINK.sub(lambda m: f"]({m.group(1)}.md{m.group(2) or ''})", text)


def _cell(text: str) -> str:
    # A pipe ends a Markdown table cell and a newline ends the row; neutralize both.
    return _inline(text).replace("|", "\\|").replace("\n", " ")


def _table(block: TableBlock) -> list[str]:
    lines = [f"**{block.title}**", ""] if block.title else []
    lines.append("| " + " | ".join(_cell(c) for c in block.columns) + " |")
    lines.append("|" + "---|" * len(block.columns))
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in block.rows]
    return [*lines, ""]


def _block(block, out_dir: Path) -> list[str]:
    if isinstance(block, Heading):
        return ["#" * block.level + " " + block.text, ""]
    if isinstance(block, Para):
        text = _inline(block.text)
        return [f"> **{text}**" if block.kind == "banner" else text, ""]
    if isinstance(block, Bullets):
        return [*(f"- {_inline(item)}" for item in block.items), ""]
    if isinstance(block, TableBlock):
        return _table(block)
    if isinstance(block, FigureBlock):
        fig = block.figure
        caption = fig.caption.replace("\n", " ")
        return [f"![{caption}]({fig.link(out_dir)})", "", f"*{caption}*", ""]
    raise TypeError(f"block: got {type(block).__name__}, expected a document block")


def render_markdown(page: Page, out_dir: Path) -> str:
    lines: list[str] = []
    for block in page.blocks:
        lines += _block(block, out_dir)
    return "\n".join(lines).rstrip() + "\n"
