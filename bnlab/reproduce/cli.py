"""`bnlab reproduce` and `bnlab report`: run the reproductions; render what they measured."""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from bnlab.engine.choices import HelpFormatter
from bnlab.reproduce.names import EXPERIMENT_NAMES

# everything heavy is imported by the command that runs, so `--help` answers at once

DEFAULT_OUT = Path("results") / "reproduce"
DEFAULT_QUICK_OUT = Path("results") / "reproduce-quick"


def run_reproduce(args: argparse.Namespace) -> int:
    from bnlab.engine import executors
    from bnlab.engine.cli import run_context
    from bnlab.report import QUICK_BANNER
    from bnlab.reproduce import overrides
    from bnlab.reproduce.publish import build_report, print_scorecard, record_wall_clock
    from bnlab.reproduce.runner import resolve_names, run_experiment, seeds_for

    start = time.monotonic()

    ctx = run_context(args)  # a missing Ray or CUDA fails here, before any work
    names = resolve_names(args.experiment)
    plan = [(n, seeds_for(n, args.seeds, args.quick)) for n in names]  # validate all first
    root = Path(args.out) if args.out else DEFAULT_QUICK_OUT if args.quick else DEFAULT_OUT
    changes = overrides.check(args.set or [])  # a bad key or value fails before any work
    if args.quick:
        print(f"bnlab reproduce: {QUICK_BANNER}", flush=True)
    if changes:
        print(f"bnlab reproduce: {overrides.label(changes)}", flush=True)
    # Ray is started or joined once for them all
    ctx = replace(ctx, overrides=changes)
    with executors.connected(ctx.executor):
        for name, seeds in plan:
            run_experiment(name, root, seeds, args.quick, ctx)
    written, rows = build_report(root)
    record_wall_clock(root, f"reproduce {args.experiment}", time.monotonic() - start)
    print_scorecard(rows)
    print(f"report: {written[0]} (and {len(written) - 1} more files)")
    return 0


def run_report(args: argparse.Namespace) -> int:
    from bnlab.reproduce.publish import build_report, print_scorecard
    from bnlab.reproduce.runs_report import is_train_dir
    from bnlab.study.declaration import is_study_dir

    if is_study_dir(args.dir):
        return _study_report(args)
    if is_train_dir(Path(args.dir)):
        return _runs_report(args)

    publish = Path(args.publish) if args.publish else None
    written, rows = build_report(Path(args.dir), publish, args.regenerate or "")
    print_scorecard(rows)
    print(f"report: {written[0]} (and {len(written) - 1} more files)")
    return 0


def _runs_report(args: argparse.Namespace) -> int:
    """A `bnlab train` directory: its runs grouped by setting, no verdicts."""
    from bnlab.errors import BnlabError
    from bnlab.reproduce.runs_report import build_runs_report

    if args.publish:
        raise BnlabError("--publish: only for a `bnlab reproduce` results directory")
    written = build_runs_report(Path(args.dir))
    print(f"report: {written[0]} (and {len(written) - 1} more files)")
    return 0


def _study_report(args: argparse.Namespace) -> int:
    """A `bnlab study` directory: its own report pages (no --publish for now)."""
    from bnlab.errors import BnlabError
    from bnlab.study.cli import print_verdicts
    from bnlab.study.report import build_report

    if args.publish:
        raise BnlabError("--publish: not available for a study directory yet")
    written, rows = build_report(Path(args.dir))
    print_verdicts(rows)
    print(f"report: {written[0]} (and {len(written) - 1} more files)")
    return 0


REPRODUCE_EXAMPLES = """examples:
  bnlab reproduce ioffe2015-mnist --quick       # minutes: scaled down, labelled QUICK
  bnlab reproduce all --out results/full        # every experiment, 5 seeds (hours)
  bnlab reproduce small-batch --set model.norm.group.groups=8 --out results/groups8"""


def add_parser(subparsers) -> None:
    from bnlab.engine.cli import add_run_arguments

    names = ", ".join(EXPERIMENT_NAMES)
    rep = subparsers.add_parser(
        "reproduce",
        help="reproduce the canonical BN results over seeds, then write the report",
        description="Train an experiment (BN and baseline stacks over seeds), then write "
        "report.html and report.md in --out. Interrupted runs resume from checkpoints.",
        epilog=REPRODUCE_EXAMPLES,
        formatter_class=HelpFormatter,
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
    add_run_arguments(
        rep,
        "torch threads per stack (default 0: 1, or cores / variants where the variants of a "
        "config train side by side); the thread count changes the order of CPU sums",
        quiet_help="no progress bars (progress lines remain)",
    )
    rep.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config field in every config the experiment trains (repeatable); "
        "the report marks such a run as not the published protocol",
    )
    rep.set_defaults(func=run_reproduce)
    report = subparsers.add_parser(
        "report",
        help="write report.html and report.md from a `bnlab reproduce`, `bnlab study` or "
        "`bnlab train` results directory",
        description="Analyze the stored runs (no training) and write DIR/report.html and "
        "DIR/report.md (with more pages for an experiment or a study), figures as PNG and SVG. "
        "A `bnlab train` directory gets its runs grouped by setting, mean ± 95%% CI over seeds, "
        "and no verdicts (it declares no claims).",
        epilog="examples:\n  bnlab report results/reproduce\n"
        "  bnlab report results/full --publish docs/results\n"
        "  bnlab report results/smoke           # what `bnlab train` wrote",
        formatter_class=HelpFormatter,
    )
    report.add_argument(
        "dir",
        metavar="DIR",
        help="a directory written by `bnlab reproduce`, `bnlab study` or `bnlab train`",
    )
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
