"""Following, stopping and continuing a training: rows reach the store as they are logged, a
signal checkpoints where it lands, a run resumes with its stored config and thread count,
and a finished run trained further holds the rows of a run trained that long from the start.

Every continuation is compared bit for bit with an uninterrupted run of the same length (the
`smoke` preset: digits, seconds). tests/test_engine_resume.py kills a real process with -9.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from bnlab import cli
from bnlab.engine import Probe, RunContext, Store, get_preset, member_records, train
from bnlab.engine import context as context_module
from bnlab.engine.executors import _Capture, _SegmentDone
from bnlab.engine.interrupt import Interrupted, StopFlag
from bnlab.engine.metrics import FLUSH_EVERY_S
from bnlab.engine.progress import Progress
from bnlab.engine.threads import choose_threads, free_cores

train_module = importlib.import_module("bnlab.engine.train")  # the package exports the function
SMOKE = replace(get_preset("smoke"), steps=40, seeds=2, checkpoint_every=10, eval_every=20)
CTX = RunContext(device="cpu", threads=1, progress=False)
ARGS = ["--preset", "smoke", "--seeds", "2", "--device", "cpu", "--threads", "1"]
ARGS += ["--set", "checkpoint_every=10", "--set", "eval_every=20"]
ENTRY = [sys.executable, "-m", "bnlab"]
MAIN_THREAD = pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(),
    reason="signal handlers are installed from the main thread only",
)


class Signal(Probe):
    """Sends this process `signum` before step `step` of the BN stack (that step still
    trains: the loop sees the request after it)."""

    every = 1

    def __init__(self, step: int, signum: int = signal.SIGTERM):
        self.step, self.signum = step, signum

    def __call__(self, stack, step, xb, yb) -> list[tuple]:
        if stack.norm == "batch" and step == self.step:
            os.kill(os.getpid(), self.signum)
        return []


class Seen(Probe):
    """The torch thread counts the stacks trained with."""

    every = 1

    def __init__(self):
        self.threads = set()

    def __call__(self, stack, step, xb, yb) -> list[tuple]:
        self.threads.add(torch.get_num_threads())
        return []


def _rows(out: Path) -> dict[str, list[tuple]]:
    db = sqlite3.connect(f"file:{out / 'bnlab.sqlite'}?mode=ro", uri=True)
    try:
        return {t: sorted(db.execute(f"SELECT * FROM {t}")) for t in ("train_metrics", "metrics")}
    finally:
        db.close()


def _assert_same_rows(ours: Path, ref: Path) -> None:
    got, want = _rows(ours), _rows(ref)
    for table, rows in want.items():  # bitwise: floats compared exactly
        assert len(got[table]) == len(rows), f"{table}: {len(got[table])} rows, want {len(rows)}"
        diff = [(a, b) for a, b in zip(got[table], rows, strict=True) if a != b]
        assert not diff, f"{table}: {len(diff)} rows differ, first {diff[0][0][:5]}"


def _bnlab(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    status = cli.main([str(a) for a in args])
    printed = capsys.readouterr()
    return status, printed.out, printed.err


@pytest.fixture(autouse=True)
def _keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    return train(SMOKE, tmp_path_factory.mktemp("straight"), CTX)


# ------------------------------------------------------------------ rows as they are logged


def _wait_for_rows(out: Path, proc: subprocess.Popen, deadline_s: float = 120) -> int:
    """The number of training rows once some reached the store (no checkpoint yet)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "bnlab.sqlite").exists():
            db = sqlite3.connect(f"file:{out / 'bnlab.sqlite'}?mode=ro", uri=True)
            try:
                rows = db.execute("SELECT COUNT(*) FROM train_metrics").fetchone()[0]
                ckpts = db.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0]
            finally:
                db.close()
            if rows:
                assert ckpts == 0, "a checkpoint was written: raise checkpoint_every"
                return rows
        time.sleep(0.1)
    pytest.fail(f"no rows reached the store in {deadline_s} s (exit {proc.poll()})")


