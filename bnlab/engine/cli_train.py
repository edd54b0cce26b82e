"""`bnlab train`'s flags and work: the presets' configs (or those stored in --out) after
--set, trained under one progress display; a signal's checkpoint ends in the command that
resumes. `bnlab.engine.cli` runs it and prints the results table (the report layer's).

Only argparse and the names of bnlab.engine.choices are imported here, so `--help` answers
without loading torch.
"""

from __future__ import annotations

import argparse
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


def train_runs(args: argparse.Namespace) -> tuple[Path, int]:
    """Train what `args` asks for: (the results directory, 0), or, stopped by a signal once
    it checkpointed, the exit status after saying how to resume. `bnlab.engine.cli` prints
    the results table."""
    from bnlab.engine.config import validate
    from bnlab.engine.interrupt import Interrupted
    from bnlab.engine.runs import check_resumable

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
        return out, stopped.exit_status
    return out, 0


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


TRAIN_EXAMPLES = """examples:
  bnlab train --preset smoke                                # seconds: BN and baseline stacks
  bnlab train --preset ioffe2015-mnist --seeds 5 --steps 5000 --out results/ioffe
  bnlab train --resume --out results/ioffe                  # continue it (Ctrl-C checkpoints)
  bnlab train --resume --out results/ioffe --steps 20000    # train it further
  bnlab train --preset smoke --set optim.lr=0.05,0.1,0.5    # an lr grid: one stack per norm
  bnlab train --preset smoke --set batch_size=8,32          # two runs, one directory"""


def add_train(subparsers, run_train) -> None:
    train = subparsers.add_parser(
        "train",
        help="train a preset's stacks of models (BN and baseline, over seeds)",
        description="Train K models as one stacked computation. Every step is logged to "
        "DIR/bnlab.sqlite within seconds (`bnlab results DIR` follows it); Ctrl-C or SIGTERM "
        "checkpoints the step it stops at, and --resume continues from the last checkpoint, "
        "bit-identical. One progress bar covers every stack (plain lines where stdout is no "
        "terminal); the results table ends the run.",
        epilog=TRAIN_EXAMPLES,
        formatter_class=HelpFormatter,
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
        quiet_help="no progress bar or lines (the results table remains)",
    )
    train.set_defaults(func=run_train)
