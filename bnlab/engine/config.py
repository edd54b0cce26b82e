"""Frozen run configuration and type-checked `key=value` overrides.

A run is described by one `TrainConfig`: the model, the data, the optimizer and the loop.
Every field has a unit or a meaning in its trailing comment. `apply_overrides` turns
`--set key=value` strings into a new config, checking each value against the field's type,
and `validate` rejects a bad config before any data is loaded or anything is written.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass

import torch

from bnlab.data.pipeline import TRANSFORMS
from bnlab.engine.norms import NORM_LAYERS, NormFit, NormParams, check_fit
from bnlab.engine.stacked import Activation
from bnlab.engine.upgrade import renamed, upgrade_model
from bnlab.errors import ConfigError, did_you_mean

# Choices are read from the code that implements them, so a new one is added in one place.
ACTIVATIONS = tuple(Activation.FUNCTIONS)
NORM_POSITIONS = ("before", "after")  # norm before or after the activation
INITS = ("gaussian", "torch-default")
OPTIMIZERS = ("sgd", "adam")
DTYPES = {"float32": torch.float32, "float64": torch.float64}
# Where and how a run trains is not part of what it trains: these live in the run context
# (bnlab.engine.context), set by command-line flags, so a run resumes on any device.
RUN_SETTINGS = {"device": "--device", "threads": "--threads"}


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of every member of a stack; the norm layer is chosen per stack."""

    conv_channels: tuple[int, ...] = ()  # 3x3 conv blocks (conv, norm, act, 2x2 max-pool)
    pool_every: int = 1  # max-pool after every n-th conv block (2: VGG-style stages of 2 convs)
    hidden: tuple[int, ...] = (100, 100, 100)  # fully connected hidden widths
    num_classes: int = 10
    activation: str = "sigmoid"  # one of ACTIVATIONS
    norm_position: str = "before"  # norm before or after the activation
    init: str = "gaussian"  # "gaussian": N(0, init_std^2), bias 0; or torch's default
    init_std: float = 0.01  # std of the Gaussian init
    # the norm layers' parameters: shared ones (eps, momentum, kernel) and one section per
    # norm layer that has its own (model.norm.group.groups, ...; see bnlab.engine.norms)
    norm: NormParams = field(default_factory=NormParams)


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "mnist"  # a name from bnlab.data
    transform: str = "standardize"  # one of TRANSFORMS (bnlab.data.to_tensor)
    train_subset: int = 0  # keep the first n training images; 0 = all
    test_subset: int = 0  # keep the first n test images; 0 = all
    augment: bool = False  # random crop (pad 4) + horizontal flip
    data_dir: str = ""  # "" = bnlab.data's default location


@dataclass(frozen=True)
class OptimConfig:
    name: str = "sgd"  # one of OPTIMIZERS
    lr: float = 0.1  # learning rate of every member unless `lrs` is set
    lrs: tuple[float, ...] = ()  # an lr grid: members = seeds x lrs, in one stack
    momentum: float = 0.0  # SGD momentum (PyTorch convention, no dampening)
    weight_decay: float = 0.0  # L2 coefficient added to the gradient
    beta1: float = 0.9  # Adam
    beta2: float = 0.999  # Adam
    adam_eps: float = 1e-8  # Adam


@dataclass(frozen=True)
class HookConfig:
    """Activation statistics recorded during training (bnlab.engine.hooks)."""

    layers: tuple[str, ...] = ()  # activation layers ("act3") whose *input* is recorded
    units: tuple[int, ...] = (0, 1, 2)  # units (channels) whose percentiles are recorded
    percentiles: tuple[float, ...] = (15.0, 50.0, 85.0)  # Ioffe & Szegedy 2015, Fig. 1(b, c)
    every: int = 100  # steps between recordings
    histogram_bins: int = 0  # > 0: also a histogram of each recorded layer input
    hist_range: float = 10.0  # histogram over [-hist_range, hist_range]
    norm_inputs: bool = False  # also record the input of each layer's norm (before BN)


