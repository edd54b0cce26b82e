"""`bnlab study FILE --out DIR`: run the study a Python file declares, then write its report.

`bnlab report DIR` and `bnlab replay DIR` recognise a study directory (its `study.json`)
and call `build_report` / `replay_study` here.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from bnlab.errors import BnlabError


def run_study(args: argparse.Namespace) -> int:
    from bnlab.study.load import load_study
    from bnlab.study.report import build_report
    from bnlab.study.run import run

    if args.executor != "local":
        raise BnlabError(
            f"--executor: got {args.executor!r}; `bnlab study` runs locally only for now "
            "(each variant's seeds already train as one computation)"
        )
    if args.threads is not None:
        if args.threads < 1:
            raise BnlabError(f"--threads: got {args.threads}, expected a number >= 1")
        import torch

        torch.set_num_threads(args.threads)  # stored with the runs: replays use the same
    study = load_study(args.file, args.name)
    out = Path(args.out) if args.out else Path("results") / "study" / study.name
    command = "bnlab " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    run(
        study,
        out,
        resume=args.resume,
        device=args.device or "auto",
        seeds=args.seeds,
        steps=args.steps,
        progress=not args.quiet,
        file=str(Path(args.file).resolve()),
        command=command,
        say=lambda line: print(f"bnlab study: {line}", flush=True),
    )
    html, md, rows = build_report(out)
    print_verdicts(rows)
    print(f"results in {out}; report: {html} and {md}")
    return 0


def print_verdicts(rows) -> None:
    """Each claim's verdict and measured effect, one line each."""
    for row in rows:
        extra = f" ({row.divergence_text})" if row.divergence_text else ""
        print(f"  {row.verdict.value:15s} {row.claim.statement} {row.effect_text}{extra}")
    if not rows:
        print("  the study declares no claim")


def add_parser(subparsers) -> None:
    from bnlab.engine.config import DEVICES

    p = subparsers.add_parser(
        "study",
        help="run your own study (a Python file declaring a bnlab.study.Study), then report",
        description="Load the Study declared in FILE, check it, register it (claims included) "
        "in DIR/bnlab.sqlite, train every variant's seeds (vmapped where the model allows), "
        "and write DIR/report.html and report.md. Interrupted runs continue with --resume.",
    )
    p.add_argument("file", metavar="FILE", help="a Python file with `study = Study(...)`")
    p.add_argument("--out", help="results directory (default results/study/NAME)")
    p.add_argument("--name", help="which study, if FILE declares several")
    p.add_argument("--seeds", type=int, help="models per variant (overrides the study's)")
    p.add_argument("--steps", type=int, help="optimizer steps (overrides the study's)")
    p.add_argument("--device", choices=DEVICES, help="cpu, cuda, or auto (the default)")
    p.add_argument("--resume", action="store_true", help="continue the study in --out")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--executor",
        default="local",
        choices=("local", "ray"),
        help="local only for now (ray is refused with the reason)",
    )
    p.set_defaults(func=run_study)
