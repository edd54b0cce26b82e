"""Read one setting of a Santurkar experiment back into a report section and scorecard rows.

What a setting measured decides its parts: the landscape (`santurkar2018_landscape`, with
the curvature table of `santurkar2018_curvature`), ICS (`santurkar2018_ics`) or noisy BN
(`santurkar2018_noisy_bn`); its rules are the ones registered before its runs
(`santurkar2018_settings.setting_rules`). Protocol rows are generated from the stored config
and the setting's probe config, so they say what the code did.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from bnlab.analysis import ProbeConfig
from bnlab.report import Section, Table, format_estimate, mean_ci
from bnlab.reproduce import preregistered as pre
from bnlab.reproduce.common import (
    NORM_LABELS,
    Part,
    Results,
    data_source,
    describe_runs,
    stored_configs,
    vs_source,
)
from bnlab.reproduce.experiment import Seeds
from bnlab.reproduce.santurkar2018_curvature import curvature_part
from bnlab.reproduce.santurkar2018_ics import ics_figures, ics_rows
from bnlab.reproduce.santurkar2018_landscape import landscape_figures, landscape_rows
from bnlab.reproduce.santurkar2018_noisy_bn import noisy_part
from bnlab.reproduce.santurkar2018_settings import Setting, setting_rules
from bnlab.reproduce.santurkar2018_steps import LANDSCAPE_ORDER, accuracy_at

PAPER = "Santurkar et al. 2018"


def setting_part(
    title: str,
    name: str,
    setting: Setting,
    res: Results,
    directory: Path,
    seeds: Seeds,
    sweep_dirs: Sequence[Path] = (),
) -> Part:
    """The section and rows of `setting`, stored in `directory` (figures go to
    ../figures/<setting>); a noisy-BN setting shows the sweep trained into `sweep_dirs`."""
    tag, out = f"{name}/{setting.name}", directory.parent / "figures" / setting.name
    rules = setting_rules(name, setting, seeds)
    figures, tables, rows, notes, extra = [], [], [], [], {}
    if rules.landscape is not None:
        probed, _ = res.metric("batch", "landscape/loss_variation")
        tables.append(accuracy_table(res, probed))
        figures += landscape_figures(res, tag, out)
        rows += landscape_rows(res, rules.landscape)
    if rules.ics is not None:
        ics_figs, note = ics_figures(res, tag, out)
        figures += ics_figs
        notes.append(note)
        rows += ics_rows(res, rules.ics)
    if rules.noisy is not None:
        noisy_figs, noisy_tables, noisy_rows, extra = noisy_part(
            res, tag, out, rules.noisy, sweep_dirs
        )
        figures, tables, rows = figures + noisy_figs, tables + noisy_tables, rows + noisy_rows
    if res.metric_names("curvature"):
        table, note = curvature_part(res, tag)
        tables.append(table)
        notes.append(note)
    if pre.confirmation_note(tag):
        notes.append(pre.confirmation_note(tag))
    cfg = res.config(next(iter(res.runs)))
    protocol = {
        "preset": cfg["preset"],
        "norms": ", ".join(NORM_LABELS[n] for n in NORM_LABELS if n in res.runs),
        "role": f"{setting.role.value}: {setting.why}",
        "planned seeds": rules.all()[0].seeds_text if rules.all() else "—",
        **describe_runs(stored_configs(res)),
        **probe_protocol(setting.probe, cfg, res),
        **extra,
        **vs_source(PAPER, differences(res, setting.probe)),
    }
    section = Section(
        f"{title} — {setting.name}",
        protocol,
        data_source(cfg["data"]["dataset"]),
        figures,
        tables,
        notes,
        configs=stored_configs(res),
    )
    return section, rows


def _lrs(cfg: dict) -> list[float]:
    return list(cfg["optim"]["lrs"] or [cfg["optim"]["lr"]])


def probed_steps(res: Results) -> np.ndarray:
    """The steps at which the setting's probes measured (empty if none did)."""
    for prefix in ("landscape/loss_variation", "ics_l2/", "curvature"):
        names = res.metric_names(prefix)
        if names:
            return res.metric(next(iter(res.runs)), names[0])[0]
    return np.array([], dtype=int)


def probe_protocol(probe: ProbeConfig | None, cfg: dict, res: Results) -> dict[str, str]:
    """Protocol rows of the probes: what they measured, where, and the step-size grid as the
    code computed it from the probe config and the stored learning rates."""
    if probe is None:
        return {}
    steps = probed_steps(res)
    measured = [
        what
        for what, on in (
            ("landscape (loss, gradient change, β along −g)", probe.landscape),
            ("ICS (Def. 2.1, ℓ2 and cosine)", probe.ics),
            ("curvature g^T H g / ||g||^2", probe.curvature),
        )
        if on
    ]
    rows = {
        "probes": f"{', '.join(measured)}; at {len(steps)} steps: "
        + ", ".join(str(int(s)) for s in steps)
    }
    if probe.landscape:
        rows["landscape grid"] = grid_text(probe, _lrs(cfg))
    return rows


