"""The two example studies in examples/, through the README's command: each runs, writes a
report with its verdicts, and resumes after `kill -9` to the uninterrupted run's rows, bit
for bit. Slow (several minutes): scaled down with --seeds/--steps, the same code path."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bnlab import data

ROOT = Path(__file__).resolve().parents[1]
ENTRY = [sys.executable, "-m", "bnlab", "study"]
EXAMPLES = {
    # file: (extra arguments, the first variant's checkpoint, a claim the report decides)
    "study_tabular_bn.py": (
        ["--seeds", "4", "--steps", "300"],
        "tabular-bn__bn.pt",
        "bn has a higher final test accuracy than plain.",
    ),
    "study_resnet_norms.py": (
        ["--seeds", "2", "--steps", "60"],
        "resnet-norms__bn-b8.pt",
        "gn-b8 has a higher final test accuracy than bn-b8.",
    ),
}


def _dump(out: Path) -> dict[str, list[tuple]]:
    db = sqlite3.connect(out / "bnlab.sqlite")
    tables = {t: sorted(db.execute(f"SELECT * FROM {t}")) for t in ("train_metrics", "metrics")}
    db.close()
    return tables


def _study(example: str, out: Path, *extra: str) -> list[str]:
    args, _, _ = EXAMPLES[example]
    file = ROOT / "examples" / example
    return [*ENTRY, str(file), "--out", str(out), *args, "--quiet", "--threads", "1", *extra]


@pytest.mark.slow
@pytest.mark.parametrize("example", list(EXAMPLES))
def test_example_runs_reports_and_resumes_after_kill9(tmp_path, example):
    if "resnet" in example:
        try:
            data.load("cifar10", "test")
        except data.MissingDataError:
            pytest.skip("cifar10 is not on this machine; run `bnlab data fetch cifar10`")
    _, checkpoint, claim = EXAMPLES[example]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    done = subprocess.run(_study(example, straight), capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr
    assert claim in done.stdout and claim in (straight / "report.md").read_text()

    proc = subprocess.Popen(
        _study(example, killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    ckpt = killed / "checkpoints" / checkpoint
    deadline = time.monotonic() + 900
    while not ckpt.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(0.3)
    assert proc.poll() is None, "the study finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    resumed = subprocess.run(
        _study(example, killed, "--resume"), capture_output=True, text=True, timeout=1800
    )
    assert resumed.returncode == 0, resumed.stderr
    a, b = _dump(straight), _dump(killed)
    for table, rows in a.items():
        diff = [(x, y) for x, y in zip(rows, b[table], strict=True) if x != y]
        assert not diff and len(rows) == len(b[table]), f"{table}: {len(diff)} rows differ"
