"""Figures over settings and over bins: mean and CI at each setting of a grid (learning rate,
batch size, layer), and a grid of distributions (histograms) over training."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.transforms import blended_transform_factory

from bnlab.report._canvas import (
    FigureFiles,
    check_groups,
    check_len,
    fit_tick_labels,
    grid_ticks,
    label_axes,
    new_figure,
    save,
)
from bnlab.report.stats import mean_ci
from bnlab.report.style import lighten, style_of


def draw_grid_points(
    grid: Sequence[float],
    groups: Mapping[str, np.ndarray],
    *,
    xlabel: str,
    ylabel: str,
    log_x: bool = True,
    title: str = "",
    confidence: float = 0.95,
    references: Mapping[str, np.ndarray] | None = None,
) -> Figure:
    """Mean with CI error bars at each grid setting (e.g. accuracy vs learning rate).

    `groups[name]` is (seeds, G) for `grid` (G,). NaN marks a diverged run: it is left out of
    the mean and counted in a "k/n div." label at the bottom of the axes. `references[name]`
    (seeds,) are runs outside the grid, drawn as a horizontal line at their mean in a CI band.
    Ticks sit at the grid's settings, labelled plainly, thinned if they would overlap.
    """
    g = np.asarray(grid, dtype=np.float64)
    data = check_groups(groups, 2, "(seeds, G) with seeds >= 1")
    refs = check_groups(references, 1, "(seeds,) with seeds >= 1") if references else {}
    fig = new_figure(6.4, 4.0)
    ax = fig.add_subplot()
    for i, (name, v) in enumerate(data.items()):
        check_len(name, v, 1, g.size, "the length of grid")
        look = style_of(name)
        # Dodge groups sideways so error bars do not overlap; multiplicative on a log axis.
        shift = 0.06 * (i - (len(data) - 1) / 2)
        xs = g * 2.0**shift if log_x else g + shift * (np.ptp(g) or 1.0) / 4
        means, errs = _column_estimates(v, confidence)  # (G,), (2, G)
        ax.errorbar(
            xs,
            means,
            yerr=errs,
            color=look.colour,
            ls=look.linestyle,
            marker=look.marker,
            capsize=3,
            ms=5,
            label=f"{name} (n={v.shape[0]})",
        )
        _label_diverged(ax, xs, v, i, look.colour)
    for name, v in refs.items():
        _reference_band(ax, name, v, confidence)
    _grid_axis(ax, g, log_x)
    label_axes(ax, xlabel, ylabel, title)
    ax.grid(alpha=0.3)
    ax.legend(title=f"mean, {confidence:.0%} CI; k/n div. = diverged runs", frameon=False)
    return fit_tick_labels(fig)


def grid_points(stem: Path, *args, hint: str = "", **kwargs) -> FigureFiles:
    """`draw_grid_points(*args, **kwargs)` written to stem.png and stem.svg."""
    return save(draw_grid_points(*args, **kwargs), stem, hint)


def _grid_axis(ax, g: np.ndarray, log_x: bool) -> None:
    if log_x:
        ax.set_xscale("log")
        ax.set_xlim(g.min() / 1.6, g.max() * 1.6)  # keep all-diverged settings on the axes
    else:
        pad = 0.08 * (np.ptp(g) or 1.0)
        ax.set_xlim(g.min() - pad, g.max() + pad)
    grid_ticks(ax.xaxis, g)


def _reference_band(ax, name: str, v: np.ndarray, confidence: float) -> None:
    """A horizontal line at the mean of the finite runs `v` (seeds,), shaded over its CI."""
    means, errs = _column_estimates(v[:, None], confidence)  # (1,), (2, 1)
    if not np.isfinite(means[0]):
        return
    look = style_of(name)
    ax.axhline(means[0], color=look.colour, ls=look.linestyle, lw=1.0, label=f"{name} (n={v.size})")
    ax.axhspan(means[0] - errs[0, 0], means[0] + errs[1, 0], color=look.colour, alpha=0.15, lw=0)


def _label_diverged(ax, xs: np.ndarray, v: np.ndarray, group: int, colour: str) -> None:
    """Write 'k/n div.' at the bottom of the axes under each setting where runs diverged."""
    bottom = blended_transform_factory(ax.transData, ax.transAxes)  # x in data, y in axes
    for xj, col in zip(xs, v.T, strict=True):
        bad = int(np.sum(~np.isfinite(col)))
        if bad:
            ax.text(
                xj,
                0.03 + 0.05 * group,
                f"{bad}/{col.size} div.",
                transform=bottom,
                color=colour,
                fontsize="x-small",
                ha="center",
            )


def _column_estimates(v: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Per grid column (seeds, G): mean of the finite runs and (below, above) CI extents."""
    means, errs = np.full(v.shape[1], np.nan), np.zeros((2, v.shape[1]))
    for j, col in enumerate(v.T):
        finite = col[np.isfinite(col)]
        if finite.size == 0:
            continue
        est = mean_ci(finite, confidence)
        means[j] = est.mean
        if est.has_ci:
            errs[:, j] = (est.mean - est.low, est.high - est.mean)
    return means, errs


