"""Faults around the results store, the checkpoints, the prepared data and SyncBatchNorm.

Each fault either is recovered from, bit for bit (a damaged latest checkpoint falls back to
the previous one), or ends in a one-line error with exit status 2 naming the file and what to
do; none goes unnoticed. Runs are the `smoke` preset (digits, seconds), crashed in-process by
a probe that raises between steps: what a crash leaves (rows and checkpoints up to the last
checkpoint, the run marked running) is what `kill -9` leaves (tests/test_engine_resume.py
kills a real process). Dataset faults use a copy of MNIST under a temporary cache.
"""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import shutil
import socket
import sqlite3
import subprocess
from dataclasses import replace
from pathlib import Path

import fault_workers
import numpy as np
import pytest
import torch

from bnlab import cli
from bnlab.data import load
from bnlab.data.cache import cache_root
from bnlab.engine import (
    Probe,
    RunContext,
    Store,
    checkpoint,
    executors,
    get_preset,
    lock,
    train,
)
from bnlab.engine.store_file import StoreError
from bnlab.errors import BnlabError, ResultsNotFoundError
from bnlab.reproduce.common import Results

SMOKE = replace(get_preset("smoke"), steps=40, seeds=2, checkpoint_every=10, eval_every=20)
CTX = RunContext(device="cpu", threads=1, progress=False)
ARGS = ["--preset", "smoke", "--steps", "40", "--seeds", "2", "--quiet", "--device", "cpu"]
ARGS += ["--threads", "1", "--set", "checkpoint_every=10", "--set", "eval_every=20"]
CRASH_STEP = 27  # the batch stack dies here: latest checkpoint at step 20, previous at 10


class _Crash(Exception):
    pass


class At(Probe):
    """Runs `action(out_dir)` before step `step` of the BN stack; `crash` then raises."""

    every = 1

    def __init__(self, step: int, action=None, crash: bool = False, out: Path | None = None):
        self.step, self.action, self.crash, self.out = step, action, crash, out

    def __call__(self, stack, step, xb, yb) -> list[tuple]:
        if stack.norm == "batch" and step == self.step:
            if self.action is not None:
                self.action(self.out)
            if self.crash:
                raise _Crash
        return []


def _rows(out: Path) -> dict[str, list[tuple]]:
    db = sqlite3.connect(f"file:{out / 'bnlab.sqlite'}?mode=ro", uri=True)
    try:
        return {t: sorted(db.execute(f"SELECT * FROM {t}")) for t in ("train_metrics", "metrics")}
    finally:
        db.close()


def _crash(out: Path, *probes: Probe) -> None:
    with pytest.raises(_Crash):
        train(SMOKE, out, CTX, probes=(*probes, At(CRASH_STEP, crash=True)))


def _bnlab(capsys, *args) -> tuple[int, str]:
    """`bnlab ARGS` in this process: (exit status, what it printed)."""
    capsys.readouterr()
    status = cli.main([str(a) for a in args])
    printed = capsys.readouterr()
    return status, printed.out + printed.err


def _copy(src: Path, tmp_path: Path, name: str = "run") -> Path:
    return Path(shutil.copytree(src, tmp_path / name))


@pytest.fixture(autouse=True)
def _keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """The uninterrupted run every recovery must reproduce bit for bit."""
    out = tmp_path_factory.mktemp("straight")
    train(SMOKE, out, CTX)
    return out


