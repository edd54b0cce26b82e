"""The noise-strength sweep of noisy BN: BN + noise trained again with every noise parameter
scaled down (`santurkar2018.NOISE_SCALES`), read back next to the `vgg` setting's three
networks (scale 1). It tests one explanation of why noisy BN trains worse than BN (our
noise's strength, `noisy_bn_why`); the claims stay scored at scale 1.

Accuracies are final test accuracies in percent, (seeds,) per network, member k of every
stack sharing seed k, so differences are paired by seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bnlab.report import ReportFigure, Table, grid_points
from bnlab.reproduce.common import NORM_LABELS, Results
from bnlab.reproduce.scoring import final_accuracy, fmt


@dataclass(frozen=True)
class NoiseSweep:
    """Final test accuracy (%) of BN + noise at each noise scale, and of BN and no BN."""

    scales: tuple[float, ...]  # ascending, 1.0 (the scored setting) last
    noisy: tuple[np.ndarray, ...]  # (seeds,) per scale
    bn: np.ndarray  # (seeds,)
    none: np.ndarray  # (seeds,)

    def at(self, scale: float) -> np.ndarray:
        return self.noisy[self.scales.index(scale)]


def read_sweep(res: Results, dirs: Sequence[Path]) -> NoiseSweep:
    """The sweep from the scored setting's results `res` (scale 1) and the sweep's
    directories `dirs`; a directory's scale is its noise std's maximum over the scored one's."""
    full = res.config("batch-noisy")["model"]["norm"]["batch_noisy"]["std_max"]
    found = {1.0: final_accuracy(res, "batch-noisy")}
    for directory in dirs:
        with Results(directory) as swept:
            noise = swept.config("batch-noisy")["model"]["norm"]["batch_noisy"]
            scale = noise["std_max"] / full
            found[round(scale, 6)] = final_accuracy(swept, "batch-noisy")
    scales = tuple(sorted(found))
    return NoiseSweep(
        scales,
        tuple(found[s] for s in scales),
        final_accuracy(res, "batch"),
        final_accuracy(res, "none"),
    )


def sweep_protocol(dirs: Sequence[Path]) -> str:
    """The protocol row of the sweep: what differs from the scored setting, and why it is run."""
    return (
        f"{', '.join(d.name for d in dirs)}: BN + noise only, every noise parameter (mean "
        "range, std range) times the scale in the name; seeds, data, steps and everything "
        "else as this setting, no activation recording. Evidence for the noisy-BN reason, "
        "not scored: the claims use this setting's noise (scale 1), chosen before any run"
    )


def sweep_table(sweep: NoiseSweep) -> Table:
    noisy = zip(sweep.scales, sweep.noisy, strict=True)
    rows = [(f"BN + noise, scale {s:g}", fmt(v, 2)) for s, v in noisy]
    rows += [(NORM_LABELS["batch"], fmt(sweep.bn, 2)), (NORM_LABELS["none"], fmt(sweep.none, 2))]
    return Table(
        "Noise-strength sweep: final test accuracy (%) against the noise scale (scale 1 is the "
        "scored setting; its BN and no BN are the references)",
        ("network", "test accuracy (%)"),
        rows,
    )


def sweep_figure(sweep: NoiseSweep, stem: Path, tag: str) -> ReportFigure:
    files = grid_points(
        stem,
        sweep.scales,
        {NORM_LABELS["batch-noisy"]: np.stack(sweep.noisy, 1)},  # (seeds, scales)
        xlabel="noise scale (1 = the scored setting's noise)",
        log_x=False,
        ylabel="final test accuracy (%)",
        references={NORM_LABELS["batch"]: sweep.bn, NORM_LABELS["none"]: sweep.none},
    )
    return ReportFigure.from_files(
        files,
        f"{tag}: final test accuracy of BN + noise against the noise strength (every noise "
        "parameter times the scale); BN and no BN at scale 1 as reference bands",
    )
