"""Paper-style figures from plain arrays: mean curves with 95% CI bands over seeds, percentile
bands (Ioffe & Szegedy 2015, Fig. 1b,c), range bands (Santurkar et al. 2018, Fig. 4a,b),
per-setting points with CI error bars (`_grids.grid_points`), distributions over training
(`_grids.histogram_grid`), and the verdicts' forest plot (`forest.forest_plot`).

Each `name(stem, ...)` draws with `draw_name(...)` (a `Figure`, for tests and notebooks) and
writes stem.png and stem.svg; `hint` (what to look at) is kept on the returned files for
the caption (`FigureFiles.caption`). Every group's colour, line style and marker come from
its label (`bnlab.report.style.style_of`), so a condition looks the same in every figure;
axis labels name their units (a label without one warns, `style.MissingUnitWarning`); tick
labels never overlap (`_canvas.fit_tick_labels`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from bnlab.report._canvas import (
    FigureFiles,
    check_groups,
    check_len,
    fit_tick_labels,
    label_axes,
    new_figure,
    save,
)
from bnlab.report._grids import draw_grid_points, draw_histogram_grid, grid_points, histogram_grid
from bnlab.report.stats import mean_ci_band
from bnlab.report.style import PALETTE, style_of

__all__ = [
    "PALETTE",
    "FigureFiles",
    "curve_band",
    "draw_curve_band",
    "draw_grid_points",
    "draw_histogram_grid",
    "draw_percentile_bands",
    "draw_range_band",
    "grid_points",
    "histogram_grid",
    "percentile_bands",
    "range_band",
]


def _markevery(n: int) -> int:
    """Markers on about 8 points of a curve: enough to tell the lines apart in grey."""
    return max(1, n // 8)


def draw_curve_band(
    x: Sequence[float],
    groups: Mapping[str, np.ndarray],
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    confidence: float = 0.95,
) -> Figure:
    """Mean curve with a shaded CI band for each group; `groups[name]` is (seeds, T), `x` (T,).

    E.g. test accuracy vs training step, BN vs baseline (Ioffe & Szegedy 2015, Fig. 1a).
    """
    xs = np.asarray(x, dtype=np.float64)
    data = check_groups(groups, 2, "(seeds, T) with seeds >= 1")
    fig = new_figure(6.4, 4.0)
    ax = fig.add_subplot()
    for name, v in data.items():
        check_len(name, v, 1, xs.size, "the length of x")
        look = style_of(name)
        mean, low, high = mean_ci_band(v, confidence)  # (T,) each
        band = "" if v.shape[0] > 1 else ", no CI"
        ax.plot(
            xs,
            mean,
            color=look.colour,
            ls=look.linestyle,
            marker=look.marker,
            markevery=_markevery(xs.size),
            ms=4,
            lw=1.6,
            label=f"{name} (n={v.shape[0]}{band})",
        )
        if v.shape[0] > 1:
            ax.fill_between(xs, low, high, color=look.colour, alpha=0.25, lw=0)
    label_axes(ax, xlabel, ylabel, title)
    ax.grid(alpha=0.3)
    ax.legend(title=f"mean, {confidence:.0%} CI band", frameon=False)
    return fit_tick_labels(fig)


def curve_band(stem: Path, *args, hint: str = "", **kwargs) -> FigureFiles:
    """`draw_curve_band(*args, **kwargs)` written to stem.png and stem.svg."""
    return save(draw_curve_band(*args, **kwargs), stem, hint)


def draw_percentile_bands(
    x: Sequence[float],
    groups: Mapping[str, np.ndarray],
    *,
    xlabel: str,
    ylabel: str,
    percentiles: Sequence[float] = (15, 50, 85),
    title: str = "",
) -> Figure:
    """One panel per group: the seed-mean of each percentile over training, outer band shaded.

    `groups[name]` is (seeds, T, P) with P = len(percentiles), ascending; `x` is (T,). This is
    Ioffe & Szegedy 2015, Fig. 1b (no BN) and 1c (BN), averaged over seeds; panels share y.
    """
    xs = np.asarray(x, dtype=np.float64)
    data = check_groups(groups, 3, f"(seeds, T, {len(percentiles)})")
    fig = new_figure(4.2 * len(data), 3.8)
    axes = fig.subplots(1, len(data), sharey=True, squeeze=False)[0]
    for (name, v), ax in zip(data.items(), axes, strict=True):
        check_len(name, v, 1, xs.size, "the length of x")
        check_len(name, v, 2, len(percentiles), "one column per percentile")
        colour = style_of(name).colour
        q = v.mean(axis=0)  # (seeds, T, P) -> (T, P)
        ax.fill_between(xs, q[:, 0], q[:, -1], color=colour, alpha=0.2, lw=0)
        for j, p in enumerate(percentiles):
            middle = j == len(percentiles) // 2
            ax.plot(
                xs,
                q[:, j],
                color=colour,
                lw=1.8 if middle else 1.0,
                ls="-" if middle else "--",
                label=f"{p:g}th percentile",
            )
        label_axes(ax, xlabel, title=f"{name} (n={v.shape[0]})")
        ax.grid(alpha=0.3)
    label_axes(axes[0], ylabel=ylabel)
    axes[0].legend(frameon=False, fontsize="small")
    if title:
        fig.suptitle(title)
    return fit_tick_labels(fig)


def percentile_bands(stem: Path, *args, hint: str = "", **kwargs) -> FigureFiles:
    """`draw_percentile_bands(*args, **kwargs)` written to stem.png and stem.svg."""
    return save(draw_percentile_bands(*args, **kwargs), stem, hint)


def draw_range_band(
    x: Sequence[float],
    groups: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    log_y: bool = False,
) -> Figure:
    """For each group, (low, high), each (seeds, T): shade between the seed-mean of low and of
    high, with their midpoint as a line (Santurkar et al. 2018, Fig. 4a,b: the range over the
    step-size grid at each probed step)."""
    fig = new_figure(6.4, 4.0)
    ax = fig.add_subplot()
    for name, (low, high) in groups.items():
        look = style_of(name)
        lo, hi = np.nanmean(low, axis=0), np.nanmean(high, axis=0)  # (T,); NaN = diverged
        n = np.asarray(low).shape[0]
        ax.fill_between(x, lo, hi, color=look.colour, alpha=0.3, lw=0, label=f"{name} (n={n})")
        ax.plot(x, 0.5 * (lo + hi), color=look.colour, ls=look.linestyle, lw=1.0)
    if log_y:
        ax.set_yscale("log")
    label_axes(ax, xlabel, ylabel, title)
    ax.grid(alpha=0.3)
    ax.legend(title="seed-mean range over the step-size grid", frameon=False)
    return fit_tick_labels(fig)


def range_band(stem: Path, *args, hint: str = "", **kwargs) -> FigureFiles:
    """`draw_range_band(*args, **kwargs)` written to stem.png and stem.svg."""
    return save(draw_range_band(*args, **kwargs), stem, hint)
