"""Read one setting of a Santurkar experiment back into a report section and scorecard rows.

Effects are per seed and paired (member k of every norm's stack shares seed k): for the
landscape and ICS claims, log2 of the per-seed mean over all probed steps (and layers), BN
minus no BN, i.e. the log2 ratio; for noisy BN, final test accuracy differences in percentage
points and the percentile drift of `bnlab.report.percentile_drift`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bnlab.report import (
    ReportFigure,
    Section,
    Table,
    curve_band,
    explained,
    format_estimate,
    grid_points,
    mean_ci,
    percentile_bands,
    range_band,
)
from bnlab.reproduce.common import (
    NORM_LABELS,
    Part,
    Results,
    data_source,
    describe,
    vs_source,
)
from bnlab.reproduce.santurkar2018_noise import (
    read_sweep,
    sweep_figure,
    sweep_protocol,
    sweep_table,
)
from bnlab.reproduce.santurkar2018_why import (
    RELATIVE,
    SCALE_FREE_TWIN,
    grad_norm_ratio,
    noisy_bn_why,
    scale_reasons,
)
from bnlab.reproduce.scoring import (
    FINAL_STEPS,
    diverged,
    divergence,
    drift,
    final_accuracy,
    final_train_loss,
    fmt,
    percentiles,
    scored,
)

LANDSCAPE_ORDER = ("batch", "none")  # BN first, as in the paper's Fig. 4 and 5


def setting_part(
    title: str, name: str, res: Results, directory: Path, noise_sweep: Sequence[Path] = ()
) -> Part:
    """The section of the setting stored in `directory` (figures go to ../figures/<setting>).
    A noisy-BN setting shows the noise-strength sweep trained into `noise_sweep`, if any."""
    setting = directory.name
    tag, out = f"{name}/{setting}", directory.parent / "figures" / setting
    figures, tables, rows, notes = [], [], [], []
    evidence = {}  # scale-free claim id -> the setting's further evidence, for `scale_reasons`
    if res.metric_names("landscape/"):
        _landscape(res, tag, out, figures, rows, notes, evidence)
        probed, _ = res.metric("batch", "landscape/loss_variation")
        tables.append(accuracy_table(res, probed))
    if res.metric_names("ics_l2/"):
        _ics(res, tag, out, figures, rows, notes, evidence)
    if "batch-noisy" in res.runs:
        _noisy(res, tag, out, figures, rows, tables, notes, noise_sweep)
    rows = scale_reasons(rows, evidence)
    if res.metric_names("curvature"):
        tables.append(_curvature_table(res))
    cfg = res.config(next(iter(res.runs)))
    protocol = {
        "preset": cfg["preset"],
        "norms": ", ".join(NORM_LABELS[n] for n in NORM_LABELS if n in res.runs),  # baseline first
        **describe(cfg),
        **vs_source("Santurkar et al. 2018", differences(cfg, res)),
    }
    if noise_sweep and "batch-noisy" in res.runs:
        protocol["noise sweep"] = sweep_protocol(noise_sweep)
    section = Section(
        f"{title} — {setting}",
        protocol,
        data_source(cfg["data"]["dataset"]),
        figures,
        tables,
        notes,
    )
    return section, rows


_VGG = [
    "a 6-conv VGG-style CNN (16-64 channels, one 128-unit fc layer) for the paper's VGG",
    "4,000 CIFAR-10 training and 1,000 test images (the subset present), not the full set",
    "1,000 steps of batch 64 with plain SGD (the paper's optimizer settings were not read)",
]
DIFFERENCES = {
    "santurkar2018-vgg": _VGG,
    "santurkar2018-noisy-bn": [
        *_VGG,
        "the noise: per member and channel, mean ~ U(-0.5, 0.5) and std ~ U(0.5, 1.5), "
        "redrawn every step (the paper's distributions were not read)",
        "activations recorded at conv layers 2 and 6 of 6 (the paper shows layers 3 and 11)",
    ],
    "santurkar2018-mnist": [
        "not a setting of the paper: the Ioffe & Szegedy MNIST net (3x100 sigmoid, "
        "N(0, 0.01^2) init, SGD lr 0.5), 5,000 steps, as a cheap second setting",
    ],
    "santurkar2018-deep-linear": [
        "MNIST, 24 hidden layers of 100 units, N(0, 0.1^2) init (the paper's data, widths "
        "and init were not read)",
        "the learning rate chosen by a sweep and a stated rule (see the sweep's section)",
    ],
}
_GRID = (
    "step sizes 0.05..0.4 along the gradient: the paper's Fig. 4 caps the distance at "
    "0.4 x the gradient; the lower end and the 8 points are ours"
)


def differences(cfg: dict, res: Results) -> list[str]:
    """How this setting differs from the paper, one line each, for the protocol table."""
    lines = list(DIFFERENCES.get(cfg["preset"], []))
    if res.metric_names("landscape/") and cfg["preset"] != "santurkar2018-mnist":
        lines.append(_GRID)
    return lines


def _log2_mean(values: np.ndarray) -> np.ndarray:
    """(seeds, ...) -> (seeds,): log2 of each seed's mean over the rest; NaN if it diverged."""
    return np.log2(values.mean(axis=tuple(range(1, values.ndim))))


