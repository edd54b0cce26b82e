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
    ReportFigure,
    ReportMeta,
    Section,
    Table,
    curve_band,
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


def synthetic_rows(n_settings: int = 3) -> list:
    """Decided rows of every claim in `n_settings` settings, with made-up per-seed values:
    enough to fill a realistic report."""
    from bnlab.report import Measure, Scale, decide_families, measure_rule
    from bnlab.report.claims import CLAIMS, Direction
    from bnlab.report.rules import Rule

    rng = np.random.default_rng(0)
    pp = Measure("acc", "final test accuracy (%)", " pp", low=0, high=100)
    rows = []
    for i, claim in enumerate(CLAIMS):
        for s in range(n_settings):
            margin = 0.5 if claim.direction is not Direction.SIMILAR else 2.0
            rule = Rule(claim, f"exp{s}/setting-{i}", pp, Scale.DIFFERENCE, margin, 5)
            shift = {0: 2.0, 1: -2.0, 2: 0.0}[(i + s) % 3]
            bn = 90 + shift + rng.standard_normal(5)
            rows.append(measure_rule(rule, bn, 90 + rng.standard_normal(5)))
    return decide_families(rows)


def build_report(tmp_path: Path, quick: bool, publish: bool = False) -> list[Path]:
    """A small but complete report (summary, two experiment pages, appendix): synthetic rows,
    one section with a figure, a wide table and notes. Returns the files, summary first."""
    from bnlab.report.pages import ExperimentPage, appendix_page, experiment_page
    from bnlab.report.summary import ExperimentLink, summary_page

    rng = np.random.default_rng(0)
    steps = np.arange(0, 5000, 250)  # (T=20,)
    rise = 1 - np.exp(-steps / 800)
    bn = 97 + 1.2 * rise + 0.2 * rng.standard_normal((5, steps.size)) - 40 * np.exp(-steps / 300)
    base = 90 + 4 * rise + 0.4 * rng.standard_normal((5, steps.size)) - 60 * np.exp(-steps / 900)
    out = tmp_path / "out"
    files = curve_band(
        out / "figures" / "fig1a",
        steps,
        {"BN": bn, "no BN": base},
        xlabel="training step (updates)",
        ylabel="test accuracy (%)",
        title="MNIST, 3x100 sigmoid",
    )
    wide = Table(
        "A wide table",
        [f"column {i}" for i in range(14)],
        [[f"{i * 1.5:.3f} pp" for i in range(14)]],
    )
    section = Section(
        title="exp0 <Fig. 1>",
        protocol={"network": "3 x 100 sigmoid", "steps": "5,000", "batch": 60, "lr": 0.5},
        data_source="MNIST: 60,000 train / 10,000 test; CIFAR-10: 5,000-image subset",
        figures=[ReportFigure.from_files(files, "Test accuracy vs steps, mean and 95% CI")],
        tables=[
            Table("Final accuracy", ("norm", "accuracy"), [("BN", "98.1%"), ("none", "94.0%")]),
            wide,
        ],
        notes=["Seed trains 50,000 steps with lr 0.01; we use lr 0.5 & say why."],
        wall_time_s=123.4,
    )
    rows = synthetic_rows()
    meta = ReportMeta(
        "bnlab reproduction",
        "0.1.0+git.abc1234",
        4321.0,
        quick=quick,
        created="2025-01-01T00:00:00",
        machine="a test machine, 2 cores",
        regenerate="make results",
    )
    exps = []
    for name in ("exp0", "exp1"):
        mine = tuple(r for r in rows if r.experiment.startswith(name + "/"))
        exps.append(
            ExperimentPage(name, f"{name}: a test experiment", (section,), mine, 60.0, quick)
        )
    links = [ExperimentLink(e.name, e.title, e.wall_time_s) for e in exps]
    forest = ReportFigure.from_files(files, "stand-in for the forest plot")
    pages = [
        summary_page(meta, rows, links, forest),
        *map(experiment_page, exps),
        appendix_page(rows),
    ]
    return write_report(out, pages, embed_figures=not publish)


# (width, height) of the screenshot: tall enough to reach the forest figure below the
# bottom lines and the counts
SCREEN = (1200, 4000)
WIDTHS = (390, 1280)  # a phone and a desktop


def _chromium(profile_dir, *args: str) -> subprocess.CompletedProcess:
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
        *args,
    ]
    return subprocess.run(cmd, check=True, capture_output=True, timeout=120, text=True)


def screenshot(html_path, png_path, profile_dir, size=SCREEN) -> None:
    uri = Path(html_path).resolve().as_uri()
    _chromium(profile_dir, f"--screenshot={png_path}", f"--window-size={size[0]},{size[1]}", uri)


# Appended to a copy of a page: lists every element whose right edge passes the viewport,
# except inside a scroll container (a wide table scrolls there on purpose).
_OVERFLOW_PROBE = """<script>
window.addEventListener("load", () => {
  const out = [];
  const width = document.documentElement.clientWidth;
  for (const el of document.querySelectorAll("body *")) {
    if (el.closest(".scroll")) continue;
    const box = el.getBoundingClientRect();
    if (box.width > 0 && box.right > width + 1) out.push(el.tagName + ":" + Math.round(box.right));
  }
  const page = document.documentElement.scrollWidth;
  if (page > width) out.push("page:" + page);
  document.body.setAttribute("data-overflow", JSON.stringify(out));
});
</script>"""


def overflowing(html_path, width: int, profile_dir) -> list[str]:
    """Elements of the page that overflow a `width`-pixel viewport horizontally (tables in
    their scroll containers excepted), as 'TAG:right-edge' strings; [] when none."""
    import json
    import re

    probe = Path(profile_dir).parent / f"probe-{width}-{Path(html_path).name}"
    probe.write_text(Path(html_path).read_text().replace("</body>", _OVERFLOW_PROBE + "</body>"))
    done = _chromium(
        profile_dir,
        "--dump-dom",
        "--virtual-time-budget=3000",
        f"--window-size={width},900",
        probe.resolve().as_uri(),
    )
    found = re.search(r'data-overflow="([^"]*)"', done.stdout)
    assert found, "the overflow probe did not run"
    return json.loads(found.group(1).replace("&quot;", '"'))


def has_colour(rgb: np.ndarray, hex_colour: str, tol: float = 0.06) -> bool:
    target = np.array([int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    return bool(np.any(np.all(np.abs(rgb - target) < tol, axis=-1)))
