"""The summary page (`report`): the bottom line per source, the verdict counts, one picture of
every verdict, the primary verdicts, what would decide the undecided ones, and where to
read more. A reader sees the answer first.

Every number on it comes from the rows; the sentences about what each source claims are
fixed text with no numbers in them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bnlab.report import cells, planning
from bnlab.report.claims import FAMILIES, PAPERS, PROJECTS
from bnlab.report.document import Bullets, FigureBlock, Heading, Page, Para, link, table
from bnlab.report.rules import Role
from bnlab.report.sections import QUICK_BANNER, ReportFigure, ReportMeta, format_duration
from bnlab.report.verdicts import Row, Verdict, counts

# What each source claims, in one sentence (no numbers: those are measured below).
CLAIMS_IN_BRIEF = {
    "Ioffe & Szegedy 2015": "BN lets a network train in fewer steps to a higher accuracy, at "
    "higher learning rates and with less care for the initialization, keeps each layer's "
    "input distribution stable, and belongs before the nonlinearity.",
    "Santurkar et al. 2018": "BN does not help by reducing internal covariate shift (it does "
    "not reduce it, and BN with injected noise trains about as well); it helps by making the "
    "loss landscape smoother: the loss and its gradient change less along the gradient.",
    "Wu & He 2018": "BN's error grows as the batch shrinks while GroupNorm's stays flat, so at "
    "a batch of 2 GroupNorm beats BN.",
    "Wu & Johnson 2021": "Precise population statistics evaluate at least as well as the EMA; "
    "with small batches, normalizing a test batch by its own statistics beats population "
    "statistics.",
    "Ioffe 2017": "Batch Renormalization trains better than BN with small batches.",
    PROJECTS: "The course projects bnlab grew from (shared/seeds/) expect smoother loss "
    "curves and more stable gradient norms with BN; their other claims repeat the papers' "
    "and are counted there.",
}
ORDER = {v: i for i, v in enumerate(Verdict)}


@dataclass(frozen=True)
class ExperimentLink:
    """What the summary says of one experiment page."""

    name: str
    title: str
    wall_time_s: float | None


def _claim_phrase(rows: Sequence[Row]) -> str:
    """'BN reaches higher final test accuracy: held in 5 of 7 settings, not in cifar10-cnn
    (-2.1 pp), 1 undecided' for one claim's primary rows."""
    m = len(rows)
    held = sum(r.verdict is Verdict.REPRODUCED for r in rows)
    parts = [f"held in {held} of {m} setting{'s' if m > 1 else ''}"]
    failed = [r for r in rows if r.verdict is Verdict.NOT_REPRODUCED]
    if failed:
        where = ", ".join(f"{r.experiment} ({cells.effect_cell(r).split(' [')[0]})" for r in failed)
        parts.append(f"not in {where}")
    for verdict, word in (
        (Verdict.INCONCLUSIVE, "undecided"),
        (Verdict.NOT_MEASURABLE, "not measurable"),
    ):
        k = sum(r.verdict is verdict for r in rows)
        if k:
            parts.append(f"{k} {word}")
    return f"{rows[0].claim.statement.rstrip('.')}: {', '.join(parts)}"


def _disagreements(rows: Sequence[Row]) -> str:
    """The post-hoc diagnostics that disagree with their row's verdict, on both sides: one
    pointing the claim's way where it did not hold, one pointing against it where it held.
    The same diagnostic on two claims of one setting is named once."""
    sides = {Verdict.NOT_REPRODUCED: ("did not hold", True), Verdict.REPRODUCED: ("held", False)}
    parts = []
    for verdict, (word, points) in sides.items():
        found = dict.fromkeys(
            f"in {row.experiment}, {d.text}"
            for row in rows
            if row.verdict is verdict
            for d in row.diagnostics
            if d.agrees is points
        )
        if found:
            way = "the claim's way" if points else "against the claim"
            parts.append(f"where it {word}, pointing {way}: {'; '.join(found)}")
    return "; ".join(parts)


def _diagnostics_sentence(rows: Sequence[Row]) -> str:
    """What the rows' post-hoc diagnostics say of the verdicts, ✓ and ✗ alike (they change
    none); empty when there is nothing to say."""
    checked = [r for r in rows if r.diagnostics]
    if not checked:
        failed = any(r.verdict is Verdict.NOT_REPRODUCED for r in rows)
        return "No tested explanation for what did not hold." if failed else ""
    where = f"run on {len(checked)} of {len(rows)} rows, passes and failures alike"
    disagree = _disagreements(checked)
    if not disagree:
        return f"Post-hoc diagnostics ({where}) disagree with no verdict."
    return (
        f"Post-hoc diagnostics ({where}; exploratory, they change no verdict) "
        f"disagree with a verdict {disagree}."
    )


def bottom_line(family: str, rows: Sequence[Row]) -> str:
    """Two or three sentences: what `family` claims, what held where we measured it and what
    did not, and where the rows' post-hoc diagnostics disagree with a verdict, either way."""
    primary = [r for r in rows if r.claim.family == family and r.counted]
    if not primary:
        others = sum(r.claim.family == family for r in rows)
        extra = f" ({others} rows shown as exploratory)" if others else ""
        return f"{CLAIMS_IN_BRIEF[family]} No primary verdict in this report{extra}."
    by_claim: dict[str, list[Row]] = {}
    for row in primary:
        by_claim.setdefault(row.claim.id, []).append(row)
    measured = "; ".join(_claim_phrase(group) for group in by_claim.values())
    parts = [CLAIMS_IN_BRIEF[family], f"We measured: {measured}."]
    diagnostics = _diagnostics_sentence(primary)
    if diagnostics:
        parts.append(diagnostics)
    return " ".join(parts)


