"""bnlab's BN with the rest of PyTorch, side by side with torch.nn's: torch.func (vmap, grad,
functional_call, jacrev), torch.compile without graph breaks, TorchScript (refused, with the
way out), and torch's utilities that look for BN modules.
"""

from __future__ import annotations

import pytest
import torch
from helpers import assert_close
from torch import nn
from torch.func import functional_call, grad, jacrev, replace_all_batch_norm_modules_, vmap
from torch.nn.modules.batchnorm import _BatchNorm

import bnlab
from bnlab import _checks

TOL = dict(rtol=1e-10, atol=1e-12)


def _models(bn_torch=nn.BatchNorm1d, bn_ours=bnlab.BatchNorm1d):
    torch.manual_seed(0)
    ref = nn.Sequential(nn.Linear(3, 4), bn_torch(4), nn.Tanh(), nn.Linear(4, 2)).double()
    ours = nn.Sequential(nn.Linear(3, 4), bn_ours(4), nn.Tanh(), nn.Linear(4, 2)).double()
    with torch.no_grad():
        ref[1].weight.uniform_(0.5, 1.5)
        ref[1].bias.uniform_(-0.5, 0.5)
    ours.load_state_dict(ref.state_dict())
    return ours, ref


def test_bnlab_bn_is_a_torch_batchnorm():
    for cls in (bnlab.BatchNorm1d, bnlab.BatchNorm2d, bnlab.BatchNorm3d):
        assert isinstance(cls(2), _BatchNorm)


def test_vmap_over_an_ensemble_after_replace_all_batch_norm_modules():
    ours, ref = _models()
    for m in (ours, ref):
        replace_all_batch_norm_modules_(m)
    assert ours[1].running_mean is None and not ours[1].track_running_stats  # it was seen
    x = torch.randn(5, 6, 3, dtype=torch.float64)  # 5 independent batches of 6
    assert_close("vmap", vmap(ours)(x), vmap(ref)(x), **TOL)
    stacked = torch.func.stack_module_state([ours, ours])[0]
    per_model = vmap(lambda p, xb: functional_call(ours, p, (xb,)), in_dims=(0, None))
    assert_close("ensemble", per_model(stacked, x[0])[1], ref(x[0]), **TOL)


def test_grad_and_functional_call_match_torch():
    ours, ref = _models()
    x = torch.randn(8, 3, dtype=torch.float64)

    def loss(model):
        # buffers are inputs, so training may update them (for torch's BN too)
        return lambda p, b: functional_call(model, (p, b), (x,)).square().sum()

    buffers = [{k: v.clone() for k, v in m.named_buffers()} for m in (ours, ref)]
    g1 = grad(loss(ours))(dict(ours.named_parameters()), buffers[0])
    g2 = grad(loss(ref))(dict(ref.named_parameters()), buffers[1])
    for name in g2:
        assert_close(name, g1[name], g2[name], **TOL)
    for name in buffers[1]:
        assert_close(name, buffers[0][name], buffers[1][name], **TOL)
    assert int(buffers[0]["1.num_batches_tracked"]) == 1


@pytest.mark.parametrize("training", [True, False])
def test_jacrev_wrt_input_and_second_order_match_torch(training):
    ours, ref = _models()
    ours.train(training)
    ref.train(training)
    x = torch.randn(4, 3, dtype=torch.float64)
    if training:  # updating captured running stats inside a transform fails for both
        for m in (ours, ref):
            with pytest.raises(RuntimeError, match="mutate a captured Tensor"):
                jacrev(m)(x)
            replace_all_batch_norm_modules_(m)  # torch.func's recipe: batch statistics only
    assert_close("jacrev", jacrev(ours)(x), jacrev(ref)(x), **TOL)
    hess = [jacrev(jacrev(lambda z, m=m: m(z).sum()))(x) for m in (ours, ref)]
    assert_close("hessian", hess[0], hess[1], **TOL)


def test_compile_without_graph_breaks_train_and_eval():
    torch._dynamo.reset()
    ours, ref = _models(nn.BatchNorm2d, bnlab.BatchNorm2d)
    bn, bn_ref = ours[1], ref[1]
    compiled = torch.compile(bn, backend="eager", fullgraph=True)  # fullgraph: a break raises
    for mode in ("train", "train", "eval"):
        bn.train(mode == "train")
        bn_ref.train(mode == "train")
        x = torch.randn(6, 4, 3, 3, dtype=torch.float64, requires_grad=True)
        y = compiled(x)
        y.square().sum().backward()
        x_ref = x.detach().requires_grad_()
        y_ref = bn_ref(x_ref)
        y_ref.square().sum().backward()
        assert_close(f"{mode} y", y, y_ref, **TOL)
        assert_close(f"{mode} dx", x.grad, x_ref.grad, **TOL)
    assert_close("running_var", bn.running_var, bn_ref.running_var, **TOL)
    assert int(bn.num_batches_tracked) == 2


