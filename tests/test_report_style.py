"""One look per condition in every figure kind, tick labels that never overlap, units named.

Colours are read back from the matplotlib artists each figure function drew; tick-label
overlap is measured on the drawn canvas (`get_window_extent`), by code independent of the
figures' own tick thinning.
"""

from __future__ import annotations

import ast
import inspect
import warnings
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure
from matplotlib.patches import StepPatch
from test_report_forest import synthetic_rows

import bnlab
from bnlab.report import style
from bnlab.report.figures import (
    curve_band,
    draw_curve_band,
    draw_grid_points,
    draw_histogram_grid,
    draw_percentile_bands,
    draw_range_band,
    grid_points,
    histogram_grid,
    percentile_bands,
    range_band,
)
from bnlab.report.forest import VERDICT_STYLES, draw_forest_plot, forest_plot
from bnlab.report.style import CONDITIONS, MissingUnitWarning, condition_of, style_of

pytestmark = pytest.mark.filterwarnings("error::bnlab.report.style.MissingUnitWarning")

# One label per condition as the experiments spell it, and a run of each kind of figure.
SHOWN = ("no BN", "BN", "GroupNorm", "LayerNorm", "Batch Renorm", "Ghost BN", "BN + noise")
RNG = np.random.default_rng(0)
STEPS = np.arange(0, 50_001, 2_500)  # (T=21,)


def _runs(seeds: int, n: int, level: float = 90.0) -> np.ndarray:
    return level + RNG.standard_normal((seeds, n))  # (seeds, n)


def _figures(labels) -> dict[str, Figure]:
    """Every figure kind, each drawn with `labels` as its groups."""
    q = np.sort(RNG.standard_normal((2, STEPS.size, 3)), axis=2)  # (seeds, T, P)
    edges = np.linspace(-3, 3, 13)
    steps = {f"step {s}": np.full(12, 1 / 12) for s in (10, 500, 5_000)}
    lrs = 0.001 * 2.0 ** np.arange(18)  # 0.001 .. 131
    return {
        "curve_band": draw_curve_band(
            STEPS,
            {n: _runs(3, STEPS.size) for n in labels},
            xlabel="step (updates)",
            ylabel="a (%)",
        ),
        "percentile_bands": draw_percentile_bands(
            STEPS, dict.fromkeys(labels[:3], q), xlabel="step (updates)", ylabel="input (unitless)"
        ),
        "range_band": draw_range_band(
            STEPS,
            {n: (np.exp(_runs(2, STEPS.size, 0)), np.exp(_runs(2, STEPS.size, 9))) for n in labels},
            xlabel="step (updates)",
            ylabel="gradient change (ℓ2 norm)",
            log_y=True,
        ),
        "grid_points": draw_grid_points(
            lrs,
            {n: _runs(2, lrs.size) for n in labels[2:]},
            references={n: _runs(3, 1)[:, 0] for n in labels[:2]},
            xlabel="learning rate (log scale)",
            ylabel="accuracy (%)",
        ),
        "histogram_grid": draw_histogram_grid(
            edges,
            {"act1": {n: steps for n in labels[:4]}, "act2": {n: steps for n in labels[4:]}},
            xlabel="pre-activation (unitless)",
        ),
    }


def _hex(colour) -> str:
    """'#RRGGBB' of a colour name or RGB(A), or of the first row of an (N, 4) RGBA array."""
    if not isinstance(colour, str) and np.ndim(colour) == 2:
        colour = colour[0]
    return to_hex(colour, keep_alpha=False).upper()


def _condition(label: str) -> str:
    """'BN (n=3)' or 'act1: BN' -> 'BN'."""
    return label.split(" (n=")[0].split(": ")[-1]


def _colours(kind: str, fig: Figure) -> dict[str, set[str]]:
    """condition -> the colours its artists were drawn in, read from the figure."""
    out: dict[str, set[str]] = {}
    for ax in fig.axes:
        if kind in ("percentile_bands", "histogram_grid"):  # one condition per panel
            if not ax.get_visible():
                continue
            name = _condition(ax.get_title())
            found = {_hex(line.get_color()) for line in ax.get_lines()}
            found |= {_hex(p.get_facecolor()) for p in ax.collections}
            if kind == "histogram_grid":  # early curves are lighter; the last is the colour
                last = [p for p in ax.patches if isinstance(p, StepPatch)][-1]
                found = {_hex(last.get_edgecolor())}
            out.setdefault(name, set()).update(found)
            continue
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if isinstance(handle, ErrorbarContainer):
                handle = handle[0]
            colour = handle.get_color() if hasattr(handle, "get_color") else handle.get_facecolor()
            out.setdefault(_condition(label), set()).add(_hex(colour))
    return out


