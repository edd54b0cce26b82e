"""report.html is one self-contained file with the scorecard and figures embedded; report.md
links the same figures; the --quick banner appears exactly when the run was quick."""

from __future__ import annotations

import base64
import re

import pytest
from helpers import build_report

from bnlab.report import QUICK_BANNER, ReportFigure, ReportMeta, Section, Table, write_report


@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    html_path, md_path = build_report(tmp_path_factory.mktemp("full"), quick=False)
    return html_path.read_text(), md_path.read_text(), md_path.parent


def test_html_is_self_contained(full_report):
    html, _, _ = full_report
    assert "http://" not in html and "https://" not in html
    for src in re.findall(r'src="([^"]*)"', html):
        assert src.startswith("data:image/png;base64,"), src
    assert "<link" not in html and "<script" not in html and "url(" not in html
    png = base64.b64decode(re.search(r'src="data:image/png;base64,([^"]+)"', html).group(1))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"  # the embedded figure is a real PNG


def test_html_has_scorecard_protocol_and_provenance(full_report):
    html, _, _ = full_report
    assert html.count('<td class="verdict') == 2
    assert "v-reproduced" in html and "v-inconclusive" in html
    assert "BN reaches higher final test accuracy." in html
    assert "98.15%" in html  # the seed's number beside ours
    assert "pp ± " in html and "(95% CI, n=5)" in html and "(n=1, no CI)" in html
    for text in ("3 x 100 sigmoid", "CIFAR-10: 5,000-image subset", "git abc1234 (dirty)"):
        assert text in html
    assert "1 h 12 min" in html and "2 min 3 s" in html  # total and section wall time


def test_html_escapes_text(full_report):
    html, _, _ = full_report
    assert "ioffe2015-mnist &lt;Fig. 1&gt;" in html and "<Fig. 1>" not in html
    assert "lr 0.5 &amp; say why" in html


def test_markdown_links_relative_pngs(full_report):
    _, md, out_dir = full_report
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert links == ["../figures/fig1a.png"]
    assert (out_dir / links[0]).is_file()
    assert "| BN reaches higher final test accuracy. |" in md
    assert "**reproduced**" in md and "CIFAR-10: 5,000-image subset" in md


def test_quick_banner_only_when_quick(full_report, tmp_path):
    html, md, _ = full_report
    assert QUICK_BANNER not in html and QUICK_BANNER not in md
    quick_html, quick_md = build_report(tmp_path, quick=True)
    assert QUICK_BANNER in quick_html.read_text() and QUICK_BANNER in quick_md.read_text()
    assert "<title>[QUICK]" in quick_html.read_text()


def test_missing_figure_fails_before_writing(tmp_path):
    section = Section("s", {}, "none", figures=[ReportFigure(tmp_path / "gone.png", "c")])
    meta = ReportMeta("t", "v", 1.0)
    with pytest.raises(FileNotFoundError, match=r"gone\.png"):
        write_report(tmp_path / "out", [section], [], meta)
    assert not (tmp_path / "out").exists()


def test_table_rows_must_match_columns():
    with pytest.raises(ValueError, match="row 0 has 1 cells, expected 2"):
        Table("t", ("a", "b"), [("x",)])


def test_both_formats_say_how_to_read_the_numbers(full_report):
    """The verdict rule and what a number means (interval, pairing, test) are in both files,
    and a paired effect shows its t-test's p beside its interval."""
    html, md, _ = full_report
    for text in (html, md):
        assert "Verdicts come from the 95% confidence interval" in text
        assert "paired t-test" in text and "scipy.stats" in text
        assert re.search(r"\(95% CI, n=5\), p (=|<|&lt;) 0\.\d", text)