def _score(rows: list, notes: list, claim: str, tag: str, bn, base, note: str, diverged) -> None:
    new_rows, new_notes = scored(claim, tag, bn, base, note, diverged)
    rows += new_rows
    notes += new_notes


def _landscape(
    res: Results, tag: str, out: Path, figures: list, rows: list, notes: list, evidence: dict
) -> None:
    norms = [n for n in LANDSCAPE_ORDER if n in res.runs]
    steps, _ = res.metric(norms[0], "landscape/loss_variation")
    for what, lo, hi, ylabel in (
        ("loss", "loss_min", "loss_max", "loss along the gradient"),
        ("grad", "grad_change_min", "grad_change_max", "ℓ2 gradient change"),
    ):
        groups = {
            NORM_LABELS[n]: (
                res.metric(n, f"landscape/{lo}")[1],
                res.metric(n, f"landscape/{hi}")[1],
            )
            for n in norms
        }
        files = range_band(
            out / f"{out.name}_{what}_landscape",
            steps,
            groups,
            xlabel="training step",
            ylabel=ylabel,
            log_y=what == "grad",
        )
        figures.append(
            ReportFigure.from_files(
                files, f"{tag}: {ylabel} over the step-size grid (Fig. 4{'ab'[what == 'grad']})"
            )
        )
    beta = {NORM_LABELS[n]: res.metric(n, "landscape/beta_smoothness")[1] for n in norms}
    files = curve_band(
        out / f"{out.name}_beta",
        steps,
        beta,
        xlabel="training step",
        ylabel="effective β-smoothness",
    )
    figures.append(ReportFigure.from_files(files, f"{tag}: effective β-smoothness (Fig. 4c)"))
    relative = {NORM_LABELS[n]: _relative_change(res, n) for n in norms}
    files = curve_band(
        out / f"{out.name}_grad_relative",
        steps,
        relative,
        xlabel="training step",
        ylabel="max gradient change / ||g||",
    )
    figures.append(
        ReportFigure.from_files(files, f"{tag}: gradient change relative to ||g|| (scale-free)")
    )
    if norms != list(LANDSCAPE_ORDER):
        return
    used = both_train(res, steps, notes, tag)
    note = f"paired by seed; {int(used.sum())} of {used.size} probed steps (both networks train)"
    for claim, values in landscape_measures(res, used).items():
        _score(rows, notes, claim, tag, *values, note, divergence(res, norms))
    if used.any():  # the ℓ2 gradient change counts ||g||; the relative change divides it out
        ratio = grad_norm_ratio(
            *(_log2_mean(res.metric(n, "landscape/grad_norm")[1][:, used]) for n in norms)
        )
        if ratio:
            notes.append(
                f"{tag}: {ratio}; the ℓ2 gradient change counts this scale, the gradient "
                "change relative to ||g|| divides it out."
            )
            evidence[RELATIVE] = f"Gradient norm at those steps: {ratio} (this setting's notes)."