@pytest.fixture(scope="module")
def crashed(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("crashed") / "run"
    _crash(out)
    return out


CKPT = Path("checkpoints") / "smoke__batch.pt"
PREV = Path("checkpoints") / "smoke__batch.prev.pt"


# ------------------------------------------------------------------ one writer per directory


def test_a_second_writer_is_refused_at_once_naming_the_first(tmp_path, straight, capsys):
    """The first writer holds the lock from before it loads its data (where a second process
    used to slip in and train under the first one's run record) until it is done."""
    ctx = multiprocessing.get_context("spawn")
    ready, go = ctx.Event(), ctx.Event()
    out = tmp_path / "run"
    args = (SMOKE, CTX, str(out), ready, go)
    first = ctx.Process(target=fault_workers.train_paused, args=args)
    first.start()
    try:
        while not ready.wait(1):
            assert first.is_alive(), "the first writer died before loading its data"
        for extra in ([], ["--resume"]):
            status, err = _bnlab(capsys, "train", *ARGS, "--set", "lr=0.1", "--out", out, *extra)
            assert status == 2, err
            assert f"pid {first.pid}" in err and "in use by another bnlab process" in err
    finally:
        go.set()
        first.join(300)
    assert first.exitcode == 0
    with Store(out) as store:
        assert {lr for run in store.runs() for _, _, lr in store.members(run["run_id"])} == {0.5}
    assert _rows(out) == _rows(straight)  # what the store says was trained, was


def test_a_child_writes_under_its_parents_lock_only_with_its_token(tmp_path):
    with lock.hold(tmp_path) as token:
        with (
            pytest.raises(BnlabError, match="in use by another bnlab process"),
            lock.hold(tmp_path),
        ):
            pass
        with pytest.raises(BnlabError, match="no longer holds"), lock.adopt(tmp_path, "0" * 16):
            pass
        with lock.adopt(tmp_path, token), lock.hold(tmp_path) as inner:
            assert inner == token
    with lock.hold(tmp_path):  # released with the block
        pass


# ------------------------------------------------------------------ checkpoints


def _flip_bit(data: bytes) -> bytes:
    i = len(data) // 2
    return data[:i] + bytes([data[i] ^ 0x10]) + data[i + 1 :]


def _random_bytes(data: bytes) -> bytes:
    i = len(data) // 3
    return data[:i] + np.random.default_rng(0).bytes(64) + data[i + 64 :]


DAMAGE = {
    "flipped bit": _flip_bit,
    "64 random bytes": _random_bytes,
    "truncated": lambda data: data[: len(data) // 2],
    "empty": lambda data: b"",
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous(
    damage, crashed, straight, tmp_path, capsys
):
    out = _copy(crashed, tmp_path)
    (out / CKPT).write_bytes(DAMAGE[damage]((out / CKPT).read_bytes()))
    stray = out / "checkpoints" / ".smoke__batch.pt.x1y2z3.tmp"  # a save killed half-way
    stray.write_bytes(b"PK\x03\x04 half a checkpoint")
    status, err = _bnlab(capsys, "train", *ARGS, "--out", out, "--resume")
    assert status == 0, err
    assert f"{out / CKPT} is damaged" in err and "smoke__batch.prev.pt (step 10)" in err
    assert not stray.exists()
    assert _rows(out) == _rows(straight)


def test_both_checkpoints_damaged_is_refused_naming_them(crashed, tmp_path, capsys):
    out = _copy(crashed, tmp_path)
    for path in (out / CKPT, out / PREV):
        path.write_bytes(_flip_bit(path.read_bytes()))
    kept = {p: p.read_bytes() for p in (out / CKPT, out / PREV)}
    rows = _rows(out)
    status, err = _bnlab(capsys, "train", *ARGS, "--out", out, "--resume")
    assert status == 2
    assert f"{out / CKPT} is damaged" in err and f"{out / PREV} is damaged" in err
    assert "move" in err and "another --out" in err  # what to do
    assert {p: p.read_bytes() for p in kept} == kept and _rows(out) == rows


# ------------------------------------------------------------------ store vs checkpoints


def _checkpoint_wal(out: Path) -> None:
    db = sqlite3.connect(out / "bnlab.sqlite")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def _keep_main_file(out: Path) -> None:
    shutil.copy(out / "bnlab.sqlite", out.parent / "without-wal.sqlite")


def _lose_wal(out: Path, flushed_at: int) -> None:
    """Crash the BN stack; its database is then what the main file held at the crash, with
    the -wal file (every transaction since step `flushed_at`) deleted."""
    _crash(out, At(flushed_at, _checkpoint_wal, out=out), At(CRASH_STEP, _keep_main_file, out=out))
    shutil.move(out.parent / "without-wal.sqlite", out / "bnlab.sqlite")
    for suffix in ("-wal", "-shm"):
        (out / f"bnlab.sqlite{suffix}").unlink(missing_ok=True)


def test_a_database_behind_its_checkpoints_resumes_from_one_it_vouches_for(
    tmp_path, straight, capsys
):
    out = tmp_path / "run"
    _lose_wal(out, flushed_at=15)  # the store holds rows and the checkpoint of step 10
    status, err = _bnlab(capsys, "train", *ARGS, "--out", out, "--resume")
    assert status == 0, err
    assert "holds step 20" in err and "records checkpoints up to step 10" in err
    assert _rows(out) == _rows(straight)


def test_a_database_missing_rows_of_its_checkpoints_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    _lose_wal(out, flushed_at=5)  # the store holds the run, but no row and no checkpoint
    status, err = _bnlab(capsys, "train", *ARGS, "--out", out, "--resume")
    assert status == 2
    assert "lacks the rows of steps 1-20" in err and str(out / CKPT) in err
    assert "-wal" in err  # what to restore


# ------------------------------------------------------------------ the database file


def test_a_damaged_database_page_is_reported_by_readers_and_resume(straight, tmp_path, capsys):
    out = _copy(straight, tmp_path)
    db = out / "bnlab.sqlite"
    data = bytearray(db.read_bytes())
    page = len(data) // 2 // 4096 * 4096  # a page in the middle of the file
    data[page : page + 4096] = np.random.default_rng(1).bytes(4096)
    db.write_bytes(bytes(data))
    for args in (["results", out], ["replay", out, "--steps", "5"]):
        status, err = _bnlab(capsys, *args)
        assert status == 2 and f"{db} is damaged" in err, err
    status, err = _bnlab(capsys, "train", *ARGS, "--set", "steps=50", "--out", out, "--resume")
    assert status == 2 and f"{db} is damaged" in err
    with pytest.raises(StoreError, match="is damaged"):
        Results(out)  # what `bnlab report` reads


def test_an_empty_database_is_refused_and_the_checkpoints_kept(crashed, tmp_path, capsys):
    out = _copy(crashed, tmp_path)
    (out / "bnlab.sqlite").write_bytes(b"")
    kept = {p: p.read_bytes() for p in (out / "checkpoints").iterdir()}
    for args in (["results", out], ["train", *ARGS, "--out", out, "--resume"]):
        status, err = _bnlab(capsys, *args)
        assert status == 2 and "is empty (0 bytes)" in err, err
    assert {p: p.read_bytes() for p in kept} == kept


def test_checkpoints_without_their_database_are_not_overwritten(crashed, tmp_path, capsys):
    out = _copy(crashed, tmp_path)
    (out / "bnlab.sqlite").unlink()
    kept = (out / CKPT).read_bytes()
    status, err = _bnlab(capsys, "train", *ARGS, "--out", out, "--resume")
    assert status == 2 and f"{out / CKPT} exists" in err
    assert (out / CKPT).read_bytes() == kept and not (out / "bnlab.sqlite").exists()


def test_readers_never_create_or_write_a_database(straight, tmp_path, capsys):
    status, err = _bnlab(capsys, "results", tmp_path)
    assert status == 2 and "no bnlab.sqlite" in err
    with pytest.raises(ResultsNotFoundError, match=r"no bnlab\.sqlite"):
        Results(tmp_path)
    assert not (tmp_path / "bnlab.sqlite").exists()
    with Store(straight) as store, pytest.raises(StoreError, match="read-only"):
        store.set_status("smoke/batch", "running")


def test_a_row_written_twice_is_a_one_line_error(tmp_path):
    with lock.hold(tmp_path), Store(tmp_path, "c") as store:
        store.create_run("a/batch", "a", "batch", {}, ["fc1"], [(0, 0, 0.1)])
        with pytest.raises(StoreError, match="written twice"):
            store.create_run("a/batch", "a", "batch", {}, ["fc1"], [(0, 0, 0.1)])


# ------------------------------------------------------------------ the file system


def test_out_is_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("not a directory")
    status, err = _bnlab(capsys, "train", *ARGS, "--out", tmp_path / "f")
    assert status == 2 and "is a file" in err


@pytest.fixture
def tmpfs(tmp_path):
    """A 1 MB tmpfs: a small disk to fill, or to make read-only."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt], **_QUIET)
    if done.returncode:
        pytest.skip(f"mount -t tmpfs failed: {done.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", mnt], **_QUIET)


_QUIET = {"capture_output": True, "text": True, "check": False}


def test_a_read_only_out(tmpfs, straight, capsys):
    shutil.copytree(straight, tmpfs / "done")
    subprocess.run(["mount", "-o", "remount,ro", tmpfs], check=True)
    status, err = _bnlab(capsys, "train", *ARGS, "--out", tmpfs / "new")
    assert status == 2 and "Read-only file system" in err and "--out" in err
    status, err = _bnlab(capsys, "train", *ARGS, "--out", tmpfs / "done", "--resume")
    assert status == 2 and "Read-only file system" in err
    status, err = _bnlab(capsys, "results", tmpfs / "done")  # reading needs no write
    assert status == 0, err


def test_a_full_disk_stops_with_a_named_error_then_trains_again(tmpfs, straight, capsys):
    free = shutil.disk_usage(tmpfs).free
    filler = tmpfs / "filler"
    filler.write_bytes(b"\0" * (free - 48 * 1024))  # room for the lock and a few writes
    status, err = _bnlab(capsys, "train", *ARGS, "--out", tmpfs / "run")
    assert status == 2 and str(tmpfs / "run") in err, err
    assert "space" in err.lower() and "Traceback" not in err
    filler.unlink()
    status, err = _bnlab(capsys, "train", *ARGS, "--out", tmpfs / "run", "--resume")
    assert status == 2 and "no run to resume" in err  # the database was never created
    status, err = _bnlab(capsys, "train", *ARGS, "--out", tmpfs / "run")
    assert status == 0, err
    assert _rows(tmpfs / "run") == _rows(straight)


def test_a_checkpoint_that_cannot_be_written_is_a_named_error(tmp_path, monkeypatch, capsys):
    """ENOSPC while a checkpoint is flushed: the run stops naming the file, and leaves no
    temporary file and no record of the checkpoint that was not written."""

    class FullDisk:  # `os` as bnlab.engine.checkpoint sees it, with a full disk
        def __getattr__(self, name):
            return getattr(os, name)

        def fsync(self, fd):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint, "os", FullDisk())
    status, err = _bnlab(capsys, "train", *ARGS, "--out", tmp_path / "run")
    assert status == 2 and f"{tmp_path / 'run' / CKPT}: cannot write the checkpoint" in err
    assert "No space left on device" in err
    assert list((tmp_path / "run" / "checkpoints").iterdir()) == []
    with Store(tmp_path / "run") as store:
        assert store.db.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0] == 0


# ------------------------------------------------------------------ threads and Ray


def test_resuming_with_another_thread_count_is_refused(crashed, tmp_path, capsys):
    out = _copy(crashed, tmp_path)
    status, err = _bnlab(capsys, "train", *ARGS, "--threads", "2", "--out", out, "--resume")
    assert status == 2 and "trained with 1 torch threads, this run would use 2" in err


def test_ray_resuming_a_local_run_checks_threads_before_connecting(crashed, tmp_path, monkeypatch):
    out = _copy(crashed, tmp_path)
    db = sqlite3.connect(out / "bnlab.sqlite")  # as a local run on 2 default threads stores it
    config = json.loads(db.execute("SELECT config FROM runs").fetchone()[0])
    db.execute("UPDATE runs SET config = ?", (json.dumps({**config, "threads": 2}),))
    db.commit()
    db.close()
    monkeypatch.setattr(executors, "connected", lambda executor: pytest.fail("connected"))
    ray_ctx = replace(CTX, threads=0)  # each task then runs --ray-cpus threads: 1
    with pytest.raises(BnlabError, match="trained with 2 torch threads, this run would use 1"):
        executors.RayExecutor(cpus=1).train(SMOKE, out, ray_ctx, True, ())


def test_a_ray_connection_failure_leaves_no_database(tmp_path, monkeypatch):
    def unreachable(executor):
        raise BnlabError(f"--executor ray: cannot start or reach {executor.address}")

    monkeypatch.setattr(executors, "connected", unreachable)
    with pytest.raises(BnlabError, match="cannot start or reach"):
        executors.RayExecutor(address="ray://nowhere:10001").train(
            SMOKE, tmp_path / "o", CTX, False, ()
        )
    assert not (tmp_path / "o" / "bnlab.sqlite").exists()


# ------------------------------------------------------------------ the prepared dataset cache


@pytest.fixture
def mnist_copy(tmp_path, monkeypatch) -> Path:
    """MNIST's four files copied into a data dir, with an empty cache (never the real one)."""
    source = cache_root() / "mnist"
    if not (source / "train-images-idx3-ubyte").exists():
        pytest.skip("MNIST is not fetched (bnlab data fetch mnist)")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    copy = tmp_path / "data" / "mnist"
    shutil.copytree(source, copy)
    return copy


def _edit_keeping_size_and_time(path: Path, edit) -> None:
    st = path.stat()
    data = bytearray(path.read_bytes())
    edit(data)
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size


def _invert_second_half(data: bytearray) -> None:
    half = len(data) // 2
    data[half:] = bytes(255 - b for b in data[half:])


def test_a_kept_copy_edited_with_size_and_time_kept_is_verified_again(mnist_copy):
    truth = np.array(load("mnist", "test", data_dir=mnist_copy).images)
    [kept] = (cache_root() / "prepared").glob("mnist-test-*.images.npy")
    _edit_keeping_size_and_time(kept, _invert_second_half)
    again = load("mnist", "test", data_dir=mnist_copy)
    assert np.array_equal(again.images, truth)  # verified from the sources, not the edit
    assert np.array_equal(np.load(kept), truth)  # and kept again


def test_data_verify_rehashes_the_sources(mnist_copy, capsys):
    load("mnist", "test", data_dir=mnist_copy)  # a kept copy, current by size and time
    source = mnist_copy / "t10k-images-idx3-ubyte"
    _edit_keeping_size_and_time(source, lambda data: data.__setitem__(-1, data[-1] ^ 1))
    status, out = _bnlab(capsys, "data", "verify", "mnist", "--data-dir", mnist_copy.parent)
    assert status == 1 and "FAILED" in out and "t10k-images-idx3-ubyte" in out, out


def test_training_on_a_corrupt_dataset_source_names_the_file(mnist_copy, tmp_path, capsys):
    labels = mnist_copy / "train-labels-idx1-ubyte"
    _edit_keeping_size_and_time(labels, lambda data: data.__setitem__(100, data[100] ^ 1))
    data_dir = f"data.data_dir={mnist_copy.parent}"
    args = ["--set", "data.dataset=mnist", "--set", data_dir, "--steps", "1"]
    status, err = _bnlab(capsys, "train", "--preset", "smoke", *args, "--out", tmp_path / "o")
    assert status == 2 and "sha256" in err and "train-labels-idx1-ubyte" in err, err
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------ SyncBatchNorm


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sync_batchnorm_dtype_mismatch_and_a_frozen_rank_end_in_named_errors(tmp_path):
    """Ranks that disagree on dtype both raise a ValueError at the first forward (instead of
    gloo aborting the processes); a rank that then freezes makes its peer raise once the
    group's timeout (3 s here) has passed, naming SyncBatchNorm's collective."""
    ctx = multiprocessing.get_context("spawn")
    args = (2, _free_port(), str(tmp_path), 3.0)
    ranks = [ctx.Process(target=fault_workers.sync_rank, args=(r, *args)) for r in (0, 1)]
    for p in ranks:
        p.start()
    try:
        ranks[0].join(180)
    finally:
        for p in ranks:
            p.kill()  # SIGKILL ends the stopped rank 1 too
            p.join()
    for rank in (0, 1):
        error = json.loads((tmp_path / f"dtype-rank{rank}.json").read_text())["error"] or ""
        assert error.startswith("ValueError") and "rank 0: torch.float32" in error, error
        assert "rank 1: torch.float64" in error
    frozen = json.loads((tmp_path / "freeze-rank0.json").read_text())
    assert "SyncBatchNorm" in (frozen["error"] or "") and "timeout" in frozen["error"]
    assert 2.5 < frozen["seconds"] < 60
