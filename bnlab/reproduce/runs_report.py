"""`bnlab report DIR` on what `bnlab train` wrote: its runs grouped by setting, each group's
final metrics as mean ± 95% CI over its random seeds (the groups of `bnlab results`), and
each group's test-accuracy curve, as DIR/report.md and report.html.

No verdicts: a train directory declares no claims, so nothing here says which network is
better; `bnlab study` is where a comparison is declared and decided.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bnlab.engine.records import results_dirs
from bnlab.engine.results_table import records_with_settings
from bnlab.engine.store import DB_NAME, Store
from bnlab.report import ReportFigure, curve_band, write_report
from bnlab.report.document import FigureBlock, Heading, Page, Para, TableBlock
from bnlab.report.groups import METRICS, NOTE, Group, group_records
from bnlab.report.stats import Estimate
from bnlab.reproduce.common import MANIFEST

CURVE = "test_accuracy"
UNITS = {"test_accuracy": "fraction", "test_loss": "nats", "train_loss": "nats"}


def is_train_dir(root: Path) -> bool:
    """`root` holds `bnlab train` runs (a database, or several below it) and is not an
    experiment of `bnlab reproduce`."""
    root = Path(root)
    if (root / MANIFEST).is_file() or any(root.glob(f"*/{MANIFEST}")):
        return False
    return (root / DB_NAME).is_file() or any(root.glob(f"*/{DB_NAME}"))


def build_runs_report(root: Path) -> list[Path]:
    """Write root/report.md and report.html; returns the paths written."""
    root = Path(root)
    records = records_with_settings(root)
    keys, groups = group_records(records)
    members = _members_by_group(records, keys)
    blocks = [
        Heading(1, f"Runs in {root.name}"),
        Para(
            f"{len(records)} trained networks in {len(groups)} groups of identical settings "
            f"(the settings that differ: {', '.join(keys)}). {NOTE}. No claim was declared, so "
            "this page compares nothing (declare one with `bnlab study`)."
        ),
        Heading(2, "Final metrics per group"),
        _table(keys, groups),
    ]
    figure = _curves(root, groups, keys, members)
    if figure is not None:
        blocks += [Heading(2, "Test accuracy over training"), FigureBlock(figure)]
    return write_report(root, [Page("report", f"Runs in {root.name}", tuple(blocks))])


def _label(settings: dict, keys) -> str:
    return ", ".join(f"{k}={settings[k]}" for k in keys)


def _cell(est: Estimate | None, missing: int) -> str:
    if est is None:
        return "–"
    text = f"{est.mean:.4g} ± {est.half_width:.2g}" if est.has_ci else f"{est.mean:.4g}"
    return text + (f" ({missing} missing)" if missing else "")


def _table(keys, groups: list[Group]) -> TableBlock:
    columns = (
        "group",
        "n (seeds)",
        "steps",
        *(f"{m} ({UNITS[m]}, mean ± 95% CI)" for m in METRICS),
    )
    rows = []
    for g in groups:
        low, high = g.steps
        steps = str(low) if low == high else f"{low}–{high}"
        cells = [_cell(g.estimates[m], g.missing[m]) for m in METRICS]
        rows.append((_label(g.settings, keys), str(g.n), steps, *cells))
    return TableBlock(columns, tuple(rows), "Final metrics per group")


def _members_by_group(records, keys) -> dict[str, list[tuple[str, str, int]]]:
    """group label -> its members as (results dir, run id, member index)."""
    out: dict[str, list[tuple[str, str, int]]] = {}
    for r in records:
        label = _label(r["settings"], keys)
        out.setdefault(label, []).append((r["dir"], r["run_id"], r["member"]))
    return out


def _curves(root: Path, groups, keys, members) -> ReportFigure | None:
    """Each group's test accuracy (%) over training: mean and 95% CI band over its seeds;
    None where the runs have no evaluations or their groups' steps differ."""
    dirs = {d.relative_to(root).as_posix(): d for d in results_dirs(root)}
    curves, steps = {}, None
    for g in groups:
        label = _label(g.settings, keys)
        rows = []
        for rel, run_id, member in members[label]:
            with Store(dirs[rel], "r") as store:
                x, values = store.metric_matrix(run_id, CURVE)  # (T,), (K, T)
            if x.size == 0 or (steps is not None and not np.array_equal(x, steps)):
                return None
            steps = x
            rows.append(values[member] * 100)
        curves[label] = np.stack(rows)  # (n, T)
    if steps is None:
        return None
    files = curve_band(
        root / "figures" / "test_accuracy",
        steps,
        curves,
        xlabel="training step (updates)",
        ylabel="test accuracy (%)",
        hint="Each line is one group's mean over its seeds; the band is its 95% CI.",
    )
    return ReportFigure.from_files(files, "Test accuracy per group: mean and 95% CI over seeds")