def _relative_change(res: Results, norm: str) -> np.ndarray:
    """(seeds, T): max over the grid of ||grad(theta - eta g) - g|| / ||g||, scale-free."""
    change = res.metric(norm, "landscape/grad_change_max")[1]
    return change / res.metric(norm, "landscape/grad_norm")[1]


def _unmeasured(values: np.ndarray) -> np.ndarray:
    """(seeds,) NaN: no probed step to measure at; the claim keeps its row, "not measurable"."""
    return np.full(values.shape[0], np.nan)


def landscape_measures(res: Results, used: np.ndarray) -> dict[str, tuple[np.ndarray, ...]]:
    """claim -> (BN, baseline) per-seed log2 means over the probed steps `used` (T,); NaN
    (not measurable) when no step is used."""
    if not used.any():
        seeds = _unmeasured(res.metric("batch", "landscape/loss_variation")[1])
        return {claim: (seeds, seeds) for claim in SWEEP_LABELS}
    measures = {}
    for claim, metric in (
        ("santurkar-loss-variation", "loss_variation"),
        ("santurkar-gradient-predictiveness", "grad_change_max"),
        ("santurkar-beta-smoothness", "beta_smoothness"),
    ):
        measures[claim] = tuple(
            _log2_mean(res.metric(n, f"landscape/{metric}")[1][:, used]) for n in LANDSCAPE_ORDER
        )
    measures["santurkar-gradient-predictiveness-relative"] = tuple(
        _log2_mean(_relative_change(res, n)[:, used]) for n in LANDSCAPE_ORDER
    )
    return measures


# A network "trains" at a probed step when its seed-mean test accuracy is this far above chance.
TRAINS_ABOVE_CHANCE_PP = 10.0


def both_train(res: Results, probed: np.ndarray, notes: list, tag: str) -> np.ndarray:
    """(T,) bool: the probed steps at which both networks train (test accuracy at or before
    the step, mean over the seeds that have not diverged, at least TRAINS_ABOVE_CHANCE_PP
    above chance). A verdict uses only those; notes say which were left out and why."""
    chance = 100.0 / res.config("batch")["model"]["num_classes"]
    ok = np.ones(len(probed), dtype=bool)
    for norm in LANDSCAPE_ORDER:
        acc = accuracy_at(res, norm, probed)  # (seeds, T); NaN: diverged (counted elsewhere)
        finite = np.isfinite(acc)
        mean = np.where(finite, acc, 0.0).sum(0) / np.maximum(finite.sum(0), 1)
        ok &= finite.any(0) & (mean >= chance + TRAINS_ABOVE_CHANCE_PP)
    said = []
    if not ok.all():
        left = ", ".join(str(int(s)) for s in np.asarray(probed)[~ok])
        said.append(
            f"{tag}: probed steps {left} are left out of the verdict: a network's mean test "
            f"accuracy there is below chance + {TRAINS_ABOVE_CHANCE_PP:g} pp "
            f"({chance + TRAINS_ABOVE_CHANCE_PP:g}%), so its landscape says nothing about how "
            "BN helps it train"
        )
    if not ok.any():
        said.append(f"{tag}: no probed step where both networks train: not measurable")
    notes += [n for n in said if n not in notes]  # the landscape and ICS probe the same steps
    return ok


def accuracy_at(res: Results, norm: str, steps: np.ndarray) -> np.ndarray:
    """(seeds, T) test accuracy (%) of the last evaluation at or before each step (the first
    evaluation for steps before it). NaN where a member had diverged: its test loss is NaN,
    and its accuracy (a constant guess, about chance) says nothing."""
    eval_steps, acc = res.metric(norm, "test_accuracy")  # (E,), (seeds, E)
    _, loss = res.metric(norm, "test_loss")
    acc = np.where(np.isfinite(loss), acc, np.nan)
    index = np.searchsorted(eval_steps, np.asarray(steps), side="right") - 1
    return 100.0 * acc[:, np.clip(index, 0, len(eval_steps) - 1)]


def _cell(values: np.ndarray) -> str:
    ok = np.isfinite(values)
    if not ok.any():
        return f"diverged ({values.size}/{values.size})"
    text = format_estimate(mean_ci(values[ok]), 1)
    return text if ok.all() else f"{text} ({int((~ok).sum())}/{values.size} diverged)"


