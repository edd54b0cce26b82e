"""Paper-style figures from plain arrays: mean curves with 95% CI bands over seeds, percentile
bands (Ioffe & Szegedy 2015, Fig. 1b,c), range bands (Santurkar et al. 2018, Fig. 4a,b), and
per-setting points with CI error bars, and distributions over training (histograms of
layer inputs before and after BN at a few training steps).

Figures are drawn on `matplotlib.figure.Figure` directly, never through pyplot: no display,
no global backend switch, nothing left open. Each figure is written as PNG and SVG.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.transforms import blended_transform_factory

from bnlab.report.stats import mean_ci, mean_ci_band

# Okabe & Ito's colour-blind-safe palette, most distinct pairs first (blue vs vermillion).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#000000")
_DPI = 110


@dataclass(frozen=True)
class FigureFiles:
    """The two files of one figure: a PNG for the report, an SVG for print."""

    png: Path
    svg: Path


def _save(fig: Figure, stem: Path) -> FigureFiles:
    """Write stem.png and stem.svg; the stem's name is kept whole ("lr0.1_beta" included)."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    files = FigureFiles(stem.parent / f"{stem.name}.png", stem.parent / f"{stem.name}.svg")
    fig.savefig(files.png, dpi=_DPI)
    fig.savefig(files.svg, metadata={"Date": None})  # no timestamp: same data, same file
    return files


def _colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _groups(groups: Mapping[str, np.ndarray], ndim: int, what: str) -> dict[str, np.ndarray]:
    if not groups:
        raise ValueError("groups: got none, expected at least one named group of runs")
    out = {name: np.asarray(v, dtype=np.float64) for name, v in groups.items()}
    for name, v in out.items():
        if v.ndim != ndim or v.shape[0] == 0:
            raise ValueError(f"groups[{name!r}]: got shape {v.shape}, expected {what}")
    return out


def _check_len(name: str, v: np.ndarray, axis: int, n: int, against: str) -> None:
    if v.shape[axis] != n:
        raise ValueError(
            f"groups[{name!r}]: axis {axis} has {v.shape[axis]}, expected {n} ({against})"
        )


def curve_band(
    stem: Path,
    x: Sequence[float],
    groups: Mapping[str, np.ndarray],
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    confidence: float = 0.95,
) -> FigureFiles:
    """Mean curve with a shaded CI band for each group; `groups[name]` is (seeds, T), `x` (T,).

    E.g. test accuracy vs training step, BN vs baseline (Ioffe & Szegedy 2015, Fig. 1a).
    """
    xs = np.asarray(x, dtype=np.float64)
    data = _groups(groups, 2, "(seeds, T) with seeds >= 1")
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    for i, (name, v) in enumerate(data.items()):
        _check_len(name, v, 1, xs.size, "the length of x")
        mean, low, high = mean_ci_band(v, confidence)  # (T,) each
        band = "" if v.shape[0] > 1 else ", no CI"
        ax.plot(xs, mean, color=_colour(i), lw=1.6, label=f"{name} (n={v.shape[0]}{band})")
        if v.shape[0] > 1:
            ax.fill_between(xs, low, high, color=_colour(i), alpha=0.25, lw=0)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    ax.legend(title=f"mean, {confidence:.0%} CI band", frameon=False)
    return _save(fig, stem)


def percentile_bands(
    stem: Path,
    x: Sequence[float],
    groups: Mapping[str, np.ndarray],
    *,
    xlabel: str,
    ylabel: str,
    percentiles: Sequence[float] = (15, 50, 85),
    title: str = "",
) -> FigureFiles:
    """One panel per group: the seed-mean of each percentile over training, outer band shaded.

    `groups[name]` is (seeds, T, P) with P = len(percentiles), ascending; `x` is (T,). This is
    Ioffe & Szegedy 2015, Fig. 1b (no BN) and 1c (BN), averaged over seeds; panels share y.
    """
    xs = np.asarray(x, dtype=np.float64)
    data = _groups(groups, 3, f"(seeds, T, {len(percentiles)})")
    fig = Figure(figsize=(4.2 * len(data), 3.8), layout="constrained")
    axes = fig.subplots(1, len(data), sharey=True, squeeze=False)[0]
    for i, ((name, v), ax) in enumerate(zip(data.items(), axes, strict=True)):
        _check_len(name, v, 1, xs.size, "the length of x")
        _check_len(name, v, 2, len(percentiles), "one column per percentile")
        q = v.mean(axis=0)  # (seeds, T, P) -> (T, P)
        ax.fill_between(xs, q[:, 0], q[:, -1], color=_colour(i), alpha=0.2, lw=0)
        for j, p in enumerate(percentiles):
            middle = j == len(percentiles) // 2
            ax.plot(
                xs,
                q[:, j],
                color=_colour(i),
                lw=1.8 if middle else 1.0,
                ls="-" if middle else "--",
                label=f"{p:g}th percentile",
            )
        ax.set(xlabel=xlabel, title=f"{name} (n={v.shape[0]})")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(ylabel)
    axes[0].legend(frameon=False, fontsize="small")
    if title:
        fig.suptitle(title)
    return _save(fig, stem)


