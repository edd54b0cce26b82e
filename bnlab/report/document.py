"""The report as a document: pages of blocks, independent of Markdown or HTML.

The published report is layered: a summary page (`report`), one page per experiment and an
appendix, linked both ways. Each page is a list of blocks; `_markdown` and `_html` render
the same pages, so the two formats never disagree.

Inline text may hold three marks, rendered by each format: `[text](page:STEM#anchor)` links
to another page (STEM.md or STEM.html), `**bold**` and `` `code` ``. Everything else is
plain text (the HTML renderer escapes it).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from bnlab.report.sections import ReportFigure


def slug(text: str) -> str:
    """An anchor for a heading, as GitHub derives it from Markdown heading text: lower case,
    punctuation dropped, spaces as hyphens (so the same anchor works in both formats)."""
    text = re.sub(r"[^\w\- ]", "", text.lower().replace("`", ""))
    return re.sub(r" ", "-", text.strip()) or "section"


def link(text: str, page: str, anchor: str = "") -> str:
    """Inline link to another page (its stem) and, optionally, a heading's anchor there."""
    target = f"page:{page}" + (f"#{anchor}" if anchor else "")
    return f"[{text}]({target})"


@dataclass(frozen=True)
class Heading:
    level: int  # 1 = the page title
    text: str

    @property
    def anchor(self) -> str:
        return slug(self.text)


@dataclass(frozen=True)
class Para:
    text: str
    kind: str = ""  # "" or "meta" (a header fact), "banner" (a warning to every reader)


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class TableBlock:
    """A table of inline-text cells. Wide tables scroll inside their own container."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    title: str = ""

    def __post_init__(self):
        for i, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(
                    f"table {self.title!r}: row {i} has {len(row)} cells, expected "
                    f"{len(self.columns)}"
                )


@dataclass(frozen=True)
class FigureBlock:
    figure: ReportFigure


Block = Heading | Para | Bullets | TableBlock | FigureBlock


@dataclass(frozen=True)
class Page:
    """One file of the report: `stem`.md and `stem`.html."""

    stem: str
    title: str
    blocks: tuple[Block, ...]

    def headings(self, level: int = 2) -> list[Heading]:
        return [b for b in self.blocks if isinstance(b, Heading) and b.level == level]


def table(columns: Sequence[str], rows: Sequence[Sequence[object]], title: str = "") -> TableBlock:
    return TableBlock(
        tuple(str(c) for c in columns), tuple(tuple(str(c) for c in r) for r in rows), title
    )
