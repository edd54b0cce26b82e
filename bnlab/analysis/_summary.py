"""Read a Santurkar experiment's stores back into report sections and scorecard rows.

Effects are per seed and paired (member k of every norm's stack shares seed k): for the
landscape and ICS claims, log2 of the ratio of the per-seed means over all probed steps (and
layers), BN over no BN; for noisy BN, final test accuracy differences in percentage points and
the percentile drift of `bnlab.report.percentile_drift`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bnlab.analysis._figures import range_band
from bnlab.engine.config import TrainConfig, from_dict
from bnlab.engine.store import Store
from bnlab.report import (
    CLAIMS_BY_ID,
    ReportFigure,
    Section,
    Table,
    curve_band,
    format_estimate,
    grid_points,
    mean_ci,
    percentile_drift,
    score,
)
from bnlab.reproduce.common import data_source

LABELS = {"none": "standard (no BN)", "batch": "BN", "batch-noisy": "BN + noise"}


class _Runs:
    """Per-norm series of one setting: series(norm, name) -> steps (T,), values (seeds, T)."""

    def __init__(self, directory: Path):
        self.store = Store(directory)
        self.runs = {r["run_id"].split("/", 1)[1]: r for r in self.store.runs()}
        any_run = next(iter(self.runs.values()))
        self.cfg = from_dict(TrainConfig, json.loads(any_run["config"]))

    def members(self, norm: str) -> int:
        return len(self.store.members(self.rid(norm)))

    def rid(self, norm: str) -> str:
        return f"{self.cfg.preset}/{norm}"

    def series(self, norm: str, name: str) -> tuple[np.ndarray, np.ndarray]:
        got = [self.store.metric(self.rid(norm), k, name) for k in range(self.members(norm))]
        steps = got[0][0]
        # A diverged run stores NaN as NULL: keep it as NaN so the caller can tell.
        return steps, np.stack([np.asarray(v, dtype=np.float64) for _, v in got])  # (T,), (S, T)

    def names(self, prefix: str) -> list[str]:
        sql = "SELECT DISTINCT name FROM metrics WHERE name LIKE ? ORDER BY name"
        return [r[0] for r in self.store.db.execute(sql, (prefix + "%",))]


def _log_ratio(bn: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Per seed log2(mean over the rest of BN / of baseline): (seeds, ...) -> (seeds,)."""
    axes = tuple(range(1, bn.ndim))
    return np.log2(bn.mean(axis=axes) / base.mean(axis=axes))  # NaN if a run diverged


def _score(rows: list, claim: str, tag: str, effect: np.ndarray, note: str) -> None:
    """Score a per-seed effect; a diverged run (NaN) gets no verdict, and the note says so."""
    if not np.all(np.isfinite(effect)):
        bad = int(np.sum(~np.isfinite(effect)))
        print(f"{tag}: {claim} not scored: {bad}/{effect.size} seeds diverged")
        return
    rows.append(score(CLAIMS_BY_ID[claim], tag, mean_ci(effect), note=note))


