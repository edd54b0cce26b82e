"""What every figure shares: a canvas of its own, tick labels that never overlap, the files.

Figures are drawn on `matplotlib.figure.Figure` with an Agg canvas attached, never through
pyplot: no display, no global backend switch, nothing left open.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib import rc_context
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

from bnlab.report.style import check_unit

DPI = 110
_GAP_PX = 3.0  # tick labels closer than this (in pixels at DPI) count as overlapping


@dataclass(frozen=True)
class FigureFiles:
    """The two files of one figure (a PNG for the report, an SVG for print), and a hint:
    what the reader should look at, for the caption."""

    png: Path
    svg: Path
    hint: str = ""

    def caption(self, text: str) -> str:
        """`text` (what the figure shows) followed by the hint (what to look at)."""
        text = text.strip()
        if not self.hint:
            return text
        return f"{text if text.endswith('.') else text + '.'} {self.hint.strip()}"


def new_figure(width: float, height: float, *, constrained: bool = True) -> Figure:
    """A figure (inches) with its own Agg canvas, so it can be drawn and measured."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained" if constrained else None)
    FigureCanvasAgg(fig)
    return fig


def label_axes(ax, xlabel: str = "", ylabel: str = "", title: str = "") -> None:
    """Set the labels given (an empty one is left as it is), warning when an axis label names
    no unit (`style.check_unit`)."""
    if xlabel:
        ax.set_xlabel(check_unit(xlabel, "xlabel"))
    if ylabel:
        ax.set_ylabel(check_unit(ylabel, "ylabel"))
    if title:
        ax.set_title(title)


def grid_ticks(axis: Axis, values) -> None:
    """Ticks at the grid's own settings, labelled plainly ("0.001", "128"), no minor labels:
    a log axis' default labels ("2×10^0") are hard to read against a grid of settings."""
    axis.set_major_locator(FixedLocator(np.asarray(values, dtype=float)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_locator(NullLocator())


def save(fig: Figure, stem: Path, hint: str = "") -> FigureFiles:
    """Write stem.png and stem.svg; the stem's name is kept whole ("lr0.1_beta" included)."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    files = FigureFiles(stem.parent / f"{stem.name}.png", stem.parent / f"{stem.name}.svg", hint)
    fig.savefig(files.png, dpi=DPI)
    # no timestamp, and element ids hashed from a fixed salt rather than random: same data,
    # same file
    with rc_context({"svg.hashsalt": "bnlab"}):
        fig.savefig(files.svg, metadata={"Date": None})
    return files


def check_groups(groups: Mapping[str, np.ndarray], ndim: int, what: str) -> dict[str, np.ndarray]:
    if not groups:
        raise ValueError("groups: got none, expected at least one named group of runs")
    out = {name: np.asarray(v, dtype=np.float64) for name, v in groups.items()}
    for name, v in out.items():
        if v.ndim != ndim or v.shape[0] == 0:
            raise ValueError(f"groups[{name!r}]: got shape {v.shape}, expected {what}")
    return out


def check_len(name: str, v: np.ndarray, axis: int, n: int, against: str) -> None:
    if v.shape[axis] != n:
        raise ValueError(
            f"groups[{name!r}]: axis {axis} has {v.shape[axis]}, expected {n} ({against})"
        )


# ---- tick labels that never overlap


def shown_tick_labels(axis: Axis) -> list:
    """The tick labels `axis` draws (visible, non-empty, inside the view), after a draw."""
    lo, hi = sorted(axis.get_view_interval())
    span = hi - lo
    x = axis.axis_name == "x"
    out = []
    for text in axis.get_ticklabels(which="both"):
        where = text.get_position()[0 if x else 1]
        if text.get_visible() and text.get_text() and lo - 1e-9 * span <= where <= hi + 1e-9 * span:
            out.append(text)
    return out


def overlapping(labels, renderer) -> bool:
    """True if any two of `labels` (Text) come closer than _GAP_PX on the canvas."""
    boxes = [t.get_window_extent(renderer).padded(_GAP_PX / 2) for t in labels]
    return any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])


def fit_tick_labels(fig: Figure, tries: int = 6) -> Figure:
    """Drop minor tick labels, then every other major tick, on each axis whose tick labels
    overlap, until none do (labels are kept at a regular stride, the first always kept)."""
    for _ in range(tries):
        # Constrained layout sizes the axes from the previous draw's text: draw twice so the
        # labels are measured where they will be saved.
        fig.draw_without_rendering()
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        crowded = [
            axis
            for ax in fig.axes
            for axis in (ax.xaxis, ax.yaxis)
            if overlapping(shown_tick_labels(axis), renderer)
        ]
        if not crowded:
            return fig
        for axis in crowded:
            _thin(axis)
    return fig


def _thin(axis: Axis) -> None:
    if not isinstance(axis.get_minor_formatter(), NullFormatter) and any(
        t.get_text() for t in axis.get_ticklabels(minor=True)
    ):
        axis.set_minor_formatter(NullFormatter())
        return
    lo, hi = sorted(axis.get_view_interval())
    ticks = [t for t in axis.get_majorticklocs() if lo <= t <= hi]
    axis.set_major_locator(FixedLocator(ticks[::2]))
