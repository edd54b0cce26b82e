"""`bnlab train`, `results`, `export`, `replay` and `config`: train stacks of models; read back
what they measured, as statistics or as files for other tools; check that this code still
trains a results directory; see a resolved config.

Only argparse and the names of bnlab.engine.choices are imported here: each command imports
what it runs, so `--help` answers without loading torch.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import replace
from pathlib import Path

from bnlab.engine.choices import DEVICES, PRESET_NAMES, HelpFormatter, add_executor_arguments

SET_HELP = (
    "override a config field (repeatable), e.g. lr=0.1 or model.hidden=64,64. A list on a "
    "one-value field trains one run per value (batch_size=8,32); a list of rates, "
    "optim.lr=0.01,0.1, is one lr-grid stack. A run is named after what --set changed "
    "(PRESET+lr=0.1); preset=NAME names it NAME. `bnlab config show PRESET` lists every key"
)
MEMBER_COLUMNS = ("run_id", "member", "seed", "lr", "steps", "train_loss", "test_loss")


def _raw(epilog: str) -> dict:
    return {"epilog": epilog, "formatter_class": HelpFormatter}


def _bases(args: argparse.Namespace) -> list:
    """The configs --set changes: the preset's, or, for --resume without --preset, those
    stored in --out."""
    from bnlab.engine.presets import get_preset
    from bnlab.engine.runs import stored_configs
    from bnlab.errors import BnlabError

    if args.preset is not None:
        return [get_preset(args.preset)]
    if not getattr(args, "resume", False):
        raise BnlabError(
            f"--preset: required (one of {', '.join(PRESET_NAMES)}), unless --resume "
            "continues the runs stored in --out"
        )
    if not args.out:
        raise BnlabError("--resume without --preset: expected --out DIR, the runs to continue")
    return stored_configs(Path(args.out))


def resolve_configs(args: argparse.Namespace) -> list:
    """Preset (or the stored configs), then --set overrides (a list makes several runs),
    then --seeds / --steps; each config named after what changed (`train` validates)."""
    from bnlab.engine.sweep import expand

    configs = [cfg for base in _bases(args) for cfg in expand(base, args.set or [])]
    if args.seeds is not None:
        configs = [replace(c, seeds=args.seeds) for c in configs]
    if args.steps is not None:
        configs = [replace(c, steps=args.steps, epochs=0) for c in configs]
    return configs


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
    add_executor_arguments(parser)


def run_context(args: argparse.Namespace):
    """The run context of `add_run_arguments`' flags; a missing Ray, or CUDA asked for
    where there is none, fails here, before any work."""
    from bnlab.engine import executors
    from bnlab.engine.context import RunContext, resolve_device

    ctx = RunContext(args.device, args.threads, not args.quiet, executors.from_args(args))
    resolve_device(ctx.device)
    return ctx


def run_train(args: argparse.Namespace) -> int:
    from bnlab.engine.config import validate
    from bnlab.engine.interrupt import Interrupted
    from bnlab.engine.runs import check_resumable
    from bnlab.engine.store import DB_NAME

    ctx = run_context(args)
    configs = resolve_configs(args)
    if len(configs) > 1:  # every run of a sweep, before any trains (`train` checks one)
        configs = [validate(c) for c in configs]
    out = _out_dir(args, configs)
    if args.resume:
        check_resumable(out, configs)
    try:
        _train_all(configs, out, ctx, args.resume)
    except Interrupted as stopped:  # checkpointed where it stopped
        hint = _resume_command(args, out, len(configs))
        print(f"bnlab train: {stopped}; resume with: {hint}", file=sys.stderr)
        return stopped.exit_status
    print(_groups_table(out))
    print(f"\nresults in {out} ({DB_NAME}); see `bnlab results {out}`")
    return 0


def _train_all(configs: list, out: Path, ctx, resume: bool) -> None:
    """Every config into `out`, under one progress display: a bar on a terminal, plain lines
    elsewhere (Ray prints its own lines)."""
    from tqdm import tqdm

    from bnlab.engine.progress import Progress
    from bnlab.engine.train import train

    display = None
    if ctx.progress and ctx.executor is None:
        display = Progress.for_configs(configs, lines=not sys.stdout.isatty())
    try:
        for cfg in configs:
            if len(configs) > 1:
                tqdm.write(f"run {cfg.preset}", file=sys.stdout)  # above the bar, if any
            train(cfg, out, ctx, resume=resume, display=display)
    finally:
        if display is not None:
            display.close()


def _out_dir(args: argparse.Namespace, configs: list) -> Path:
    from bnlab.engine.sweep import sweep_label

    if args.out:
        return Path(args.out)
    if len(configs) == 1:
        return Path("results") / configs[0].preset
    return Path("results") / sweep_label(_bases(args)[0], args.set)


def _resume_command(args: argparse.Namespace, out: Path, runs: int) -> str:
    """The command that continues what `args` started: the stored configs say it all for
    one run; a sweep may have runs not started yet, so its flags are repeated."""
    words = ["bnlab", "train"]
    if runs > 1 and args.preset is not None:
        words += ["--preset", args.preset]
        for item in args.set or []:
            words += ["--set", item]
        for flag in ("seeds", "steps"):
            if getattr(args, flag) is not None:
                words += [f"--{flag}", str(getattr(args, flag))]
    return shlex.join([*words, "--resume", "--out", str(out)])


def _groups_table(directory) -> str:
    """`bnlab results DIR`'s table: every group's final metrics, mean ± 95% CI with n."""
    from bnlab.engine.results_table import records_with_settings
    from bnlab.report.groups import format_groups, group_records

    keys, groups = group_records(records_with_settings(directory))
    return format_groups(keys, groups)


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def _print_members(records: list[dict]) -> None:
    columns = ("dir", *MEMBER_COLUMNS) if len({r["dir"] for r in records}) > 1 else MEMBER_COLUMNS
    rows = [[_format(r[c]) for c in columns] for r in records]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def run_results(args: argparse.Namespace) -> int:
    from bnlab.engine.results_table import records_with_settings
    from bnlab.report.groups import NOTE

    if args.json or args.members:
        records = records_with_settings(args.dir)
        if args.json:  # one object per member, as before; `settings` says how they differ
            print(json.dumps(records, indent=2, default=list))
        else:
            _print_members(records)
        return 0
    print(_groups_table(args.dir))
    print(f"\n{NOTE}; --members for one line each")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from bnlab.engine.export import export

    path = export(args.dir, args.format, args.out)
    print(f"{args.format}: {path}")
    return 0


def run_replay(args: argparse.Namespace) -> int:
    from bnlab.engine import replay
    from bnlab.engine.store import DB_NAME
    from bnlab.errors import ResultsNotFoundError

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


def run_config_show(args: argparse.Namespace) -> int:
    from bnlab.engine.config import validate
    from bnlab.engine.config_view import format_config

    args.seeds = args.steps = None
    for i, cfg in enumerate(resolve_configs(args)):
        validate(cfg, check_data=False)
        print(("\n" if i else "") + f"# run {cfg.preset}\n{format_config(cfg)}")
    return 0


def run_config_list(args: argparse.Namespace) -> int:
    from bnlab.engine.presets import PRESETS

    width = max(map(len, PRESETS))
    for name, make in PRESETS.items():
        print(f"{name:<{width}}  {(make.__doc__ or '').strip().splitlines()[0]}")
    return 0


def add_parser(subparsers) -> None:
    _add_train(subparsers)
    _add_results(subparsers)
    _add_export(subparsers)
    _add_replay(subparsers)
    _add_config(subparsers)


TRAIN_EXAMPLES = """examples:
  bnlab train --preset smoke                                # seconds: BN and baseline stacks
  bnlab train --preset ioffe2015-mnist --seeds 5 --steps 5000 --out results/ioffe
  bnlab train --resume --out results/ioffe                  # continue it (Ctrl-C checkpoints)
  bnlab train --resume --out results/ioffe --steps 20000    # train it further
  bnlab train --preset smoke --set optim.lr=0.05,0.1,0.5    # an lr grid: one stack per norm
  bnlab train --preset smoke --set batch_size=8,32          # two runs, one directory"""


