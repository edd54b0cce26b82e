"""Render report.html in headless Chromium (Debian's `chromium`) and check the screenshot shows
the page: not blank, with the figures' colours and the verdict colours on it.

Needs `chromium` on PATH (`apt-get install -y chromium`); skipped, saying so, without it.
"""

from __future__ import annotations

import pytest
from helpers import CHROMIUM, SCREEN, build_report, has_colour, screenshot
from matplotlib.image import imread

from bnlab.report.figures import PALETTE


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not on PATH: apt-get install -y chromium")
def test_report_renders_with_figures_and_scorecard(tmp_path):
    html_path, _ = build_report(tmp_path, quick=True)
    png_path = tmp_path / "screenshot.png"
    screenshot(html_path, png_path, tmp_path / "profile")
    assert png_path.is_file() and png_path.stat().st_size > 20_000
    rgb = imread(png_path)[..., :3]  # (H, W, 3) floats in [0, 1]
    assert rgb.shape[:2] == (SCREEN[1], SCREEN[0])
    assert rgb.std() > 0.05, "the page rendered blank"
    # Figure lines (first two palette colours), the verdict cell (bluish green) and the quick
    # banner (orange) all reach the screen.
    for colour in (PALETTE[0], PALETTE[1], "#009E73", "#E69F00"):
        assert has_colour(rgb, colour), f"colour {colour} not found in the rendered page"
