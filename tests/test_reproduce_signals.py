"""A signal to `bnlab reproduce` while its stacks train side by side in child processes (the
default on two cores): every stack checkpoints where it stops, the parent raises
`Interrupted` (so the runner counts the call's time), and no child is left training.

Before `bnlab.engine.interrupt.forward_stops`, `kill PARENT` ended the parent alone and its
children trained on, orphaned, with their time counted nowhere.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from bnlab.engine import RunContext, Store, get_preset
from bnlab.engine.interrupt import Interrupted
from bnlab.reproduce import common

# long enough that only the signal ends it; one checkpoint every 10,000 steps, so a checkpoint
# below that step can only be the one the signal wrote
ENDLESS = replace(get_preset("smoke"), steps=10**6, seeds=2, checkpoint_every=10**4, eval_every=0)


def _stacks_training(out: Path) -> int:
    """How many stacks have logged a training row yet (0 before the store exists)."""
    try:
        db = sqlite3.connect(f"file:{out / 'bnlab.sqlite'}?mode=ro", uri=True)
        try:
            return db.execute("SELECT COUNT(DISTINCT run_id) FROM train_metrics").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return 0


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(),
    reason="signal handlers are installed from the main thread only",
)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_the_parent_checkpoints_every_child_stack(signum, tmp_path, monkeypatch):
    monkeypatch.setattr(common.os, "cpu_count", lambda: 2)  # side by side on any machine

    def signal_the_parent_once_both_train() -> None:
        deadline = time.monotonic() + 120
        while _stacks_training(tmp_path) < len(ENDLESS.norms) and time.monotonic() < deadline:
            time.sleep(0.2)
        os.kill(os.getpid(), signum)  # this process only, as `kill PID` sends it

    threading.Thread(target=signal_the_parent_once_both_train, daemon=True).start()
    quiet, before = RunContext(device="cpu", progress=False), signal.getsignal(signum)
    with pytest.raises(Interrupted) as stopped:
        common.train_variants("signals", ENDLESS, tmp_path, quiet)
    assert stopped.value.signum == signum and 0 < stopped.value.step < ENDLESS.steps
    assert not multiprocessing.active_children(), "no child is left training"
    with Store(tmp_path) as store:
        for norm in ENDLESS.norms:  # each stack checkpointed where the signal stopped it
            steps = [c.step for c in store.checkpoints(f"smoke/{norm}").values()]
            assert len(steps) == 1 and 0 < steps[0] < ENDLESS.checkpoint_every
    assert signal.getsignal(signum) is before, "this process's handler is put back"