def _landscape(runs: _Runs, tag: str, out: Path, figures: list, rows: list) -> None:
    norms = [n for n in ("batch", "none") if n in runs.runs]
    steps, _ = runs.series(norms[0], "landscape/loss_variation")
    for what, lo, hi, ylabel in (
        ("loss", "loss_min", "loss_max", "loss along the gradient"),
        ("grad", "grad_change_min", "grad_change_max", "ℓ2 gradient change"),
    ):
        groups = {
            LABELS[n]: (runs.series(n, f"landscape/{lo}")[1], runs.series(n, f"landscape/{hi}")[1])
            for n in norms
        }
        files = range_band(
            out / f"{tag}_{what}_landscape",
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
    beta = {LABELS[n]: runs.series(n, "landscape/beta_smoothness")[1] for n in norms}
    files = curve_band(
        out / f"{tag}_beta", steps, beta, xlabel="training step", ylabel="effective β-smoothness"
    )
    figures.append(ReportFigure.from_files(files, f"{tag}: effective β-smoothness (Fig. 4c)"))
    if "batch" in norms and "none" in norms:
        for claim, metric in (
            ("santurkar-loss-variation", "loss_variation"),
            ("santurkar-gradient-predictiveness", "grad_change_max"),
            ("santurkar-beta-smoothness", "beta_smoothness"),
        ):
            effect = _log_ratio(
                runs.series("batch", f"landscape/{metric}")[1],
                runs.series("none", f"landscape/{metric}")[1],
            )
            _score(rows, claim, tag, effect, "paired by seed")


def _ics(runs: _Runs, tag: str, out: Path, figures: list, rows: list, tables: list) -> None:
    norms = [n for n in ("batch", "none") if n in runs.runs]
    layers = [n.split("/", 1)[1] for n in runs.names("ics_l2/")]
    ordered = sorted(layers, key=_layer_order)
    for kind, ylabel in (("ics_l2", "ICS ℓ2 ||G − G'||"), ("ics_cos", "cos(G, G')")):
        per_layer = {
            LABELS[n]: np.stack(
                [runs.series(n, f"{kind}/{layer}")[1].mean(1) for layer in ordered], 1
            )
            for n in norms
        }  # name: (seeds, L)
        files = grid_points(
            out / f"{tag}_{kind}",
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
    if "batch" in norms and "none" in norms:
        l2 = {
            n: np.stack([runs.series(n, f"ics_l2/{la}")[1] for la in ordered[1:]], 1) for n in norms
        }
        effect = _log_ratio(l2["batch"], l2["none"])
        note = "layers after the first (the first has zero ICS by definition)"
        _score(rows, "santurkar-ics-not-reduced", tag, effect, note)


def _layer_order(layer: str) -> tuple[bool, int]:
    """conv1 < conv2 < fc3 < ... < out: the number in the name, the output layer last."""
    digits = "".join(c for c in layer if c.isdigit())
    return layer == "out", int(digits or 0)


def _accuracy(runs: _Runs, norm: str) -> np.ndarray:
    return np.array(
        [
            runs.store.last_metrics(runs.rid(norm), k)["test_accuracy"] * 100
            for k in range(runs.members(norm))
        ]
    )


def _drift(runs: _Runs, norm: str) -> np.ndarray:
    h = runs.cfg.hooks
    layer = h.layers[0]
    per_seed = []
    for k in range(runs.members(norm)):
        drifts = []
        for u in h.units:
            cols = [
                runs.store.metric(runs.rid(norm), k, f"act/{layer}/u{u}/p{p:g}")[1]
                for p in h.percentiles
            ]
            drifts.append(percentile_drift(np.stack(cols, 1)))
        per_seed.append(np.mean(drifts))
    return np.array(per_seed)


def _noisy(runs: _Runs, tag: str, out: Path, figures: list, rows: list, tables: list) -> None:
    acc = {n: _accuracy(runs, n) for n in ("none", "batch", "batch-noisy")}
    drift = {n: _drift(runs, n) for n in ("none", "batch", "batch-noisy")}
    tables.append(
        Table(
            "Final test accuracy and activation-percentile drift",
            ("network", "test accuracy (%)", "percentile drift"),
            [
                (
                    LABELS[n],
                    format_estimate(mean_ci(acc[n]), 2),
                    format_estimate(mean_ci(drift[n]), 3),
                )
                for n in acc
            ],
        )
    )
    rows.append(
        score(
            CLAIMS_BY_ID["santurkar-noisy-bn-like-bn"],
            tag,
            mean_ci(acc["batch-noisy"] - acc["batch"]),
            "paired by seed",
        )
    )
    rows.append(
        score(
            CLAIMS_BY_ID["santurkar-noisy-bn-beats-none"],
            tag,
            mean_ci(acc["batch-noisy"] - acc["none"]),
            "paired by seed",
        )
    )
    rows.append(
        score(
            CLAIMS_BY_ID["santurkar-noisy-bn-less-stable"],
            tag,
            mean_ci(drift["batch-noisy"] - drift["batch"]),
            "paired by seed",
        )
    )
    steps, _ = runs.series("batch", "test_accuracy")
    curves = {LABELS[n]: runs.series(n, "test_accuracy")[1] * 100 for n in acc}
    files = curve_band(
        out / f"{tag}_accuracy", steps, curves, xlabel="training step", ylabel="test accuracy (%)"
    )
    figures.append(ReportFigure.from_files(files, f"{tag}: test accuracy (Fig. 2, left)"))


def summarize(name: str, title: str, settings, out_dir: Path) -> tuple[list[Section], list]:
    sections, rows = [], []
    for setting in settings:
        figures, tables = [], []
        runs = _Runs(out_dir / setting.name)
        try:
            tag = f"{name}/{setting.name}"
            figdir = out_dir / "figures" / setting.name
            if runs.names("landscape/"):
                _landscape(runs, tag, figdir, figures, rows)
            if runs.names("ics_l2/"):
                _ics(runs, tag, figdir, figures, rows, tables)
            if "batch-noisy" in runs.runs:
                _noisy(runs, tag, figdir, figures, rows, tables)
            if runs.names("curvature"):
                _curvature_table(runs, tables)
            cfg = runs.cfg
        finally:
            runs.store.close()
        protocol = _protocol(cfg)
        data = data_source(cfg.data.dataset) + (
            f" Trained on the first {cfg.data.train_subset} training images."
            if cfg.data.train_subset
            else ""
        )
        sections.append(Section(f"{title} — {setting.name}", protocol, data, figures, tables))
    return sections, rows


def _protocol(cfg: TrainConfig) -> dict[str, object]:
    m = cfg.model
    widths = ", ".join(str(w) for w in sorted(set(m.hidden)))
    return {
        "preset": cfg.preset,
        "norms": ", ".join(LABELS.get(n, n) for n in cfg.norms),
        "seeds": cfg.seeds,
        "steps": cfg.steps,
        "optimizer": f"{cfg.optim.name}, lr {cfg.optim.lr}, momentum {cfg.optim.momentum}",
        "batch": cfg.batch_size,
        "model": f"conv {m.conv_channels} (pool every {m.pool_every}), "
        f"{len(m.hidden)} hidden layers of width {widths}, {m.activation}",
    }


def _curvature_table(runs: _Runs, tables: list) -> None:
    cells = []
    for norm in ("batch", "none"):
        if norm in runs.runs:
            _, v = runs.series(norm, "curvature")
            per_seed = v.mean(1)  # (seeds,); NaN where a run diverged
            ok = np.isfinite(per_seed)
            text = format_estimate(mean_ci(per_seed[ok]), 4) if ok.any() else "—"
            if not ok.all():
                text += f" ({int((~ok).sum())}/{ok.size} seeds diverged, left out)"
            cells.append((LABELS[norm], text))
    tables.append(
        Table(
            "Curvature along the gradient, g^T H g / ||g||^2, mean over probed steps",
            ("network", "curvature"),
            cells,
        )
    )