@pytest.fixture(scope="module")
def figures() -> dict[str, Figure]:
    return _figures(SHOWN)


def test_every_figure_kind_draws_a_condition_in_one_colour(figures):
    seen: dict[str, dict[str, str]] = {}  # condition -> figure kind -> colour
    for kind, fig in figures.items():
        for name, colours in _colours(kind, fig).items():
            assert len(colours) == 1, f"{kind}: {name} drawn in {sorted(colours)}"
            seen.setdefault(name, {})[kind] = colours.pop()
    assert set(seen) == set(SHOWN)
    for name, by_kind in seen.items():
        assert len(set(by_kind.values())) == 1, f"{name} differs between figures: {by_kind}"
        assert set(by_kind.values()) == {style_of(name).colour.upper()}
    assert seen["BN"]["curve_band"] == "#0072B2" and len(seen["BN"]) == 5  # BN: in every kind


def test_the_order_of_the_groups_does_not_change_a_colour(figures):
    """Fig. 1a lists no BN first, the landscape figures BN first: BN keeps its colour."""
    first = _colours("curve_band", figures["curve_band"])
    runs = {n: _runs(2, STEPS.size) for n in SHOWN[::-1]}
    kw = dict(xlabel="step (updates)", ylabel="a (%)")
    backwards = _colours("curve_band", draw_curve_band(STEPS, runs, **kw))
    assert first == backwards


def test_the_forest_plot_uses_the_reports_verdict_colours():
    fig = draw_forest_plot(synthetic_rows(12))
    markers = {s.marker for s in VERDICT_STYLES.values()}
    drawn = {_hex(x.get_color()) for x in fig.axes[0].get_lines() if x.get_marker() in markers}
    assert {"#009E73", "#D55E00"} <= drawn  # the scorecard's reproduced / not reproduced
    assert drawn <= {_hex(s.colour) for s in VERDICT_STYLES.values()}


def _source_constant(module: str, name: str) -> list[str]:
    """The string keys (a dict) or items (a tuple) of `name` in bnlab/reproduce/<module>.py,
    read from the source: importing an experiment module imports every experiment."""
    path = Path(bnlab.__file__).parent / "reproduce" / f"{module}.py"
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == name for t in node.targets):
            value = node.value
            items = value.keys if isinstance(value, ast.Dict) else value.elts
            if isinstance(value, ast.Dict) and module != "train_test_stats":
                items = value.values  # labels are the values; MODES' labels are its keys
            return [ast.literal_eval(item) for item in items]
    raise AssertionError(f"{name} not found in {path}")


def test_every_label_the_experiments_pass_names_a_condition():
    positions = _source_constant("bn_placement", "POSITIONS")
    activations = _source_constant("bn_placement", "ACTIVATIONS")
    labels = [
        *_source_constant("common", "NORM_LABELS"),
        *_source_constant("small_batch", "LABELS"),
        *_source_constant("train_test_stats", "MODES"),
        *(f"BN {p} {a}" for p in positions for a in activations),
        "BN, before BN",
        "BN, after BN",  # the activation-distribution grid's columns (matrix.py)
    ]
    assert len(labels) > 15
    for label in labels:
        assert condition_of(label) in CONDITIONS, label
    for bn in ("BN", "EMA", "BN before relu", "BN, after BN", "batchnorm"):
        assert style_of(bn) == CONDITIONS["BN"], bn
    assert style_of("no norm") == style_of("no BN")
    assert style_of("BN after sigmoid") == CONDITIONS["BN after"] != CONDITIONS["BN"]


def test_conditions_drawn_together_differ_and_every_condition_has_its_own_look():
    for together in style.DRAWN_TOGETHER:
        colours = [CONDITIONS[c].colour for c in together]
        assert len(set(colours)) == len(colours), together
    looks = [(s.colour, str(s.linestyle), s.marker) for s in CONDITIONS.values()]
    assert len(set(looks)) == len(looks)
    assert {s.colour for s in CONDITIONS.values()} <= set(style.PALETTE)  # Okabe–Ito only


