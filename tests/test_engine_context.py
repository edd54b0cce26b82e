"""The run context: each training gets the device, threads and executor it was given, and
nothing it sets outlives it (two trainings in one process, in both orders of settings)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field, replace

import pytest
import torch

from bnlab.engine import Probe, RunContext, get_preset, replay, train
from bnlab.engine.config import ConfigError, apply_overrides
from bnlab.engine.context import resolve_device, resolve_threads
from bnlab.engine.threads import choose_threads, free_cores
from bnlab.errors import BnlabError

CFG = replace(get_preset("smoke"), steps=6, eval_every=6, checkpoint_every=6, norms=("batch",))


class Seen(Probe):
    """Records, at every step, the torch thread count and the device of the batch."""

    every = 1

    def __init__(self):
        self.threads, self.devices = set(), set()

    def __call__(self, stack, step, xb, yb) -> list[tuple]:
        self.threads.add(torch.get_num_threads())
        self.devices.add(xb.device.type)
        return []


@dataclass(frozen=True)
class Recording:
    """An executor that records what it is handed, then trains in this process."""

    name: str = "recording"
    calls: list = field(default_factory=list)

    def train(self, cfg, out_dir, ctx, resume, probes):
        self.calls.append((cfg, out_dir, ctx, resume))
        return train(cfg, out_dir, replace(ctx, executor=None), resume, probes)


def test_two_trainings_in_one_process_each_get_their_own_context(tmp_path):
    before = torch.get_num_threads()
    other = 2 if before != 2 else 3
    recording = Recording()
    first = RunContext(device="cpu", threads=1, progress=False)
    second = RunContext(device="auto", threads=other, progress=False, executor=recording)

    seen_first = Seen()
    train(CFG, tmp_path / "first", first, probes=[seen_first])
    assert (seen_first.threads, seen_first.devices) == ({1}, {"cpu"})
    assert torch.get_num_threads() == before, "the first training's threads leaked"
    assert recording.calls == [], "the executor of a later context ran early"

    seen_second = Seen()
    train(CFG, tmp_path / "second", second, probes=[seen_second])
    auto = "cuda" if torch.cuda.is_available() else "cpu"
    assert (seen_second.threads, seen_second.devices) == ({other}, {auto})
    [(_, out_dir, ctx, _)] = recording.calls
    assert out_dir == tmp_path / "second" and ctx is second
    assert torch.get_num_threads() == before, "the second training's threads leaked"

    seen_default = Seen()  # the library default: threads by the step's size, no executor
    train(CFG, tmp_path / "third", RunContext(progress=False), probes=[seen_default])
    assert seen_default.threads == {choose_threads(CFG, *free_cores())}
    assert len(recording.calls) == 1


def test_threads_are_restored_when_training_fails(tmp_path):
    class Fail(Probe):
        every = 2

        def __call__(self, stack, step, xb, yb):
            raise RuntimeError("failing on purpose")

    before = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="on purpose"):
        ctx = RunContext(threads=before + 1, progress=False)
        train(CFG, tmp_path, ctx, probes=[Fail()])
    assert torch.get_num_threads() == before


def test_the_thread_count_is_resolved_in_one_place():
    assert resolve_threads(RunContext(threads=3), CFG) == 3
    assert resolve_threads(RunContext(), CFG) == choose_threads(CFG, *free_cores())  # 0: chosen


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"device": "tpu"}, "--device"),
        ({"threads": -1}, "--threads"),
        ({"threads": 1.5}, "--threads"),
    ],
)
def test_bad_settings_are_refused_naming_the_flag(settings, match):
    with pytest.raises(BnlabError, match=match):
        RunContext(**settings)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_it_is_refused_before_any_write(tmp_path):
    with pytest.raises(BnlabError, match="CUDA"):
        resolve_device("cuda")
    with pytest.raises(BnlabError, match="CUDA"):
        train(CFG, tmp_path / "out", RunContext(device="cuda"))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("key", "flag"), [("device", "--device"), ("threads", "--threads")])
def test_run_settings_are_not_config_fields(key, flag):
    with pytest.raises(ConfigError, match=flag):
        apply_overrides(CFG, [f"{key}=1"])


def test_a_run_stored_with_device_and_threads_fields_resumes_and_replays(tmp_path):
    """Earlier versions stored `device` and `threads` in each run's config: such a run is
    the same run (found finished on --resume) and still replays bit for bit."""
    ctx = replay.REPLAY_CONTEXT
    train(CFG, tmp_path, ctx)
    db = sqlite3.connect(tmp_path / "bnlab.sqlite")
    for rid, stored in db.execute("SELECT run_id, config FROM runs").fetchall():
        old = {**json.loads(stored), "device": "cpu", "threads": 1}
        db.execute("UPDATE runs SET config = ? WHERE run_id = ?", (json.dumps(old), rid))
    db.commit()
    db.close()
    train(CFG, tmp_path, ctx, resume=True)  # found finished, not refused
    with pytest.raises(BnlabError, match="differs"):
        train(replace(CFG, seed=1), tmp_path, ctx, resume=True)
    assert all(r.identical for r in replay.replay(tmp_path, steps=6))
