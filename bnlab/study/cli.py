"""`bnlab study FILE --out DIR`: run the study a Python file declares, then write its report.

`bnlab report DIR` and `bnlab replay DIR` recognise a study directory (its `study.json`)
and call `bnlab.study.report.build_report` / `bnlab.study.replay.replay_study`.

Only argparse-level modules are imported here: `bnlab study --help` answers without torch.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from bnlab.engine.choices import HelpFormatter
from bnlab.errors import BnlabError

EXAMPLES = """examples:
  bnlab study examples/study_tabular_bn.py --out results/study-tabular
  bnlab study examples/study_resnet_norms.py --out results/study-resnet --threads 1
  bnlab study my_study.py --out results/mine --resume      # after a crash (or kill -9)
  bnlab report results/mine && bnlab replay results/mine"""


def run_study(args: argparse.Namespace) -> int:
    from bnlab.engine.cli import run_context
    from bnlab.study.load import load_study
    from bnlab.study.report import build_report
    from bnlab.study.run import run

    if args.executor != "local":
        raise BnlabError(
            f"--executor: got {args.executor!r}; `bnlab study` runs locally only, for now "
            "(each variant's seeds already train as one computation)"
        )
    ctx = run_context(args)  # CUDA asked for where there is none fails here
    study = load_study(args.file, args.name)
    out = Path(args.out) if args.out else Path("results") / "study" / study.name
    run(
        study,
        out,
        ctx,
        resume=args.resume,
        seeds=args.seeds,
        steps=args.steps,
        file=str(Path(args.file).resolve()),
        command="bnlab " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        say=lambda line: print(f"bnlab study: {line}", flush=True),
    )
    written, rows = build_report(out)
    print_verdicts(rows)
    print(f"results in {out}; report: {written[0]} (and {len(written) - 1} more files)")
    return 0


def print_verdicts(rows) -> None:
    """Each claim's verdict, as `bnlab reproduce` prints its scorecard: the verdict, the
    rule, its role when not counted, the claim, and the effect with the test that decided
    it (or why it is not measurable)."""
    for row in rows:
        role = "" if row.counted else f" [{row.role.value}]"
        extra = f" ({row.divergence_text})" if row.divergence_text else ""
        print(
            f"  {row.verdict.value:15s} {row.rule.id}{role}: {row.claim.statement} "
            f"{row.effect_text}{extra}"
        )
    if not rows:
        print("  the study declares no claim")


def add_parser(subparsers) -> None:
    from bnlab.engine.cli import add_run_arguments

    p = subparsers.add_parser(
        "study",
        help="run your own study (a Python file declaring a bnlab.study.Study), then report",
        description="Load the Study declared in FILE, check it, register it (claims included) "
        "in DIR/bnlab.sqlite and its decision rules in DIR/preregistration.json, train every "
        "variant's seeds (vmapped where the model allows), and write the report's pages "
        "(DIR/report.html and .md first). Interrupted runs continue with --resume.",
        epilog=EXAMPLES,
        formatter_class=HelpFormatter,
    )
    p.add_argument("file", metavar="FILE", help="a Python file with `study = Study(...)`")
    p.add_argument("--out", help="results directory (default results/study/NAME)")
    p.add_argument("--name", help="which study, if FILE declares several")
    p.add_argument("--seeds", type=int, help="models per variant (overrides the study's)")
    p.add_argument("--steps", type=int, help="optimizer steps (overrides the study's)")
    p.add_argument("--resume", action="store_true", help="continue the study in --out")
    add_run_arguments(
        p,
        threads_help="torch threads (default: torch's); stored with the runs, a resume and "
        "a replay use the same count",
    )
    p.set_defaults(func=run_study)
