"""bnlab.report: statistics over seeds, the claims scorecard, figures, and the report files.

Engine-independent: everything here takes plain numbers (lists, arrays, dicts), so results
from any store can be summarized and rendered.

- `mean_ci`, `diff_ci`, `Estimate`, `format_estimate`: means and differences with t intervals.
- `Claim`, `Direction`, `CLAIMS`, `CLAIMS_BY_ID`: what the sources claim.
- `Rule`, `Measure`, `Gate`, `Scale`, `Role`: pre-registered decision rules (`rules`), recorded
  before the runs (`registration`).
- `Row`, `Verdict`, `measure_rule`, `decide_families`, `counts`: tests, Holm/BH, verdicts.
- `Diagnostic`: exploratory checks shown on every row of a claim.
- `percentile_drift`, `loss_smoothness`, `grad_norm_stability`, `grad_norm_jitter`,
  `steps_to_accuracy`, `highest_trainable`, `spread`: per-run effect measures.
- `curve_band`, `percentile_bands`, `range_band`, `grid_points`, `histogram_grid`: paper-style
  figures (PNG + SVG), every condition drawn in its own look (`style.style_of`).
- `forest_plot`: every verdict row on one standardised scale (right = the claim holds).
- `Section`, `ReportFigure`, `Table`, `ReportMeta`, `write_report`: report.html and report.md.
"""

from bnlab.report.claims import CLAIMS, CLAIMS_BY_ID, FAMILIES, PAPERS, Claim, Direction
from bnlab.report.diagnostics import Diagnostic, agreement, check_symmetric
from bnlab.report.figures import (
    FigureFiles,
    curve_band,
    grid_points,
    histogram_grid,
    percentile_bands,
    range_band,
)
from bnlab.report.forest import forest_plot
from bnlab.report.measures import (
    TREND_WINDOW,
    grad_norm_jitter,
    grad_norm_stability,
    highest_trainable,
    log_loss_jitter,
    loss_smoothness,
    percentile_drift,
    shape_drift,
    spread,
    steps_to_accuracy,
)
from bnlab.report.render import write_report
from bnlab.report.rules import RATIO_MARGIN, Gate, Measure, Role, Rule, Scale, check_margin
from bnlab.report.sections import QUICK_BANNER, ReportFigure, ReportMeta, Section, Table
from bnlab.report.stats import (
    Estimate,
    bounded_mean_ci,
    diff_ci,
    format_estimate,
    format_interval,
    mean_ci,
    mean_ci_band,
    proportion_ci,
)
from bnlab.report.verdicts import ALPHA, Row, Verdict, counts, decide_families, measure_rule

__all__ = [
    "ALPHA",
    "CLAIMS",
    "CLAIMS_BY_ID",
    "FAMILIES",
    "PAPERS",
    "QUICK_BANNER",
    "RATIO_MARGIN",
    "TREND_WINDOW",
    "Claim",
    "Diagnostic",
    "Direction",
    "Estimate",
    "FigureFiles",
    "Gate",
    "Measure",
    "ReportFigure",
    "ReportMeta",
    "Role",
    "Row",
    "Rule",
    "Scale",
    "Section",
    "Table",
    "Verdict",
    "agreement",
    "bounded_mean_ci",
    "check_margin",
    "check_symmetric",
    "counts",
    "curve_band",
    "decide_families",
    "diff_ci",
    "forest_plot",
    "format_estimate",
    "format_interval",
    "grad_norm_jitter",
    "grad_norm_stability",
    "grid_points",
    "highest_trainable",
    "histogram_grid",
    "log_loss_jitter",
    "loss_smoothness",
    "mean_ci",
    "mean_ci_band",
    "measure_rule",
    "percentile_bands",
    "percentile_drift",
    "proportion_ci",
    "range_band",
    "shape_drift",
    "spread",
    "steps_to_accuracy",
    "write_report",
]
