"""report.html is one self-contained file with the scorecard and figures embedded; report.md
links the same figures; the --quick banner appears exactly when the run was quick."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pytest

from bnlab.report import (
    CLAIMS_BY_ID,
    QUICK_BANNER,
    ReportFigure,
    ReportMeta,
    Section,
    Table,
    curve_band,
    diff_ci,
    score,
    write_report,
)


def build_report(tmp_path: Path, quick: bool) -> tuple[Path, Path]:
    """A small but complete report: two scorecard rows, one section with a figure and a table."""
    rng = np.random.default_rng(0)
    steps = np.arange(0, 5000, 250)  # (T=20,)
    rise = 1 - np.exp(-steps / 800)
    bn = 97 + 1.2 * rise + 0.2 * rng.standard_normal((5, steps.size)) - 40 * np.exp(-steps / 300)
    base = 90 + 4 * rise + 0.4 * rng.standard_normal((5, steps.size)) - 60 * np.exp(-steps / 900)
    figs = tmp_path / "figures"
    files = curve_band(
        figs / "fig1a",
        steps,
        {"BN": bn, "no BN": base},
        xlabel="training step",
        ylabel="test accuracy (%)",
        title="MNIST, 3x100 sigmoid",
    )
    effect = diff_ci(bn[:, -1], base[:, -1], paired=True)
    rows = [
        score(CLAIMS_BY_ID["bn-final-accuracy"], "ioffe2015-mnist", effect, note="5 seeds"),
        score(CLAIMS_BY_ID["bn-smoother-loss"], "ioffe2015-mnist", diff_ci([0.01], [0.02])),
    ]
    section = Section(
        title="ioffe2015-mnist <Fig. 1>",
        protocol={"network": "3 x 100 sigmoid", "steps": "5,000", "batch": 60, "lr": 0.5},
        data_source="MNIST: 60,000 train / 10,000 test; CIFAR-10: 5,000-image subset",
        figures=[ReportFigure.from_files(files, "Test accuracy vs steps, mean and 95% CI")],
        tables=[
            Table("Final accuracy", ("norm", "accuracy"), [("BN", "98.1%"), ("none", "94.0%")])
        ],
        notes=["Seed trains 50,000 steps with lr 0.01; we use lr 0.5 & say why."],
        wall_time_s=123.4,
    )
    meta = ReportMeta(
        "bnlab reproduction",
        "git abc1234 (dirty)",
        4321.0,
        quick=quick,
        created="2025-01-01T00:00:00",
        command="bnlab reproduce ioffe2015-mnist",
    )
    return write_report(tmp_path / "out", [section], rows, meta)


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