def _add_train(subparsers) -> None:
    train = subparsers.add_parser(
        "train",
        help="train a preset's stacks of models (BN and baseline, over seeds)",
        description="Train K models as one stacked computation. Every step is logged to "
        "DIR/bnlab.sqlite within seconds (`bnlab results DIR` follows it); Ctrl-C or SIGTERM "
        "checkpoints the step it stops at, and --resume continues from the last checkpoint, "
        "bit-identical. One progress bar covers every stack (plain lines where stdout is no "
        "terminal); the results table ends the run.",
        **_raw(TRAIN_EXAMPLES),
    )
    train.add_argument(
        "--preset",
        help=f"one of: {', '.join(PRESET_NAMES)}; with --resume, default: the configs "
        "stored in --out",
    )
    train.add_argument("--set", action="append", metavar="KEY=VALUE", help=SET_HELP)
    train.add_argument("--seeds", type=int, help="members (seeds) per norm variant and lr")
    train.add_argument(
        "--steps",
        type=int,
        help="optimizer steps (overrides epochs); with --resume, more than a finished run "
        "trained continues it from its last checkpoint",
    )
    train.add_argument("--out", help="results directory (default: results/RUN-NAME)")
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue the runs in --out from their last checkpoints (an error if it holds "
        "none); only steps, epochs and checkpoint_every may differ from the stored config",
    )
    add_run_arguments(
        train,
        "torch threads while a stack trains (default 0: a resumed run's own count, else 1, "
        "or 2 for a big step on an idle machine: bnlab.engine.threads)",
    )
    train.set_defaults(func=run_train)


