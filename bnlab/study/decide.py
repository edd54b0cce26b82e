"""A study's claims decided: each claim's pre-registered rule (`bnlab.study.rules`) measured on
the stored runs (`bnlab.report.verdicts.measure_rule`), gated by the control check
(`bnlab.study.controls`), then decided together with Holm's correction over the study's
claims (`decide_families`: a study's claims are one family). Each row carries its
registration status (`bnlab.report.registration`): a rule not on record before the first
run, or changed since, is exploratory and not counted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from bnlab.engine.store import first_run_time
from bnlab.report import Row, decide_families, measure_rule, registration
from bnlab.study.analyze import StudyResults
from bnlab.study.controls import Control, control, gate_failed
from bnlab.study.rules import FACTORS, study_rules

__all__ = ["Decided", "decide"]


@dataclass(frozen=True)
class Decided:
    rows: list[Row]  # one per claim whose variants both have runs, decided as one family
    controls: dict[str, Control]  # per variant with a run
    registered: str  # when the rules were recorded, and when the first run started


def decide(results: StudyResults, out_dir: str | Path) -> Decided:
    """Every registered claim (the stored ones, not the study file's) of `results`."""
    decl = results.declaration
    controls = {n: control(v, decl["data"]["classes"]) for n, v in results.variants.items()}
    record = registration.read(Path(out_dir))
    first = first_run_time(out_dir)
    first_text = None if first is None else registration.format_time(first)
    rows = []
    for claim, rule in zip(decl["claims"], study_rules(decl), strict=True):
        a, b = results.variants.get(claim["variant"]), results.variants.get(claim["than"])
        if a is None or b is None:
            continue  # a variant not trained yet: no row rather than a guess
        metric = claim["metric"]
        factor = FACTORS.get(metric, 1.0)  # accuracies: fractions -> %
        row = measure_rule(
            rule,
            a.final(metric) * factor,
            b.final(metric) * factor,
            gate_failed=gate_failed(controls, a.name, b.name),
            diverged=((a.name, int(a.diverged.sum())), (b.name, int(b.diverged.sum()))),
        )
        rows.append(replace(row, registration=registration.status(record, rule, first_text)))
    return Decided(decide_families(rows), controls, _registered_line(record, first_text))


def _registered_line(record: dict, first_text: str | None) -> str:
    if not record:
        return "no record: the rules were not registered before the runs (exploratory)"
    commits = sorted({e["commit"] for e in record.values()})
    when = sorted(e["registered"] for e in record.values())
    return f"{len(record)} rules at {', '.join(commits)} ({when[0]}); first run {first_text}"
