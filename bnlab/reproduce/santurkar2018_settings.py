"""The settings of the four Santurkar et al. 2018 experiments: what each trains, what its
probes measure, its role and its seeds, all fixed before the runs.

Roles: one learning rate per sweep is primary, chosen from the pilot (the previous full run,
5 seeds) before these runs: the VGG at lr 0.1, the paper's Fig. 1 rate, at which both
networks trained in the pilot; the deep linear net at lr 0.003, the largest pilot rate at
which no baseline seed diverged. The other rates are secondary (declared, shown, never
counted). The MNIST net's ICS and landscape settings are primary, as is noisy BN's `vgg`.

Seeds (`preregistered`): MLP_SEEDS for the MNIST net and the deep linear net, CONV_SEEDS for
the VGG settings (the noise sweep's included: its seeds pair with `vgg`'s); the settings of
the confirmatory replication (`preregistered.CONFIRMATION`: the landscape's MNIST net, every
noisy-BN setting) its seeds, from its first seed.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from bnlab.analysis import LandscapeConfig, ProbeConfig
from bnlab.engine import HookConfig, TrainConfig, get_preset
from bnlab.report import Role, Rule
from bnlab.reproduce import preregistered as pre
from bnlab.reproduce.experiment import Seeds
from bnlab.reproduce.santurkar2018_rules import (
    IcsRules,
    LandscapeRules,
    NoisyRules,
    ics_rules,
    landscape_rules,
    noisy_rules,
)


@dataclass(frozen=True)
class Setting:
    """One trained configuration of an experiment and the probes run during its training."""

    name: str  # subdirectory of the experiment's out_dir
    preset: str
    probe: ProbeConfig | None
    lr: float | None = None  # the preset's learning rate unless set (the lr sweep)
    # Set: the noise-strength sweep, BN + noise only, its three noise parameters x this scale
    noise_scale: float | None = None
    role: Role = Role.PRIMARY
    why: str = ""  # why this role, for the protocol table
    seeds: int = pre.CONV_SEEDS  # the pre-registered plan
    first_seed: int = 0  # member k of every network has seed first_seed + k


# The paper's Fig. 4 grid: steps along the gradient of up to 0.4 x the gradient (its caption),
# the same distances for every learning rate of the sweep.
PAPER_GRID = LandscapeConfig(step_sizes=(0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4))
LANDSCAPE = ProbeConfig(every=100, landscape=True, curvature=True, grid=PAPER_GRID)
ICS = ProbeConfig(every=100, landscape=False, ics=True)
# The MNIST net trains at lr 0.5, so its grid follows its rate (0.5x..4x, LandscapeConfig).
MNIST_LANDSCAPE = ProbeConfig(every=250, landscape=True, curvature=True)
DLN_PROBE = ProbeConfig(every=100, ics=True, curvature=True)  # landscape on the lr grid too
# The paper's Fig. 1 rates, then a smaller one (ours). In the pilot the VGG without BN trained
# at lr 0.05 and 0.1 and stayed at chance at 0.5, where BN trained.
VGG_PRIMARY_LR, VGG_LRS = 0.1, (0.1, 0.5, 0.05)
DLN_PRIMARY_LR, DLN_LRS = 0.003, (0.001, 0.003, 0.01)
NOISE_SCALES = (0.25, 0.5)  # weaker noise than `vgg`'s (scale 1): the noisy-BN diagnostic

VGG_WHY = {
    True: "lr 0.1, the paper's Fig. 1 rate, at which both networks trained in the pilot",
    False: f"another rate of the sweep; the primary rate is lr {VGG_PRIMARY_LR:g}",
}
DLN_WHY = {
    True: "lr 0.003, the largest rate of the pilot at which no seed without BN diverged",
    False: f"another rate of the sweep; the primary rate is lr {DLN_PRIMARY_LR:g}",
}
MNIST_WHY = "the Ioffe & Szegedy MNIST net: a second, cheap setting, declared primary"


def _role(primary: bool) -> Role:
    return Role.PRIMARY if primary else Role.SECONDARY


def _vgg_lr(lr: float) -> Setting:
    primary = lr == VGG_PRIMARY_LR
    return Setting(
        f"vgg-lr{lr:g}", "santurkar2018-vgg", LANDSCAPE, lr, None, _role(primary), VGG_WHY[primary]
    )


def _dln_lr(lr: float) -> Setting:
    primary = lr == DLN_PRIMARY_LR
    return Setting(
        f"dln-lr{lr:g}",
        "santurkar2018-deep-linear",
        DLN_PROBE,
        lr,
        None,
        _role(primary),
        DLN_WHY[primary],
        pre.MLP_SEEDS,
    )


def _confirmed(name: str, setting: Setting) -> Setting:
    """`setting` with the confirmatory replication's seeds, where it is part of it."""
    seeds = pre.confirmation(f"{name}/{setting.name}")
    if seeds is None:
        return setting
    return replace(setting, seeds=seeds, first_seed=pre.CONFIRMATION_FIRST_SEED)