def _add_results(subparsers) -> None:
    results = subparsers.add_parser(
        "results",
        help="final metrics over seeds: mean ± 95%% CI per group of members",
        description="Group the members under DIR by every setting that differs between them "
        "(norm, lr, batch size, dataset, ...) and print each group's final metrics as "
        "mean ± 95% CI half-width with n. DIR may be a `bnlab reproduce` tree.",
        **_raw(
            "examples:\n  bnlab results results/smoke\n"
            "  bnlab results results/reproduce/small-batch --members\n"
            "  bnlab results results/smoke --json > members.json"
        ),
    )
    results.add_argument("dir", metavar="DIR", help="a directory written by `bnlab train`")
    results.add_argument("--members", action="store_true", help="one line per member instead")
    results.add_argument(
        "--json", action="store_true", help="a JSON list, one object per member, with its settings"
    )
    results.set_defaults(func=run_results)


def _add_export(subparsers) -> None:
    export = subparsers.add_parser(
        "export",
        help="every logged value as CSV, Parquet or TensorBoard event files",
        description="Write every value the runs under DIR logged, one row per (run, member, "
        "step, metric): columns run, norm, member, seed, lr, step, metric, value (per-layer "
        "gradient norms as grad_norm/LAYER). Needs the extra: pip install 'bnlab[export]'.",
        **_raw(
            "examples:\n  bnlab export results/smoke --format csv\n"
            "  bnlab export results/smoke --format tensorboard && tensorboard --logdir "
            "results/smoke/tensorboard"
        ),
    )
    export.add_argument("dir", metavar="DIR", help="a results directory (or a tree of them)")
    export.add_argument(
        "--format", required=True, choices=("csv", "parquet", "tensorboard"), help="file type"
    )
    export.add_argument(
        "--out", help="file (or TensorBoard log directory); default: DIR/export.FORMAT"
    )
    export.set_defaults(func=run_export)


def _add_replay(subparsers) -> None:
    replay = subparsers.add_parser(
        "replay",
        help="check that this code still trains what a results directory holds",
        description="Re-train the first --steps steps of every stored run under DIR with this "
        "code and compare every logged value bit for bit; writes replay.json beside each "
        "results database (the report shows it). Exit status 1 if any run differs.",
        **_raw("examples:\n  bnlab replay results/smoke\n  bnlab replay results/full --steps 20"),
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


def _add_config(subparsers) -> None:
    config = subparsers.add_parser(
        "config",
        help="show a preset's resolved config, or list the presets",
        description="`show`: every field of a preset after --set, with its unit or meaning "
        "and the name the run would get. `list`: the presets.",
        **_raw("examples:\n  bnlab config list\n  bnlab config show smoke --set lr=0.1"),
    )
    sub = config.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    config.set_defaults(func=lambda args: (config.print_help(), 0)[1])
    show = sub.add_parser(
        "show",
        help="print a preset's resolved config",
        **_raw(
            "examples:\n  bnlab config show ioffe2015-mnist\n"
            "  bnlab config show optstudy-convmlp --set dataset=cifar10 --set batch_size=64,128"
        ),
    )
    show.add_argument("preset", metavar="PRESET", help=f"one of: {', '.join(PRESET_NAMES)}")
    show.add_argument("--set", action="append", metavar="KEY=VALUE", help=SET_HELP)
    show.set_defaults(func=run_config_show)
    listing = sub.add_parser(
        "list", help="the presets, one line each", **_raw("example:\n  bnlab config list")
    )
    listing.set_defaults(func=run_config_list)
