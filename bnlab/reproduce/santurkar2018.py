"""`santurkar2018-*`: Santurkar, Tsipras, Ilyas, Madry 2018, "How does batch normalization
help optimization?", four experiments on the measurements of `bnlab.analysis`.

Each experiment trains its settings (`santurkar2018_settings`: an engine preset, the probes
that measure it, its role and its seeds) into `out_dir/<setting>`, through `train_variants`
like every other experiment; noisy BN's settings then get their noise-free test accuracy
(`santurkar2018_noise_free`). `santurkar2018_sections` reads each setting back into a section
and scorecard rows, scored with the rules registered before the runs (`rules(seeds)`).
`quick=True` shrinks every setting to a seconds-long smoke run.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bnlab.analysis import AnalysisProbe
from bnlab.engine import RunContext
from bnlab.engine.store import DB_NAME
from bnlab.reproduce import santurkar2018_noise_free
from bnlab.reproduce.common import analyze_dirs, quick_suffix, read_manifest, train_variants
from bnlab.reproduce.experiment import Experiment, ExperimentResult, Seeds, register
from bnlab.reproduce.preregistered import seeds_of
from bnlab.reproduce.santurkar2018_lr_sweep import lr_sweep_section
from bnlab.reproduce.santurkar2018_sections import setting_part
from bnlab.reproduce.santurkar2018_settings import (
    NOISE_SCALES,
    SETTINGS,
    TITLES,
    Setting,
    experiment_rules,
    noise_scaled,
    seed_plan,
    setting_config,
)


def _make(name: str) -> Experiment:
    settings = SETTINGS[name]
    by_dir = {s.name: s for s in settings}

    def run(out_dir: Path, seeds: Seeds, quick: bool, ctx: RunContext) -> None:
        for setting in settings:
            n = seeds_of(seeds, f"{name}/{setting.name}")
            cfg, probe = setting_config(setting, n, quick)
            probes = [AnalysisProbe(probe)] if probe is not None else []
            out = Path(out_dir) / setting.name
            train_variants(f"{name} {setting.name}", cfg, out, ctx, not quick, probes)
            if "batch-noisy" in cfg.norms:  # the secondary measure: test with the noise off
                santurkar2018_noise_free.measure(cfg, out, ctx)

    def analyze(out_dir: Path) -> ExperimentResult:
        dirs = [Path(out_dir) / s.name for s in settings if s.noise_scale is None]
        # results trained before the noise sweep existed have no such directories
        sweep = [Path(out_dir) / s.name for s in settings if s.noise_scale is not None]
        sweep = [d for d in sweep if (d / DB_NAME).is_file()]

        def part(res, directory: Path, seeds: Seeds):
            setting = by_dir[directory.name]
            return setting_part(TITLES[name], name, setting, res, directory, seeds, sweep)

        result = analyze_dirs(name, out_dir, part, dirs)
        swept = [s for s in settings if s.lr is not None]
        if len(swept) < 2:
            return result
        section = lr_sweep_section(
            TITLES[name], name, swept, [Path(out_dir) / s.name for s in swept]
        )
        section = replace(section, title=section.title + quick_suffix(read_manifest(out_dir)))
        return replace(result, sections=(*result.sections, section))

    def rules(seeds: Seeds):
        return experiment_rules(name, seeds)

    return Experiment(name, TITLES[name], run, analyze, rules, seed_plan(name))


EXPERIMENTS = {name: register(_make(name)) for name in SETTINGS}

__all__ = [
    "EXPERIMENTS",
    "NOISE_SCALES",
    "SETTINGS",
    "Setting",
    "experiment_rules",
    "noise_scaled",
    "seed_plan",
    "setting_config",
]