def draw_histogram_grid(
    edges: Sequence[float],
    panels: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]],
    *,
    xlabel: str,
    title: str = "",
) -> Figure:
    """A grid of distributions: one row per key of `panels` (e.g. a layer), one column per key
    of each row (e.g. "no BN", "BN, before BN", "BN, after BN"), and in each panel one step
    line per curve (e.g. a training step, early to late), named once in a legend above the
    grid (every panel holds the same curves). A panel is drawn in its column's condition
    colour (`style_of`), early curves lighter and dotted, the last solid and full colour.

    `panels[row][column][curve]` is (bins,): the fraction of values in each bin of `edges`
    (bins + 1,), e.g. averaged over seeds. Drawn as a density (fraction / bin width), so the
    area under a line is the fraction of values inside the range; rows share no y scale (a
    layer input before BN can be far narrower than after it).
    """
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.size < 2 or not np.all(np.diff(e) > 0):
        raise ValueError(f"edges: got shape {e.shape}, expected increasing bin edges (bins + 1,)")
    if not panels or not all(panels.values()):
        raise ValueError("panels: expected at least one row with at least one column")
    names = {tuple(curves) for cols in panels.values() for curves in cols.values()}
    if len(names) != 1:
        raise ValueError(f"panels: got curves {sorted(names)}, expected the same in every panel")
    ncols, nrows = max(len(cols) for cols in panels.values()), len(panels)
    height = 2.1 * nrows + 1.2  # inches: panels, then title and legend on top
    # A fixed layout: constrained layout costs seconds per save on a grid of this size.
    fig = new_figure(3.4 * ncols, height, constrained=False)
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.5 / height, top=1 - 0.95 / height)
    fig.subplots_adjust(hspace=0.45)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True)
    for r, (row, cols) in enumerate(panels.items()):
        for c, (col, curves) in enumerate(cols.items()):
            _histogram_panel(axes[r][c], e, curves, row, col)
        for c in range(len(cols), ncols):
            axes[r][c].set_visible(False)
    curves = next(iter(names))
    fig.legend(
        _curve_handles(len(curves)),
        curves,
        loc="center",
        bbox_to_anchor=(0.5, 1 - 0.6 / height),
        ncols=len(curves),
    )
    for ax in axes[-1]:
        label_axes(ax, xlabel)
    for ax in axes[:, 0]:
        label_axes(ax, ylabel="density (fraction per unit)")
    if title:
        fig.suptitle(title, y=1 - 0.1 / height, va="top")
    return fit_tick_labels(fig)


def histogram_grid(stem: Path, *args, hint: str = "", **kwargs) -> FigureFiles:
    """`draw_histogram_grid(*args, **kwargs)` written to stem.png and stem.svg."""
    return save(draw_histogram_grid(*args, **kwargs), stem, hint)


def _curve_look(i: int, n: int) -> tuple[float, str]:
    """(lightness, line style) of curve i of n: early light and dotted, the last solid."""
    late = i / max(1, n - 1)  # 0 first, 1 last
    return 0.6 * (1 - late), "-" if i == n - 1 else (":", "--")[i % 2]


def _curve_handles(n: int) -> list[Line2D]:
    """The legend's lines: the curves' lightness and line style, in a neutral grey."""
    return [
        Line2D([], [], color=lighten("#333333", light), ls=ls, lw=1.4)
        for light, ls in map(lambda i: _curve_look(i, n), range(n))
    ]


def _histogram_panel(ax, edges: np.ndarray, curves: Mapping[str, np.ndarray], row, col):
    title = f"{row}: {col}"
    colour = style_of(col).colour
    for i, (name, fraction) in enumerate(curves.items()):
        f = np.asarray(fraction, dtype=np.float64)
        if f.shape != (edges.size - 1,):
            raise ValueError(f"panel {title!r}, {name!r}: got shape {f.shape}, expected (bins,)")
        density = f / np.diff(edges)  # (bins,)
        light, ls = _curve_look(i, len(curves))
        ax.stairs(density, edges, color=lighten(colour, light), ls=ls, lw=1.4, label=name)
    ax.set_title(title, fontsize="small")
    ax.grid(alpha=0.3)