class Follow(Probe):
    """Waits out the flush interval before step 3, then, before step 5, reads the directory
    as `bnlab results` does."""

    every = 1

    def __init__(self, out: Path):
        self.out, self.seen, self.checkpoints = out, None, None

    def __call__(self, stack, step, xb, yb) -> list[tuple]:
        if stack.norm == "batch" and step == 3:
            time.sleep(FLUSH_EVERY_S)
        if stack.norm == "batch" and step == 5:
            self.seen = member_records(self.out)
            with Store(self.out) as store:
                self.checkpoints = store.checkpoints("smoke/batch")
        return []


def test_rows_reach_the_store_as_they_are_logged(straight, tmp_path):
    follow = Follow(tmp_path / "run")
    train(SMOKE, follow.out, CTX, probes=[follow])
    assert follow.checkpoints == {}  # the first one is at step 10
    assert [(r["status"], r["steps"]) for r in follow.seen] == [("running", 3)] * 2
    _assert_same_rows(follow.out, straight)


def test_the_command_line_says_how_to_resume(tmp_path, capsys, monkeypatch):
    def stopped(*args, **kwargs):
        raise Interrupted(signal.SIGTERM, "smoke+batch_size=8/batch", 7)

    monkeypatch.setattr(train_module, "train", stopped)
    status, _, err = _bnlab(capsys, "train", *ARGS, "--out", tmp_path / "o")
    assert status == 143
    assert err == (
        "bnlab train: SIGTERM: stopped smoke+batch_size=8/batch at step 7 and checkpointed it "
        f"there; resume with: bnlab train --resume --out {tmp_path / 'o'}\n"
    )
    status, _, err = _bnlab(capsys, "train", *ARGS, "--set", "batch_size=8,16", "--out", "o")
    assert status == 143 and err.endswith(  # a sweep's runs not started yet need its flags
        "resume with: bnlab train --preset smoke --set checkpoint_every=10 --set eval_every=20 "
        "--set batch_size=8,16 --seeds 2 --resume --out o\n"
    )


