"""Two processes create one fresh results database at once and write to it, as the BN and
baseline stacks of `bnlab reproduce` do (under the lock their parent holds). Neither may die
with "database is locked" nor replace the database the other created."""

from __future__ import annotations

import multiprocessing

from bnlab.engine.store import Store


def _writer(out_dir: str, run_id: str, barrier) -> None:
    barrier.wait()  # open the database at the same moment as the other process
    store = Store(out_dir, "c")
    try:
        store.create_run(run_id, "test", run_id, {"x": 1}, ["fc1"], [(0, 0, 0.1)])
        for step in range(1, 51):
            store.write(run_id, [], [(0, step, "test_loss", float(step))])
    finally:
        store.close()


def test_two_processes_open_and_write_one_fresh_database(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    for attempt in range(3):  # each attempt races on a fresh database
        out = tmp_path / str(attempt)
        barrier = ctx.Barrier(2)
        procs = [ctx.Process(target=_writer, args=(str(out), r, barrier)) for r in ("a", "b")]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=120)
        assert [p.exitcode for p in procs] == [0, 0], "a writer failed (see its stderr)"
        store = Store(out)
        try:
            for run_id in ("a", "b"):
                steps, values = store.metric(run_id, 0, "test_loss")
                assert list(steps) == list(range(1, 51)) and list(values) == list(range(1, 51))
        finally:
            store.close()
