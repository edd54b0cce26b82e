"""Helpers the test files share (imported as `helpers`; fixtures live in conftest.py).

- `assert_close`: a `cmp` that says which quantity is off and by how much (makemore part 4);
- `numerical_grad`: central finite differences of a NumPy function, element by element;
- `build_report`: a small but complete report written to disk;
- `CHROMIUM`, `screenshot`, `has_colour`: render a page headless and look for colours on it;
- `QUIET`: the run context of library trainings in tests (no progress bars).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import torch

from bnlab.engine import RunContext
from bnlab.report import (
    CLAIMS_BY_ID,
    ReportFigure,
    ReportMeta,
    Section,
    Table,
    curve_band,
    diff_ci,
    score,
    write_report,
)

CHROMIUM = shutil.which("chromium")
QUIET = RunContext(progress=False)


def assert_close(name: str, ours: torch.Tensor, ref: torch.Tensor, rtol: float, atol: float):
    """Compare two tensors; on failure, say which quantity and by how much it is off."""
    assert ours.shape == ref.shape, f"{name}: shape {tuple(ours.shape)} != {tuple(ref.shape)}"
    assert ours.dtype == ref.dtype, f"{name}: dtype {ours.dtype} != {ref.dtype}"
    maxdiff = (ours - ref).abs().max().item() if ours.numel() else 0.0
    assert torch.allclose(ours, ref, rtol=rtol, atol=atol, equal_nan=True), (
        f"{name}: not close (maxdiff {maxdiff:.3e}, rtol {rtol}, atol {atol})"
    )


def numerical_grad(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """d f() / d x by central differences, perturbing `x` in place (restored after each)."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        plus = f()
        x[i] = old - eps
        minus = f()
        x[i] = old
        grad[i] = (plus - minus) / (2 * eps)
    return grad


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


# (width, height) of the screenshot: tall enough to reach the first section's figure below
# the scorecard, its detail table and the list of claims not reproduced.
SCREEN = (1200, 4000)


def screenshot(html_path, png_path, profile_dir) -> None:
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
        f"--window-size={SCREEN[0]},{SCREEN[1]}",
        html_path.resolve().as_uri(),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)


def has_colour(rgb: np.ndarray, hex_colour: str, tol: float = 0.06) -> bool:
    target = np.array([int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    return bool(np.any(np.all(np.abs(rgb - target) < tol, axis=-1)))