_SETTINGS = {
    "santurkar2018-landscape": (
        *(_vgg_lr(lr) for lr in VGG_LRS),
        Setting(
            "mnist", "santurkar2018-mnist", MNIST_LANDSCAPE, why=MNIST_WHY, seeds=pre.MLP_SEEDS
        ),
    ),
    "santurkar2018-ics": (
        Setting("vgg", "santurkar2018-vgg", ICS, why="the paper's VGG setting (Fig. 5)"),
        Setting(
            "mnist",
            "santurkar2018-mnist",
            replace(ICS, every=250),
            why=MNIST_WHY,
            seeds=pre.MLP_SEEDS,
        ),
    ),
    "santurkar2018-deep-linear": tuple(_dln_lr(lr) for lr in DLN_LRS),
    # The claims are scored on `vgg`, at full noise (chosen before any run); the weaker noise
    # settings are the diagnostic of every noisy-BN row.
    "santurkar2018-noisy-bn": (
        Setting("vgg", "santurkar2018-noisy-bn", None, why="the paper's VGG setting (Fig. 2)"),
        *(
            Setting(f"vgg-noise{s:g}", "santurkar2018-noisy-bn", None, noise_scale=s, why="sweep")
            for s in NOISE_SCALES
        ),
    ),
}

SETTINGS = {
    name: tuple(_confirmed(name, s) for s in settings) for name, settings in _SETTINGS.items()
}

TITLES = {
    "santurkar2018-landscape": "Santurkar et al. 2018, Sec. 3.1: BN smooths the loss landscape",
    "santurkar2018-ics": "Santurkar et al. 2018, Sec. 2.2: BN does not reduce ICS",
    "santurkar2018-deep-linear": "Santurkar et al. 2018, Sec. 2.2: a 25-layer deep linear network",
    "santurkar2018-noisy-bn": "Santurkar et al. 2018, Sec. 2.1: noisy BN",
}


def seed_plan(name: str) -> dict[str, int]:
    """The pre-registered seeds of every setting of experiment `name`, keyed by setting."""
    return {f"{name}/{s.name}": s.seeds for s in SETTINGS[name]}


@dataclass(frozen=True)
class SettingRules:
    """The rules of one setting, by what its probes measure."""

    landscape: LandscapeRules | None = None
    ics: IcsRules | None = None
    noisy: NoisyRules | None = None

    def all(self) -> tuple[Rule, ...]:
        parts = (self.landscape, self.ics, self.noisy)
        return tuple(rule for part in parts if part is not None for rule in part.all())


def setting_rules(name: str, setting: Setting, seeds: Seeds) -> SettingRules:
    """The rules `name/setting` is scored with, for the seeds of the plan or of --seeds."""
    tag = f"{name}/{setting.name}"
    n, probe, role = pre.seeds_of(seeds, tag), setting.probe, setting.role
    if setting.noise_scale is not None:
        return SettingRules()  # the sweep is a diagnostic: no rules of its own
    if setting.preset == "santurkar2018-noisy-bn":
        return _from_seed(SettingRules(noisy=noisy_rules(tag, n, role)), setting.first_seed)
    found = SettingRules(
        landscape=landscape_rules(tag, n, role) if probe.landscape else None,
        ics=ics_rules(tag, n, role) if probe.ics else None,
    )
    return _from_seed(found, setting.first_seed)


def _from_seed(found, first_seed: int):
    """`found` (rules, or dataclasses and tuples of them) with every rule's first seed set."""
    if found is None or not first_seed:
        return found
    if isinstance(found, Rule):
        return replace(found, first_seed=first_seed)
    if isinstance(found, tuple):
        return tuple(_from_seed(f, first_seed) for f in found)
    changes = {f.name: _from_seed(getattr(found, f.name), first_seed) for f in fields(found)}
    return replace(found, **changes)


def experiment_rules(name: str, seeds: Seeds) -> tuple[Rule, ...]:
    """Every rule experiment `name` scores: registered before its first training step."""
    return tuple(r for s in SETTINGS[name] for r in setting_rules(name, s, seeds).all())


def _quick(cfg: TrainConfig) -> TrainConfig:
    """A seconds-long version: tiny widths and data, a dozen steps."""
    m = cfg.model
    model = replace(
        m,
        conv_channels=tuple(4 for _ in m.conv_channels),
        hidden=tuple(16 for _ in m.hidden[:6]),
    )
    data = replace(cfg.data, train_subset=256, test_subset=200)
    hooks = replace(cfg.hooks, every=4) if cfg.hooks.layers else HookConfig()
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


def setting_config(
    setting: Setting, seeds: int, quick: bool
) -> tuple[TrainConfig, ProbeConfig | None]:
    cfg = replace(get_preset(setting.preset), seeds=seeds, seed=setting.first_seed)
    if setting.lr is not None:
        cfg = replace(cfg, optim=replace(cfg.optim, lr=setting.lr))
    if setting.noise_scale is not None:
        cfg = noise_scaled(cfg, setting.noise_scale)
    probe = setting.probe
    if quick:
        cfg = _quick(cfg)
        probe = replace(probe, every=4) if probe is not None else None
    return cfg, probe


def noise_scaled(cfg: TrainConfig, scale: float) -> TrainConfig:
    """`cfg` training BN + noise only, every noise parameter (mean range, std range) times
    `scale`; activations recorded as in `cfg`, for the drift row's diagnostic."""
    norm = cfg.model.norm
    noise = norm.batch_noisy
    noise = replace(
        noise,
        mean_max=noise.mean_max * scale,
        std_min=noise.std_min * scale,
        std_max=noise.std_max * scale,
    )
    model = replace(cfg.model, norm=replace(norm, batch_noisy=noise))
    return replace(cfg, norms=("batch-noisy",), model=model)