def counts_table(rows: Sequence[Row]):
    """Verdict counts of the primary rows, paper and project claims apart, after Holm (the
    verdicts), after Benjamini-Hochberg and unadjusted."""
    out = []
    for label, families in (("paper claims", PAPERS), ("project claims", (PROJECTS,))):
        group = [r for r in rows if r.claim.family in families]
        for adjust, name in (("holm", "Holm (the verdicts)"), ("bh", "BH"), ("none", "none")):
            tally = counts(group, adjust)
            out.append((label, name, *(tally[v] for v in Verdict), sum(tally.values())))
    columns = ("claims", "multiplicity", *(f"{cells.MARKS[v]} {v.value}" for v in Verdict))
    return table((*columns, "rows"), out, "Verdict counts, primary rows")


def primary_table(rows: Sequence[Row], pages: set[str]):
    """Every counted row; its setting links to its experiment's page (in `pages`)."""
    body = []
    for row in sorted(
        (r for r in rows if r.counted),
        key=lambda r: (FAMILIES.index(r.claim.family), r.claim.id, r.experiment),
    ):
        body.append(
            (
                row.claim.statement,
                _setting_link(row, pages),
                cells.effect_cell(row),
                cells.prediction_cell(row.rule),
                cells.n_cell(row),
                cells.test_cell(row),
                cells.verdict_cell(row),
            )
        )
    columns = ("claim", "setting", "effect [95% CI]", "claim predicts", "n", "test", "verdict")
    return table(columns, body, "Every primary verdict")


def _setting_link(row: Row, pages: set[str]) -> str:
    """The row's setting, linked to its experiment's page where that page is in `pages`."""
    page = row.experiment.split("/")[0]
    label = cells.setting_label(row)
    return link(label, page) if page in pages else label


HOW_TO_READ = (
    "Each row's rule (measure, scale, margin, test, gates, seeds) was fixed in code and "
    "recorded before its runs; each experiment page shows the record. An effect is the "
    "treatment (usually BN) minus its comparison, paired by random seed, or their log2 ratio "
    "for measures whose size depends on the setting. A row is decided by two one-sided "
    "paired t-tests (one for the claim, one against it; TOST for 'similar'), and Holm's "
    "correction within each source's claims keeps the chance of any false verdict in that "
    "family at 5%. Secondary settings and anything added after the data are shown on the "
    "experiment pages and never counted. Definitions, tests and a glossary: "
    + link("appendix", "appendix")
    + "."
)