def accuracy_table(res: Results, steps: np.ndarray) -> Table:
    """Test accuracy at each probed step, both networks: do they both train there?"""
    cells = {n: accuracy_at(res, n, steps) for n in LANDSCAPE_ORDER if n in res.runs}
    rows = [(str(int(s)), *(_cell(v[:, t]) for v in cells.values())) for t, s in enumerate(steps)]
    return Table(
        "Test accuracy (%) at the probed steps (last evaluation at or before the step)",
        ("step", *(NORM_LABELS[n] for n in cells)),
        rows,
    )


def _ics(
    res: Results, tag: str, out: Path, figures: list, rows: list, notes: list, evidence: dict
) -> None:
    norms = [n for n in LANDSCAPE_ORDER if n in res.runs]
    layers = [n.split("/", 1)[1] for n in res.metric_names("ics_l2/")]
    ordered = sorted(layers, key=_layer_order)
    for kind, ylabel in (("ics_l2", "ICS ℓ2 ||G − G'||"), ("ics_cos", "cos(G, G')")):
        per_layer = {
            NORM_LABELS[n]: np.stack(
                [res.metric(n, f"{kind}/{layer}")[1].mean(1) for layer in ordered], 1
            )
            for n in norms
        }  # name: (seeds, L)
        files = grid_points(
            out / f"{out.name}_{kind}",
            list(range(1, len(ordered) + 1)),
            per_layer,
            xlabel="layer (1 = first)",
            ylabel=ylabel,
            log_x=False,
        )
        figures.append(
            ReportFigure.from_files(
                files, f"{tag}: {ylabel} per layer, mean over training (Fig. 5)"
            )
        )
    cells = []  # per_layer holds cos(G, G') now, (seeds, L) per network
    for label, v in per_layer.items():
        last = v[:, -1][np.isfinite(v[:, -1])]
        text = f"{label} {format_estimate(mean_ci(last), 3)}" if last.size else label
        if last.size < len(v):
            text += f" ({len(v) - last.size}/{len(v)} seeds diverged, left out)"
        cells.append(text)
    notes.append(
        f"{tag}: cos(G, G') in the last layer ({ordered[-1]}), mean over training: "
        f"{'; '.join(cells)}. The ICS claims average over all layers after the first; the "
        "per-layer figures show where the layers differ."
    )
    evidence[SCALE_FREE_TWIN["santurkar-ics-not-reduced"]] = (
        f"Per layer: this setting's figures of ICS ℓ2 and cos(G, G'); in the last layer "
        f"({ordered[-1]}), cos(G, G') is {'; '.join(cells)} (this setting's notes)."
    )
    if norms != list(LANDSCAPE_ORDER):
        return
    steps, _ = res.metric("batch", f"ics_l2/{ordered[0]}")
    used = both_train(res, steps, notes, tag)
    note = (
        "layers after the first (the first has zero ICS by definition); "
        f"{int(used.sum())} of {used.size} probed steps (both networks train)"
    )
    for claim, kind, transform in (
        ("santurkar-ics-not-reduced", "ics_l2", _log2_mean),
        ("santurkar-ics-cosine-not-reduced", "ics_cos", _mean_cosine_distance),
    ):
        # (seeds, L - 1, T') per norm
        per_norm = [
            np.stack([res.metric(n, f"{kind}/{la}")[1][:, used] for la in ordered[1:]], 1)
            for n in norms
        ]
        bn, base = (transform(v) if used.any() else _unmeasured(v) for v in per_norm)
        _score(rows, notes, claim, tag, bn, base, note, divergence(res, norms))


def _mean_cosine_distance(cos: np.ndarray) -> np.ndarray:
    """(seeds, ...) cos(G, G') -> (seeds,) mean of 1 - cos: ICS without the gradient's scale."""
    return (1.0 - cos).mean(axis=tuple(range(1, cos.ndim)))


def _layer_order(layer: str) -> tuple[bool, int]:
    """conv1 < conv2 < fc3 < ... < out: the number in the name, the output layer last."""
    digits = "".join(c for c in layer if c.isdigit())
    return layer == "out", int(digits or 0)


