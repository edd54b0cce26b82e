"""Render the report's pages in headless Chromium (Debian's `chromium`) at a phone's and a
desktop's width: nothing overflows horizontally except tables in their scroll containers,
and the screenshot shows the page (figures and verdict colours on it).

Needs `chromium` on PATH (`apt-get install -y chromium`); skipped, saying so, without it.
"""

from __future__ import annotations

import pytest
from helpers import CHROMIUM, SCREEN, WIDTHS, build_report, has_colour, overflowing, screenshot
from matplotlib.image import imread

from bnlab.report.figures import PALETTE

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not on PATH: apt-get install -y chromium"
)


@needs_chromium
def test_report_renders_with_figures_and_verdicts(tmp_path):
    html_path = build_report(tmp_path, quick=True)[1]
    png_path = tmp_path / "screenshot.png"
    screenshot(html_path, png_path, tmp_path / "profile")
    rgb = imread(png_path)[..., :3]  # (H, W, 3) floats in [0, 1]
    assert rgb.shape[:2] == (SCREEN[1], SCREEN[0])
    assert rgb.std() > 0.05, "the page rendered blank"
    # figure lines (first two palette colours) and the quick banner (orange) reach the screen
    for colour in (PALETTE[0], PALETTE[1], "#E69F00"):
        assert has_colour(rgb, colour), f"colour {colour} not found in the rendered page"


@needs_chromium
@pytest.mark.parametrize("width", WIDTHS)
def test_no_page_overflows_at_phone_and_desktop_widths(tmp_path, width):
    files = build_report(tmp_path, quick=False, publish=True)
    pages = [f for f in files if f.suffix == ".html"]
    assert {p.stem for p in pages} == {"report", "exp0", "exp1", "appendix"}
    for page in pages:
        screenshot(page, tmp_path / f"{page.stem}-{width}.png", tmp_path / "profile", (width, 2000))
        assert overflowing(page, width, tmp_path / "profile") == [], f"{page.name} at {width} px"


@needs_chromium
def test_the_probe_sees_an_overflowing_element(tmp_path):
    page = build_report(tmp_path, quick=False, publish=True)[1]
    text = page.read_text().replace("<main>", '<main><div style="width:2000px">wide</div>', 1)
    page.write_text(text)
    assert overflowing(page, 390, tmp_path / "profile"), "the probe missed a 2000 px element"
