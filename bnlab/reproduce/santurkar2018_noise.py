"""The noise-strength sweep of noisy BN: BN + noise trained again with every noise parameter
scaled down (`santurkar2018.NOISE_SCALES`), read back next to the `vgg` setting's three
networks (scale 1). It is the diagnostic of every noisy-BN row (`santurkar2018_why`): each
row's effect recomputed at each scale. The claims stay scored at scale 1.

Every network is summarized by the same measures (`network_measures`), (seeds,) each, member
k of every stack sharing seed k, so effects are paired by seed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bnlab.report import ReportFigure, Table, grid_points
from bnlab.reproduce.common import NORM_LABELS, Results
from bnlab.reproduce.santurkar2018_noise_free import noise_free_accuracy
from bnlab.reproduce.scoring import drift, final_accuracy, final_train_accuracy, fmt

# measure key -> its table column; the rows' measures are "train", "noise_free" and "drift"
MEASURES = {
    "train": "training accuracy (%, last 100 steps, as trained)",
    "test": "test accuracy (%, EMA statistics)",
    "noise_free": "test accuracy (%, statistics re-estimated, noise off)",
    "drift": "percentile drift",
}


def network_measures(res: Results, norm: str) -> dict[str, np.ndarray]:
    """Every measure of `MEASURES` for one network, (seeds,) each; the drift is NaN where no
    activations were recorded."""
    layers = res.config(norm)["hooks"]["layers"]
    seeds = len(res.members(norm))
    return {
        "train": final_train_accuracy(res, norm),
        "test": final_accuracy(res, norm),
        "noise_free": noise_free_accuracy(res, norm),
        # the deepest recorded layer: the drift claim's
        "drift": drift(res, norm, layers[-1]) if layers else np.full(seeds, np.nan),
    }


@dataclass(frozen=True)
class NoiseSweep:
    """BN + noise's measures at each noise scale, ascending, 1.0 (the scored setting) last."""

    scales: tuple[float, ...]
    noisy: tuple[Mapping[str, np.ndarray], ...]  # per scale: measure -> (seeds,)

    def at(self, scale: float) -> Mapping[str, np.ndarray]:
        return self.noisy[self.scales.index(scale)]

    def of(self, key: str) -> dict[float, np.ndarray]:
        """scale -> BN + noise's (seeds,) values of measure `key`."""
        return {s: m[key] for s, m in zip(self.scales, self.noisy, strict=True)}


def read_sweep(res: Results, dirs: Sequence[Path]) -> NoiseSweep:
    """The sweep from the scored setting's results `res` (scale 1) and the sweep's
    directories `dirs` (none: scale 1 alone); a directory's scale is its noise std's maximum
    over the scored one's."""
    full = res.config("batch-noisy")["model"]["norm"]["batch_noisy"]["std_max"]
    found = {1.0: network_measures(res, "batch-noisy")}
    for directory in dirs:
        with Results(directory) as swept:
            noise = swept.config("batch-noisy")["model"]["norm"]["batch_noisy"]
            scale = noise["std_max"] / full
            found[round(scale, 6)] = network_measures(swept, "batch-noisy")
    scales = tuple(sorted(found))
    return NoiseSweep(scales, tuple(found[s] for s in scales))


def sweep_protocol(dirs: Sequence[Path]) -> str:
    """The protocol row of the sweep: what differs from the scored setting, and why it is run."""
    return (
        f"{', '.join(d.name for d in dirs)}: BN + noise only, every noise parameter (mean "
        "range, std range) times the scale in the name; seeds, data, steps, activation "
        "recording and everything else as this setting. The diagnostic of every noisy-BN "
        "row, not scored: the claims use this setting's noise (scale 1), chosen before any run"
    )


def sweep_table(sweep: NoiseSweep, references: Mapping[str, Mapping[str, np.ndarray]]) -> Table:
    """Every measure of BN + noise per scale, then of `references` (label -> measures)."""
    digits = {"drift": 3}
    rows = [
        (f"BN + noise, scale {s:g}", *(fmt(m[k], digits.get(k, 2)) for k in MEASURES))
        for s, m in zip(sweep.scales, sweep.noisy, strict=True)
    ]
    rows += [
        (label, *(fmt(m[k], digits.get(k, 2)) for k in MEASURES)) for label, m in references.items()
    ]
    return Table(
        "Noise-strength sweep: every measure against the noise scale (scale 1 is the scored "
        "setting; its BN and no BN are the references)",
        ("network", *MEASURES.values()),
        rows,
    )


def sweep_figure(
    sweep: NoiseSweep, references: Mapping[str, np.ndarray], stem: Path, tag: str
) -> ReportFigure:
    """Training accuracy (the claims' measure) of BN + noise against the noise scale."""
    files = grid_points(
        stem,
        sweep.scales,
        {NORM_LABELS["batch-noisy"]: np.stack(list(sweep.of("train").values()), 1)},  # (S, G)
        xlabel="noise scale (every noise parameter's multiple; 1 = the scored noise)",
        log_x=False,
        ylabel="training accuracy (%, last 100 steps)",
        references=dict(references),
        hint="Compare BN + noise's points with the BN band as the noise weakens (leftwards).",
    )
    return ReportFigure.from_files(
        files,
        files.caption(
            f"{tag}: training accuracy of BN + noise against the noise strength; BN and no BN "
            "at scale 1 as reference bands"
        ),
    )
