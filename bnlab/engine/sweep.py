"""`--set KEY=a,b` on a one-value field: one run per value, each under its own name.

    expand(get_preset("smoke"), ["batch_size=8,32", "lr=0.1"])
    # -> [smoke+lr=0.1+batch_size=8, smoke+lr=0.1+batch_size=32]: two runs, one directory

A list of learning rates (`optim.lr=0.01,0.1`) becomes the lr grid `optim.lrs`: one stack
whose members are seeds x rates, the cheapest sweep there is. Every other list makes one run
per value (a batch size changes the data pipeline, a width the model): each its own stacks,
its own run id (bnlab.engine.naming), trained one after another into the same directory,
where `bnlab results` groups them. Lists of several fields make every combination. Only
fields that name a run can be swept: two runs differing only in, say, `steps` would share
a name.
"""

from __future__ import annotations

import itertools
import typing
from dataclasses import replace

from bnlab.engine.config import (
    ConfigError,
    TrainConfig,
    _hint_at,
    _resolve_key,
    apply_overrides,
)
from bnlab.engine.naming import is_named, run_name


def _split(item: str) -> tuple[str, str, str]:
    """(dotted key, key as typed, value text) of one `key=value` override."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects key=value, got {item!r}")
    return ".".join(_resolve_key(key.strip())), key.strip(), text.strip()


def _values(item: str) -> list[str]:
    """The override strings one `--set` item stands for: itself, or one per listed value."""
    dotted, key, text = _split(item)
    is_list = typing.get_origin(_hint_at(tuple(dotted.split(".")))) is tuple
    if is_list or "," not in text:
        return [item]
    if dotted == "optim.lr":  # a list of rates: the lr grid, one stack
        return [f"optim.lrs={text}"]
    if dotted == "preset" or not is_named(dotted):
        raise ConfigError(
            f"{key}: expected one value, got {text!r}; a list makes one run per value only "
            "for fields that change a run's name (model, data, optimizer, batch size, ...)"
        )
    return [f"{key}={value.strip()}" for value in text.split(",") if value.strip()]


def expand(base: TrainConfig, overrides: list[str]) -> list[TrainConfig]:
    """Every config `overrides` asks for, each named after what it changed from `base`.

    `preset=NAME` among the overrides names the runs NAME (plus the swept values, when there
    are several runs) instead.
    """
    choices = [_values(item) for item in overrides]
    configs = []
    for combo in itertools.product(*choices):
        cfg = apply_overrides(base, list(combo))
        if cfg.preset == base.preset:
            cfg = replace(cfg, preset=run_name(base, cfg))
        elif any(len(c) > 1 for c in choices):  # a name of the user's, and a sweep
            swept = replace(cfg, preset=base.preset)
            cfg = replace(cfg, preset=run_name(replace(base, preset=cfg.preset), swept))
        configs.append(cfg)
    names = [c.preset for c in configs]
    if len(set(names)) < len(names):
        raise ConfigError(f"--set: the runs would share a name ({', '.join(names)})")
    return configs


def sweep_label(base: TrainConfig, overrides: list[str]) -> str:
    """The default directory name of a sweep: the preset and the overrides that name runs,
    as typed ("smoke+batch_size=8,32")."""
    name, parts = base.preset, []
    for item in overrides:
        dotted, _, text = _split(item)
        if dotted == "preset":
            name = text
        elif is_named(dotted):
            parts.append(item.replace("/", "_").replace(" ", ""))
    return "+".join([name, *parts])
