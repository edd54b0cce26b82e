"""bnlab.report: statistics over seeds, the claims scorecard, figures, and the report files.

Engine-independent: everything here takes plain numbers (lists, arrays, dicts), so results
from any store can be summarized and rendered.

- `mean_ci`, `diff_ci`, `Estimate`, `format_estimate`: means and differences with t intervals.
- `Claim`, `Direction`, `Verdict`, `judge`, `score`, `explained`, `CLAIMS`, `CLAIMS_BY_ID`:
  the scorecard.
- `percentile_drift`, `loss_smoothness`, `grad_norm_stability`, `grad_norm_jitter`,
  `steps_to_accuracy`, `highest_trainable`, `spread`: per-run effect measures.
- `curve_band`, `percentile_bands`, `range_band`, `grid_points`, `histogram_grid`: paper-style
  figures (PNG + SVG).
- `Section`, `ReportFigure`, `Table`, `ReportMeta`, `write_report`: report.html and report.md.
"""

from bnlab.report.claims import (
    CLAIMS,
    CLAIMS_BY_ID,
    Claim,
    Direction,
    ScorecardRow,
    Verdict,
    explained,
    judge,
    score,
)
from bnlab.report.figures import (
    FigureFiles,
    curve_band,
    grid_points,
    histogram_grid,
    percentile_bands,
    range_band,
)
from bnlab.report.measures import (
    TREND_WINDOW,
    grad_norm_jitter,
    grad_norm_stability,
    highest_trainable,
    loss_smoothness,
    percentile_drift,
    spread,
    steps_to_accuracy,
)
from bnlab.report.render import write_report
from bnlab.report.sections import QUICK_BANNER, ReportFigure, ReportMeta, Section, Table
from bnlab.report.stats import (
    Estimate,
    diff_ci,
    format_estimate,
    format_interval,
    mean_ci,
    mean_ci_band,
)

__all__ = [
    "CLAIMS",
    "CLAIMS_BY_ID",
    "QUICK_BANNER",
    "TREND_WINDOW",
    "Claim",
    "Direction",
    "Estimate",
    "FigureFiles",
    "ReportFigure",
    "ReportMeta",
    "ScorecardRow",
    "Section",
    "Table",
    "Verdict",
    "curve_band",
    "diff_ci",
    "explained",
    "format_estimate",
    "format_interval",
    "grad_norm_jitter",
    "grad_norm_stability",
    "grid_points",
    "highest_trainable",
    "histogram_grid",
    "judge",
    "loss_smoothness",
    "mean_ci",
    "mean_ci_band",
    "percentile_bands",
    "percentile_drift",
    "range_band",
    "score",
    "spread",
    "steps_to_accuracy",
    "write_report",
]