@dataclass(frozen=True)
class TrainConfig:
    preset: str = "custom"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    hooks: HookConfig = field(default_factory=HookConfig)
    norms: tuple[str, ...] = ("batch", "none")  # one stack per norm layer ("none" = baseline)
    seed: int = 0  # member i of a stack gets seed + i
    seeds: int = 1  # members per (norm, lr)
    batch_size: int = 60  # examples per member per step
    # drop each epoch's last partial batch (N mod batch_size samples); False keeps it, as a
    # DataLoader's default does, and BN then normalizes over that smaller batch
    drop_last: bool = True
    steps: int = 1000  # optimizer steps; used when epochs == 0
    epochs: int = 0  # > 0: train this many epochs instead of `steps`
    log_every: int = 1  # steps between recorded training metrics
    eval_every: int = 500  # steps between test evaluations; 0 = once per epoch
    checkpoint_every: int = 1000  # steps between checkpoints (and metric flushes)
    dtype: str = "float32"

    @property
    def lrs(self) -> tuple[float, ...]:
        return self.optim.lrs or (self.optim.lr,)

    @property
    def members(self) -> int:
        return self.seeds * len(self.lrs)

    def member_seed(self, k: int) -> int:
        return self.seed + k // len(self.lrs)

    def member_lr(self, k: int) -> float:
        return self.lrs[k % len(self.lrs)]


def to_dict(cfg) -> dict:
    """JSON-ready nested dict (tuples become lists)."""
    return dataclasses.asdict(cfg)


def from_dict(cls, data: dict, path: str = ""):
    """Inverse of `to_dict` for the dataclasses above.

    A config stored by an earlier version whose fields have moved since is upgraded
    (`bnlab.engine.upgrade`), so they keep their stored values; a field added since takes
    its default (new options default to what bnlab did before them), a key bnlab no longer
    has is dropped (see `bnlab.engine.runs.identity`). The dataclasses' own checks name the
    field by its dotted path (ConfigError).
    """
    if cls is ModelConfig:
        data = upgrade_model(data)
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        value, hint = data[f.name], hints[f.name]
        if is_dataclass(hint):
            value = from_dict(hint, value, _join(path, f.name))
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[f.name] = value
    return _build(cls, kwargs, path)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _build(cls, kwargs: dict, path: str):
    """cls(**kwargs), its own checks' ValueError turned into a ConfigError naming the field."""
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except ValueError as err:
        name, sep, reason = str(err).partition(": ")
        if sep and name in {f.name for f in fields(cls)}:
            raise ConfigError(f"{_join(path, name)}: {reason}") from None
        raise ConfigError(f"{path or 'config'}: {err}") from None


# ---------------------------------------------------------------- overrides


def _leaf_paths(cls, prefix: str = "") -> dict[str, tuple[str, ...]]:
    """Map every dotted key ("optim.lr") to its path of field names."""
    hints = typing.get_type_hints(cls)
    paths: dict[str, tuple[str, ...]] = {}
    for f in fields(cls):
        if is_dataclass(hints[f.name]):
            for key, path in _leaf_paths(hints[f.name], f"{prefix}{f.name}.").items():
                paths[key] = (f.name, *path)
        else:
            paths[f"{prefix}{f.name}"] = (f.name,)
    return paths


def _resolve_key(key: str) -> tuple[str, ...]:
    """A dotted key, or a leaf name that is unique ("lr" for "optim.lr")."""
    paths = _leaf_paths(TrainConfig)
    if key in paths:
        return paths[key]
    if key in RUN_SETTINGS:
        raise ConfigError(
            f"{key}: not a config field but a run setting (it does not change what is "
            f"trained); pass {RUN_SETTINGS[key]} instead of --set {key}=..."
        )
    matches = [k for k in paths if k.rsplit(".", 1)[-1] == key]
    if len(matches) == 1:
        return paths[matches[0]]
    moved = renamed(key)
    if moved is not None:
        raise ConfigError(f"{key}: this field is now {moved}")
    hint = did_you_mean(key, paths)
    if hint:  # the near keys, not all of them: `bnlab config show` lists every key
        raise ConfigError(f"unknown config key {key!r}; {hint}(`bnlab config show` lists all)")
    known = ", ".join(sorted(paths))
    raise ConfigError(f"unknown config key {key!r}; expected one of: {known}")


def _parse_scalar(key: str, text: str, kind: type):
    if kind is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key}: expected a boolean (true/false), got {text!r}")
    try:
        return kind(text)
    except ValueError:
        sweep = " (a list of values trains one run per value: `bnlab train`)" if "," in text else ""
        raise ConfigError(f"{key}: expected {kind.__name__}, got {text!r}{sweep}") from None


def parse_value(key: str, text: str, hint):
    """Parse `text` as the type `hint` of field `key` (int, float, str, bool, tuple[T, ...])."""
    origin = typing.get_origin(hint)
    if origin is tuple:
        item = typing.get_args(hint)[0]
        parts = [p.strip() for p in text.split(",") if p.strip()]
        return tuple(_parse_scalar(key, p, item) for p in parts)
    if origin in (typing.Union, types.UnionType):
        raise ConfigError(f"{key}: union-typed fields cannot be overridden")
    return _parse_scalar(key, text, hint)


