"""The study's page section: its protocol, data, curves, final numbers per variant, the
control check (does each variant train?) and notes, from the stored runs
(`bnlab.study.analyze`). `bnlab.study.report` puts it on the study's page.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bnlab.engine import replay
from bnlab.report import ReportFigure, Section, Table, curve_band
from bnlab.report.stats import format_estimate, mean_ci
from bnlab.study.analyze import StudyResults
from bnlab.study.controls import Control
from bnlab.study.rules import CHANCE_POINTS

__all__ = ["study_section"]

CURVE_POINTS = 50  # training curves are averaged into at most this many bins
# How each metric is shown: (factor, unit, digits). Accuracies as percentages.
SHOWN = {
    "test_accuracy": (100.0, "%", 2),
    "test_loss": (1.0, "", 4),
    "train_loss": (1.0, "", 4),
}


def study_section(
    results: StudyResults, out_dir: Path, controls: dict[str, Control], wall: float
) -> Section:
    decl = results.declaration
    data = decl["data"]
    return Section(
        title=f"Study: {decl['study']}",
        protocol=_protocol(results, out_dir),
        data_source=data["source"] + (f" ({data['note']})" if data["note"] else ""),
        figures=_figures(results, out_dir / "figures"),
        tables=(_finals(results), controls_table(controls)),
        notes=_notes(results, controls),
        wall_time_s=wall,
    )


def _protocol(results: StudyResults, out_dir: Path) -> dict[str, str]:
    decl = results.declaration
    opt = decl["optimizer"]
    last = decl["seed"] + decl["seeds"] - 1
    schedule = opt["schedule"] + (f", {opt['warmup']} warm-up steps" if opt["warmup"] else "")
    protocol = {
        "model": f"{decl['factory']}"
        + (f" in {decl['file']}" if decl["file"] else "")
        + " (built per seed; torch's RNG seeded from the seed)",
        "data": f"{decl['data']['train']:,} train / {decl['data']['test']:,} test, "
        f"{decl['data']['classes']} classes, input {tuple(decl['data']['shape'])}",
        "optimizer": f"{opt['name']}, lr {opt['lr']:g}, momentum {opt['momentum']:g}, "
        f"weight decay {opt['weight_decay']:g}; schedule {schedule}",
        "steps": f"{decl['steps']:,} per model; evaluation every {decl['eval_every']:,}",
        "seeds": f"{decl['seeds']} per variant: {decl['seed']} .. {last}",
    }
    for name, v in decl["variants"].items():
        how = "vmapped" if v["mode"] == "vmapped" else f"one at a time: {v['reason']}"
        protocol[f"variant {name}"] = (
            f"{v['transform'] or 'the model as built'}; lr {v['lr']:g}, batch {v['batch_size']}"
            f"{', inputs standardized' if v['standardize'] else ''}; "
            f"{v['parameters']:,} parameters; trained {how}"
        )
    protocol["code version"] = ", ".join(
        sorted({r.code_version for r in results.variants.values()})
    )
    records = replay.read_records(out_dir)
    if records:
        protocol["replay"] = replay.summary(records)
    return protocol


def _binned(steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T,), (K, T) -> at most CURVE_POINTS bins of consecutive steps, averaged."""
    bins = np.array_split(np.arange(steps.size), min(CURVE_POINTS, max(1, steps.size)))
    x = np.array([steps[b].mean() for b in bins])
    with np.errstate(invalid="ignore"):
        y = np.stack([values[:, b].mean(axis=1) for b in bins], axis=1)  # (K, bins)
    return x, y


def _figures(results: StudyResults, figures: Path) -> tuple[ReportFigure, ...]:
    trained = {n: v for n, v in results.variants.items() if v.train_steps.size}
    if not trained:
        return ()
    any_run = next(iter(trained.values()))
    x, _ = _binned(any_run.train_steps, any_run.train["train_loss"])
    loss = {n: _binned(v.train_steps, v.train["train_loss"])[1] for n, v in trained.items()}
    curves = [
        ReportFigure.from_files(
            curve_band(
                figures / "train_loss",
                x,
                loss,
                xlabel="training step (updates)",
                ylabel="training loss (nats)",
            ),
            "Training loss (cross-entropy, averaged over bins of steps): mean over seeds, 95% CI "
            "band.",
        )
    ]
    tested = {n: v for n, v in trained.items() if v.eval_steps.size}
    if tested:
        first = next(iter(tested.values()))
        acc = {n: 100 * v.test["test_accuracy"] for n, v in tested.items()}
        files = curve_band(
            figures / "test_accuracy",
            first.eval_steps,
            acc,
            xlabel="training step (updates)",
            ylabel="test accuracy (%)",
        )
        curves.append(
            ReportFigure.from_files(
                files, "Test accuracy (eval mode): mean over seeds, 95% CI band."
            )
        )
    return tuple(curves)


def _finals(results: StudyResults) -> Table:
    metrics = ("test_accuracy", "test_loss", "train_loss")
    rows = []
    for name, v in results.variants.items():
        cells = [name]
        for metric in metrics:
            scale, unit, digits = SHOWN[metric]
            finite = v.final(metric)[np.isfinite(v.final(metric))]
            est = mean_ci(finite) if finite.size else None
            cells.append("—" if est is None else format_estimate(est, digits, scale, unit))
        cells.append(f"{int(v.diverged.sum())}/{len(v.seeds)}")
        rows.append(tuple(cells))
    columns = ("variant", "test accuracy", "test loss", "training loss (last 10%)", "diverged")
    return Table("Final values per variant: mean ± 95% CI over seeds", columns, tuple(rows))


def controls_table(controls: dict[str, Control]) -> Table:
    rows = []
    for c in controls.values():
        verdict = "trains" if c.trains else f"FLAGGED: {c.reason}"
        rows.append(
            (
                c.variant,
                f"{c.accuracy:.1f}%",
                f"{c.chance:.1f}%",
                f"{c.initial_loss:.4g}",
                f"{c.final_loss:.4g}",
                verdict,
            )
        )
    columns = ("variant", "final training accuracy", "chance", "first loss", "final loss")
    title = (
        f"Control: does each variant train? (means over seeds; flagged within "
        f"{CHANCE_POINTS:g} points of chance, or a final loss not below the first)"
    )
    return Table(title, (*columns, "control"), tuple(rows))


def _notes(results: StudyResults, controls: dict[str, Control]) -> tuple[str, ...]:
    notes = [
        "The claims judged here are the ones stored with the runs: `bnlab study` records "
        "their decision rules in preregistration.json before it creates the first run (the "
        "rules table shows when, and whether a rule changed since), and writes the claims "
        "into every run's config in the results database before any run trains a step (and "
        "into study.json). A --resume with any other claim, setting, model or data is "
        "refused, so the rule could not change after the start.",
        "An effect is the claim's variant minus its comparison variant, paired by seed: "
        "member k of every variant has seed k (its initialization stream and data order).",
    ]
    flagged = [c.variant for c in controls.values() if not c.trains]
    if flagged:
        notes.append(
            f"CONTROL: {', '.join(flagged)} did not train (see the control table); every "
            "claim comparing against it is not measurable."
        )
    unfinished = [n for n, v in results.variants.items() if v.status != "done"]
    missing = [n for n in results.declaration["variants"] if n not in results.variants]
    if unfinished or missing:
        notes.append(f"NOT FINISHED: {', '.join(unfinished + missing)} (resume with --resume).")
    return tuple(notes)
