"""The layered report: a summary page that answers first, experiment pages, an appendix,
linked both ways, in Markdown and HTML that say the same; HTML pages stand alone; text is
escaped; the quick banner appears exactly when the run was quick."""

from __future__ import annotations

import base64
import re

import pytest
from helpers import build_report, synthetic_rows

from bnlab.report import QUICK_BANNER, ReportFigure, ReportMeta, write_report
from bnlab.report.cells import MARKS
from bnlab.report.document import Heading, Page, TableBlock, link, slug
from bnlab.report.pages import appendix_page
from bnlab.report.summary import FAMILIES, bottom_line, summary_page


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    files = build_report(tmp_path_factory.mktemp("full"), quick=False)
    return {f.name: f.read_text() for f in files}, files[0].parent


def test_every_page_is_written_in_both_formats(report):
    texts, _ = report
    stems = {"report", "exp0", "exp1", "appendix"}
    assert set(texts) == {f"{s}.{ext}" for s in stems for ext in ("md", "html")}


def test_the_summary_answers_before_any_table(report):
    texts, _ = report
    md = texts["report.md"]
    first_table = md.index("\n|")
    for family in FAMILIES:
        assert md.index(f"### {family}") < first_table
    assert "We measured:" in md[:first_table] and "held in" in md[:first_table]
    assert len(md.splitlines()) <= 250


def test_pages_link_both_ways(report):
    texts, out = report
    assert "](exp0.md)" in texts["report.md"] and "](appendix.md)" in texts["report.md"]
    assert "](report.md)" in texts["exp0.md"] and "](report.md)" in texts["appendix.md"]
    assert 'href="exp0.html"' in texts["report.html"] and 'href="report.html"' in texts["exp1.html"]
    for name, text in texts.items():
        for target in re.findall(r"\]\(([\w.-]+\.md)", text) + re.findall(
            r'href="([\w.-]+\.html)', text
        ):
            assert (out / target).is_file(), f"{name} links to missing {target}"


def test_html_pages_stand_alone(report):
    texts, _ = report
    html = texts["report.html"]
    assert "http://" not in html and "https://" not in html
    for src in re.findall(r'src="([^"]*)"', html):
        assert src.startswith("data:image/png;base64,"), src
    assert "<link" not in html and "<script" not in html
    png = base64.b64decode(re.search(r'src="data:image/png;base64,([^"]+)"', html).group(1))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_header_is_one_line_each_without_absolute_paths(report):
    texts, _ = report
    head = texts["report.md"].split("## Bottom line")[0]
    for fact in ("**Code version:**", "**Machine:**", "**Wall time:**", "**Regenerate:**"):
        assert head.count(fact) == 1
    assert "`make results`" in head and "/work/" not in head and "/home/" not in head


def test_verdict_cells_are_marked_and_coloured(report):
    texts, _ = report
    html = texts["report.html"]
    assert "v-reproduced" in html and "v-not-reproduced" in html and "v-inconclusive" in html
    assert any(f"{MARKS[v]} {v.value}" in texts["report.md"] for v in MARKS)


def test_experiment_pages_show_the_rules_and_every_row(report):
    texts, _ = report
    md = texts["exp0.md"]
    assert "## Pre-registered rules" in md and "fingerprint" in md
    assert "## Verdicts" in md and "primary" in md
    assert "Protocol (from the stored configs)" in md and "3 x 100 sigmoid" in md


def test_text_is_escaped(report):
    texts, _ = report
    html = texts["exp0.html"]
    assert "exp0 &lt;Fig. 1&gt;" in html and "<Fig. 1>" not in html
    assert "lr 0.5 &amp; say why" in html


def test_markdown_links_relative_pngs(report):
    texts, out = report
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", texts["exp0.md"])
    assert links == ["figures/fig1a.png"] and (out / links[0]).is_file()


def test_quick_banner_only_when_quick(report, tmp_path):
    texts, _ = report
    assert all(QUICK_BANNER not in t for t in texts.values())
    quick = {f.name: f.read_text() for f in build_report(tmp_path, quick=True)}
    assert QUICK_BANNER in quick["report.md"] and QUICK_BANNER in quick["exp0.html"]
    assert "<title>[QUICK]" in quick["report.html"]