def _hint_at(path: tuple[str, ...]):
    cls = TrainConfig
    for name in path[:-1]:
        cls = typing.get_type_hints(cls)[name]
    return typing.get_type_hints(cls)[path[-1]]


def _patched(cfg, patch: dict, path: str = ""):
    """`cfg` with the values in the nested dict `patch`; each dataclass is rebuilt once, with
    all its new values, so fields checked together (a range's two ends) can change together."""
    changes = {
        name: _patched(getattr(cfg, name), value, _join(path, name))
        if isinstance(value, dict)
        else value
        for name, value in patch.items()
    }
    return _build(
        type(cfg), {**{f.name: getattr(cfg, f.name) for f in fields(cfg)}, **changes}, path
    )


def apply_overrides(cfg: TrainConfig, overrides: list[str]) -> TrainConfig:
    """Apply `key=value` strings (the last one wins); each value is parsed as its field's
    type.

    A learning rate that would go unused is refused: with `optim.lrs` set, every member
    takes its rate from the grid, so `optim.lr` set alongside it would be silently ignored.
    """
    patch: dict = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        path = _resolve_key(key.strip())
        value = parse_value(".".join(path), text.strip(), _hint_at(path))
        node = patch
        for name in path[:-1]:
            node = node.setdefault(name, {})
        node[path[-1]] = value
    if not patch:
        return cfg
    cfg = _patched(cfg, patch)
    if "lr" in patch.get("optim", {}) and cfg.optim.lrs:
        raise ConfigError(
            f"optim.lr: {cfg.optim.lr:g} would be ignored, since optim.lrs="
            f"{','.join(f'{lr:g}' for lr in cfg.optim.lrs)} gives every member its rate; "
            "set one of them (optim.lrs= clears the grid)"
        )
    return cfg


# ---------------------------------------------------------------- validation


def _check_choice(key: str, value, choices) -> None:
    if value not in choices:
        raise ConfigError(f"{key}: expected one of {', '.join(map(str, choices))}, got {value!r}")


