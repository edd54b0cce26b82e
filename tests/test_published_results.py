"""The published report, docs/results/, is a full run: no QUICK banner on any page, at least
5 seeds behind every verdict (verdicts.json), every linked figure present (PNG with its SVG
beside it), no database or checkpoint committed with it, no `--set` run, and no absolute
path of the machine it ran on. Where its runs were trained by more than one code version,
every experiment states a replay (`bnlab replay`) that found its runs bit-identical under the
code that replayed them. A report published in parts (`bnlab.reproduce.records`) was
replayed part by part, on the machine that trained each: its header names them.
Skipped, saying so, until it is published.

`problems` is also run on reports built here, so a check that could never fail shows up."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import build_report

from bnlab.report import QUICK_BANNER
from bnlab.report.claims import PROJECTS

PUBLISHED = Path(__file__).resolve().parent.parent / "docs" / "results"
MIN_SEEDS = 5
LINK = re.compile(r"!\[[^\]]*\]\(([^)]+)\)")
NOT_PUBLISHED = ("*.sqlite", "*.sqlite-*", "*.db", "*.pt", "*.ckpt")
VERSION_ROW = re.compile(r"^\| code version \| ([^|]+) \|$", re.MULTILINE)
REPLAY_ROW = re.compile(r"^\| replay \| ([^|]+) \|$", re.MULTILINE)
MACHINE_PATH = re.compile(r"(?<![\w.~])/(?:work|root|home|tmp|Users|mnt|srv)/[^\s|);,]*")


def problems(root: Path) -> list[str]:
    """Every way the report in `root` (its pages and verdicts.json) falls short of a
    published full run."""
    found = []
    pages = sorted(root.glob("*.md"))
    if not (root / "report.md").is_file():
        return [f"no report.md in {root}"]
    text = "\n".join(p.read_text(encoding="utf-8") for p in pages)
    if QUICK_BANNER in text or "QUICK" in text:
        found.append("a QUICK smoke run, not a full run")
    if "not the published protocol" in text:
        found.append("a run with `bnlab reproduce --set`, not the published protocol")
    verdicts = root / "verdicts.json"
    rows = json.loads(verdicts.read_text()) if verdicts.is_file() else []
    if not rows:
        found.append("no verdicts.json with the rows")
    small = sorted({r["n"] for r in rows if r["n"] < MIN_SEEDS})
    if small:
        found.append(f"verdicts over fewer than {MIN_SEEDS} seeds: n = {small}")
    for page in pages:
        for link in LINK.findall(page.read_text(encoding="utf-8")):
            png = (root / link).resolve()
            if not png.is_relative_to(root.resolve()):
                found.append(f"figure {link} lies outside {root}")
            elif not png.is_file():
                found.append(f"figure {link} is missing")
            elif not png.with_suffix(".svg").is_file():
                found.append(f"figure {link} has no SVG beside it")
    for pattern in NOT_PUBLISHED:
        found += [f"{p} must not be published" for p in root.rglob(pattern)]
    found += [
        f"an absolute path of the machine: {p}" for p in sorted(set(MACHINE_PATH.findall(text)))
    ]
    return found + _version_problems(text)


def _version_problems(text: str) -> list[str]:
    trained = VERSION_ROW.findall(text)
    replays = REPLAY_ROW.findall(text)
    found = [f"a replay found differences: {r.strip()}" for r in replays if "DIFFER" in r]
    if len(set(trained)) > 1:
        if len(replays) < len(trained):
            found.append(
                f"runs trained by {len(set(trained))} code versions, but only "
                f"{len(replays)} of {len(trained)} experiments state a replay"
            )
    return found


def test_the_published_report_is_a_full_run_with_every_figure():
    if not (PUBLISHED / "verdicts.json").is_file():
        pytest.skip(f"{PUBLISHED} holds no layered report yet: it is published by `make results`")
    assert LINK.findall((PUBLISHED / "report.md").read_text(encoding="utf-8")), "no figure"
    assert problems(PUBLISHED) == []


def test_the_checks_catch_a_quick_run_few_seeds_and_missing_figures(tmp_path):
    quick = build_report(tmp_path / "quick", quick=True)[0].parent
    found = problems(quick)
    assert any("QUICK" in p for p in found) and any("verdicts.json" in p for p in found)
    root = tmp_path / "published"
    (root / "figs").mkdir(parents=True)
    for name in ("a.png", "a.svg", "b.png"):
        (root / "figs" / name).write_bytes(b"")
    (root / "checkpoints").mkdir()
    (root / "checkpoints" / "run.pt").write_bytes(b"")
    (root / "verdicts.json").write_text(json.dumps([{"n": 20}, {"n": 3}, {"n": 2}]))
    (root / "report.md").write_text("# summary\n![a](figs/a.png) ![b](figs/b.png)\n")
    (root / "exp.md").write_text(
        "## exp — --set lr=1: not the published protocol\n"
        "![c](figs/c.png) ![d](../d.png)\n\nData: /work/shared/s.npz; ../shared/t.npz\n\n"
        "| code version | 0.1+git.a |\n| replay | replayed by 0.1+git.c: 1 of 2 runs DIFFER |\n"
        "| code version | 0.1+git.b |\n"
    )
    assert problems(root) == [
        "a run with `bnlab reproduce --set`, not the published protocol",
        "verdicts over fewer than 5 seeds: n = [2, 3]",
        "figure figs/c.png is missing",
        f"figure ../d.png lies outside {root}",
        "figure figs/b.png has no SVG beside it",
        f"{root / 'checkpoints' / 'run.pt'} must not be published",
        "an absolute path of the machine: /work/shared/s.npz",
        "a replay found differences: replayed by 0.1+git.c: 1 of 2 runs DIFFER",
        "runs trained by 2 code versions, but only 1 of 2 experiments state a replay",
    ]


README = PUBLISHED.parent.parent / "README.md"
QUOTED = re.compile(r"<!-- quoted from docs/results -->\n(.*?)<!-- end quote -->", re.DOTALL)
NUMBER = re.compile(r"[+-−]?\d+\.\d+ (?:pp|log2)")


def readme_problems(readme: str, published: str) -> list[str]:
    """Every quoted block of the README (between the quote markers) whose sentences or
    numbers are not in the published pages `published` (their text, concatenated)."""
    blocks = QUOTED.findall(readme)
    if not blocks:
        return ["the README quotes nothing from docs/results"]
    found = []
    for block in blocks:
        for line in block.splitlines():
            text = line.removeprefix("> ").removeprefix("- ").strip()
            if text and not text.startswith("**") and text not in published:
                found.append(f"not in the published report: {text[:80]}")
        found += [
            f"number {n} not in the report" for n in NUMBER.findall(block) if n not in published
        ]
    return found


COUNTS = re.compile(
    r"(paper|project) claims (\d+) reproduced, (\d+) not reproduced, (\d+) inconclusive, "
    r"(\d+) not measurable"
)
VERDICTS = ("reproduced", "not reproduced", "inconclusive", "not measurable")


def count_problems(readme: str, rows: list[dict]) -> list[str]:
    """The README's primary-verdict counts (paper and project claims, after Holm) against
    the published rows of verdicts.json."""
    said = {kind: tuple(map(int, counts)) for kind, *counts in COUNTS.findall(readme)}
    if set(said) != {"paper", "project"}:
        return ["the README gives no primary-verdict counts for paper and project claims"]
    found = []
    for kind, counts in said.items():
        primary = [
            r["verdict"]
            for r in rows
            if r["role"] == "primary" and (r["family"] == PROJECTS) == (kind == "project")
        ]
        measured = tuple(primary.count(v) for v in VERDICTS)
        if counts != measured:
            found.append(f"{kind} claims: the README says {counts}, the report {measured}")
    return found


def test_what_the_readme_quotes_is_in_the_published_report():
    if not (PUBLISHED / "verdicts.json").is_file():
        pytest.skip(f"{PUBLISHED} holds no layered report yet")
    published = "\n".join(p.read_text(encoding="utf-8") for p in PUBLISHED.glob("*.md"))
    readme = README.read_text(encoding="utf-8")
    assert readme_problems(readme, published) == []
    rows = json.loads((PUBLISHED / "verdicts.json").read_text())
    assert count_problems(readme, rows) == []


def test_the_count_check_catches_a_wrong_count():
    rows = [
        {"role": "primary", "family": "Wu & He 2018", "verdict": "inconclusive"},
        {"role": "primary", "family": PROJECTS, "verdict": "not reproduced"},
        {"role": "exploratory", "family": PROJECTS, "verdict": "reproduced"},
    ]
    good = (
        "paper claims 0 reproduced, 0 not reproduced, 1 inconclusive, 0 not measurable; "
        "project claims 0 reproduced, 1 not reproduced, 0 inconclusive, 0 not measurable"
    )
    assert count_problems(good, rows) == []
    bad = good.replace("1 inconclusive", "0 inconclusive")
    assert count_problems(bad, rows) == [
        "paper claims: the README says (0, 0, 0, 0), the report (0, 0, 1, 0)"
    ]
    assert count_problems("no counts", rows) == [
        "the README gives no primary-verdict counts for paper and project claims"
    ]


def test_the_readme_check_catches_a_changed_quote():
    published = "BN helps: +1.29 pp. Nothing else.\n"
    good = "<!-- quoted from docs/results -->\n> BN helps: +1.29 pp.\n<!-- end quote -->"
    assert readme_problems(good, published) == []
    bad = good.replace("+1.29", "+1.30")
    assert readme_problems(bad, published) == [
        "not in the published report: BN helps: +1.30 pp.",
        "number +1.30 pp not in the report",
    ]
    assert readme_problems("no quote", published) == ["the README quotes nothing from docs/results"]
