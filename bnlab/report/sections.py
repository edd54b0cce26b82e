"""The report's data model: what a report contains, independent of HTML or Markdown.

All frozen: a report is built once from measured numbers and then only rendered. Lists given
by callers are stored as tuples and the protocol as a read-only mapping of strings.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from bnlab.report.claims import CLAIMS, CLAIMS_BY_ID, Claim, ScorecardRow, Verdict
from bnlab.report.figures import FigureFiles
from bnlab.report.stats import METHODS

QUICK_BANNER = "QUICK SMOKE RUN — scaled down, not a reproduction"
RULE = (
    "Verdicts come from the 95% confidence interval of each effect over seeds: reproduced if "
    "it excludes zero in the claimed direction, not reproduced if it excludes zero in the "
    "opposite direction or lies within the claim's equivalence margin, inconclusive otherwise "
    "(and always with a single run). Divergence is a result: a run diverged when its training "
    "loss became non-finite, and every row counts its diverged seeds per network. A diverged "
    "run keeps the measures it still has (e.g. its final test accuracy, near chance); a seed "
    "whose measure is not finite for either network is left out of the interval and counted, "
    "and when more than half of the seeds are left out the verdict is inconclusive."
)
SCORECARD_COLUMNS = (
    "Claim",
    "Source",
    "Experiment",
    "Measured effect",
    "Source's number",
    "Verdict",
)


HOW_TO_READ = (RULE, METHODS)  # printed under the scorecard, in both report formats


def _freeze(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)  # frozen dataclasses normalize their own fields here


@dataclass(frozen=True)
class ReportFigure:
    """A figure in the report: the PNG that is embedded, its caption, and the SVG beside it."""

    png: Path
    caption: str
    svg: Path | None = None

    def __post_init__(self):
        _freeze(self, "png", Path(self.png))
        if self.svg is not None:
            _freeze(self, "svg", Path(self.svg))

    @classmethod
    def from_files(cls, files: FigureFiles, caption: str) -> ReportFigure:
        return cls(files.png, caption, files.svg)

    def link(self, report_dir: Path) -> str:
        """The PNG's path relative to the report's directory, with forward slashes."""
        return Path(os.path.relpath(self.png, report_dir)).as_posix()


@dataclass(frozen=True)
class Table:
    """A table of already-formatted cells, e.g. final accuracy per learning rate."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def __post_init__(self):
        _freeze(self, "columns", tuple(str(c) for c in self.columns))
        _freeze(self, "rows", tuple(tuple(str(c) for c in r) for r in self.rows))
        for i, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(
                    f"Table {self.title!r}: row {i} has {len(row)} cells, "
                    f"expected {len(self.columns)} (one per column)"
                )


@dataclass(frozen=True)
class Section:
    """One experiment: its protocol, where its data came from, its figures, tables and notes.

    `protocol` maps a field to its value ("steps" -> "50,000", "optimizer" -> "SGD, lr 0.5");
    values are shown with str(). `data_source` says what data was used, including any subset
    ("CIFAR-10: 5,000-image subset"). `notes` hold, e.g., how the protocol differs from a
    seed's whose number the scorecard shows.
    """

    title: str
    protocol: Mapping[str, object]
    data_source: str
    figures: Sequence[ReportFigure] = ()
    tables: Sequence[Table] = ()
    notes: Sequence[str] = ()
    wall_time_s: float | None = None  # shown when set: an experiment's first section has it

    def __post_init__(self):
        _freeze(
            self, "protocol", MappingProxyType({str(k): str(v) for k, v in self.protocol.items()})
        )
        for name in ("figures", "tables", "notes"):
            _freeze(self, name, tuple(getattr(self, name)))
        for fig in self.figures:
            if not isinstance(fig, ReportFigure):
                raise TypeError(
                    f"Section {self.title!r}: figures holds {type(fig).__name__}, "
                    "expected ReportFigure (use ReportFigure.from_files)"
                )


@dataclass(frozen=True)
class ReportMeta:
    """What the whole report states about how it was made."""

    title: str
    code_version: str  # e.g. "git 1a2b3c4 (dirty)"
    wall_time_s: float  # seconds, all experiments together
    quick: bool = False  # a --quick run: the report says so in a banner
    created: str = ""  # e.g. an ISO timestamp
    command: str = ""  # the command line that produced the results
    machine: str = ""  # where it ran: CPU, cores, torch version
    regenerate: str = ""  # the command that regenerates this report from scratch