def _check_positive(key: str, value, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{key}: expected a number {bound}, got {value!r}")


def _validate_model(m: ModelConfig) -> None:
    # the norm parameters (m.norm) checked their own values when they were built
    _check_choice("model.activation", m.activation, ACTIVATIONS)
    _check_choice("model.norm_position", m.norm_position, NORM_POSITIONS)
    _check_choice("model.init", m.init, INITS)
    for i, width in enumerate((*m.conv_channels, *m.hidden)):
        _check_positive(f"model widths[{i}]", width)
    _check_positive("model.num_classes", m.num_classes)
    _check_positive("model.init_std", m.init_std)
    _check_positive("model.pool_every", m.pool_every)


def _validate_norm_fit(cfg: TrainConfig) -> None:
    """The chosen norm layers fit the model and the batch (each registry entry's checks)."""
    m = cfg.model
    fit = NormFit(m.conv_channels, m.hidden, cfg.batch_size)
    for norm in cfg.norms:
        check_fit(norm, m.norm, fit)


def _validate_optim(o: OptimConfig) -> None:
    _check_choice("optim.name", o.name, OPTIMIZERS)
    for lr in (o.lr, *o.lrs):
        if not lr >= 0.0:  # also rejects NaN
            raise ConfigError(f"optim.lr: expected a learning rate >= 0, got {lr!r}")
    _check_positive("optim.momentum", o.momentum, allow_zero=True)
    _check_positive("optim.weight_decay", o.weight_decay, allow_zero=True)
    for key in ("beta1", "beta2"):
        if not 0.0 <= getattr(o, key) < 1.0:
            raise ConfigError(f"optim.{key}: expected a value in [0, 1), got {getattr(o, key)}")


def _validate_hooks(h: HookConfig, m: ModelConfig) -> None:
    acts = [f"act{i}" for i in range(1, len(m.conv_channels) + len(m.hidden) + 1)]
    for name in h.layers:
        _check_choice("hooks.layers", name, acts)
        width = (*m.conv_channels, *m.hidden)[acts.index(name)]
        for u in h.units:
            if not 0 <= u < width:
                raise ConfigError(f"hooks.units: unit {u} is not in {name} (width {width})")
    _check_positive("hooks.every", h.every)
    _check_positive("hooks.histogram_bins", h.histogram_bins, allow_zero=True)
    _check_positive("hooks.hist_range", h.hist_range)
    for q in h.percentiles:
        if not 0.0 <= q <= 100.0:
            raise ConfigError(f"hooks.percentiles: expected values in [0, 100], got {q}")


def _validate_loop(cfg: TrainConfig) -> None:
    if not cfg.norms:
        raise ConfigError("norms: expected at least one norm layer, got none")
    for norm in cfg.norms:
        _check_choice("norms", norm, tuple(NORM_LAYERS))
    _check_positive("seeds", cfg.seeds)
    _check_positive("seed", cfg.seed, allow_zero=True)
    _check_positive("batch_size", cfg.batch_size)
    if cfg.batch_size == 1 and any(NORM_LAYERS[n].needs_batch for n in cfg.norms):
        raise ConfigError("batch_size: batch statistics need at least 2 examples, got 1")
    _validate_norm_fit(cfg)
    if cfg.epochs == 0:
        _check_positive("steps", cfg.steps)
    _check_positive("epochs", cfg.epochs, allow_zero=True)
    _check_positive("log_every", cfg.log_every)
    _check_positive("eval_every", cfg.eval_every, allow_zero=True)
    _check_positive("checkpoint_every", cfg.checkpoint_every)
    _check_choice("dtype", cfg.dtype, tuple(DTYPES))


def _validate_dataset_name(d: DataConfig) -> None:
    """A name bnlab does not know is refused at once (no `bnlab data fetch` can help)."""
    from bnlab.data.registry import DATASETS

    if d.dataset not in DATASETS:
        raise ConfigError(
            f"data.dataset: unknown dataset {d.dataset!r}; {did_you_mean(d.dataset, DATASETS)}"
            f"bnlab knows: {', '.join(DATASETS)}"
        )


def _validate_data(d: DataConfig) -> None:
    from bnlab import data

    _check_choice("data.transform", d.transform, TRANSFORMS)
    _check_positive("data.train_subset", d.train_subset, allow_zero=True)
    _check_positive("data.test_subset", d.test_subset, allow_zero=True)
    if d.dataset in data.DATASETS:  # only the dataset asked for is checked (cheap when kept)
        status = data.status(d.dataset, d.data_dir or None)
        if status.present and not status.verified:
            raise ConfigError(
                f"data.dataset: {d.dataset!r} failed verification: "
                f"{status.note or 'a split is missing'}; see `bnlab data verify {d.dataset}`"
            )
        if status.present:
            return
    present = [s.name for s in data.available(d.data_dir or None) if s.present]
    if d.dataset not in present:
        raise ConfigError(
            f"data.dataset: {d.dataset!r} is not present (available: {', '.join(present)}); "
            f"fetch it with `bnlab data fetch {d.dataset}`"
        )


def _validate_sizes(cfg: TrainConfig) -> None:
    """Subsets and the batch fit the dataset's splits; a kept last batch of one sample,
    which batch statistics cannot normalize (x_hat = 0), is refused."""
    from bnlab import data

    d = cfg.data
    sizes = data.status(d.dataset, d.data_dir or None).sizes
    for split, subset in (("train", d.train_subset), ("test", d.test_subset)):
        if subset > sizes[split]:
            raise ConfigError(
                f"data.{split}_subset: got {subset:,}, but {d.dataset} has only "
                f"{sizes[split]:,} {split} images; expected at most that (0 = all)"
            )
    n = d.train_subset or sizes["train"]
    if cfg.batch_size > n:
        raise ConfigError(
            f"batch_size: got {cfg.batch_size:,}, expected at most the {n:,} training images"
        )
    if cfg.drop_last or n % cfg.batch_size != 1:
        return
    if any(NORM_LAYERS[norm].needs_batch for norm in cfg.norms):
        raise ConfigError(
            f"drop_last: false leaves a last batch of 1 sample ({n:,} training images, "
            f"batch_size {cfg.batch_size}), which batch statistics cannot normalize; "
            "expected drop_last=true or another batch_size"
        )


def validate(cfg: TrainConfig, check_data: bool = True) -> TrainConfig:
    """Raise ConfigError naming the first bad field; return cfg unchanged if it is runnable."""
    _validate_model(cfg.model)
    _validate_optim(cfg.optim)
    _validate_hooks(cfg.hooks, cfg.model)
    _validate_loop(cfg)
    _validate_dataset_name(cfg.data)
    if check_data:
        _validate_data(cfg.data)
        _validate_sizes(cfg)
    return cfg
