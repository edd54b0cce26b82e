"""Every verdict at once: a forest plot of the rows' effects on one standardised scale.

One line per verdict row (claim x setting), grouped under its source family, as meta-analyses
and rliable show many effects together. Rules differ in measure, scale and margin, so each
row's effect is standardised to margins, and signed so that **right is where its claim holds**:

    z = s * d / m     (d: the effect on the rule's scale, m: its margin > 0)

| claim     | s                                   | the claim holds when the interval lies |
|-----------|-------------------------------------|----------------------------------------|
| HIGHER    | +1                                  | right of 0 (superiority)               |
| LOWER     | -1                                  | right of 0 (superiority)               |
| NOT_LOWER | +1                                  | right of -1 (non-inferiority)          |
| SIMILAR   | -sign(mean d), +1 when the mean is 0 | right of -1 (equivalence)             |

SIMILAR rows are mirrored so that their mean sits at or left of 0: equivalence needs the
interval inside (-1, +1), and a t interval is symmetric about its mean, so after mirroring
its upper end is never further from 0 than its lower end, and "inside" is "right of -1".
The mean, the interval's ends (swapped when s = -1) and the per-seed effects are transformed
alike. Each row carries a tick at its threshold (0 or -1); the margin is the shaded band
[-1, +1] and zero a line. The verdict (colour *and* marker) comes from the row's tests after
Holm's correction, so an interval can clear its threshold while its verdict stays
inconclusive. Rows without an interval, and superiority rules declared with margin 0 (which
have no standardised scale), are listed by name with the reason instead of a line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator
from matplotlib.transforms import blended_transform_factory

from bnlab.report._canvas import FigureFiles, fit_tick_labels, label_axes, new_figure, save
from bnlab.report.claims import FAMILIES, Direction
from bnlab.report.rules import Role
from bnlab.report.sections import ReportFigure
from bnlab.report.style import BLACK, GREEN, VERMILLION
from bnlab.report.verdicts import Row, Verdict

FEW_SEEDS = 10  # per-seed points are drawn for rows with at most this many seeds
LINEAR_WITHIN = 3.0  # margins: the x axis is linear inside ±3, logarithmic beyond
_ROW_INCHES = 0.24


@dataclass(frozen=True)
class VerdictStyle:
    colour: str
    marker: str
    filled: bool = True


# The report's verdict colours (bluish green, vermillion), and a marker for each verdict.
VERDICT_STYLES = {
    Verdict.REPRODUCED: VerdictStyle(GREEN, "o"),
    Verdict.NOT_REPRODUCED: VerdictStyle(VERMILLION, "X"),
    Verdict.INCONCLUSIVE: VerdictStyle("#666666", "D", filled=False),
    Verdict.NOT_MEASURABLE: VerdictStyle("#999999", "$-$"),
}


@dataclass(frozen=True)
class Standardised:
    """A row on the standardised scale (margins, right = the claim holds)."""

    mean: float
    low: float
    high: float
    seeds: tuple[float, ...]  # per-seed effects, finite ones only
    threshold: float  # 0 (superiority) or -1 (equivalence, non-inferiority)


def standardise(row: Row) -> Standardised | None:
    """`row`'s effect and interval on the forest plot's scale (the module docstring), or
    None when it has none: not measurable, no interval, or a margin of 0."""
    margin, effect = row.rule.margin, row.effect
    if row.verdict is Verdict.NOT_MEASURABLE or not effect.has_ci or not margin > 0:
        return None
    direction = row.rule.claim.direction
    if direction is Direction.LOWER:
        sign = -1.0
    elif direction is Direction.SIMILAR:
        sign = -1.0 if effect.mean > 0 else 1.0
    else:
        sign = 1.0
    ends = sorted((sign * effect.low / margin, sign * effect.high / margin))
    seeds = tuple(sign * d / margin for d in row.effects if math.isfinite(d))
    threshold = 0.0 if direction in (Direction.HIGHER, Direction.LOWER) else -1.0
    return Standardised(sign * effect.mean / margin, ends[0], ends[1], seeds, threshold)


def row_label(row: Row) -> str:
    """'claim-id @ setting', and the role when the row is not primary."""
    role = "" if row.rule.role is Role.PRIMARY else f" ({row.rule.role.value})"
    return f"{row.claim.id} @ {row.rule.setting}{role}"


def _layout(rows: Sequence[Row]) -> list[tuple[str, Row | None]]:
    """Top to bottom: each family's heading, then its rows in the order given."""
    order = [
        *FAMILIES,
        *dict.fromkeys(r.claim.family for r in rows if r.claim.family not in FAMILIES),
    ]
    lines: list[tuple[str, Row | None]] = []
    for family in order:
        members = [r for r in rows if r.claim.family == family]
        if members:
            lines.append((family, None))
            lines += [(row_label(r), r) for r in members]
    return lines