def _noisy(
    res: Results,
    tag: str,
    out: Path,
    figures: list,
    rows: list,
    tables: list,
    notes: list,
    noise_sweep: Sequence[Path],
) -> None:
    norms = ("none", "batch", "batch-noisy")
    hooks = res.config("batch")["hooks"]
    layer = hooks["layers"][-1]  # the deepest recorded layer: the drift claim's
    acc = {n: final_accuracy(res, n) for n in norms}
    train_loss = {n: final_train_loss(res, n) for n in norms}
    drifts = {n: drift(res, n, layer) for n in norms}
    diverged_runs = {n: diverged(res, n) for n in norms}
    tables.append(
        Table(
            "Final test accuracy, training loss and activation-percentile drift",
            (
                "network",
                "test accuracy (%)",
                f"training loss (last {FINAL_STEPS} steps)",
                "percentile drift",
                "diverged seeds",
            ),
            [
                (
                    NORM_LABELS[n],
                    fmt(acc[n], 2),
                    fmt(train_loss[n], 3),
                    fmt(drifts[n], 3),
                    f"{int(diverged_runs[n].sum())}/{diverged_runs[n].size}",
                )
                for n in norms
            ],
        )
    )
    for claim, measure, base in (
        ("santurkar-noisy-bn-like-bn", acc, "batch"),
        ("santurkar-noisy-bn-beats-none", acc, "none"),
        ("santurkar-noisy-bn-less-stable", drifts, "batch"),
    ):
        pair = divergence(res, ("batch-noisy", base))
        _score(
            rows, notes, claim, tag, measure["batch-noisy"], measure[base], "paired by seed", pair
        )
    noise = res.config("batch-noisy")["model"]["norm"]["batch_noisy"]  # for the reason
    sweep = read_sweep(res, noise_sweep) if noise_sweep else None
    if sweep is not None:
        tables.append(sweep_table(sweep))
    like = next(i for i, r in enumerate(rows) if r.claim.id == "santurkar-noisy-bn-like-bn")
    rows[like] = explained(rows[like], noisy_bn_why(rows[like], train_loss, noise, sweep))
    steps, _ = res.metric("batch", "test_accuracy")
    curves = {NORM_LABELS[n]: res.metric(n, "test_accuracy")[1] * 100 for n in norms}
    files = curve_band(
        out / f"{out.name}_accuracy",
        steps,
        curves,
        xlabel="training step",
        ylabel="test accuracy (%)",
    )
    figures.append(ReportFigure.from_files(files, f"{tag}: test accuracy (Fig. 2, left)"))
    for recorded in hooks["layers"]:
        groups = {}
        for n in norms:
            x, q = percentiles(res, n, recorded, unit=0)
            groups[NORM_LABELS[n]] = q
        files = percentile_bands(
            out / f"{out.name}_{recorded}_distribution",
            x,
            groups,
            xlabel="training step",
            ylabel=f"input to ReLU ({recorded}, channel 0)",
            percentiles=hooks["percentiles"],
        )
        figures.append(
            ReportFigure.from_files(
                files,
                f"{tag}: distribution of one channel's activation input over training, "
                f"layer {recorded}, seed-mean percentiles (Fig. 2, right)",
            )
        )
    if sweep is not None:
        figures.append(sweep_figure(sweep, out / f"{out.name}_noise_sweep", tag))


def _curvature_table(res: Results) -> Table:
    cells = []
    for norm in LANDSCAPE_ORDER:
        if norm in res.runs:
            _, v = res.metric(norm, "curvature")
            per_seed = v.mean(1)  # (seeds,); NaN where a run diverged
            ok = np.isfinite(per_seed)
            text = format_estimate(mean_ci(per_seed[ok]), 4) if ok.any() else "—"
            if not ok.all():
                text += f" ({int((~ok).sum())}/{ok.size} seeds diverged, left out)"
            cells.append((NORM_LABELS[norm], text))
    return Table(
        "Curvature along the gradient, g^T H g / ||g||^2, mean over probed steps",
        ("network", "curvature"),
        cells,
    )


# ---------------------------------------------------------------- across the lr sweep

