"""The engine on CUDA, against the same runs on the CPU (skipped where there is no CUDA)."""

import importlib
from dataclasses import replace

import pytest
import torch

from bnlab.engine import RunContext, checkpoint, get_preset
from bnlab.engine.records import member_records
from bnlab.engine.train import Probe, checkpoint_path, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
CPU = RunContext(device="cpu", progress=False)
CUDA = RunContext(device="cuda", progress=False)


def _smoke(**changes):
    cfg = replace(get_preset("smoke"), steps=40, eval_every=20, checkpoint_every=20, seeds=2)
    return replace(cfg, **changes)


def _finals(out) -> dict:
    return {(r["run_id"], r["member"]): r for r in member_records(out)}


@pytest.mark.parametrize("conv", [(), (6, 4)], ids=["mlp", "conv"])
def test_cuda_run_matches_the_cpu_run(tmp_path, conv):
    cfg = _smoke(dtype="float64")
    cfg = replace(cfg, model=replace(cfg.model, conv_channels=conv))
    train(cfg, tmp_path / "cpu", CPU)
    train(cfg, tmp_path / "cuda", CUDA)
    cpu, cuda = _finals(tmp_path / "cpu"), _finals(tmp_path / "cuda")
    assert cpu.keys() == cuda.keys()
    for key, ref in cpu.items():
        for metric in ("train_loss", "test_loss", "test_accuracy"):
            assert cuda[key][metric] == pytest.approx(ref[metric], rel=1e-6, abs=1e-9)


class _Crash(Probe):
    every = 21  # just after the checkpoint at step 20

    def __call__(self, stack, step, xb, yb):
        raise RuntimeError("simulated crash")


def test_a_cpu_checkpoint_resumes_on_cuda(tmp_path):
    cfg = _smoke(dtype="float64")
    train(cfg, tmp_path / "ref", CPU)
    out = tmp_path / "moved"  # 20 steps on the CPU, the other 20 on CUDA
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg, out, CPU, probes=[_Crash()])
    assert checkpoint.load(checkpoint_path(out, "smoke/batch"))["step"] == 20
    train(cfg, out, CUDA, resume=True)
    ref, moved = _finals(tmp_path / "ref"), _finals(out)
    for key, r in ref.items():
        assert moved[key]["test_loss"] == pytest.approx(r["test_loss"], rel=1e-6)


def test_cuda_training_keeps_everything_on_the_device(tmp_path, monkeypatch):
    """No per-step host syncs: the loop only reads back at logging and checkpoint points."""
    train_module = importlib.import_module("bnlab.engine.train")  # the package exports the function
    built = []
    real = train_module.build_stack

    def spy(*args, **kwargs):
        stack = real(*args, **kwargs)
        built.append(stack)
        return stack

    monkeypatch.setattr(train_module, "build_stack", spy)
    train(_smoke(), tmp_path, CUDA)
    assert built, "the spy saw no stack"
    for stack in built:
        assert stack.model.flat.is_cuda and stack.model.flat_grad.is_cuda
        assert all(b.is_cuda for b in stack.model.buffers())
        assert stack.optimizer.lr.is_cuda