def machine_description() -> str:
    """The CPU model, its core count and the torch version and threads: where numbers ran."""
    import torch  # only here: the report layer is otherwise plain numbers

    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, torch {torch.__version__}"
    )


def format_duration(seconds: float | None) -> str:
    """'4 min 12 s', '38.2 s', or 'not recorded'."""
    if seconds is None:
        return "not recorded"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def scorecard_cells(row: ScorecardRow) -> tuple[str, ...]:
    """One scorecard row as plain-text cells, in SCORECARD_COLUMNS order."""
    claim = row.claim
    effect = f"{row.effect_text} — {claim.measure}"
    extra = "; ".join(t for t in (row.divergence_text, row.note) if t)
    if extra:
        effect += f" ({extra})"
    return (
        claim.statement,
        claim.source,
        row.experiment,
        effect,
        row.reference,
        row.verdict.value,
    )


# ---------------------------------------------------------------- why a claim failed

NOT_REPRODUCED_TITLE = "Claims not reproduced: the most likely reason"
NOT_REPRODUCED_COLUMNS = ("Claim", "Setting", "Measured effect", "Most likely reason")
NO_EXPLANATION = "no tested explanation"


def not_reproduced_cells(scorecard: Sequence[ScorecardRow]) -> list[tuple[str, ...]]:
    """Every NOT_REPRODUCED row as plain-text cells, in NOT_REPRODUCED_COLUMNS order; a row
    without a reason says so (NO_EXPLANATION) rather than leaving the cell blank."""
    return [
        (row.claim.statement, row.experiment, row.effect_text, row.why or NO_EXPLANATION)
        for row in scorecard
        if row.verdict is Verdict.NOT_REPRODUCED
    ]


# ---------------------------------------------------------------- the compact claims matrix

# A mark of its own shape per verdict, so colour is never the only signal (and Markdown,
# which has no colour, still shows the verdict at a glance).
# Plain text marks (no emoji): every font has them.
VERDICT_MARKS = {
    Verdict.REPRODUCED: "✓",
    Verdict.NOT_REPRODUCED: "✗",
    Verdict.INCONCLUSIVE: "?",
}
MATRIX_LEGEND = (
    "✓ reproduced · ✗ not reproduced · ? inconclusive · blank: not measured in that "
    "setting. Each cell: the effect (the claim's network minus its comparison: BN minus "
    "the baseline in the reproductions) as mean ± the half-width of its "
    "95% CI over n seeds, and how many seeds diverged; the table below gives each row's "
    "measure, p-value and the source's number for that setting."
)


@dataclass(frozen=True)
class ClaimsMatrix:
    """The scorecard as claims x settings: `cells[(claim id, setting)]` holds that setting's
    rows for the claim (one, normally). Claims in `CLAIMS` order, settings as they come."""

    claims: tuple[Claim, ...]
    settings: tuple[str, ...]
    cells: Mapping[tuple[str, str], tuple[ScorecardRow, ...]]


def claims_matrix(scorecard: Sequence[ScorecardRow]) -> ClaimsMatrix:
    settings = tuple(dict.fromkeys(row.experiment for row in scorecard))
    measured = {row.claim.id for row in scorecard}
    known = [c for c in CLAIMS if c.id in measured]
    others = dict.fromkeys(row.claim for row in scorecard if row.claim.id not in CLAIMS_BY_ID)
    cells: dict[tuple[str, str], tuple[ScorecardRow, ...]] = {}
    for row in scorecard:
        key = (row.claim.id, row.experiment)
        cells[key] = (*cells.get(key, ()), row)
    return ClaimsMatrix((*known, *others), settings, MappingProxyType(cells))


def compact_effect(row: ScorecardRow) -> str:
    """'+3.20 ± 0.41 pp (n=5)', '+3.20 pp (n=1)', 'not measurable'; then '; diverged: no BN
    2/5' when seeds diverged."""
    est, claim = row.effect, row.claim
    if est.n == 0:
        text = "not measurable"
    else:
        spread = f" ± {est.half_width:.{claim.digits}f}" if est.has_ci else ""
        text = f"{est.mean:+.{claim.digits}f}{spread}{claim.unit} (n={est.n})"
    diverged = [f"{label} {k}/{row.seeds}" for label, k in row.diverged if k]
    if diverged:
        text += f"; diverged: {', '.join(diverged)}"
    return text


def matrix_cell(rows: Sequence[ScorecardRow]) -> str:
    """A matrix cell as plain text: each row's verdict mark and compact effect."""
    return " / ".join(f"{VERDICT_MARKS[r.verdict]} {compact_effect(r)}" for r in rows)
