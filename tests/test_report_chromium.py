"""Render report.html in headless Chromium (Debian's `chromium`) and check the screenshot shows
the page: not blank, with the figures' colours and the verdict colours on it.

Needs `chromium` on PATH (`apt-get install -y chromium`); skipped, saying so, without it.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from matplotlib.image import imread
from test_report_render import build_report

from bnlab.report.figures import PALETTE

CHROMIUM = shutil.which("chromium")


def _screenshot(html_path, png_path, profile_dir) -> None:
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",  # tests may run as root in a container
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile_dir}",
        f"--screenshot={png_path}",
        "--window-size=1200,3000",
        html_path.resolve().as_uri(),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)


def _has_colour(rgb: np.ndarray, hex_colour: str, tol: float = 0.06) -> bool:
    target = np.array([int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    return bool(np.any(np.all(np.abs(rgb - target) < tol, axis=-1)))


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not on PATH: apt-get install -y chromium")
def test_report_renders_with_figures_and_scorecard(tmp_path):
    html_path, _ = build_report(tmp_path, quick=True)
    png_path = tmp_path / "screenshot.png"
    _screenshot(html_path, png_path, tmp_path / "profile")
    assert png_path.is_file() and png_path.stat().st_size > 20_000
    rgb = imread(png_path)[..., :3]  # (H, W, 3) floats in [0, 1]
    assert rgb.shape[:2] == (3000, 1200)
    assert rgb.std() > 0.05, "the page rendered blank"
    # Figure lines (first two palette colours), the verdict cell (bluish green) and the quick
    # banner (orange) all reach the screen.
    for colour in (PALETTE[0], PALETTE[1], "#009E73", "#E69F00"):
        assert _has_colour(rgb, colour), f"colour {colour} not found in the rendered page"
