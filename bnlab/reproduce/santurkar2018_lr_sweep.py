"""One section across the learning rates of a Santurkar sweep (one directory per rate).

Each rate is a setting of its own with its own rows; the primary rate was fixed before the
runs (`santurkar2018_settings`), the others are secondary. This section shows the trend:
each landscape measure's log2(BN / no BN) against the rate over every probed step, and a
table of final accuracy, diverged seeds (with their Clopper-Pearson intervals: at a rate
where seeds diverge, the counts are the outcome) and the steps where both networks train.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bnlab.report import ReportFigure, Role, Section, Table, grid_points
from bnlab.reproduce.common import (
    NORM_LABELS,
    Results,
    data_source,
    describe_runs,
    stored_configs,
)
from bnlab.reproduce.santurkar2018_landscape import landscape_values
from bnlab.reproduce.santurkar2018_sections import cell
from bnlab.reproduce.santurkar2018_settings import Setting
from bnlab.reproduce.santurkar2018_steps import (
    LANDSCAPE_ORDER,
    accuracy_at,
    divergence_count,
    every_step,
    trained_mask,
)
from bnlab.reproduce.scoring import diverged

SWEEP_LABELS = {
    "loss_variation": "loss variation",
    "grad_change_max": "ℓ2 gradient change",
    "relative": "gradient change / ||g||",
    "beta_smoothness": "effective β-smoothness",
}


def _read(directory: Path, setting: Setting):
    """(lr, {measure: (seeds,) log2 ratios over every probed step}, table row, the stored
    configs)."""
    with Results(directory) as res:
        lr = res.config("batch")["optim"]["lr"]
        probed, _ = res.metric("batch", "landscape/loss_variation")
        values = landscape_values(res)
        steps = every_step(values["loss"]["batch"].shape[0], probed)
        effects = {}
        for metric in SWEEP_LABELS:
            bn, base = steps.means(values[metric]["batch"], values[metric]["none"])
            with np.errstate(divide="ignore", invalid="ignore"):
                effects[metric] = np.log2(bn / base)  # (seeds,); NaN: diverged
        last = [accuracy_at(res, n, probed[-1:])[:, 0] for n in LANDSCAPE_ORDER]
        used = trained_mask(res, probed)
        row = (
            f"{lr:g}",
            setting.role.value,
            *(cell(v) for v in last),
            *(divergence_count(diverged(res, n)) for n in LANDSCAPE_ORDER),
            f"{int(used.sum())} of {used.size}",
        )
        return lr, effects, row, stored_configs(res)


def lr_sweep_section(
    title: str, name: str, settings: Sequence[Setting], dirs: Sequence[Path]
) -> Section:
    read = sorted((_read(d, s) for s, d in zip(settings, dirs, strict=True)), key=lambda r: r[0])
    lrs = [r[0] for r in read]
    # measure label: (seeds, rates)
    groups = {label: np.stack([r[1][m] for r in read], 1) for m, label in SWEEP_LABELS.items()}
    out = Path(dirs[0]).parent / "figures" / "lr-sweep"
    files = grid_points(
        out / f"{name}_lr_sweep",
        lrs,
        groups,
        xlabel="learning rate (SGD step size, both networks, log scale)",
        ylabel="log2(BN / no BN) over every probed step (log2 units)",
        hint="Below 0 is smaller with BN: compare each measure's points across the rates, "
        "and the ℓ2 gradient change with the gradient change / ||g||.",
    )
    figure = ReportFigure.from_files(
        files,
        files.caption(
            f"{name}: BN/no-BN ratio of each landscape measure against the learning rate, "
            "every probed step"
        ),
    )
    labels = [NORM_LABELS[n] for n in LANDSCAPE_ORDER]
    table = Table(
        "Learning-rate sweep: final test accuracy (%), diverged seeds and the probed steps "
        "where both networks train",
        (
            "lr",
            "role",
            *(f"{label} accuracy" for label in labels),
            *(f"{label} diverged" for label in labels),
            "steps where both train",
        ),
        [r[2] for r in read],
    )
    primary = [s for s in settings if s.role is Role.PRIMARY]
    notes = [
        f"The primary rate was fixed before the runs: {primary[0].why}."
        if primary
        else "No rate of this sweep is primary.",
        "Every rate is a setting of its own above, with its own rows; the declared rows use "
        "the probed steps where both networks train, the exploratory ones every step and "
        "matched training loss. At a rate where seeds diverged, a diverged seed has no value, "
        "so the rows there are not measurable and the divergence counts are the outcome.",
    ]
    configs = [c for r in read for c in r[3]]
    protocol = {
        "settings": ", ".join(Path(d).name for d in dirs) + " (sections above)",
        **describe_runs(configs),
    }
    return Section(
        f"{title} — learning-rate sweep",
        protocol,
        data_source(configs[0]["data"]["dataset"]),
        [figure],
        [table],
        notes,
        configs=configs,
    )