def range_band(
    stem: Path,
    x: Sequence[float],
    groups: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    log_y: bool = False,
) -> FigureFiles:
    """For each group, (low, high), each (seeds, T): shade between the seed-mean of low and of
    high, with their midpoint as a line (Santurkar et al. 2018, Fig. 4a,b: the range over the
    step-size grid at each probed step)."""
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    for i, (name, (low, high)) in enumerate(groups.items()):
        lo, hi = np.nanmean(low, axis=0), np.nanmean(high, axis=0)  # (T,); NaN = diverged
        n = np.asarray(low).shape[0]
        ax.fill_between(x, lo, hi, color=_colour(i), alpha=0.3, lw=0, label=f"{name} (n={n})")
        ax.plot(x, 0.5 * (lo + hi), color=_colour(i), lw=1.0)
    if log_y:
        ax.set_yscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    ax.legend(title="seed-mean range over the step-size grid", frameon=False)
    return _save(fig, stem)


def grid_points(
    stem: Path,
    grid: Sequence[float],
    groups: Mapping[str, np.ndarray],
    *,
    xlabel: str,
    ylabel: str,
    log_x: bool = True,
    title: str = "",
    confidence: float = 0.95,
    references: Mapping[str, np.ndarray] | None = None,
) -> FigureFiles:
    """Mean with CI error bars at each grid setting (e.g. accuracy vs learning rate).

    `groups[name]` is (seeds, G) for `grid` (G,). NaN marks a diverged run: it is left out of
    the mean and counted in a "k/n div." label at the bottom of the axes. `references[name]`
    (seeds,) are runs outside the grid, drawn as a horizontal line at their mean in a CI band.
    """
    g = np.asarray(grid, dtype=np.float64)
    data = _groups(groups, 2, "(seeds, G) with seeds >= 1")
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    for i, (name, v) in enumerate(data.items()):
        _check_len(name, v, 1, g.size, "the length of grid")
        # Dodge groups sideways so error bars do not overlap; multiplicative on a log axis.
        shift = 0.06 * (i - (len(data) - 1) / 2)
        xs = g * 2.0**shift if log_x else g + shift * (np.ptp(g) or 1.0) / 4
        means, errs = _column_estimates(v, confidence)  # (G,), (2, G)
        ax.errorbar(
            xs,
            means,
            yerr=errs,
            fmt="o-",
            color=_colour(i),
            capsize=3,
            ms=5,
            label=f"{name} (n={v.shape[0]})",
        )
        _label_diverged(ax, xs, v, i)
    refs = _groups(references, 1, "(seeds,) with seeds >= 1") if references else {}
    for j, (name, v) in enumerate(refs.items()):
        _reference_band(ax, name, v, _colour(len(data) + j), confidence)
    if log_x:
        ax.set_xscale("log")
        ax.set_xlim(g.min() / 1.6, g.max() * 1.6)  # keep all-diverged settings on the axes
    else:
        pad = 0.08 * (np.ptp(g) or 1.0)
        ax.set_xlim(g.min() - pad, g.max() + pad)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    ax.legend(title=f"mean, {confidence:.0%} CI; k/n div. = diverged runs", frameon=False)
    return _save(fig, stem)


def _reference_band(ax, name: str, v: np.ndarray, colour: str, confidence: float) -> None:
    """A horizontal line at the mean of the finite runs `v` (seeds,), shaded over its CI."""
    means, errs = _column_estimates(v[:, None], confidence)  # (1,), (2, 1)
    if not np.isfinite(means[0]):
        return
    ax.axhline(means[0], color=colour, ls="--", lw=1.0, label=f"{name} (n={v.size})")
    ax.axhspan(means[0] - errs[0, 0], means[0] + errs[1, 0], color=colour, alpha=0.15, lw=0)


def _label_diverged(ax, xs: np.ndarray, v: np.ndarray, group: int) -> None:
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
                color=_colour(group),
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


def histogram_grid(
    stem: Path,
    edges: Sequence[float],
    panels: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]],
    *,
    xlabel: str,
    title: str = "",
) -> FigureFiles:
    """A grid of distributions: one row per key of `panels` (e.g. a layer), one column per key
    of each row (e.g. "no BN", "BN: before BN", "BN: after BN"), and in each panel one step
    line per curve (e.g. a training step, early to late, drawn light to dark), named once in
    a legend above the grid (every panel holds the same curves).

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
    fig = Figure(figsize=(3.4 * ncols, height))
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.5 / height, top=1 - 0.95 / height)
    fig.subplots_adjust(hspace=0.45)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True)
    for r, (row, cols) in enumerate(panels.items()):
        for c, (col, curves) in enumerate(cols.items()):
            _histogram_panel(axes[r][c], e, curves, f"{row}: {col}")
        for c in range(len(cols), ncols):
            axes[r][c].set_visible(False)
    handles, labels = axes[0][0].get_legend_handles_labels()  # every panel: the same curves
    fig.legend(
        handles, labels, loc="center", bbox_to_anchor=(0.5, 1 - 0.6 / height), ncols=len(labels)
    )
    for ax in axes[-1]:
        ax.set_xlabel(xlabel)
    for ax in axes[:, 0]:
        ax.set_ylabel("density")
    if title:
        fig.suptitle(title, y=1 - 0.1 / height, va="top")
    return _save(fig, stem)


def _histogram_panel(ax, edges: np.ndarray, curves: Mapping[str, np.ndarray], title: str):
    ramp = colormaps["viridis"]
    for i, (name, fraction) in enumerate(curves.items()):
        f = np.asarray(fraction, dtype=np.float64)
        if f.shape != (edges.size - 1,):
            raise ValueError(f"panel {title!r}, {name!r}: got shape {f.shape}, expected (bins,)")
        density = f / np.diff(edges)  # (bins,)
        colour = ramp(0.85 * (1 - i / max(1, len(curves) - 1)))  # early light, late dark
        ax.stairs(density, edges, color=colour, lw=1.4, label=name)
    ax.set_title(title, fontsize="small")
    ax.grid(alpha=0.3)
