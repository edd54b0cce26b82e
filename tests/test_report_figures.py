"""Figures are written as real PNG and SVG files, and bad shapes are refused before drawing."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from bnlab.report.figures import curve_band, grid_points, histogram_grid, percentile_bands

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
pytestmark = pytest.mark.filterwarnings("error::bnlab.report.style.MissingUnitWarning")


def _check_files(files):
    assert files.png.read_bytes()[:8] == PNG_MAGIC
    root = ET.parse(files.svg).getroot()  # raises if the SVG is not well-formed XML
    assert root.tag.endswith("svg")
    return files.svg.read_text()


def test_all_three_figures_are_valid_png_and_svg(tmp_path):
    rng = np.random.default_rng(0)
    steps = np.arange(0, 1000, 100)  # (T=10,)
    acc = {"BN": 0.9 + 0.01 * rng.random((3, 10)), "no BN": 0.8 + 0.01 * rng.random((1, 10))}
    svg = _check_files(
        curve_band(
            tmp_path / "a" / "acc", steps, acc, xlabel="step (updates)", ylabel="accuracy (%)"
        )
    )
    assert "n=3" in svg and "no CI" in svg  # legend carries n, and says when there is no band
    q = np.sort(rng.standard_normal((2, 10, 3)), axis=2)  # (seeds, T, P) ascending
    svg = _check_files(
        percentile_bands(
            tmp_path / "pct",
            steps,
            {"no BN": q, "BN": q * 0.1},
            xlabel="step (updates)",
            ylabel="input (unitless)",
        )
    )
    assert "15th percentile" in svg
    grid = [0.01, 0.1, 1.0]
    final = {
        "BN": np.array([[97.0, 98.0, 96.0], [97.5, 98.2, np.nan]]),
        "no BN": np.full((2, 3), 90.0),
    }
    svg = _check_files(
        grid_points(
            tmp_path / "lr", grid, final, xlabel="learning rate (log scale)", ylabel="accuracy (%)"
        )
    )
    assert "1/2 div." in svg


def test_grid_points_draws_references_as_labelled_lines(tmp_path):
    noisy = np.array([[40.0, 50.0], [42.0, 52.0]])  # (seeds, G)
    refs = {"BN": np.array([60.0, 61.0, 59.0]), "no BN": np.array([45.0, 46.0, 44.0])}
    svg = _check_files(
        grid_points(
            tmp_path / "s",
            [0.5, 1.0],
            {"BN + noise": noisy},
            xlabel="noise scale (× scored noise)",
            ylabel="accuracy (%)",
            log_x=False,
            references=refs,
        )
    )
    assert svg.count("BN (n=3)") == 2 and "no BN (n=3)" in svg and "BN + noise (n=2)" in svg


def test_shape_mismatch_is_refused(tmp_path):
    with pytest.raises(ValueError, match="length of x"):
        curve_band(tmp_path / "x", [0, 1, 2], {"BN": np.zeros((2, 4))}, xlabel="s", ylabel="a")
    with pytest.raises(ValueError, match="percentile"):
        percentile_bands(
            tmp_path / "p", [0, 1], {"BN": np.zeros((1, 2, 2))}, xlabel="s", ylabel="v"
        )
    with pytest.raises(ValueError, match="at least one"):
        grid_points(tmp_path / "g", [1.0], {}, xlabel="lr", ylabel="a")
    with pytest.raises(ValueError, match=r"groups\['BN'\].*expected \(seeds,\)"):
        one = {"noisy": np.zeros((2, 1))}
        refs = {"BN": np.zeros((2, 1))}
        grid_points(tmp_path / "g", [1.0], one, xlabel="s", ylabel="a", references=refs)
    edges = np.linspace(-2, 2, 5)
    with pytest.raises(ValueError, match=r"expected \(bins,\)"):
        histogram_grid(tmp_path / "h", edges, {"act1": {"BN": {"step 1": np.ones(3)}}}, xlabel="v")
    mixed = {"act1": {"BN": {"step 1": np.ones(4)}, "no BN": {"step 2": np.ones(4)}}}
    with pytest.raises(ValueError, match="the same in every panel"):
        histogram_grid(tmp_path / "h", edges, mixed, xlabel="v")
    with pytest.raises(ValueError, match="increasing bin edges"):
        histogram_grid(tmp_path / "h", [1.0, 0.0], {"act1": {"BN": {}}}, xlabel="v")
    assert not list(tmp_path.iterdir())  # nothing written


def test_histogram_grid_draws_every_panel_as_a_density(tmp_path):
    """One panel per (row, column), titled with both, each with its curves' legend."""
    edges = np.linspace(-4, 4, 33)  # (bins + 1,), width 0.25
    rng = np.random.default_rng(1)
    fraction = {}
    for name, scale in (("step 50", 0.5), ("step 500", 2.0)):
        counts, _ = np.histogram(scale * rng.standard_normal(10_000), bins=edges)
        fraction[name] = counts / 10_000
    panels = {
        "act1": {"no BN": fraction, "BN, before BN": fraction, "BN, after BN": fraction},
        "act2": {"no BN": fraction},  # a shorter row: its other panels are left empty
    }
    svg = _check_files(histogram_grid(tmp_path / "hist", edges, panels, xlabel="value (unitless)"))
    for title in ("act1: no BN", "act1: BN, before BN", "act1: BN, after BN", "act2: no BN"):
        assert title in svg
    assert "step 500" in svg


def test_a_stem_with_dots_keeps_its_whole_name(tmp_path):
    """Settings are named like "vgg-lr0.1": two figures of one setting must not collide."""
    x, v = np.arange(3), {"a": np.ones((2, 3))}
    beta = curve_band(
        tmp_path / "vgg-lr0.1_beta", x, v, xlabel="step (updates)", ylabel="beta (unitless)"
    )
    loss = curve_band(
        tmp_path / "vgg-lr0.1_loss", x, v, xlabel="step (updates)", ylabel="loss (nats)"
    )
    assert beta.png.name == "vgg-lr0.1_beta.png" and beta.svg.name == "vgg-lr0.1_beta.svg"
    assert loss.png != beta.png and loss.png.is_file() and beta.png.is_file()


def test_the_same_figure_drawn_twice_gives_the_same_files(tmp_path):
    """A republication of the same data changes no figure: no timestamp and no random SVG ids
    (matplotlib draws fresh ones per save unless salted)."""
    steps = np.arange(0, 500, 100)
    acc = {"BN": np.linspace(0.5, 0.9, 10).reshape(2, 5), "no BN": np.full((2, 5), 0.4)}
    a, b = (
        curve_band(tmp_path / d / "acc", steps, acc, xlabel="step (updates)", ylabel="acc (%)")
        for d in ("a", "b")
    )
    assert a.svg.read_bytes() == b.svg.read_bytes() and a.png.read_bytes() == b.png.read_bytes()