def grid_text(probe: ProbeConfig, lrs: list[float]) -> str:
    """The step sizes η the landscape probe took along −g, for each learning rate."""
    grid = probe.grid
    if grid.step_sizes is not None:
        sizes = ", ".join(f"{s:g}" for s in grid.step_sizes)
        return f"{len(grid.step_sizes)} step sizes η: {sizes} (absolute: the same at every rate)"
    etas = grid.etas(torch.tensor(lrs, dtype=torch.float64))  # (K, S)
    low, high = min(grid.lr_multiples), max(grid.lr_multiples)
    per_lr = "; ".join(
        f"at lr {lr:g}: " + ", ".join(f"{float(e):.3g}" for e in row)
        for lr, row in sorted({lr: r for lr, r in zip(lrs, etas, strict=True)}.items())
    )
    return (
        f"{len(grid.lr_multiples)} step sizes η = {low:g}–{high:g} × the learning rate ({per_lr})"
    )


def _grid_difference(probe: ProbeConfig, cfg: dict) -> str:
    grid = probe.grid
    if grid.step_sizes is not None and max(grid.step_sizes) == 0.4:
        return (
            f"step sizes {min(grid.step_sizes):g}..0.4 along the gradient: the paper's Fig. 4 "
            f"caps the distance at 0.4 × the gradient; the lower end and the "
            f"{len(grid.step_sizes)} points are ours"
        )
    return (
        f"the landscape grid follows this network's rate ({grid_text(probe, _lrs(cfg))}), "
        "not the paper's Fig. 4 grid of up to 0.4 × the gradient"
    )


def differences(res: Results, probe: ProbeConfig | None) -> list[str]:
    """How this setting differs from the paper, one line each, from the stored configs."""
    cfg = res.config(next(iter(res.runs)))
    m, o = cfg["model"], cfg["optim"]
    length = f"{cfg['steps']:,} steps of batch {cfg['batch_size']}"
    lines = []
    if m["conv_channels"]:
        channels = "-".join(str(c) for c in m["conv_channels"])
        fc = "/".join(str(h) for h in m["hidden"])
        lines += [
            f"a {len(m['conv_channels'])}-conv VGG-style CNN ({channels} channels, {fc}-unit fc) "
            "for the paper's VGG",
            "the CIFAR-10 subset present (see data), not the full training set",
            f"{length} with plain SGD at lr {', '.join(f'{lr:g}' for lr in _lrs(cfg))} (the "
            "paper's optimizer settings were not read)",
        ]
    elif m["activation"] == "identity":
        lines += [
            f"{cfg['data']['dataset']}, {len(m['hidden'])} hidden layers of {m['hidden'][0]} "
            f"units, N(0, {m['init_std']:g}^2) init, {length} (the paper's data, widths and "
            "init were not read)",
            "three learning rates, each a setting; one, fixed before the runs, is primary",
        ]
    else:
        lines.append(
            f"not a setting of the paper: the Ioffe & Szegedy MNIST net "
            f"({'x'.join(str(h) for h in m['hidden'])} {m['activation']}, "
            f"N(0, {m['init_std']:g}^2) init, SGD lr {o['lr']:g}), {length}, as a cheap second "
            "setting"
        )
    if "batch-noisy" in res.runs:
        noisy = res.config("batch-noisy")
        m, noise = noisy["model"], noisy["model"]["norm"]["batch_noisy"]
        lines.append(
            f"the noise: per member and channel, mean ~ U(-{noise['mean_max']:g}, "
            f"{noise['mean_max']:g}) and std ~ U({noise['std_min']:g}, "
            f"{noise['std_max']:g}), redrawn every step (the paper's distributions were not read)"
        )
        layers = noisy["hooks"]["layers"]
        lines.append(
            f"activations recorded at {', '.join(layers)} of {len(m['conv_channels'])} conv "
            "layers (the paper shows layers 3 and 11)"
        )
    if probe is not None and probe.landscape:
        lines.append(_grid_difference(probe, cfg))
    return lines


def cell(values: np.ndarray) -> str:
    """Mean ± CI (%) over the seeds that have not diverged, with how many diverged."""
    ok = np.isfinite(values)
    if not ok.any():
        return f"diverged ({values.size}/{values.size})"
    text = format_estimate(mean_ci(values[ok]), 1)
    return text if ok.all() else f"{text} ({int((~ok).sum())}/{values.size} diverged)"


def accuracy_table(res: Results, steps: np.ndarray) -> Table:
    """Test accuracy at each probed step, both networks: do they both train there?"""
    cells = {n: accuracy_at(res, n, steps) for n in LANDSCAPE_ORDER if n in res.runs}
    rows = [(str(int(s)), *(cell(v[:, t]) for v in cells.values())) for t, s in enumerate(steps)]
    return Table(
        "Test accuracy (%) at the probed steps (last evaluation at or before the step)",
        ("step", *(NORM_LABELS[n] for n in cells)),
        rows,
    )