def test_compiled_training_keeps_the_running_stats_from_a_nan_batch():
    torch._dynamo.reset()
    bn = bnlab.BatchNorm1d(3, momentum=None)
    compiled = torch.compile(bn, backend="eager", fullgraph=True)
    compiled(torch.randn(8, 3))
    before = bn.state_dict()
    before = {k: v.clone() for k, v in before.items()}
    x = torch.randn(8, 3)
    x[2, 1] = float("nan")
    y = compiled(x)  # cannot raise without a graph break: masked instead
    assert torch.isnan(y[:, 1]).all() and torch.isfinite(y[:, 0]).all()
    for key, value in before.items():
        assert torch.equal(bn.state_dict()[key], value), key


@pytest.mark.parametrize("momentum", [0.1, None])
def test_mask_mode_refuses_nan_batches_without_raising(monkeypatch, momentum):
    monkeypatch.setattr(_checks, "NAN_CHECK", "mask")  # what accelerators get by default
    ours = bnlab.BatchNorm1d(3, momentum=momentum)
    ref = nn.BatchNorm1d(3, momentum=momentum)
    clean = [torch.randn(8, 3) * 2 + 1 for _ in range(3)]
    bad = clean[1].clone()
    bad[0, 2] = float("inf")
    for x in (clean[0], bad, clean[1], clean[2]):
        ours(x)
    for x in clean:
        ref(x)
    for key, value in ref.state_dict().items():  # as if the bad batch had never come
        assert_close(key, ours.state_dict()[key], value, rtol=1e-6, atol=1e-7)


def test_torchscript_is_refused_with_the_way_out():
    model = nn.Sequential(nn.Conv2d(1, 2, 1), bnlab.BatchNorm2d(2))
    with pytest.raises(TypeError, match=r"TorchScript.*bnlab.convert\(model, to='torch'\)"):
        torch.jit.script(model)
    scripted = torch.jit.script(bnlab.convert(model, to="torch").eval())
    x = torch.randn(2, 1, 3, 3)
    assert_close("scripted", scripted(x), model.eval()(x), rtol=0, atol=0)


def test_convert_sync_batchnorm_sees_bnlab_bn():
    ours, _ = _models()
    ours[1](torch.randn(8, 4, dtype=torch.float64))
    state = {k: v.clone() for k, v in ours[1].state_dict().items()}
    synced = nn.SyncBatchNorm.convert_sync_batchnorm(ours)
    assert type(synced[1]) is nn.SyncBatchNorm  # torch's: bnlab has no SyncBatchNorm here
    for key, value in state.items():
        assert torch.equal(synced[1].state_dict()[key], value), key


@pytest.mark.slow
def test_inductor_compiled_training_step_matches_eager():
    torch._dynamo.reset()
    ours, ref = _models(nn.BatchNorm2d, bnlab.BatchNorm2d)
    ours, ref = ours[:2].float(), ref[:2].float()  # Linear over the last axis, then BN2d
    step = torch.compile(lambda m, x, w: (m(x) * w).sum(), fullgraph=True)
    for _ in range(2):
        x, w = torch.randn(4, 4, 2, 3), torch.randn(4, 4, 2, 4)
        loss = step(ours, x, w)
        loss.backward()
        loss_ref = (ref(x) * w).sum()
        loss_ref.backward()
        assert_close("loss", loss, loss_ref, rtol=1e-5, atol=1e-5)
    for (name, p), q in zip(ours.named_parameters(), ref.parameters(), strict=True):
        assert_close(name, p.grad, q.grad, rtol=1e-4, atol=1e-5)
    assert_close("running_mean", ours[1].running_mean, ref[1].running_mean, rtol=1e-5, atol=1e-6)


def test_torch_fusers_either_work_or_refuse_and_fold_batchnorm_does_it():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 1), bnlab.BatchNorm2d(3))
    model(torch.randn(4, 2, 3, 3) * 2 + 1)
    model.eval()
    x = torch.randn(2, 2, 3, 3)
    # duck-typed on running_mean/var, weight, bias, eps: works as for torch's BN
    fused = torch.nn.utils.fusion.fuse_conv_bn_eval(model[0], model[1])
    assert_close("fuse_conv_bn_eval", fused(x), model(x), rtol=1e-5, atol=1e-6)
    # dispatch on the exact (Conv2d, BatchNorm2d) types: refused, not silently skipped
    with pytest.raises(AssertionError, match="did not find fuser method"):
        torch.ao.quantization.fuse_modules(model, [["0", "1"]])
    # torch.fx's default tracer keeps only torch.nn's own modules whole, and stops at
    # bnlab's input checks; fold_batchnorm uses a tracer that keeps bnlab's BN whole
    with pytest.raises(torch.fx.proxy.TraceError):
        torch.fx.symbolic_trace(model)
    assert_close("fold", bnlab.fold_batchnorm(model)(x), model(x), rtol=1e-5, atol=1e-6)
