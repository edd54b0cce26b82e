"""`bn-placement`: BN before the nonlinearity (y = g(BN(Wu))) or after it (y = BN(g(Wu + b))),
in a sigmoid and a ReLU network.

Ioffe & Szegedy 2015, Sec. 3.2, normalize x = Wu + b, before g: u is the output of another
nonlinearity, so "the shape of its distribution is likely to change during training, and
constraining its first and second moments would not eliminate the covariate shift", while
Wu + b "is more likely to have a symmetric, non-sparse distribution" and "normalizing it is
likely to produce activations with a stable distribution". The argument is about the shape
of what BN normalizes, so that is the primary measure: the shape drift (`shape_drift`) of
the norm layer's input over training, from its 5/15/50/85/95th percentiles, standardized by
median and spread (BN's own normalization cannot remove a change of shape). Final test
accuracy is a secondary reading. The paper runs no comparison; many practitioners put BN
after ReLU instead. We train both placements of the `ioffe2015-mnist` network (3 x 100,
MNIST, SGD lr 0.5, batch 60) for Sec. 4.1's 50,000 steps, with the paper's sigmoid and with
ReLU, each activation x placement one results directory. Placing BN after g keeps the linear
layers' biases (BN's beta no longer follows them).
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from bnlab.engine import HookConfig, RunContext, TrainConfig, get_preset
from bnlab.errors import ResultsNotFoundError
from bnlab.report import (
    ReportFigure,
    Role,
    Rule,
    Scale,
    Section,
    Table,
    claims,
    curve_band,
    shape_drift,
    steps_to_accuracy,
)
from bnlab.reproduce import preregistered as pre
from bnlab.reproduce.common import (
    Part,
    Results,
    data_source,
    describe_runs,
    experiment_result,
    per_member,
    read_manifest,
    stored_configs,
    train_side_by_side,
    vs_source,
)
from bnlab.reproduce.experiment import Experiment, ExperimentResult, Seeds, register
from bnlab.reproduce.scoring import fmt, scored

NAME = "bn-placement"
ACTIVATIONS = ("sigmoid", "relu")
POSITIONS = ("before", "after")
STEPS = 50_000  # Sec. 4.1's training length
LAYERS = ("act1", "act2", "act3")  # every hidden layer's norm input is recorded
UNITS = (0, 1, 2, 3, 4)
SHAPE_PERCENTILES = (5.0, 15.0, 50.0, 85.0, 95.0)
RECORD_EVERY = 500  # steps between recordings: 100 over the run


def setting(activation: str) -> str:
    return f"{NAME}/{activation}"


def rules(seeds: Seeds) -> tuple[Rule, ...]:
    """Per activation: shape drift of the normalized input, BN before vs after (primary);
    final test accuracy (secondary). Both only where both placements train."""
    n, out = pre.seeds_of(seeds, NAME), []
    for act in ACTIVATIONS:
        where = setting(act)
        out += [
            Rule(
                claims.BN_BEFORE_NONLINEARITY,
                where,
                pre.SHAPE_DRIFT,
                Scale.LOG2_RATIO,
                pre.LOG2_MARGIN,
                n,
                (pre.TRAINS,),
                Role.PRIMARY,
                "BN after",
                "BN before",
            ),
            Rule(
                claims.BN_BEFORE_NONLINEARITY_ACCURACY,
                where,
                pre.FINAL_ACCURACY,
                Scale.DIFFERENCE,
                pre.ACCURACY_MARGIN,
                n,
                (pre.TRAINS,),
                Role.SECONDARY,
                "BN after",
                "BN before",
            ),
        ]
    return tuple(out)


def config(seeds: int, quick: bool, activation: str, position: str) -> TrainConfig:
    cfg = get_preset("ioffe2015-mnist")
    model = replace(cfg.model, activation=activation, norm_position=position)
    steps = 40 if quick else STEPS
    cfg = replace(
        cfg,
        preset=f"{NAME}-{activation}-{position}",
        model=model,
        norms=("batch",),
        hooks=HookConfig(
            layers=LAYERS,
            units=UNITS,
            percentiles=SHAPE_PERCENTILES,
            every=max(1, steps // 100) if quick else RECORD_EVERY,
            norm_inputs=True,
        ),
        seeds=seeds,
        steps=steps,
        eval_every=steps // 20,
        checkpoint_every=steps // 5,
    )
    if quick:
        cfg = replace(cfg, data=replace(cfg.data, train_subset=600, test_subset=500))
    return cfg


def cell_dir(out_dir: Path, activation: str, position: str) -> Path:
    return Path(out_dir) / f"{activation}_{position}"


def run(out_dir: Path, seeds: Seeds, quick: bool, ctx: RunContext) -> None:
    n = pre.seeds_of(seeds, NAME)
    for act in ACTIVATIONS:  # the two placements of one activation side by side
        jobs = [
            (f"{act}/{pos}", config(n, quick, act, pos), cell_dir(out_dir, act, pos))
            for pos in POSITIONS
        ]
        train_side_by_side(NAME, jobs, ctx, parallel=not quick)


def shapes(res: Results) -> np.ndarray:
    """(K,) each member's shape drift of its norm inputs, mean over LAYERS x UNITS (a unit
    whose 15th and 85th percentiles coincide, e.g. a dead ReLU, has no shape and is skipped);
    NaN where a member has none (diverged)."""
    hooks = res.config("batch")["hooks"]
    values = []
    for layer in hooks["layers"]:
        for unit in hooks["units"]:
            cols = [
                res.metric("batch", f"norm_in/{layer}/u{unit}/p{p:g}")[1]
                for p in hooks["percentiles"]
            ]
            q = np.stack(cols, axis=-1)  # (K, T, P)
            values.append([_shape_or_nan(q[k]) for k in range(q.shape[0])])
    with warnings.catch_warnings():  # a member with no unit measurable is NaN, as meant
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.array(values), axis=0)  # (K,): units that collapsed skipped


def _shape_or_nan(q: np.ndarray) -> float:
    try:
        return shape_drift(q)
    except ValueError:  # diverged, or a unit whose percentiles collapsed
        return np.nan


def analyze(out_dir: Path) -> ExperimentResult:
    manifest = read_manifest(out_dir)
    sections, rows = [], []
    for act in ACTIVATIONS:
        curves, drifts, configs = {}, {}, []
        for pos in POSITIONS:
            directory = cell_dir(out_dir, act, pos)
            if not directory.is_dir():
                raise ResultsNotFoundError(
                    f"DIR: {directory} is missing; rerun `bnlab reproduce {NAME}`"
                )
            with Results(directory) as res:
                curves[pos] = res.metric("batch", "test_accuracy")  # (T,), (K, T)
                drifts[pos] = shapes(res)
                configs += stored_configs(res)
        declared = [r for r in rules(manifest.seeds) if r.setting == setting(act)]
        section, part_rows = _section(out_dir, act, curves, drifts, configs, declared)
        sections.append(section)
        rows += part_rows
    return experiment_result(NAME, manifest, sections, rows)


def _section(out_dir: Path, act: str, curves: dict, drifts: dict, configs, declared) -> Part:
    cfg = configs[0]  # the recording settings, the same for both placements
    final = {pos: 100.0 * acc[:, -1] for pos, (_, acc) in curves.items()}
    shape_rule, accuracy_rule = declared
    gate = pre.trains_gate(*(float(np.nanmean(final[p])) for p in POSITIONS))
    rows = [
        scored(shape_rule, drifts["before"], drifts["after"], gate_failed=gate),
        scored(accuracy_rule, final["before"], final["after"], gate_failed=gate),
    ]
    reach, threshold = _steps_to_common_accuracy(curves)
    labels = {pos: f"BN {pos} {act}" for pos in POSITIONS}
    steps = curves["before"][0]
    files = curve_band(
        Path(out_dir) / "figures" / f"placement_{act}",
        steps,
        {labels[p]: 100.0 * curves[p][1] for p in POSITIONS},
        xlabel="training step (updates)",
        ylabel="test accuracy (%)",
        title=f"BN before vs after the {act}",
        hint="Compare which band rises first and whether the bands still overlap at the end.",
    )
    fig = ReportFigure.from_files(
        files, files.caption("Test accuracy vs step: mean and 95% CI band over seeds")
    )
    table_rows = [
        ("shape drift of the norm input (per recording)", *(fmt(drifts[p], 4) for p in POSITIONS)),
        ("final test accuracy (%, ↑ better)", *(fmt(final[p]) for p in POSITIONS)),
        (
            f"steps to {threshold:.2%} test accuracy (↓ faster)",
            *(fmt(reach[p], 0) for p in POSITIONS),
        ),
    ]
    table = Table(
        f"{act} network: mean ± 95% CI over seeds",
        ("measure", *(labels[p] for p in POSITIONS)),
        table_rows,
    )
    section = Section(
        title=f"{NAME}: BN before vs after the {act} (Ioffe & Szegedy 2015, Sec. 3.2)",
        protocol={
            **describe_runs(configs),
            "placements": "BN before the activation (as the paper) or after it (our comparison)",
            "recorded": f"the norm input of {', '.join(cfg['hooks']['layers'])}, units "
            f"{', '.join(map(str, cfg['hooks']['units']))}: percentiles "
            f"{', '.join(f'{p:g}' for p in cfg['hooks']['percentiles'])} every "
            f"{cfg['hooks']['every']:,} steps",
            **vs_source(
                "Ioffe & Szegedy 2015, Sec. 3.2",
                [
                    "the paper argues for BN before the nonlinearity and runs no comparison; "
                    "this runs one, scored by the distribution stability it argues from",
                    "BN networks only: no network without BN in this study",
                ],
            ),
        },
        data_source=data_source(cfg["data"]["dataset"]),
        figures=[fig],
        tables=[table],
        notes=[
            "Shape drift: each recording's percentiles are standardized by their median and "
            "15-85 spread, so BN's own shift and scale do not count; what is left is the "
            "distribution's shape, which BN cannot normalize away (Sec. 3.2)."
        ],
        configs=configs,
    )
    return section, rows


def _steps_to_common_accuracy(curves: dict) -> tuple[dict, float]:
    """Steps each member needs to reach the lowest peak accuracy of any run (so every run
    reaches it; the rule of `scoring.steps_to_common_accuracy`)."""
    peaks = np.concatenate([np.nanmax(acc, axis=1) for _, acc in curves.values()])
    threshold = float(np.min(peaks[np.isfinite(peaks)]))
    reach = {
        pos: per_member(
            [steps_to_accuracy(steps, np.nan_to_num(a, nan=-1.0), threshold) for a in acc]
        )
        for pos, (steps, acc) in curves.items()
    }
    return reach, threshold


EXPERIMENT = register(
    Experiment(
        NAME,
        "BN before vs after the nonlinearity, sigmoid and ReLU",
        run,
        analyze,
        rules,
        pre.MLP_SEEDS,
    )
)
