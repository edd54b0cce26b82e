"""Every value a results directory logged, as one long table, and as files for other tools.

    df = to_dataframe("results/smoke")     # pandas, one row per (run, member, step, metric)
    export("results/smoke", "parquet")     # -> results/smoke/export.parquet

Columns (`COLUMNS`): run (the run id, `PRESET/norm`), norm, member, seed, lr (the member's
learning rate), step (optimizer steps), metric, value. Metrics are the store's names
(bnlab.engine.store): every logged step `train_loss` (nats), `train_accuracy` (fraction),
`grad_norm` (the global L2 norm), `lr` (the rate that step used) and `grad_norm/<layer>` (each
layer's L2 norm, decoded from the store's binary column); at evaluations `test_loss`,
`test_accuracy`; and whatever else was logged (activation statistics `act/...`, probes). A
NaN value is a diverged member's. A tree of results directories (`bnlab reproduce`) gives a
first column, `dir`, the directory relative to the tree.

pandas, pyarrow and tensorboard are the optional extra `bnlab[export]`; without them a
`BnlabError` names the pip command. W&B is not a target: it needs a network service.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np

from bnlab.engine.records import results_dirs
from bnlab.engine.store import Store
from bnlab.errors import BnlabError

COLUMNS = ("run", "norm", "member", "seed", "lr", "step", "metric", "value")
TRAIN_COLUMNS = ("train_loss", "train_accuracy", "grad_norm", "lr")  # the store's per-step row
FORMATS = {"csv": "export.csv", "parquet": "export.parquet", "tensorboard": "tensorboard"}
INSTALL_HINT = "pip install 'bnlab[export]'"


def require(module: str, purpose: str):
    """`module`, imported, or a BnlabError saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise BnlabError(
            f"{purpose} needs the {module} package, which is not installed ({err}); "
            f"install it with: {INSTALL_HINT}"
        ) from None


def to_dataframe(root: str | Path):
    """The long table of every run under `root` (a results directory or a tree of them)."""
    pd = require("pandas", "to_dataframe")
    dirs = results_dirs(root)
    frames = []
    for directory in dirs:
        frame = pd.DataFrame(_columns(directory), columns=list(COLUMNS))
        if len(dirs) > 1:
            frame.insert(0, "dir", directory.relative_to(root).as_posix())
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _columns(directory: Path) -> dict[str, np.ndarray]:
    """Column arrays of one directory's runs, member after member."""
    parts: list[tuple] = []  # (run, norm, member, seed, lr, steps (T,), metric, values (T,))
    with Store(directory) as store:
        for run in store.runs():
            parts += _run_parts(store, run)
    n = [len(p[5]) for p in parts]
    return {
        "run": np.repeat([p[0] for p in parts], n).astype(object),
        "norm": np.repeat([p[1] for p in parts], n).astype(object),
        "member": np.repeat(np.array([p[2] for p in parts], dtype=np.int64), n),
        "seed": np.repeat(np.array([p[3] for p in parts], dtype=np.int64), n),
        "lr": np.repeat(np.array([p[4] for p in parts], dtype=np.float64), n),
        "step": np.concatenate([np.asarray(p[5], dtype=np.int64) for p in parts] or [[]]),
        "metric": np.repeat([p[6] for p in parts], n).astype(object),
        "value": np.concatenate([np.asarray(p[7], dtype=np.float64) for p in parts] or [[]]),
    }


def _run_parts(store: Store, run: dict) -> list[tuple]:
    """One part per (member, metric) of a run: its steps and values."""
    rid, norm, layers = run["run_id"], run["norm"], json.loads(run["layers"] or "[]")
    members = store.members(rid)
    parts = []
    for member, seed, lr in members:
        logged = store.train_metrics(rid, member)
        steps, key = logged["step"], (rid, norm, member, seed, lr)
        if not len(steps):
            continue
        for name in TRAIN_COLUMNS:  # None (a NaN SQLite stored as NULL) becomes NaN
            parts.append((*key, steps, name, np.array(logged[name], dtype=np.float64)))
        per_layer = logged["layer_grad_norms"]  # (T, layers)
        for i, layer in enumerate(layers):
            parts.append((*key, steps, f"grad_norm/{layer}", per_layer[:, i]))
    seeds = {m: (s, lr) for m, s, lr in members}
    long: dict[tuple[int, str], tuple[list, list]] = {}
    for member, step, name, value in store.metric_rows(rid):
        steps, values = long.setdefault((member, name), ([], []))
        steps.append(step)
        values.append(np.nan if value is None else value)
    for (member, name), (steps, values) in long.items():
        parts.append((rid, norm, member, *seeds[member], steps, name, values))
    return parts


def write_tensorboard(frame, logdir: Path) -> Path:
    """One TensorBoard run per member (`RUN/m<member>-seed<seed>-lr<lr>`), a scalar per metric."""
    require("tensorboard", "--format tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    keys = [c for c in ("dir", "run", "member", "seed", "lr") if c in frame.columns]
    for key, rows in frame.groupby(keys, sort=False):
        where = dict(zip(keys, key, strict=True))
        name = f"m{where['member']}-seed{where['seed']}-lr{where['lr']:g}"
        path = logdir.joinpath(where.get("dir", ""), where["run"], name)
        with SummaryWriter(str(path)) as writer:
            for metric, step, value in rows[["metric", "step", "value"]].itertuples(index=False):
                writer.add_scalar(metric, value, int(step))
    return logdir


def export(root: str | Path, fmt: str, out: str | Path | None = None) -> Path:
    """Write every run under `root` as csv, parquet or TensorBoard event files; returns
    where (default: `root`/export.csv, export.parquet or tensorboard/)."""
    if fmt not in FORMATS:
        raise BnlabError(f"--format: got {fmt!r}, expected one of: {', '.join(FORMATS)}")
    if fmt == "parquet":
        require("pyarrow", "--format parquet")
    if fmt == "tensorboard":
        require("tensorboard", "--format tensorboard")
    frame = to_dataframe(root)
    path = Path(out) if out else Path(root) / FORMATS[fmt]
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "parquet":
        frame.to_parquet(path, index=False)
    else:
        write_tensorboard(frame, path)
    return path