def test_missing_figure_fails_before_writing(tmp_path):
    meta = ReportMeta("t", "v", 1.0)
    page = summary_page(meta, [], [], ReportFigure(tmp_path / "nope.png", "missing"))
    with pytest.raises(FileNotFoundError, match=r"nope\.png"):
        write_report(tmp_path / "out", [page])
    assert not (tmp_path / "out").exists()


def test_table_rows_must_match_columns():
    with pytest.raises(ValueError, match="row 0 has 1 cells"):
        TableBlock(("a", "b"), (("x",),))


def test_anchors_match_markdown_headings():
    assert slug("Bottom line") == "bottom-line"
    assert slug("Wu & He 2018") == "wu--he-2018"
    page = Page("p", "t", (Heading(2, "Wu & He 2018"),))
    assert page.headings()[0].anchor == "wu--he-2018"
    assert link("x", "exp0", "verdicts") == "[x](page:exp0#verdicts)"


def test_bottom_line_names_what_held_and_what_did_not():
    rows = synthetic_rows()
    text = bottom_line("Ioffe & Szegedy 2015", rows)
    assert text.startswith("BN lets a network train") and "held in" in text
    assert "not in " in text and "No tested explanation for what did not hold." in text


def test_bottom_line_names_diagnostics_that_disagree_with_passes_and_failures_alike():
    """A post-hoc diagnostic that disagrees with a ✓ is named as one that disagrees with a ✗
    is; one that agrees with its verdict is not named; the same text twice is named once."""
    from dataclasses import replace

    from bnlab.report.diagnostics import Diagnostic
    from bnlab.report.verdicts import Verdict

    family = "Ioffe & Szegedy 2015"
    rows = [r for r in synthetic_rows() if r.claim.family == family and r.counted]
    held = next(r for r in rows if r.verdict is Verdict.REPRODUCED)
    failed = next(r for r in rows if r.verdict is Verdict.NOT_REPRODUCED)
    estimate = held.effect

    def diag(name, agrees):
        return Diagnostic(name, estimate, " pp", agrees=agrees)

    marked = {
        id(held): replace(held, diagnostics=(diag("twin A", False), diag("twin B", True))),
        id(failed): replace(failed, diagnostics=(diag("twin C", True), diag("twin C", True))),
    }
    text = bottom_line(family, [marked.get(id(r), r) for r in rows])
    assert "where it held, pointing against the claim: in " in text and "twin A" in text
    assert "where it did not hold, pointing the claim's way: in " in text
    assert text.count("twin C (post hoc)") == 1 and "twin B" not in text
    assert "run on 2 of " in text and "Most likely reason" not in text

    agreeing = {id(held): replace(held, diagnostics=(diag("twin B", True),))}
    text = bottom_line(family, [agreeing.get(id(r), r) for r in rows])
    assert "disagree with no verdict" in text


def test_a_confirmatory_replication_is_named_with_its_seeds_only_where_there_is_one():
    from dataclasses import replace

    from bnlab.report.summary import confirmation

    rows = [r for r in synthetic_rows() if r.counted]
    assert confirmation(rows) == ""  # every row's seeds start at 0
    first = replace(rows[0], rule=replace(rows[0].rule, first_seed=1000))
    text = confirmation([first, *rows[1:]])
    assert text.startswith(
        "**A confirmatory replication.** Primary rows from runs on new seeds: 1 "
    )
    assert "from seed 1000" in text and f"{first.experiment} (n = {first.rule.seeds})" in text


def test_the_appendix_defines_measures_tests_and_words():
    page = appendix_page(synthetic_rows())
    titles = [h.text for h in page.headings()]
    assert titles == ["Measures", "Tests and multiplicity", "Gates", "Glossary"]
    words = next(b for b in page.blocks if isinstance(b, TableBlock) and b.columns[0] == "word")
    assert {"random seed", "source project", "stack, member", "probed step"} <= {
        r[0] for r in words.rows
    }
