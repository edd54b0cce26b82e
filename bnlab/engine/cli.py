"""`bnlab train`, `bnlab results` and `bnlab replay`: train stacks of models; read back what they
measured; check that this code still trains what a results directory holds."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from bnlab.engine import executors
from bnlab.engine.config import TrainConfig, apply_overrides
from bnlab.engine.context import DEVICES, RunContext, resolve_device
from bnlab.engine.presets import PRESETS, get_preset
from bnlab.engine.records import member_records
from bnlab.engine.store import DB_NAME
from bnlab.engine.train import train as train_config
from bnlab.errors import ResultsNotFoundError

TABLE_COLUMNS = (
    "run_id",
    "member",
    "seed",
    "lr",
    "steps",
    "train_loss",
    "test_loss",
    "test_accuracy",
)


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """Preset, then --set overrides in order, then --seeds / --steps (`train` validates)."""
    cfg = apply_overrides(get_preset(args.preset), args.set or [])
    if args.seeds is not None:
        cfg = replace(cfg, seeds=args.seeds)
    if args.steps is not None:
        cfg = replace(cfg, steps=args.steps, epochs=0)
    return cfg


def add_run_arguments(
    parser: argparse.ArgumentParser, threads_help: str, quiet_help: str = "no progress bars"
) -> None:
    """The flags of a run context: --device, --threads, --quiet and the executor's."""
    parser.add_argument(
        "--device",
        choices=DEVICES,
        default="auto",
        help="where to train: cpu, cuda, or auto (CUDA when present; the default)",
    )
    parser.add_argument("--threads", type=int, default=0, help=threads_help)
    parser.add_argument("--quiet", action="store_true", help=quiet_help)
    executors.add_arguments(parser)


def run_context(args: argparse.Namespace) -> RunContext:
    """The run context of `add_run_arguments`' flags; a missing Ray, or CUDA asked for
    where there is none, fails here, before any work."""
    ctx = RunContext(args.device, args.threads, not args.quiet, executors.from_args(args))
    resolve_device(ctx.device)
    return ctx


def run_train(args: argparse.Namespace) -> int:
    ctx = run_context(args)
    cfg = resolve_config(args)
    out = Path(args.out) if args.out else Path("results") / cfg.preset
    train_config(cfg, out, ctx, resume=args.resume)
    print(f"results in {out} ({DB_NAME}); see `bnlab results {out}`")
    return 0


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def run_results(args: argparse.Namespace) -> int:
    records = member_records(args.dir)
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    rows = [[_format(r[c]) for c in TABLE_COLUMNS] for r in records]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(TABLE_COLUMNS)]
    print("  ".join(c.ljust(w) for c, w in zip(TABLE_COLUMNS, widths, strict=True)))
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
    return 0


def run_replay(args: argparse.Namespace) -> int:
    from bnlab.engine import replay

    dirs = list(replay.results_dirs(args.dir))
    if not dirs:
        raise ResultsNotFoundError(f"DIR: no {DB_NAME} under {args.dir}")
    differ = 0
    ctx = replace(replay.REPLAY_CONTEXT, threads=args.threads)  # on the CPU, quietly
    for directory in dirs:
        records = replay.replay(directory, args.steps, ctx)
        path = replay.write_records(directory, records)
        differ += sum(not r.identical for r in records)
        print(f"{directory}: {replay.summary(records)} ({path.name})")
    return 1 if differ else 0


def add_parser(subparsers) -> None:
    train = subparsers.add_parser(
        "train",
        help="train a preset's stacks of models (BN and baseline, over seeds)",
        description="Train K models as one stacked computation; every step is logged to "
        "DIR/bnlab.sqlite and checkpoints allow --resume after a crash.",
    )
    train.add_argument("--preset", required=True, help=f"one of: {', '.join(PRESETS)}")
    train.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config field, e.g. lr=0.1 or optim.lrs=0.1,0.5",
    )
    train.add_argument("--seeds", type=int, help="members (seeds) per norm variant and lr")
    train.add_argument("--steps", type=int, help="optimizer steps (overrides epochs)")
    train.add_argument("--out", help="results directory (default: results/PRESET)")
    train.add_argument("--resume", action="store_true", help="continue the runs in --out")
    add_run_arguments(train, "torch threads while a stack trains (default 0: torch's own)")
    train.set_defaults(func=run_train)
    results = subparsers.add_parser(
        "results",
        help="show the final metrics of every member in a results directory",
        description="One line (or JSON object) per member: config fields and final metrics.",
    )
    results.add_argument("dir", metavar="DIR", help="a directory written by `bnlab train`")
    results.add_argument("--json", action="store_true", help="print a JSON list instead")
    results.set_defaults(func=run_results)
    replay = subparsers.add_parser(
        "replay",
        help="check that this code still trains what a results directory holds",
        description="Re-train the first --steps steps of every stored run under DIR with this "
        "code and compare every logged value bit for bit; writes replay.json beside each "
        "results database (the report shows it). Exit status 1 if any run differs.",
    )
    replay.add_argument("dir", metavar="DIR", help="a results directory, searched recursively")
    replay.add_argument("--steps", type=int, default=50, help="steps to replay (default 50)")
    replay.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads for runs that did not store their count (default 1, as `bnlab "
        "reproduce` trains each stack on 2 cores); a run that stored it replays with it",
    )
    replay.set_defaults(func=run_replay)