def test_unknown_labels_and_noise_strengths_get_a_stable_look():
    unknown = style_of("some new norm")
    assert unknown == style_of("some new norm") and unknown.colour in style.MUTED
    assert unknown.colour not in {s.colour for s in CONDITIONS.values()}
    weak, half, full = (style_of(f"BN + noise, scale {s}") for s in (0.25, 0.5, 1))
    assert full.colour == CONDITIONS["BN + noise"].colour
    grey = [int(s.colour[1:3], 16) for s in (full, half, weak)]  # 0 = black
    assert grey[0] < grey[1] < grey[2], "weaker noise is drawn lighter"


# ---- tick labels


def _overlaps(fig: Figure) -> list[str]:
    """'axes i, x: "a" / "b"' for every pair of drawn tick labels whose boxes intersect."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    found = []
    for i, ax in enumerate(fig.axes):
        if not ax.get_visible():
            continue
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            k = 0 if axis.axis_name == "x" else 1
            texts = [
                t
                for t in axis.get_ticklabels(which="both")
                if t.get_visible() and t.get_text() and lo <= t.get_position()[k] <= hi
            ]
            boxes = [t.get_window_extent(renderer) for t in texts]
            for a in range(len(boxes)):
                for b in range(a + 1, len(boxes)):
                    if boxes[a].overlaps(boxes[b]):
                        pair = f"{texts[a].get_text()!r} / {texts[b].get_text()!r}"
                        found.append(f"axes {i}, {axis.axis_name}: {pair}")
    return found


def test_the_overlap_check_can_fail():
    fig = Figure(figsize=(2, 2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_xticks(np.arange(30), [f"label {i}" for i in range(30)])
    assert _overlaps(fig)


@pytest.mark.parametrize(
    "kind", ["curve_band", "percentile_bands", "range_band", "grid_points", "histogram_grid"]
)
def test_no_tick_labels_overlap(figures, kind):
    assert _overlaps(figures[kind]) == []


@pytest.mark.parametrize(
    "grid",
    [0.001 * 2.0 ** np.arange(18), 2.0 ** np.arange(1, 8), [0.001, 0.01, 0.1, 1, 10, 128]],
    ids=["lr-sweep-doublings", "batch-2-to-128", "lr-decades"],
)
def test_log_grids_keep_their_labels_apart_and_plain(grid):
    fig = draw_grid_points(
        grid, {"BN": _runs(2, len(grid))}, xlabel="setting (log scale)", ylabel="accuracy (%)"
    )
    assert _overlaps(fig) == []
    fig.canvas.draw()
    shown = [t.get_text() for t in fig.axes[0].get_xticklabels() if t.get_text()]
    assert shown[0] == f"{grid[0]:g}"  # the grid's own settings, the first always labelled
    assert {float(t) for t in shown} <= {float(f"{g:g}") for g in grid}  # plain, not 10^k


def test_a_forest_plot_of_60_rows_stays_legible():
    rows = synthetic_rows(60)
    fig = draw_forest_plot(rows)
    assert _overlaps(fig) == []
    assert fig.get_figheight() > 60 * 0.2  # height grows with the rows


# ---- units and hints


def test_an_axis_label_without_a_unit_warns():
    for ok in ("test accuracy (%)", "training step (updates)", "init std (weights ~ N(0, s^2))"):
        assert style.has_unit(ok), ok
    for missing in ("training step", "cos(G, G')", "loss"):
        assert not style.has_unit(missing), missing
    with pytest.warns(MissingUnitWarning, match="ylabel='loss'"):
        draw_curve_band([0, 1], {"BN": np.ones((2, 2))}, xlabel="step (updates)", ylabel="loss")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        draw_curve_band([0, 1], {"BN": np.ones((2, 2))}, xlabel="step (updates)", ylabel="a (%)")


def test_every_figure_function_keeps_a_caption_hint(tmp_path):
    for function in (curve_band, percentile_bands, range_band, grid_points, histogram_grid):
        assert "hint" in inspect.signature(function).parameters, function.__name__
    assert "hint" in inspect.signature(forest_plot).parameters
    files = curve_band(
        tmp_path / "c",
        [0, 1],
        {"BN": np.ones((2, 2))},
        xlabel="step (updates)",
        ylabel="a (%)",
        hint="Compare the bands' vertical gap.",
    )
    assert files.hint == "Compare the bands' vertical gap."
    assert files.caption("Test accuracy") == "Test accuracy. Compare the bands' vertical gap."
    assert files.png.is_file() and files.svg.is_file()