def test_the_claims_matrix_sits_on_top_with_one_cell_per_claim_and_setting(tmp_path):
    """Claims x settings: a measured cell has its verdict's mark (and, in HTML, colour) and
    the effect with its interval; an unmeasured one is blank; the detailed table follows."""
    from bnlab.report import CLAIMS_BY_ID, diff_ci, score

    acc, smooth = CLAIMS_BY_ID["bn-final-accuracy"], CLAIMS_BY_ID["bn-smoother-loss"]
    # differences 3.1, 3.6, 2.7: s = 0.451, half = 4.303 * s / sqrt(3) = 1.12
    up = diff_ci([98.1, 98.3, 98.0], [95.0, 94.7, 95.3], paired=True)
    down = diff_ci([0.01, 0.02, 0.01], [0.05, 0.06, 0.04], paired=True)
    rows = [
        score(acc, "ioffe2015-mnist", up),
        score(
            acc, "matrix (fashion-mnist / mlp)", diff_ci([1, 2, 1.5], [3, 4.1, 3.6], paired=True)
        ),
        score(smooth, "ioffe2015-mnist", down, seeds=3, diverged=(("no BN", 1),)),
    ]
    meta = ReportMeta("matrix", "test", 1.0)
    html_path, md_path = write_report(tmp_path, [], rows, meta)
    html, md = html_path.read_text(), md_path.read_text()
    header = "| Claim | ioffe2015-mnist | matrix (fashion-mnist / mlp) |"
    assert header in md and md.index(header) < md.index("| Claim | Source | Experiment")
    assert "| BN reaches higher final test accuracy. | ✓ +3.13 ± 1.12 pp (n=3) | ✗ -2.07" in md
    # differences -0.04, -0.04, -0.03: s = 0.00577, half = 4.303 * s / sqrt(3) = 0.0143
    assert "| BN gives smoother training-loss curves. | ✓ -0.0367 ± 0.0143 (n=3)" in md
    assert "diverged: no BN 1/3 |  |" in md  # and nothing measured for it on Fashion-MNIST
    matrix = html[html.index('<table class="matrix">') : html.index("</table>")]
    assert matrix.count('class="cell v-reproduced"') == 2
    assert matrix.count('class="cell v-not-reproduced"') == 1
    assert matrix.count('<td class="cell"></td>') == 1
    assert html.index('class="matrix"') < html.index('class="scorecard"')


def test_not_reproduced_rows_are_listed_with_their_reason(tmp_path):
    """After the detailed scorecard, every not-reproduced row with its reason (or "no tested
    explanation"); a reproduced row and an inconclusive one are not listed."""
    from bnlab.report import CLAIMS_BY_ID, diff_ci, score

    acc, smooth = CLAIMS_BY_ID["bn-final-accuracy"], CLAIMS_BY_ID["bn-smoother-loss"]
    grad = CLAIMS_BY_ID["bn-stable-grad-norm"]
    worse = diff_ci([90.1, 90.3, 90.0], [95.0, 94.7, 95.3], paired=True)  # BN clearly lower
    rows = [
        score(acc, "setting-a", worse, why="the <reason> measured in table X"),
        score(smooth, "setting-b", diff_ci([0.09, 0.08, 0.1], [0.01, 0.02, 0.01], paired=True)),
        score(acc, "setting-c", diff_ci([98.1, 98.3, 98.0], [95.0, 94.7, 95.3], paired=True)),
        score(grad, "setting-d", diff_ci([0.3, 0.1, 0.2], [0.2, 0.2, 0.2], paired=True)),
    ]
    html_path, md_path = write_report(tmp_path, [], rows, ReportMeta("why", "test", 1.0))
    html, md = html_path.read_text(), md_path.read_text()
    title = "Claims not reproduced: the most likely reason"
    section = md[md.index(f"### {title}") :]
    assert md.index("### Every measured claim in detail") < md.index(f"### {title}")
    assert "| BN reaches higher final test accuracy. | setting-a | -4.87 pp" in section
    assert "| the <reason> measured in table X |" in section
    assert "| BN gives smoother training-loss curves. | setting-b |" in section
    assert section.count("| no tested explanation |") == 1
    assert "setting-c" not in section and "setting-d" not in section  # reproduced, inconclusive
    part = html[html.index(title) :]
    assert "the &lt;reason&gt; measured in table X" in part and "no tested explanation" in part
    assert "setting-c" not in part and "setting-d" not in part


def test_no_section_when_every_claim_reproduces(tmp_path):
    from bnlab.report import CLAIMS_BY_ID, diff_ci, score

    up = diff_ci([98.1, 98.3, 98.0], [95.0, 94.7, 95.3], paired=True)
    rows = [score(CLAIMS_BY_ID["bn-final-accuracy"], "a", up, why="never shown")]
    assert rows[0].why == ""  # a reason is kept only on a not-reproduced row
    html_path, md_path = write_report(tmp_path, [], rows, ReportMeta("why", "test", 1.0))
    for text in (html_path.read_text(), md_path.read_text()):
        assert "Claims not reproduced" not in text and "never shown" not in text
