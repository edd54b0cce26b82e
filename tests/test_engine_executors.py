"""`--executor ray`: stacks as Ray tasks on a local instance (2 CPUs) vs the local engine.

The reference is the engine's own in-process run of the same config (one thread each, so
the arithmetic is the same): every logged row and every final metric must be identical.
Workers run in scratch working directories and never receive a path of the driver's; a
worker killed mid-stack must be retried and resume from the stack's last checkpoint.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bnlab.cli import main
from bnlab.engine import Probe, RunContext, Store, get_preset, train
from bnlab.engine.executors import RayExecutor, train_segment
from bnlab.report import QUICK_BANNER

CFG = replace(get_preset("smoke"), seeds=2)  # 60 steps, checkpoints every 20
LOCAL = RunContext(threads=1, progress=False)  # one thread each way: the same arithmetic
RAY = replace(LOCAL, executor=RayExecutor())


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray", reason="Ray is not installed; pip install 'bnlab[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
    # the probe below is defined here, in a module the workers cannot import: ship it by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> Path:
    return train(CFG, tmp_path_factory.mktemp("local"), LOCAL)


def _assert_same_results(ours: Path, ref: Path) -> None:
    a, b = Store(ours), Store(ref)
    try:
        assert sorted(a.run_ids()) == sorted(b.run_ids())
        for rid in b.run_ids():
            assert a.members(rid) == b.members(rid)
            assert {r["status"] for r in a.runs()} == {"done"}
            for column in ("train_loss", "train_accuracy", "grad_norm", "lr"):
                steps, values = a.train_matrix(rid, column)
                ref_steps, ref_values = b.train_matrix(rid, column)
                np.testing.assert_array_equal(steps, ref_steps, err_msg=f"{rid} {column}")
                np.testing.assert_array_equal(values, ref_values, err_msg=f"{rid} {column}")
            for name in ("test_loss", "test_accuracy"):
                steps, values = a.metric_matrix(rid, name)
                ref_steps, ref_values = b.metric_matrix(rid, name)
                np.testing.assert_array_equal(steps, ref_steps, err_msg=f"{rid} {name}")
                np.testing.assert_array_equal(values, ref_values, err_msg=f"{rid} {name}")
    finally:
        a.close()
        b.close()


def test_ray_gives_the_local_results_written_by_the_driver_alone(
    ray_session, local_run, tmp_path, monkeypatch
):
    driver = tmp_path / "driver"
    driver.mkdir()
    monkeypatch.chdir(driver)  # a relative --out resolves on the driver
    train(CFG, "results", RAY)
    _assert_same_results(driver / "results", local_run)
    assert sorted(p.name for p in (driver / "results" / "checkpoints").iterdir()) == [
        "smoke__batch.prev.pt",
        "smoke__batch.pt",
        "smoke__none.prev.pt",
        "smoke__none.pt",
    ]
    # a worker trains in a scratch directory of its own, removed when the segment ends
    segment = ray_session.get(ray_session.remote(train_segment).remote(CFG, "batch", None, LOCAL))
    assert Path(segment["worker"]["cwd"]) != driver
    assert not Path(segment["worker"]["cwd"]).exists()
    assert segment["step"] == CFG.checkpoint_every  # one segment = one checkpoint interval


class KillOnce(Probe):
    """Logs every step it sees; SIGKILLs its own worker at `step`, the first time only."""

    every = 1

    def __init__(self, step: int, marker: Path, log: Path):
        self.step, self.marker, self.log = step, marker, log

    def __call__(self, stack, step, xb, yb) -> list[tuple]:
        with open(self.log, "a") as f:
            f.write(f"{stack.norm} {step}\n")
        if stack.norm == "batch" and step == self.step and not self.marker.exists():
            self.marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return []


def test_a_killed_worker_is_retried_and_resumes_from_the_last_checkpoint(
    ray_session, local_run, tmp_path
):
    marker, log = tmp_path / "killed", tmp_path / "steps.log"
    out = train(CFG, tmp_path / "out", RAY, probes=[KillOnce(30, marker, log)])
    assert marker.exists(), "the probe never killed its worker"
    seen = [
        int(line.split()[1]) for line in log.read_text().split("\n") if line.startswith("batch")
    ]
    # killed before step 30 trained; the retry starts after the checkpoint at step 20
    assert seen == [*range(1, 31), *range(21, 61)]
    _assert_same_results(out, local_run)  # every row once: none lost, none twice


class FailAt(Probe):
    """Raises in the worker at `step` of the BN stack: an error Ray does not retry."""

    every = 1

    def __init__(self, step: int):
        self.step = step

    def __call__(self, stack, step, xb, yb) -> list[tuple]:
        if stack.norm == "batch" and step == self.step:
            raise RuntimeError(f"failing at step {step} on purpose")
        return []


def test_a_failed_driver_run_resumes_from_its_checkpoints(ray_session, local_run, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(Exception, match="failing at step 50 on purpose"):
        train(CFG, out, RAY, probes=[FailAt(50)])
    store = Store(out)
    assert store.train_matrix("smoke/batch", "train_loss")[0].max() == 40  # the last checkpoint
    store.close()
    train(CFG, out, RAY, resume=True)
    _assert_same_results(out, local_run)


def test_a_finished_ray_run_trained_further_is_the_longer_run(ray_session, local_run, tmp_path):
    """30 steps (evaluated at its end), then 60: the local 60-step run's rows, evaluated at
    20, 40 and 60 only."""
    out = train(replace(CFG, steps=30), tmp_path / "out", RAY)
    train(CFG, out, RAY, resume=True)
    _assert_same_results(out, local_run)


def test_cli_train_and_results_with_the_ray_executor(ray_session, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["train", "--preset", "smoke", "--steps", "20", "--out", str(out),
                 "--executor", "ray", "--quiet"]) == 0  # fmt: skip
    assert main(["results", str(out), "--json"]) == 0
    assert '"steps": 20' in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--preset", "smoke", "--executor", "ray"],
        ["reproduce", "ioffe2015-mnist", "--quick", "--executor", "ray"],
    ],
)
def test_without_ray_the_ray_executor_fails_up_front(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out)]) == 2
    assert "pip install 'bnlab[ray]'" in capsys.readouterr().err
    assert not out.exists()


def test_a_ray_address_without_the_ray_executor_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["train", "--preset", "smoke", "--ray-address", "auto", "--out", str(out)]) == 2
    assert "--ray-address 'auto' needs --executor ray" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
def test_reproduce_with_ray_equals_reproduce_local(ray_session, tmp_path, capsys):
    """The quick ioffe2015-mnist, BN and baseline stacks as Ray tasks vs in this process."""
    local, ray = tmp_path / "local", tmp_path / "ray"
    quick = ["reproduce", "ioffe2015-mnist", "--quick", "--quiet"]
    assert main([*quick, "--out", str(local)]) == 0
    local_card = capsys.readouterr().out.split("analyzing")[-1].splitlines()[1:-1]
    assert main([*quick, "--out", str(ray), "--executor", "ray"]) == 0
    ray_card = capsys.readouterr().out.split("analyzing")[-1].splitlines()[1:-1]
    _assert_same_results(ray / "ioffe2015-mnist", local / "ioffe2015-mnist")
    assert ray_card == local_card
    # one verdict line per claim of ioffe2015-mnist, whatever the verdicts of a quick run are
    verdict = r"^\s+(reproduced|not reproduced|inconclusive|not measurable)\s+([a-z-]+)@ioffe"
    claims = {re.match(verdict, line).group(2) for line in ray_card}
    assert claims == {
        "bn-final-accuracy",
        "bn-fewer-steps",
        "bn-percentile-stability",
        "bn-smoother-loss",
        "bn-stable-grad-norm",
    }
    assert (ray / "report.html").is_file()
    assert QUICK_BANNER in (ray / "report.md").read_text()
