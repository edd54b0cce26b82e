"""Each member's final metrics with the settings that tell it from the others, for
`bnlab results` to group (bnlab.report.groups) over one results directory or a tree of them.

A member's settings are its run's whole config, flattened, except what cannot change its
numbers' meaning (`NOT_SETTINGS`: where and how often things ran, what was recorded), with
`lr` the member's own rate (an lr grid's members differ in it) and `norm` its run's norm.
"""

from __future__ import annotations

import json
from pathlib import Path

from bnlab.engine.config import TrainConfig, from_dict
from bnlab.engine.naming import flat, short_key
from bnlab.engine.records import member_records, results_dirs
from bnlab.engine.store import Store

# replicates (seed), the lr and norm stand-ins (the member's own are used), and how often
# and what was recorded: none of them splits a group
NOT_SETTINGS = (
    "preset",
    "norms",
    "seed",
    "seeds",
    "optim.lr",
    "optim.lrs",
    "log_every",
    "eval_every",
    "checkpoint_every",
    "data.data_dir",
)
NOT_SETTINGS_PREFIXES = ("hooks.",)


def _settings(config: dict) -> dict[str, object]:
    values = flat(from_dict(TrainConfig, config))  # a field added since: its default
    return {
        short_key(key, values): value
        for key, value in values.items()
        if key not in NOT_SETTINGS and not key.startswith(NOT_SETTINGS_PREFIXES)
    }


def records_with_settings(root: str | Path) -> list[dict]:
    """`member_records` of every results directory under `root`, each with `dir` (relative
    to `root`, "." for `root` itself) and `settings` (preset, dir, norm, lr, then the config)."""
    out = []
    for directory in results_dirs(root):
        rel = directory.relative_to(root).as_posix()
        with Store(directory) as store:
            configs = {r["run_id"]: json.loads(r["config"]) for r in store.runs()}
        settings = {rid: _settings(cfg) for rid, cfg in configs.items()}
        for rec in member_records(directory):
            head = {"preset": rec["preset"], "dir": rel, "norm": rec["norm"], "lr": rec["lr"]}
            out.append({**rec, "dir": rel, "settings": {**head, **settings[rec["run_id"]]}})
    return out
