"""A results directory's runs: their ids, their checkpoint files, what makes a run the same
run, and the checks every executor makes before it trains into a directory.

A run is one stack (one norm variant of a config); its id is "<preset>/<norm>". Whatever
trains it (this process, Ray tasks) writes the same `bnlab.sqlite` rows and the same
`checkpoints/<preset>__<norm>.pt`, so a run started by one executor resumes under another.
"""

from __future__ import annotations

import json
from pathlib import Path

from bnlab.engine.config import TrainConfig, from_dict, to_dict
from bnlab.engine.store import Store
from bnlab.errors import BnlabError


def run_id(cfg: TrainConfig, norm: str) -> str:
    return f"{cfg.preset}/{norm}"


def checkpoint_path(out_dir: Path, rid: str) -> Path:
    return Path(out_dir) / "checkpoints" / (rid.replace("/", "__") + ".pt")


def identity(config: dict) -> dict:
    """The fields that define a run, as JSON values, from a stored or a new config.

    The config is read back through `from_dict`, so a field added to bnlab after the run was
    stored takes its default (new options default to what bnlab did before them) and a key
    bnlab no longer has is dropped: a run from an earlier version resumes, or is found
    finished, instead of being refused. Where a run trains (device, threads) is no config
    field: it resumes anywhere (see `bnlab.engine.context`).
    """
    return json.loads(json.dumps(to_dict(from_dict(TrainConfig, config))))


def check_out_dir(cfg: TrainConfig, store: Store, resume: bool) -> None:
    """Before any work: a fresh run needs a fresh directory; a resumed one the same config."""
    config = identity(to_dict(cfg))
    for norm in cfg.norms:
        rid = run_id(cfg, norm)
        stored = store.run_config(rid)
        if stored is None:
            continue
        if not resume:
            raise BnlabError(
                f"--out: {store.path.parent} already holds run {rid!r}; "
                "pass --resume to continue it or choose another --out"
            )
        if identity(json.loads(stored)) != config:
            raise BnlabError(f"--resume: the config of run {rid!r} differs from the stored one")


def create_run(store: Store, cfg: TrainConfig, norm: str, layers: list[str]) -> None:
    """Record a new run of `cfg`'s `norm` stack: its config, layers and members."""
    members = [(k, cfg.member_seed(k), cfg.member_lr(k)) for k in range(cfg.members)]
    store.create_run(run_id(cfg, norm), cfg.preset, norm, to_dict(cfg), layers, members)


__all__ = ["check_out_dir", "checkpoint_path", "create_run", "identity", "run_id"]
