"""A run's name says what was changed from its preset.

`bnlab train --preset optstudy-convmlp --set dataset=cifar10` trains
`optstudy-convmlp+dataset=cifar10/batch`, not `optstudy-convmlp/batch`: a stored run's name
never hides a change of protocol, and two variants of one preset can share a results
directory. A preset trained as it is keeps its plain name, so the runs stored before names
followed changes still match. Fields that say how long, how many seeds or where a run trains
(`UNNAMED`) keep the name too: `--steps 200` is the same protocol, trained shorter; the
device and thread count are no config fields at all (bnlab.engine.context). A name
longer than `MAX_NAME` becomes the preset, the changed keys and a short hash of the values.
`--set preset=NAME` names the run NAME instead.
"""

from __future__ import annotations

import hashlib

from bnlab.engine.config import TrainConfig, to_dict

# how long, how many, where, what is recorded: the same protocol under the same name
UNNAMED = (
    "preset",
    "norms",  # each norm is its own run: `PRESET/norm`
    "seeds",
    "steps",
    "epochs",
    "log_every",
    "eval_every",
    "checkpoint_every",
    "data.data_dir",
)
UNNAMED_PREFIXES = ("hooks.",)  # activation statistics recorded: not what is trained
MAX_NAME = 64  # characters; a results directory is named after the run by default


def flat(cfg: TrainConfig) -> dict[str, object]:
    """The config as {dotted key: value}, e.g. {"optim.lr": 0.1, "batch_size": 60}."""

    def walk(node: dict, prefix: str):
        for key, value in node.items():
            if isinstance(value, dict):
                yield from walk(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}", value

    return dict(walk(to_dict(cfg), ""))


def is_named(key: str) -> bool:
    """Whether a change to the dotted field `key` changes a run's name."""
    return key not in UNNAMED and not key.startswith(UNNAMED_PREFIXES)


def short_key(key: str, keys) -> str:
    """The last part of a dotted key when no other key ends the same ("dataset"), else all."""
    leaf = key.rsplit(".", 1)[-1]
    return leaf if sum(k.rsplit(".", 1)[-1] == leaf for k in keys) == 1 else key


def format_value(value: object) -> str:
    """A value as a name shows it: 0.1, 16-32 for a tuple, true/false; never a '/'."""
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, list | tuple):
        text = "-".join(format_value(v) for v in value) or "none"
    else:
        text = str(value)
    return text.replace("/", "_")  # '/' separates a run's name from its norm


def changes(base: TrainConfig, cfg: TrainConfig) -> dict[str, object]:
    """The named fields whose value in `cfg` differs from `base`: {short key: value}."""
    before, after = flat(base), flat(cfg)
    return {
        short_key(key, after): value
        for key, value in after.items()
        if is_named(key) and before.get(key) != value
    }


def run_name(base: TrainConfig, cfg: TrainConfig) -> str:
    """`base.preset` plus what `cfg` changed: "smoke+lr=0.1+batch_size=8", or, past MAX_NAME
    characters, "smoke+lr+batch_size+hidden-1f3a9c0e" (the keys and a hash of the values)."""
    diff = changes(base, cfg)
    if not diff:
        return base.preset
    name = "+".join([base.preset, *(f"{k}={format_value(v)}" for k, v in diff.items())])
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    name = "+".join([base.preset, *diff]) + f"-{digest}"
    return name if len(name) <= MAX_NAME else f"{base.preset}+{len(diff)}-changes-{digest}"
