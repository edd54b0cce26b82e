"""A study end to end through `bnlab study`: registered (its decision rules too) before its
first step, `kill -9` then `--resume` gives the uninterrupted run's rows bit for bit, `bnlab
replay` and `bnlab report` recognise the directory, and a resume that changes the question is
refused."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ENTRY = [sys.executable, "-m", "bnlab"]
STUDY = """
from torch import nn
import bnlab
from bnlab.study import Claim, Optimizer, Study, Variant, replace_norm

def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32, bias=False), bnlab.BatchNorm1d(32),
                         nn.ReLU(), nn.Linear(32, 10))

study = Study(
    "digits", mlp, "digits",
    {"bn": Variant(), "none": Variant(model=replace_norm("none"))},
    claims=[Claim("test_accuracy", "bn", than="none", margin=0.005)],
    optimizer=Optimizer("sgd", lr=0.05, momentum=0.9, schedule="cosine"),
    batch_size=32, steps=STEPS, seeds=3, eval_every=100, checkpoint_every=50,
)
"""


def _study_file(tmp_path: Path, steps: int = 400, claim: str = "margin=0.005") -> Path:
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "digits_study.py"
    path.write_text(STUDY.replace("STEPS", str(steps)).replace("margin=0.005", claim))
    return path


def _bnlab(*args: str) -> subprocess.CompletedProcess:
    if args[0] == "study":  # one thread: small ops stall on a shared machine's second core
        args = (*args, "--threads", "1")
    return subprocess.run([*ENTRY, *args], capture_output=True, text=True, timeout=600)


def _dump(out: Path) -> dict[str, list[tuple]]:
    db = sqlite3.connect(out / "bnlab.sqlite")
    tables = {t: sorted(db.execute(f"SELECT * FROM {t}")) for t in ("train_metrics", "metrics")}
    db.close()
    return tables


def _kill_after_first_checkpoint(file: Path, out: Path) -> None:
    proc = subprocess.Popen(
        [*ENTRY, "study", str(file), "--out", str(out), "--quiet", "--threads", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ckpt = out / "checkpoints" / "digits__bn.pt"
    deadline = time.monotonic() + 300
    while not ckpt.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(0.3)  # land somewhere between checkpoints
    assert proc.poll() is None, "the study finished before it could be killed; raise steps"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def test_kill9_then_resume_is_bitwise_identical_and_the_tools_know_a_study(tmp_path):
    file = _study_file(tmp_path)
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    done = _bnlab("study", str(file), "--out", str(straight), "--quiet")
    assert done.returncode == 0, done.stderr
    assert "bn has a higher final test accuracy than none." in done.stdout

    _kill_after_first_checkpoint(file, killed)
    partial = _dump(killed)
    assert len(partial["train_metrics"]) < 2 * 3 * 400
    db = sqlite3.connect(killed / "bnlab.sqlite")
    configs = [json.loads(c) for (c,) in db.execute("SELECT config FROM runs")]
    db.close()
    assert len(configs) == 2  # both runs, claims included, registered before any step
    assert all(c["claims"][0]["margin"] == 0.005 for c in configs)
    record = json.loads((killed / "preregistration.json").read_text())["rules"]
    assert record["test_accuracy:bn-vs-none:higher@digits"]["rule"]["margin"] == 0.5  # pp

    again = _bnlab("study", str(file), "--out", str(killed), "--quiet")
    assert again.returncode == 2 and "--resume" in again.stderr
    changed = _study_file(tmp_path / "changed", claim="margin=0.05")
    refused = _bnlab("study", str(changed), "--out", str(killed), "--resume", "--quiet")
    assert refused.returncode == 2 and "claims" in refused.stderr and "margin" in refused.stderr
    resumed = _bnlab("study", str(file), "--out", str(killed), "--resume", "--quiet")
    assert resumed.returncode == 0, resumed.stderr

    a, b = _dump(straight), _dump(killed)
    assert len(a["train_metrics"]) == 2 * 3 * 400  # 2 variants x 3 seeds, every step, once
    for table, rows in a.items():  # bitwise: floats compared exactly
        diff = [(x, y) for x, y in zip(rows, b[table], strict=True) if x != y]
        assert not diff, f"{table}: {len(diff)} rows differ, first {diff[0][0][:5]}"

    replayed = _bnlab("replay", str(killed), "--steps", "20")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "bit-identical" in replayed.stdout
    report = _bnlab("report", str(killed))
    assert report.returncode == 0, report.stderr
    assert "higher final test accuracy than none." in report.stdout  # print_verdicts
    md = (killed / "report.md").read_text()
    assert "bn has a higher final test accuracy than none." in md and "FLAGGED" not in md
    page = (killed / "study.md").read_text()
    assert "Pre-registered rules" in page and "test_accuracy:bn-vs-none:higher" in page
    assert "replayed by" in page and "trained vmapped" in page
    results = _bnlab("results", str(killed), "--json")
    assert results.returncode == 0, results.stderr
    assert {r["norm"] for r in json.loads(results.stdout)} == {"bn", "none"}

    db = sqlite3.connect(killed / "bnlab.sqlite")  # a stored value that this code would not log
    db.execute("UPDATE train_metrics SET train_loss = train_loss + 1e-9 WHERE step = 7")
    db.commit()
    db.close()
    tampered = _bnlab("replay", str(killed), "--steps", "10")
    assert tampered.returncode == 1 and "DIFFER" in tampered.stdout
    file.write_text(file.read_text() + "# edited\n")
    edited = _bnlab("replay", str(killed), "--steps", "10")
    assert edited.returncode == 2 and "has changed since the study ran" in edited.stderr