def summary_page(
    meta: ReportMeta,
    rows: Sequence[Row],
    experiments: Sequence[ExperimentLink],
    forest: ReportFigure | None,
    pending: Sequence[str] = (),
) -> Page:
    """The first page; `pending` names the registered experiments not in this report."""
    blocks = [Heading(1, meta.title)]
    if meta.quick:
        blocks.append(Para(QUICK_BANNER, "banner"))
    if pending:
        blocks.append(Para(coverage(len(experiments), pending), "banner"))
    blocks += [Para(text, "meta") for text in header_facts(meta)]
    blocks.append(Heading(2, "Bottom line"))
    for family in FAMILIES:
        label = f"{family} (the course projects bnlab grew from)" if family == PROJECTS else family
        blocks += [Heading(3, label), Para(bottom_line(family, rows))]
    blocks += [Heading(2, "Verdicts"), counts_table(rows), Para(cells.LEGEND)]
    if forest is not None:
        blocks.append(FigureBlock(forest))
    pages = {e.name for e in experiments}
    blocks.append(primary_table(rows, pages))
    undecided = planning.undecided_table(rows, lambda r: _setting_link(r, pages))
    if undecided is not None:
        blocks += [undecided, Para(planning.undecided_sentence(rows) + " " + planning.EXPLAINED)]
    blocks += [Heading(2, "How to read this"), Para(HOW_TO_READ)]
    replicated = confirmation(rows)
    if replicated:
        blocks.append(Para(replicated))
    blocks.append(Heading(2, "Experiments"))
    items = [
        f"{link(e.name, e.name)}: {e.title} ({format_duration(e.wall_time_s)})" for e in experiments
    ]
    blocks.append(Bullets(tuple(items)))
    return Page("report", meta.title, tuple(blocks))


def confirmation(rows: Sequence[Row]) -> str:
    """The design of the rows run on seeds that do not start at 0 (a confirmatory replication
    of rows an earlier run left undecided), or '' if there are none."""
    found = [r for r in rows if r.rule.first_seed and r.rule.role is Role.PRIMARY]
    if not found:
        return ""
    settings = ", ".join(dict.fromkeys(f"{r.experiment} (n = {r.rule.seeds})" for r in found))
    first = sorted({r.rule.first_seed for r in found})
    return (
        f"**A confirmatory replication.** Primary rows from runs on new seeds: {len(found)} "
        f"(from seed {', '.join(map(str, first))}): {settings}. They were registered before "
        "those runs because an earlier full run (seeds from 0) left a primary verdict in each "
        "of these settings inconclusive, with n from its planning table; they replace that "
        "run's rows and are not pooled with them. Every other row's seeds start at 0."
    )


def coverage(reported: int, pending: Sequence[str]) -> str:
    """One sentence: how many of the registered experiments this report covers."""
    return (
        f"Partial report: {reported} of {reported + len(pending)} experiments. Not run yet, "
        f"so without a verdict here: {', '.join(pending)}. The multiplicity corrections "
        "(Holm, BH) count only the rows shown."
    )


def header_facts(meta: ReportMeta) -> list[str]:
    """One line each: code version, machine, wall time, the command that regenerates it."""
    facts = [
        f"**Code version:** {meta.code_version}",
        f"**Machine:** {meta.machine}" if meta.machine else "",
        f"**Wall time:** {format_duration(meta.wall_time_s)}, measured end to end"
        + (
            f" (including {meta.carried} experiment(s) read back from their records, "
            "each with its end-to-end time measured when it ran)"
            if meta.carried
            else ""
        ),
        f"**Regenerate:** `{meta.regenerate}`" if meta.regenerate else "",
    ]
    return [f for f in facts if f]
