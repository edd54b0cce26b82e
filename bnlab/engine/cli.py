"""`bnlab train`, `results`, `export`, `replay` and `config`: train stacks of models
(`bnlab.engine.cli_train`); read back what they measured, as statistics or as files for
other tools; check that this code still trains a results directory; see a resolved config.

Only argparse and the names of bnlab.engine.choices are imported here: each command imports
what it runs, so `--help` answers without loading torch.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

from bnlab.engine.choices import PRESET_NAMES, HelpFormatter
from bnlab.engine.cli_train import SET_HELP, add_train, resolve_configs
from bnlab.engine.cli_train import add_run_arguments as add_run_arguments  # bnlab reproduce's
from bnlab.engine.cli_train import run_context as run_context  # bnlab reproduce's

MEMBER_COLUMNS = ("run_id", "member", "seed", "lr", "steps", "train_loss", "test_loss")


def _raw(epilog: str) -> dict:
    return {"epilog": epilog, "formatter_class": HelpFormatter}


def run_train(args: argparse.Namespace) -> int:
    """`bnlab train` (`bnlab.engine.cli_train`), then the results table of its directory."""
    from bnlab.engine.cli_train import train_runs
    from bnlab.engine.store import DB_NAME

    out, status = train_runs(args)
    if status == 0:
        print(_groups_table(out))
        print(f"\nresults in {out} ({DB_NAME}); see `bnlab results {out}`")
    return status


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
    from bnlab.study.declaration import is_study_dir
    from bnlab.study.replay import replay_study

    dirs = list(replay.results_dirs(args.dir))
    if not dirs:
        raise ResultsNotFoundError(f"DIR: no {DB_NAME} under {args.dir}")
    differ = 0
    ctx = replace(replay.REPLAY_CONTEXT, threads=args.threads)  # on the CPU, quietly
    for directory in dirs:
        if is_study_dir(directory):  # a `bnlab study`: replayed from its study file
            records = replay_study(directory, args.steps, fallback_threads=args.threads)
        else:
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
    add_train(subparsers, run_train)
    _add_results(subparsers)
    _add_export(subparsers)
    _add_replay(subparsers)
    _add_config(subparsers)


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
        "reproduce` trains each stack on 2 cores); a run that stored it (every `bnlab "
        "study`) replays with it",
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