SWEEP_LABELS = {
    "santurkar-loss-variation": "loss variation",
    "santurkar-gradient-predictiveness": "ℓ2 gradient change",
    "santurkar-gradient-predictiveness-relative": "gradient change / ||g||",
    "santurkar-beta-smoothness": "effective β-smoothness",
}


def chosen_lr(lrs: list[float], base_diverged: list[int], trains: list[bool]) -> float | None:
    """The learning rate an lr sweep's verdict reads: the largest at which no seed of the
    network without BN diverged (`base_diverged`, counts) and both networks train at some
    probed step (`trains`); None when no rate qualifies."""
    ok = [lr for lr, k, t in zip(lrs, base_diverged, trains, strict=True) if k == 0 and t]
    return max(ok) if ok else None


def lr_sweep_section(title: str, name: str, dirs: list[Path]) -> Section:
    """One section over the settings of an lr sweep (one directory per learning rate): each
    landscape measure's BN/no-BN log2 ratio against the learning rate (all probed steps), and
    a table saying at which rates both networks train, which is what a verdict may use, and
    which rate to read (the largest at which no baseline seed diverged and both networks
    train at some probed step)."""
    lrs, effects, cells, diverged, trains = [], {c: [] for c in SWEEP_LABELS}, [], [], []
    for directory in dirs:
        with Results(directory) as res:
            tag = f"{name}/{directory.name}"
            lr = res.config("batch")["optim"]["lr"]
            source = data_source(res.config("batch")["data"]["dataset"])
            probed, _ = res.metric("batch", "landscape/loss_variation")
            used = both_train(res, probed, [], tag)
            everywhere = np.ones(len(probed), dtype=bool)
            for claim, (bn, base) in landscape_measures(res, everywhere).items():
                effects[claim].append(bn - base)  # (seeds,) log2 ratios
            last = [accuracy_at(res, n, probed[-1:])[:, 0] for n in LANDSCAPE_ORDER]
            final = [_cell(v) for v in last]
            diverged.append(tuple(int((~np.isfinite(v)).sum()) for v in last))
            cells.append((f"{lr:g}", *final, f"{int(used.sum())} of {used.size}"))
            trains.append(bool(used.any()))
            lrs.append(lr)
    order = np.argsort(lrs)
    groups = {SWEEP_LABELS[c]: np.stack(v, 1)[:, order] for c, v in effects.items()}
    out = dirs[0].parent / "figures" / "lr-sweep"
    files = grid_points(
        out / f"{name}_lr_sweep",
        np.asarray(lrs)[order],
        groups,
        xlabel="learning rate (both networks)",
        ylabel="log2(BN / no BN), mean over probed steps",
    )
    figure = ReportFigure.from_files(
        files,
        f"{name}: BN/no-BN ratio of each landscape measure against the learning rate "
        "(below 0: smoother with BN); all probed steps",
    )
    table = Table(
        "Learning-rate sweep: final test accuracy (%) and the probed steps where both train",
        ("lr", *(NORM_LABELS[n] for n in LANDSCAPE_ORDER), "steps used for a verdict"),
        [cells[i] for i in order],
    )
    chosen = chosen_lr(lrs, [base for _, base in diverged], trains)
    notes = [
        "How a learning rate is chosen for a verdict: every rate is trained, and the one to "
        "read is the largest at which no seed of the network without BN diverged and both "
        "networks train at some probed step: "
        + (
            f"lr {chosen:g}."
            if chosen is not None
            else "none qualified (at every rate the baseline diverged or did not train)."
        ),
        "Each learning rate is a setting of its own above, with its own scorecard rows; a "
        "verdict uses only the probed steps where both networks train (test accuracy at least "
        f"{TRAINS_ABOVE_CHANCE_PP:g} pp above chance), so a rate at which the baseline does "
        "not learn gives no verdict. The figure uses every probed step, to show the trend.",
    ]
    protocol = {
        "settings": ", ".join(d.name for d in (dirs[i] for i in order)) + " (sections above)",
        "learning rates": ", ".join(f"{lrs[i]:g}" for i in order) + ", both networks",
    }
    return Section(f"{title} — learning-rate sweep", protocol, source, [figure], [table], notes)