def draw_forest_plot(rows: Sequence[Row], *, title: str = "") -> Figure:
    """One line per row (see the module docstring); height grows with the number of rows."""
    if not rows:
        raise ValueError("rows: got none, expected at least one verdict row")
    lines = _layout(rows)
    fig = new_figure(9.0, 1.9 + _ROW_INCHES * len(lines))
    ax = fig.add_subplot()
    ax.axvspan(-1.0, 1.0, color="#999999", alpha=0.18, lw=0)
    ax.axvline(0.0, color="#444444", lw=0.9)
    ends = [0.0]
    for y, (_, row) in enumerate(lines):
        if row is not None:
            ends += _draw_row(ax, y, row)
    _x_axis(ax, min(ends), max(ends))
    _y_axis(ax, lines)
    label_axes(ax, "standardised effect, signed so that right = the claim holds (margins)")
    if title:
        ax.set_title(title)
    fig.legend(handles=_legend_handles(), loc="outside upper center", ncols=4, frameon=False)
    return fit_tick_labels(fig)


def forest_plot(stem: Path, rows: Sequence[Row], *, hint: str = "", title: str = "") -> FigureFiles:
    """`draw_forest_plot(rows)` written to stem.png and stem.svg."""
    return save(draw_forest_plot(rows, title=title), stem, hint)


def forest_figure(out_dir: Path, rows: Sequence[Row], what: str) -> ReportFigure | None:
    """`forest_plot` of `rows` as out_dir/figures/forest.png (and .svg), captioned for a
    report page; `what` names the rows ("Every primary verdict"). None without rows."""
    if not rows:
        return None
    files = forest_plot(Path(out_dir) / "figures" / "forest", rows)
    return ReportFigure.from_files(
        files,
        f"{what}: effect and 95% interval in units of its margin, oriented so that the side "
        "where the claim holds is on the right; the shaded band is the margin.",
    )


def _draw_row(ax, y: float, row: Row) -> list[float]:
    """Draw one row at height y; returns the x extent it used."""
    z, look = standardise(row), VERDICT_STYLES[row.verdict]
    if z is None:
        if row.tests is None:
            reason = f"not measurable: {_shorten(row.gate_failed)}" if row.gate_failed else ""
            reason = reason or "not measurable"
        else:
            reason = "margin 0: no standardised scale"
        left = blended_transform_factory(ax.transAxes, ax.transData)  # x in axes, y in data
        note = ax.text(0.01, y, reason, transform=left, va="center", color=look.colour)
        note.set(style="italic", clip_on=True, in_layout=False)  # never widens the layout
        return []
    if 0 < len(z.seeds) <= FEW_SEEDS:
        ax.plot(z.seeds, [y] * len(z.seeds), ls="", marker=".", ms=4, color=look.colour, alpha=0.4)
    ax.hlines(y, z.low, z.high, color=look.colour, lw=2.0)
    face = look.colour if look.filled else "white"
    ax.plot([z.mean], [y], ls="", marker=look.marker, ms=7, color=look.colour, mfc=face, mew=1.4)
    ax.plot([z.threshold], [y], ls="", marker="|", ms=10, mew=1.4, color=BLACK)
    return [z.low, z.high, *z.seeds]


def _shorten(text: str, width: int = 70) -> str:
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def _x_axis(ax, lo: float, hi: float) -> None:
    lo, hi = min(-LINEAR_WITHIN - 0.5, 1.3 * lo), max(LINEAR_WITHIN + 0.5, 1.3 * hi)
    ax.set_xscale("symlog", linthresh=LINEAR_WITHIN, linscale=2.0)
    ax.set_xlim(lo, hi)
    ax.xaxis.set_major_locator(FixedLocator(_x_ticks(lo, hi)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:+g}" if v else "0"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.grid(axis="x", alpha=0.3)


def _x_ticks(lo: float, hi: float) -> list[float]:
    """-2..+2, then the powers of 10 inside (lo, hi); on a side that reaches none, ±3 (the
    end of the linear part, which sits too close to ±10 to label both)."""
    ticks = [-2.0, -1.0, 0.0, 1.0, 2.0]
    for side, end in ((-1.0, -lo), (1.0, hi)):
        decades = [side * 10.0**k for k in range(1, 7) if 10.0**k <= end]
        ticks += decades or [side * LINEAR_WITHIN]
    return sorted(ticks)


def _y_axis(ax, lines: list[tuple[str, Row | None]]) -> None:
    ax.set_ylim(len(lines) - 0.5, -0.5)  # first line on top
    ax.set_yticks(range(len(lines)), [text for text, _ in lines], fontsize="small")
    ax.tick_params(axis="y", length=0)
    for label, (_, row) in zip(ax.get_yticklabels(), lines, strict=True):
        if row is None:  # a family's heading
            label.set_fontweight("bold")
            label.set_fontsize("medium")


def _legend_handles() -> list:
    handles = [
        Line2D(
            [],
            [],
            color=s.colour,
            marker=s.marker,
            mfc=s.colour if s.filled else "white",
            lw=2.0 if verdict is not Verdict.NOT_MEASURABLE else 0,
            label=verdict.value,
        )
        for verdict, s in VERDICT_STYLES.items()
    ]
    return [
        *handles,
        Patch(color="#999999", alpha=0.35, lw=0, label="within ±margin"),
        Line2D(
            [],
            [],
            ls="",
            marker="|",
            ms=10,
            mew=1.4,
            color=BLACK,
            label="the claim holds right of this",
        ),
        Line2D([], [], ls="", marker=".", color="#666666", alpha=0.5, label="per seed (n ≤ 10)"),
    ]
