"""Crash safety: `kill -9` mid-run, then `--resume`, gives the uninterrupted run's rows, bitwise.

Also checks the `bnlab results --json` schema on the finished directory.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ENTRY = [sys.executable, "-m", "bnlab"]
STEPS, EVERY, SEEDS = 600, 50, 2
ARGS = [
    "train",
    "--preset",
    "smoke",
    "--steps",
    str(STEPS),
    "--seeds",
    str(SEEDS),
    "--quiet",
    "--set",
    f"checkpoint_every={EVERY}",
    "--set",
    "eval_every=250",
]


def _bnlab(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*ENTRY, *args], capture_output=True, text=True, timeout=300, **kwargs)


def _dump(out: Path) -> dict[str, list[tuple]]:
    db = sqlite3.connect(out / "bnlab.sqlite")
    tables = {t: sorted(db.execute(f"SELECT * FROM {t}")) for t in ("train_metrics", "metrics")}
    db.close()
    return tables


def _kill_after_first_checkpoint(out: Path) -> None:
    proc = subprocess.Popen(
        [*ENTRY, *ARGS, "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    ckpt = out / "checkpoints" / "smoke__batch.pt"
    deadline = time.monotonic() + 120
    while not ckpt.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(0.2)  # land somewhere between checkpoints
    assert proc.poll() is None, "the run finished before it could be killed; raise STEPS"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def test_kill9_then_resume_is_bitwise_identical(tmp_path):
    done = _bnlab(*ARGS, "--out", str(tmp_path / "straight"))
    assert done.returncode == 0, done.stderr
    _kill_after_first_checkpoint(tmp_path / "killed")
    partial = _dump(tmp_path / "killed")
    assert len(partial["train_metrics"]) < 2 * SEEDS * STEPS
    again = _bnlab(*ARGS, "--out", str(tmp_path / "killed"))
    assert again.returncode == 2 and "--resume" in again.stderr  # no silent overwrite
    resumed = _bnlab(*ARGS, "--out", str(tmp_path / "killed"), "--resume")
    assert resumed.returncode == 0, resumed.stderr

    straight, killed = _dump(tmp_path / "straight"), _dump(tmp_path / "killed")
    assert len(straight["train_metrics"]) == 2 * SEEDS * STEPS  # 2 stacks, every step, once
    for table, rows in straight.items():  # bitwise: floats compared exactly
        diff = [(a, b) for a, b in zip(rows, killed[table], strict=True) if a != b]
        assert not diff, (
            f"{table}: {len(diff)} rows differ, first {diff[0][0][:5]} vs {diff[0][1][:5]}"
        )

    result = _bnlab("results", str(tmp_path / "killed"), "--json")
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    assert len(records) == 2 * SEEDS
    for rec in records:
        for key in (
            "preset",
            "norm",
            "lr",
            "seed",
            "steps",
            "train_loss",
            "test_loss",
            "test_accuracy",
        ):
            assert key in rec, key
        assert rec["preset"] == "smoke" and rec["steps"] == STEPS
        assert isinstance(rec["test_accuracy"], float) and 0.0 <= rec["test_accuracy"] <= 1.0
    assert {r["norm"] for r in records} == {"batch", "none"}
    assert sorted(r["seed"] for r in records) == [0, 0, 1, 1]


def test_cli_rejects_bad_config_before_writing(tmp_path):
    result = _bnlab("train", "--preset", "smoke", "--set", "lr=-1", "--out", str(tmp_path / "o"))
    assert result.returncode == 2
    assert "optim.lr" in result.stderr and "-1" in result.stderr
    assert not (tmp_path / "o").exists()
    result = _bnlab("results", str(tmp_path / "nowhere"))
    assert result.returncode == 2 and "bnlab.sqlite" in result.stderr
