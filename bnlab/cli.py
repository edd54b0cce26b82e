"""The `bnlab` command line: one subcommand per module, each with its own `--help`.

Every subcommand module exposes `add_parser(subparsers)`, which adds its parser and sets
`func` (a callable taking the parsed `argparse.Namespace` and returning an exit code).
Modules are imported only when the CLI starts, so `bnlab --help` stays cheap to extend.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from bnlab import __version__
from bnlab.engine.choices import HelpFormatter
from bnlab.errors import BnlabError

# Each entry is a module with `add_parser(subparsers)`; order is the order in `--help`.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "bnlab.data.cli",
    "bnlab.engine.cli",
    "bnlab.verify",
    "bnlab.reproduce.cli",
    "bnlab.study.cli",
)

EXAMPLES = """examples:
  bnlab verify                                  # BN core vs torch.nn, one screen
  bnlab train --preset smoke && bnlab results results/smoke
  bnlab reproduce ioffe2015-mnist --quick       # a scaled-down reproduction and its report

`bnlab COMMAND --help` shows each command's options and examples."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bnlab",
        description="bnlab: see, verify and measure what Batch Normalization does.",
        epilog=EXAMPLES,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"bnlab {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except BnlabError as err:  # a user's mistake; any other exception is a bug: traceback
        print(f"bnlab {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # Ctrl-C; training checkpoints first (engine.interrupt)
        detail = f": {err}" if str(err) else ""
        print(f"bnlab {args.command}: interrupted{detail}", file=sys.stderr)
        return getattr(err, "exit_status", 130)


if __name__ == "__main__":
    sys.exit(main())
