"""Santurkar-style figures: the shaded range band of Fig. 4(a, b) (seed-mean of the min and of
the max over the step-size grid, at each probed step), drawn like bnlab.report's figures."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from bnlab.report.figures import FigureFiles, _colour, _save


def range_band(
    stem: Path,
    x: np.ndarray,
    groups: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    log_y: bool = False,
) -> FigureFiles:
    """For each group, (low, high), each (seeds, T): shade between the seed-mean of low and of
    high, with their midpoint as a line (Santurkar et al. 2018, Fig. 4a,b)."""
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
