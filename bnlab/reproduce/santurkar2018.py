"""`santurkar2018-*`: Santurkar, Tsipras, Ilyas, Madry 2018, "How does batch normalization
help optimization?", four experiments on the measurements of `bnlab.analysis`.

Each experiment trains one or more settings (an engine preset plus the probes that measure it)
into `out_dir/<setting>`, over seeds, through `train_variants` like every other experiment;
`santurkar2018_sections` reads each setting back into a section and scorecard rows.
`quick=True` shrinks every setting to a seconds-long smoke run.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from bnlab.analysis import AnalysisProbe, ProbeConfig
from bnlab.engine import HookConfig, ModelConfig, TrainConfig, get_preset
from bnlab.reproduce.common import analyze_dirs, train_variants
from bnlab.reproduce.experiment import Experiment, ExperimentResult, register
from bnlab.reproduce.santurkar2018_sections import setting_part


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
        for setting in settings:
            cfg, probe = setting_config(setting, seeds, quick)
            probes = [AnalysisProbe(probe)] if probe is not None else []
            out = Path(out_dir) / setting.name
            train_variants(f"{name} {setting.name}", cfg, out, progress, not quick, probes)

    def analyze(out_dir: Path) -> ExperimentResult:
        dirs = [Path(out_dir) / s.name for s in settings]
        return analyze_dirs(
            name, out_dir, lambda res, d: setting_part(TITLES[name], name, res, d), dirs
        )

    return Experiment(name, TITLES[name], run, analyze, default_seeds=5)


EXPERIMENTS = {name: register(_make(name)) for name in SETTINGS}

__all__ = ["EXPERIMENTS", "SETTINGS", "Setting", "setting_config"]
