"""The experiment pages and the appendix of the layered report.

An experiment page holds everything needed to audit its verdicts: the rules as recorded
before the runs, every row (primary, secondary, exploratory) with its test, the diagnostics
on every row of a claim, then each setting's protocol, data source, figures, tables and
notes. The appendix defines the measures and the words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bnlab.report import cells
from bnlab.report.document import (
    Block,
    Bullets,
    FigureBlock,
    Heading,
    Page,
    Para,
    link,
    table,
)
from bnlab.report.rules import TESTS
from bnlab.report.sections import QUICK_BANNER, Section, format_duration
from bnlab.report.verdicts import ALPHA, Row


@dataclass(frozen=True)
class ExperimentPage:
    name: str
    title: str
    sections: tuple[Section, ...]
    rows: tuple[Row, ...]  # decided (after the families' multiplicity control)
    wall_time_s: float | None
    quick: bool = False
    registered: str = ""  # when its rules were recorded, and its first run


def _rows_table(rows: Sequence[Row]):
    body = [
        (
            r.claim.statement,
            cells.setting_label(r),
            r.role.value,
            cells.effect_cell(r),
            cells.prediction_cell(r.rule),
            cells.n_cell(r),
            cells.test_cell(r),
            cells.verdict_cell(r),
        )
        for r in rows
    ]
    columns = ("claim", "setting", "role", "effect [95% CI]", "claim predicts", "n", "test")
    return table((*columns, "verdict"), body, "Every row of this experiment")


def _diagnostics_table(rows: Sequence[Row]):
    body = []
    for r in rows:
        for d in r.diagnostics:
            agrees = {True: "agrees", False: "disagrees", None: "undecided"}[d.agrees]
            body.append((r.claim.statement, r.experiment, cells.verdict_cell(r), d.text, agrees))
    columns = ("claim", "setting", "verdict", "diagnostic (exploratory)", "with the claim")
    return table(columns, body, "Diagnostics, on every row of their claim") if body else None


def _rules_table(rows: Sequence[Row]):
    body = [
        (
            r.rule.id,
            r.rule.measure.text,
            r.rule.scale.value,
            f"{r.rule.margin:.3g}{r.rule.unit}",
            TESTS[r.claim.direction].value,
            "; ".join(g.text for g in r.rule.gates) or "none",
            r.rule.seeds_text,
            r.rule.role.value,
            r.rule.fingerprint(),
            cells.registration_cell(r),
        )
        for r in rows
    ]
    columns = ("rule", "measure", "scale", "margin", "test", "gates", "seeds", "role")
    return table((*columns, "fingerprint", "recorded"), body, "The pre-registered rules")


def _section_blocks(section: Section) -> list[Block]:
    blocks: list[Block] = [Heading(2, section.title)]
    blocks.append(Para(f"**Data source:** {section.data_source}"))
    if section.wall_time_s is not None:
        blocks.append(Para(f"**Wall time:** {format_duration(section.wall_time_s)}"))
    if section.protocol:
        rows = list(section.protocol.items())
        blocks.append(table(("field", "value"), rows, "Protocol (from the stored configs)"))
    blocks += [FigureBlock(f) for f in section.figures]
    blocks += [table(t.columns, t.rows, t.title) for t in section.tables]
    if section.notes:
        blocks.append(Bullets(tuple(section.notes)))
    return blocks


def experiment_page(exp: ExperimentPage) -> Page:
    blocks: list[Block] = [Heading(1, exp.title)]
    if exp.quick:
        blocks.append(Para(QUICK_BANNER, "banner"))
    nav = f"{link('← summary', 'report')} · {link('appendix', 'appendix')}"
    blocks.append(Para(nav, "meta"))
    blocks.append(Para(f"**Wall time:** {format_duration(exp.wall_time_s)}", "meta"))
    if exp.registered:
        blocks.append(Para(f"**Rules recorded:** {exp.registered}", "meta"))
    if exp.rows:
        blocks += [Heading(2, "Verdicts"), _rows_table(exp.rows), Para(cells.LEGEND)]
        diagnostics = _diagnostics_table(exp.rows)
        if diagnostics is not None:
            blocks += [Heading(2, "Diagnostics"), diagnostics]
        blocks += [Heading(2, "Pre-registered rules"), _rules_table(exp.rows)]
    for section in exp.sections:
        blocks += _section_blocks(section)
    return Page(exp.name, exp.title, tuple(blocks))


GLOSSARY = (
    (
        "random seed",
        "the integer that fixes one network's initialization and data order; n "
        "counts random seeds, and BN and its comparison share each seed (paired)",
    ),
    (
        "source project",
        "one of the course projects bnlab grew from (shared/seeds/); never called a seed",
    ),
    (
        "setting",
        "one trained configuration a claim is measured in (network, data, learning "
        "rate, batch size)",
    ),
    (
        "stack, member",
        "the engine trains the networks of one setting that differ only by "
        "seed (or learning rate) as one stacked computation; each network is a member, and "
        "members never interact",
    ),
    (
        "probed step",
        "a training step at which the loss landscape or ICS was measured, between "
        "two updates, without changing the training",
    ),
    (
        "gate",
        "a condition the data must meet before a setting can answer a claim (both "
        "networks train, no seed diverged...); a failed gate gives 'not measurable'",
    ),
    (
        "diverged",
        "the training loss became non-finite (or, in the learning-rate sweep, "
        "returned to chance after learning); counted and shown, never averaged in",
    ),
    ("family", "the claims of one source: Holm's correction runs within a family"),
    (
        "primary / secondary / exploratory",
        "a primary row decides a counted verdict; a "
        "secondary row is a further setting declared before the runs, shown but not counted; "
        "an exploratory row or diagnostic was added after the data and is never a verdict",
    ),
    (
        "log2 ratio",
        "log2(treatment / comparison) per seed: −1 halves, +1 doubles; a margin of "
        "0.32 is a 25% change",
    ),
)

METHOD = (
    f"Each row's per-seed effects d_1..d_n are tested with two one-sided paired t-tests at "
    f"level {ALPHA} (the level of the two-sided 95% intervals shown): one whose rejection "
    "reproduces the claim (μ > 0 for 'higher'; TOST |μ| < m for 'similar'; μ > −m for "
    "'similar or higher'), one whose rejection refutes it (μ < m for 'higher': the effect is "
    "negligible or reversed; |μ| > m for 'similar'; μ < −m for 'similar or higher'). The "
    "smaller of the two p-values decides the row; within each source's family of primary "
    "rows, Holm's step-down correction adjusts them (family-wise error 5%), and "
    "Benjamini-Hochberg q-values are shown beside (scipy.stats, statsmodels). A missing "
    "value for any seed makes the row not measurable rather than averaging the survivors. "
    "Means are shown with Student t intervals; an interval that would leave a measure's "
    "range (an accuracy above 100%) is a bootstrap interval instead."
)


def appendix_page(rows: Sequence[Row]) -> Page:
    measures = {}
    for r in rows:
        measures.setdefault(r.rule.measure.id, r.rule)
    body = [
        (m, rule.measure.text, rule.scale.value, "yes" if rule.measure.scale_dependent else "no")
        for m, rule in sorted(measures.items())
    ]
    gates = {g.id: g.text for r in rows for g in r.rule.gates}
    blocks: list[Block] = [
        Heading(1, "Appendix: measures, tests and words"),
        Para(link("← summary", "report"), "meta"),
        Heading(2, "Measures"),
        table(("measure", "definition", "scale of the effect", "scale-dependent"), body),
        Heading(2, "Tests and multiplicity"),
        Para(METHOD),
        Heading(2, "Gates"),
        table(("gate", "condition"), sorted(gates.items())),
        Heading(2, "Glossary"),
        table(("word", "meaning"), GLOSSARY),
    ]
    return Page("appendix", "Appendix", tuple(blocks))
