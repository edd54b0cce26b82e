"""The Santurkar et al. 2018 experiments, registered for `bnlab reproduce` / `bnlab report`.

Each experiment trains one or more settings (an engine preset plus the probes that measure it)
into `out_dir/<setting>`, over seeds; `bnlab.analysis._summary` reads them back into figures,
tables and scorecard rows. `quick=True` shrinks every setting to a seconds-long smoke run.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from bnlab.analysis import _summary
from bnlab.analysis.probes import AnalysisProbe, ProbeConfig
from bnlab.engine.config import HookConfig, ModelConfig, TrainConfig
from bnlab.engine.presets import get_preset
from bnlab.engine.train import train
from bnlab.reproduce.common import quick_suffix, read_manifest
from bnlab.reproduce.experiment import Experiment, ExperimentResult, register


@dataclass(frozen=True)
class Setting:
    """One trained configuration of an experiment and the probes run during its training."""

    name: str  # subdirectory of the experiment's out_dir
    preset: str
    probe: ProbeConfig | None


def _quick(cfg: TrainConfig) -> TrainConfig:
    """A seconds-long version: tiny widths and data, a dozen steps."""
    m = cfg.model
    model = replace(
        m,
        conv_channels=tuple(4 for _ in m.conv_channels),
        hidden=tuple(16 for _ in m.hidden[:6]),
    )
    data = replace(cfg.data, train_subset=256, test_subset=200)
    hooks = replace(cfg.hooks, layers=tuple(_quick_layer(cfg, model) for _ in cfg.hooks.layers))
    hooks = replace(hooks, every=4) if hooks.layers else HookConfig()
    return replace(
        cfg,
        model=model,
        data=data,
        hooks=hooks,
        steps=12,
        eval_every=6,
        checkpoint_every=6,
        log_every=1,
    )


def _quick_layer(cfg: TrainConfig, model: ModelConfig) -> str:
    return f"act{len(model.conv_channels) + len(model.hidden)}"  # the last hidden layer


def setting_config(
    setting: Setting, seeds: int, quick: bool
) -> tuple[TrainConfig, ProbeConfig | None]:
    cfg = replace(get_preset(setting.preset), seeds=seeds)
    probe = setting.probe
    if quick:
        cfg = _quick(cfg)
        probe = replace(probe, every=4) if probe is not None else None
    return cfg, probe


def run_settings(
    settings: tuple[Setting, ...], out_dir: Path, seeds: int, quick: bool, progress: bool
):
    for setting in settings:
        cfg, probe = setting_config(setting, seeds, quick)
        probes = [AnalysisProbe(probe)] if probe is not None else []
        train(cfg, Path(out_dir) / setting.name, resume=True, progress=progress, probes=probes)


LANDSCAPE = ProbeConfig(every=50, landscape=True, curvature=True)
ICS = ProbeConfig(every=50, landscape=False, ics=True)

SETTINGS = {
    "santurkar2018-landscape": (
        Setting("vgg", "santurkar2018-vgg", LANDSCAPE),
        Setting("mnist", "santurkar2018-mnist", replace(LANDSCAPE, every=250)),
    ),
    "santurkar2018-ics": (
        Setting("vgg", "santurkar2018-vgg", ICS),
        Setting("mnist", "santurkar2018-mnist", replace(ICS, every=250)),
    ),
    "santurkar2018-deep-linear": (
        Setting(
            "dln", "santurkar2018-deep-linear", ProbeConfig(every=100, ics=True, curvature=True)
        ),
    ),
    "santurkar2018-noisy-bn": (Setting("vgg", "santurkar2018-noisy-bn", None),),
}

TITLES = {
    "santurkar2018-landscape": "Santurkar et al. 2018, Sec. 3.1: BN smooths the loss landscape",
    "santurkar2018-ics": "Santurkar et al. 2018, Sec. 2.2: BN does not reduce ICS",
    "santurkar2018-deep-linear": "Santurkar et al. 2018, Sec. 2.2: a 25-layer deep linear network",
    "santurkar2018-noisy-bn": "Santurkar et al. 2018, Sec. 2.1: noisy BN",
}


def _make(name: str) -> Experiment:
    settings = SETTINGS[name]

    def run(out_dir: Path, seeds: int, quick: bool, progress: bool) -> None:
        run_settings(settings, Path(out_dir), seeds, quick, progress)

    def analyze(out_dir: Path) -> ExperimentResult:
        # how the run was made (seeds, quick, wall time) is the runner's manifest.json
        manifest = read_manifest(Path(out_dir))
        title = TITLES[name] + quick_suffix(manifest)
        sections, rows = _summary.summarize(name, title, settings, Path(out_dir))
        return ExperimentResult(
            name, tuple(sections), tuple(rows), manifest.wall_time_s, manifest.quick
        )

    return Experiment(name, TITLES[name], run, analyze, default_seeds=5)


EXPERIMENTS = {name: register(_make(name)) for name in SETTINGS}

__all__ = ["EXPERIMENTS", "SETTINGS", "Setting", "run_settings", "setting_config"]