@pytest.mark.slow
def test_a_run_is_followed_before_its_first_checkpoint_and_sigint_checkpoints(tmp_path, capsys):
    """A real process: rows reach the store while it trains (`bnlab results` reads them);
    Ctrl-C then checkpoints the step it lands on, and --resume (without --preset) continues
    from there, bit for bit, to the end a straight run reaches."""
    out = tmp_path / "followed"
    long_run = [*ARGS, "--set", "norms=batch", "--set", "checkpoint_every=100000", "--quiet"]
    proc = subprocess.Popen(
        [*ENTRY, "train", *long_run, "--steps", "100000", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_rows(out, proc)
        status, seen, err = _bnlab(capsys, "results", out, "--json")  # as a second process
        assert status == 0, err
        assert [(r["status"], r["steps"] > 0) for r in json.loads(seen)] == [("running", True)] * 2
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert f"resume with: bnlab train --resume --out {out}" in err
    with Store(out) as store:
        [stop] = store.checkpoints("smoke/batch").values()
        rows = len(store.train_matrix("smoke/batch", "train_loss")[0])
    assert stop.step == rows > 0 and f"stopped smoke/batch at step {stop.step:,}" in err

    end = stop.step + 25  # the run resumes with the stored config, trained to `end`
    resumed = subprocess.run(
        [*ENTRY, "train", "--resume", "--out", str(out), "--steps", str(end), "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    ref = replace(SMOKE, norms=("batch",), steps=end, checkpoint_every=100000)
    _assert_same_rows(out, train(ref, tmp_path / "ref", CTX))


@MAIN_THREAD
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_checkpoints_the_step_it_lands_on_then_resumes_bitwise(signum, straight, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(Interrupted) as stopped:
        train(SMOKE, out, CTX, probes=[Signal(27, signum)])
    assert (stopped.value.run_id, stopped.value.step) == ("smoke/batch", 27)
    assert stopped.value.exit_status == 128 + signum
    with Store(out) as store:
        assert sorted(r.step for r in store.checkpoints("smoke/batch").values()) == [10, 20, 27]
        assert store.row_counts("smoke/batch", 10**9)[0] == 27 * SMOKE.members
    assert signal.getsignal(signum) is not StopFlag._handle  # the handlers are put back
    train(SMOKE, out, CTX, resume=True)
    _assert_same_rows(out, straight)


@MAIN_THREAD
def test_a_signal_in_a_stacks_last_step_starts_no_other(tmp_path):
    with pytest.raises(Interrupted) as stopped:
        train(SMOKE, tmp_path, CTX, probes=[Signal(SMOKE.steps)])
    assert (stopped.value.run_id, stopped.value.step) == ("smoke/batch", SMOKE.steps)
    with Store(tmp_path) as store:
        assert [(r["run_id"], r["status"]) for r in store.runs()] == [("smoke/batch", "done")]


def test_a_second_signal_stops_at_once():
    flag = StopFlag()
    flag._handle(signal.SIGINT, None)
    assert flag.signum == signal.SIGINT
    with pytest.raises(KeyboardInterrupt):
        flag._handle(signal.SIGINT, None)


def test_a_ray_segment_keeps_the_rows_flushed_before_its_checkpoint():
    capture = _Capture(stack=type("S", (), {"state_dict": lambda self: {"step": 3}})())
    capture.write("r", [(0, 1)], [(0, 1, "m", 0.5)])
    with pytest.raises(_SegmentDone):
        capture.write("r", [(0, 2)], [], checkpoint=(2, "sha"))
    assert capture.rows == ([(0, 1), (0, 2)], [(0, 1, "m", 0.5)], {"step": 3})


# ------------------------------------------------------------------ progress


def test_plain_lines_and_the_results_table_where_stdout_is_no_terminal(tmp_path, capsys):
    status, out, _ = _bnlab(capsys, "train", *ARGS, "--steps", "40", "--out", tmp_path / "o")
    assert status == 0
    lines = [line for line in out.splitlines() if line.startswith("[smoke/")]
    assert lines[-1].startswith("[smoke/none] step 40/40; all stacks 100% (80/80 steps)")
    assert all("1 torch thread" in line and "test acc" in line for line in lines)
    assert "test_accuracy" in out and "batch  2" in out  # the grouped table, n = 2 seeds
    assert f"results in {tmp_path / 'o'}" in out


def test_one_display_counts_the_steps_left_over_every_stack(tmp_path, capsys):
    """A sweep's four stacks are one total; a resumed run counts only what is left."""
    status, out, _ = _bnlab(
        capsys, "train", *ARGS, "--steps", "40", "--set", "batch_size=8,16", "--out", tmp_path
    )
    assert status == 0 and "all stacks 100% (160/160 steps)" in out
    crashed = tmp_path / "crashed"
    with pytest.raises(Interrupted):
        train(SMOKE, crashed, CTX, probes=[Signal(27)])
    status, out, _ = _bnlab(capsys, "train", "--resume", "--out", crashed, "--steps", "40")
    assert status == 0 and "all stacks 100% (53/53 steps)" in out


def test_a_plain_line_gives_the_eta_and_the_latest_test_accuracy(capsys):
    display = Progress(total=100, lines=True, every_s=0.0)
    display.start("p/batch", 50, 100, threads=2)  # resumed at step 50: 50 steps left
    display.evaluated(0.875)
    display.started -= 10.0  # as if the 10 steps below took 10 s
    for _ in range(10):
        display.advance(torch.tensor([0.5, 0.25]))
    line = capsys.readouterr().out.splitlines()[-1]
    assert line == (
        "[p/batch] step 60/100; all stacks 20% (10/50 steps) in 10 s, eta 40 s; "
        "loss 0.3750, test acc 0.8750; 2 torch threads"
    )


# ------------------------------------------------------------------ resume


def test_a_changed_config_names_every_field_that_differs(straight, tmp_path, capsys):
    status, _, err = _bnlab(
        capsys, "train", *ARGS, "--seeds", "3", "--set", "log_every=2", "--out", straight,
        "--resume",
    )  # fmt: skip
    assert status == 2
    assert "differs from the stored one in 2 fields" in err
    assert "log_every: stored 1, now 2" in err and "seeds: stored 2, now 3" in err


def test_checkpoint_every_may_change_on_resume_and_the_rows_stay_bitwise(straight, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(Interrupted):
        train(SMOKE, out, CTX, probes=[Signal(13)])
    train(replace(SMOKE, checkpoint_every=7), out, CTX, resume=True)
    _assert_same_rows(out, straight)


def test_a_finished_run_trained_further_is_the_longer_run(tmp_path, capsys):
    """30 steps (evaluated at 20 and at its end, 30), then --steps 60: the rows of a 60-step
    run, which evaluates at 20, 40 and 60 only."""
    out, ref = tmp_path / "extended", tmp_path / "ref"
    assert _bnlab(capsys, "train", *ARGS, "--steps", "30", "--out", out)[0] == 0
    status, _, err = _bnlab(capsys, "train", "--resume", "--out", out, "--steps", "60")
    assert status == 0, err
    train(replace(SMOKE, steps=60), ref, CTX)
    _assert_same_rows(out, ref)
    with Store(out) as store:
        assert {r["status"] for r in store.runs()} == {"done"}
        assert {json.loads(r["config"])["steps"] for r in store.runs()} == {60}
    status, _, err = _bnlab(capsys, "train", "--resume", "--out", out, "--steps", "50")
    assert status == 2 and "has trained 60 steps, got 50; expected at least as many" in err


@pytest.mark.parametrize("make", [lambda p: p / "missing", lambda p: p])
def test_resume_of_a_directory_without_runs_is_an_error(make, tmp_path, capsys):
    out = make(tmp_path)
    for args in (["--resume", "--out", out], [*ARGS, "--resume", "--out", out]):
        status, _, err = _bnlab(capsys, "train", *args)
        assert status == 2 and "no run to resume" in err, err
    assert not (out / "bnlab.sqlite").exists()


def test_resume_of_another_presets_directory_is_an_error(straight, capsys):
    status, _, err = _bnlab(capsys, "train", "--preset", "ioffe2015-mnist", "--resume", "--out",
                            straight)  # fmt: skip
    assert status == 2 and "holds no run of ioffe2015-mnist/batch" in err


# ------------------------------------------------------------------ threads


def test_threads_default_to_the_rule_of_bnlab_engine_threads(monkeypatch):
    big = replace(get_preset("santurkar2018-vgg"), seeds=8)
    assert context_module.resolve_threads(RunContext(), SMOKE) == choose_threads(
        SMOKE, *free_cores()
    )
    monkeypatch.setattr(context_module, "free_cores", lambda: (2, 0.0))
    assert context_module.resolve_threads(RunContext(), big) == 2
    assert context_module.resolve_threads(RunContext(), SMOKE) == 1  # a small step
    assert context_module.resolve_threads(RunContext(threads=3), big) == 3  # the user's
    assert context_module.resolve_threads(RunContext(), big, stored=1) == 1  # a resumed run's


def test_a_resumed_run_trains_with_its_stored_thread_count(tmp_path, monkeypatch):
    out, cfg = tmp_path / "run", replace(SMOKE, steps=12, norms=("batch",))
    with pytest.raises(Interrupted):
        train(cfg, out, replace(CTX, threads=2), probes=[Signal(5)])
    monkeypatch.setattr(context_module, "free_cores", lambda: (1, 3.0))  # the rule says 1
    seen = Seen()
    train(cfg, out, replace(CTX, threads=0), resume=True, probes=[seen])
    assert seen.threads == {2}
