"""`bnlab reproduce` and `bnlab report`: run the reproductions; render what they measured."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from bnlab.report import QUICK_BANNER

DEFAULT_OUT = Path("results") / "reproduce"
DEFAULT_QUICK_OUT = Path("results") / "reproduce-quick"


def run_reproduce(args: argparse.Namespace) -> int:
    from bnlab.engine import executors
    from bnlab.reproduce.publish import build_report, print_scorecard, record_wall_clock
    from bnlab.reproduce.runner import resolve_names, run_experiment, seeds_for

    start = time.monotonic()

    executor = executors.from_args(args)  # a missing Ray fails here, before any work
    if args.device is not None:
        set_device(args.device)  # CUDA asked for but absent fails here, before any work
    names = resolve_names(args.experiment)
    plan = [(n, seeds_for(n, args.seeds, args.quick)) for n in names]  # validate all first
    root = Path(args.out) if args.out else DEFAULT_QUICK_OUT if args.quick else DEFAULT_OUT
    if args.quick:
        print(f"bnlab reproduce: {QUICK_BANNER}", flush=True)
    with executors.using(executor):
        for name, seeds in plan:
            run_experiment(name, root, seeds, args.quick, progress=not args.quiet)
    written, rows = build_report(root)
    record_wall_clock(root, f"reproduce {args.experiment}", time.monotonic() - start)
    print_scorecard(rows)
    print(f"report: {written[0]} (and {len(written) - 1} more files)")
    return 0


def run_report(args: argparse.Namespace) -> int:
    from bnlab.reproduce.publish import build_report, print_scorecard

    publish = Path(args.publish) if args.publish else None
    written, rows = build_report(Path(args.dir), publish, args.regenerate or "")
    print_scorecard(rows)
    print(f"report: {written[0]} (and {len(written) - 1} more files)")
    return 0


def set_device(name: str) -> None:
    """Make "auto" mean `name` for every stack of this run, in this process and its workers."""
    from bnlab.engine.train import DEVICE_ENV, resolve_device

    resolve_device(name)  # raises for CUDA where there is none
    os.environ[DEVICE_ENV] = name


def add_parser(subparsers) -> None:
    from bnlab.engine import executors
    from bnlab.engine.config import DEVICES
    from bnlab.reproduce.registry import experiments

    names = ", ".join(experiments())
    rep = subparsers.add_parser(
        "reproduce",
        help="reproduce the canonical BN results over seeds, then write the report",
        description="Train an experiment (BN and baseline stacks over seeds), then write "
        "report.html and report.md in --out. Interrupted runs resume from checkpoints.",
    )
    rep.add_argument("experiment", metavar="EXPERIMENT", help=f"all, or one of: {names}")
    rep.add_argument(
        "--seeds",
        type=int,
        help="seeds for every setting (default: each experiment's pre-registered plan, 20 for "
        "networks without convolutions and 5 or more for conv nets; 2 with --quick)",
    )
    rep.add_argument(
        "--quick", action="store_true", help="a scaled-down smoke run, labelled as one"
    )
    rep.add_argument(
        "--out", help=f"results directory (default {DEFAULT_OUT}, or {DEFAULT_QUICK_OUT})"
    )
    rep.add_argument("--quiet", action="store_true", help="no progress bars (lines remain)")
    rep.add_argument(
        "--device",
        choices=DEVICES,
        help="where every stack trains: cpu, cuda, or auto (CUDA when present; the default)",
    )
    executors.add_arguments(rep)
    rep.set_defaults(func=run_reproduce)
    report = subparsers.add_parser(
        "report",
        help="write report.html and report.md from a `bnlab reproduce` results directory",
        description="Analyze the stored runs (no training) and write DIR/report.html (one "
        "self-contained file) and DIR/report.md, with figures as PNG and SVG.",
    )
    report.add_argument("dir", metavar="DIR", help="a directory written by `bnlab reproduce`")
    report.add_argument(
        "--publish",
        metavar="DEST",
        help="write the report and a copy of its figures to DEST instead (no databases or "
        "checkpoints: a directory to commit, e.g. docs/results)",
    )
    report.add_argument(
        "--regenerate", metavar="COMMAND", help="the command the report names as regenerating it"
    )
    report.set_defaults(func=run_report)
