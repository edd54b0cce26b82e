"""Batch Renorm, Ghost BN, precise BN and the momentum conventions, each against an
independent reference: torch.nn's BN, BN applied chunk by chunk, the paper's formulas
written out with autograd, and the update rules written out by hand.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_close
from torch import nn

import bnlab

F64 = torch.float64
TIGHT = dict(rtol=1e-10, atol=1e-12)


def _copy_params(ours, ref):
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5)
        ref.bias.uniform_(-0.5, 0.5)
    ours.load_state_dict(ref.state_dict())


def _grads(module, x, dy):
    x = x.clone().requires_grad_()
    y = module(x)
    return (y, *torch.autograd.grad(y, (x, module.weight, module.bias), dy))


# --- Batch Renormalization -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "ref_cls", "shape"),
    [
        (bnlab.BatchRenorm1d, nn.BatchNorm1d, (8, 3)),
        (bnlab.BatchRenorm2d, nn.BatchNorm2d, (4, 3, 3, 2)),
    ],
)
def test_renorm_with_r_max_1_d_max_0_is_batchnorm(cls, ref_cls, shape):
    """Ioffe 2017, Sec. 3: r = 1, d = 0 is BN: outputs, gradients and running statistics."""
    torch.manual_seed(0)
    ours = cls(3, momentum=0.1, r_max=1.0, d_max=0.0, dtype=F64)
    ref = ref_cls(3, momentum=0.1, dtype=F64)
    _copy_params(ours, ref)
    for mode in ["train"] * 3 + ["eval", "train"]:
        ours.train(mode == "train")
        ref.train(mode == "train")
        x, dy = torch.randn(shape, dtype=F64) * 2 + 1, torch.randn(shape, dtype=F64)
        for label, a, b in zip(
            ["y", "dx", "dgamma", "dbeta"], _grads(ours, x, dy), _grads(ref, x, dy), strict=True
        ):
            assert_close(f"{mode} {label}", a, b, **TIGHT)
        for key, value in ref.state_dict().items():
            assert_close(key, ours.state_dict()[key], value, **TIGHT)


def _renorm_by_formula(x, gamma, beta, rm, rv, eps, r_max, d_max):
    """Ioffe 2017, Algorithm 1, in autograd ops, with r and d detached (the stop-gradient)."""
    mu = x.mean((0, 2, 3), keepdim=True)
    sigma_b = torch.sqrt(x.var((0, 2, 3), unbiased=False, keepdim=True) + eps)
    sigma = torch.sqrt(rv.view(1, -1, 1, 1) + eps)
    r = (sigma_b / sigma).clamp(1 / r_max, r_max).detach()
    d = ((mu - rm.view(1, -1, 1, 1)) / sigma).clamp(-d_max, d_max).detach()
    x_hat = (x - mu) / sigma_b * r + d
    return gamma.view(1, -1, 1, 1) * x_hat + beta.view(1, -1, 1, 1)


@pytest.mark.parametrize("regime", ["unclipped", "clipped"])
def test_renorm_matches_the_paper_with_stopped_gradients(regime):
    torch.manual_seed(0)
    m = bnlab.BatchRenorm2d(3, r_max=3.0, d_max=5.0, dtype=F64)
    with torch.no_grad():
        m.weight.uniform_(0.5, 1.5)
        m.bias.uniform_(-0.5, 0.5)
        scale = 1.0 if regime == "unclipped" else 10.0  # far running stats: r, d clipped
        m.running_mean.copy_(torch.tensor([0.2, -0.1, 0.3]) * scale**2)
        m.running_var.copy_(torch.tensor([1.5, 0.8, 1.2]) * scale**2)
    rm, rv = m.running_mean.clone(), m.running_var.clone()
    x, dy = torch.randn(6, 3, 2, 2, dtype=F64), torch.randn(6, 3, 2, 2, dtype=F64)
    x_ref, g_ref, b_ref = (
        t.clone().requires_grad_() for t in (x, m.weight.detach(), m.bias.detach())
    )
    y_ref = _renorm_by_formula(x_ref, g_ref, b_ref, rm, rv, m.eps, 3.0, 5.0)
    expected = (y_ref, *torch.autograd.grad(y_ref, (x_ref, g_ref, b_ref), dy))
    for label, a, b in zip(["y", "dx", "dgamma", "dbeta"], _grads(m, x, dy), expected, strict=True):
        assert_close(f"{regime} {label}", a, b, **TIGHT)
    if regime == "unclipped":
        # unclipped, training computes the inference function of the running statistics
        m_eval = bnlab.BatchRenorm2d(3, dtype=F64)
        m_eval.load_state_dict({**m.state_dict(), "running_mean": rm, "running_var": rv})
        assert_close("train == eval", expected[0], m_eval.eval()(x), **TIGHT)


def test_renorm_gradcheck_where_r_and_d_are_clipped():
    """Clipped, r and d are locally constant, so the stop-gradient backward is the true
    derivative and finite differences can check it, to second order."""
    torch.manual_seed(0)
    m = bnlab.BatchRenorm2d(3, r_max=2.0, d_max=0.5, dtype=F64)
    with torch.no_grad():
        m.running_mean.fill_(10.0)
        m.running_var.fill_(100.0)
    state = {k: v.clone() for k, v in m.state_dict().items()}
    x = torch.randn(4, 3, 2, 2, dtype=F64, requires_grad=True)
    w = (torch.rand(3, dtype=F64) + 0.5).requires_grad_()
    b = torch.randn(3, dtype=F64, requires_grad=True)

    def f(x, w, b):
        m.load_state_dict(state)  # every probe starts from the same running statistics
        return torch.func.functional_call(m, {"weight": w, "bias": b}, (x,))

    assert torch.autograd.gradcheck(f, (x, w, b))
    assert torch.autograd.gradgradcheck(f, (x, w, b))


def test_renorm_warmup_schedule():
    w = bnlab.RenormWarmup()  # Ioffe 2017, Sec. 4.1
    assert w.limits(0, 3.0, 5.0) == (1.0, 0.0)
    assert w.limits(5000, 3.0, 5.0) == (1.0, 0.0)
    assert w.limits(25000, 3.0, 5.0) == pytest.approx((1.0 + 2.0 * 20 / 35, 5.0))
    assert w.limits(40000, 3.0, 5.0) == (3.0, 5.0)
    assert w.limits(10**6, 3.0, 5.0) == (3.0, 5.0)
    with pytest.raises(ValueError, match=r"r_max_step: expected a step >= start \(20\), got 10"):
        bnlab.RenormWarmup(start=20, r_max_step=10, d_max_step=30)
    # a step at start switches the limit on there, without a ramp: (0, 0, 0) is no warm-up
    step = bnlab.RenormWarmup(start=10, r_max_step=10, d_max_step=20)
    assert step.limits(9, 3.0, 5.0) == (1.0, 0.0)
    assert step.limits(10, 3.0, 5.0) == (3.0, 0.0)
    assert step.limits(15, 3.0, 5.0) == (3.0, 2.5)
    assert bnlab.RenormWarmup(0, 0, 0).limits(0, 3.0, 5.0) == (3.0, 5.0)


def test_renorm_warmup_is_batchnorm_until_start():
    torch.manual_seed(0)
    warm = bnlab.RenormWarmup(start=2, r_max_step=4, d_max_step=3)
    ours = bnlab.BatchRenorm1d(3, momentum=0.5, warmup=warm, dtype=F64)
    ref = nn.BatchNorm1d(3, momentum=0.5, dtype=F64)
    with torch.no_grad():
        ours.running_var.fill_(50.0)  # far away: any correction would show
        ref.running_var.fill_(50.0)
    outputs = []
    for _ in range(4):
        x = torch.randn(8, 3, dtype=F64)
        outputs.append((ours(x) - ref(x)).abs().max().item())
    assert max(outputs[:3]) < 1e-12  # steps 0 to 2: r_max = 1, d_max = 0, plain BN
    assert outputs[3] > 1e-6  # step 3: r_max = 2, d_max = 5, the correction acts
    assert int(ours.num_batches_tracked) == 4


def test_renorm_refuses_bad_arguments():
    with pytest.raises(ValueError, match="r_max >= 1"):
        bnlab.BatchRenorm1d(3, r_max=0.5)
    with pytest.raises(ValueError, match="momentum must be in"):
        bnlab.BatchRenorm1d(3, momentum=0.0)
    with pytest.raises(ValueError, match="expected 4D input"):
        bnlab.BatchRenorm2d(3)(torch.randn(4, 3))


# --- Ghost Batch Normalization -------------------------------------------------------------


@pytest.mark.parametrize("shape", [(12, 3), (6, 3, 2, 2)])
def test_ghost_equals_batchnorm_per_chunk(shape):
    torch.manual_seed(0)
    cls = bnlab.GhostBatchNorm1d if len(shape) == 2 else bnlab.GhostBatchNorm2d
    m = cls(3, virtual_batch_size=3, momentum=0.2, dtype=F64)
    with torch.no_grad():
        m.weight.uniform_(0.5, 1.5)
        m.bias.uniform_(-0.5, 0.5)
    x, dy = torch.randn(shape, dtype=F64) * 2 + 1, torch.randn(shape, dtype=F64)
    # the reference: torch's BN on each chunk, shared gamma and beta, and momentum 1 to read
    # each chunk's (mean, unbiased variance) from the running buffers
    xr, gr, br = (t.clone().requires_grad_() for t in (x, m.weight.detach(), m.bias.detach()))
    means, variances, ys = [], [], []
    for chunk in xr.split(3):
        rm, rv = torch.zeros(3, dtype=F64), torch.ones(3, dtype=F64)
        ys.append(F.batch_norm(chunk, rm, rv, gr, br, training=True, momentum=1.0))
        means.append(rm)
        variances.append(rv)
    y_ref = torch.cat(ys)
    expected = (y_ref, *torch.autograd.grad(y_ref, (xr, gr, br), dy))
    for label, a, b in zip(["y", "dx", "dgamma", "dbeta"], _grads(m, x, dy), expected, strict=True):
        assert_close(label, a, b, **TIGHT)
    # Keras's rule: one step towards the chunks' mean statistics
    assert_close("running_mean", m.running_mean, 0.2 * torch.stack(means).mean(0), **TIGHT)
    assert_close("running_var", m.running_var, 0.8 + 0.2 * torch.stack(variances).mean(0), **TIGHT)


def test_ghost_with_one_chunk_is_torch_batchnorm():
    torch.manual_seed(0)
    ours = bnlab.GhostBatchNorm2d(3, virtual_batch_size=4, momentum=None, dtype=F64)
    ref = nn.BatchNorm2d(3, momentum=None, dtype=F64)
    _copy_params(ours, ref)
    for mode in ["train", "train", "eval"]:
        ours.train(mode == "train")
        ref.train(mode == "train")
        x, dy = torch.randn(4, 3, 2, 2, dtype=F64), torch.randn(4, 3, 2, 2, dtype=F64)
        for label, a, b in zip(
            ["y", "dx", "dgamma", "dbeta"], _grads(ours, x, dy), _grads(ref, x, dy), strict=True
        ):
            assert_close(f"{mode} {label}", a, b, **TIGHT)
        for key, value in ref.state_dict().items():
            assert_close(key, ours.state_dict()[key], value, **TIGHT)


def test_ghost_refuses_a_batch_that_is_not_a_multiple():
    m = bnlab.GhostBatchNorm1d(3, virtual_batch_size=4)
    with pytest.raises(ValueError, match="batch size 6 is not a multiple of virtual_batch_size=4"):
        m(torch.randn(6, 3))
    assert int(m.num_batches_tracked) == 0
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bnlab.GhostBatchNorm1d(3, virtual_batch_size=1)(torch.randn(4, 3))
    m.eval()
    assert m(torch.randn(6, 3)).shape == (6, 3)  # eval uses running statistics: any batch


# --- precise BN ----------------------------------------------------------------------------


def _model():
    return nn.Sequential(
        nn.Linear(4, 5),
        bnlab.BatchNorm1d(5, momentum=0.1),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(5, 3),
        nn.BatchNorm1d(3),
    ).double()


def test_precise_bn_is_the_equal_weight_average_of_batch_statistics():
    torch.manual_seed(0)
    model = _model()
    batches = [torch.randn(8, 4, dtype=F64) * 2 + 1 for _ in range(5)]
    model.eval()  # dropout stays off during the pass; the BN layers are trained
    # the reference: the layers run by hand, BN with batch statistics, no dropout
    with torch.no_grad():
        stats = {1: ([], []), 5: ([], [])}
        for x in batches:
            h1 = model[0](x)
            bn1 = model[1]
            h2 = model[4](F.relu(F.batch_norm(h1, None, None, bn1.weight, bn1.bias, True)))
            for i, h in ((1, h1), (5, h2)):
                stats[i][0].append(h.mean(0))
                stats[i][1].append(h.var(0, unbiased=True))
    counts = [int(model[i].num_batches_tracked) for i in stats]
    bnlab.precise_bn(model, [(x, None) for x in batches], num_batches=5)
    for i, (means, variances) in stats.items():  # bnlab's BN and torch's
        assert_close(f"[{i}] mean", model[i].running_mean, torch.stack(means).mean(0), **TIGHT)
        assert_close(f"[{i}] var", model[i].running_var, torch.stack(variances).mean(0), **TIGHT)
    assert not any(m.training for m in model.modules())  # modes restored
    assert model[1].momentum == 0.1 and model[5].momentum == 0.1
    assert [int(model[i].num_batches_tracked) for i in stats] == counts


def test_precise_bn_needs_enough_batches_and_a_bn_layer():
    model = _model()
    before = model[1].running_mean.clone()
    with pytest.raises(ValueError, match="num_batches=3, but batches gave only 2"):
        bnlab.precise_bn(model, [torch.randn(4, 4, dtype=F64)] * 2, num_batches=3)
    assert torch.equal(model[1].running_mean, before) and model[1].momentum == 0.1
    with pytest.raises(ValueError, match="no module with running statistics"):
        bnlab.precise_bn(nn.Sequential(nn.Linear(2, 2), bnlab.LayerNorm(2)), [torch.randn(2, 2)], 1)
    with pytest.raises(ValueError, match="num_batches must be a positive int"):
        bnlab.precise_bn(model, [], 0)


def test_precise_bn_runs_renorm_as_batchnorm_and_restores_it():
    torch.manual_seed(0)
    warm = bnlab.RenormWarmup(start=1, r_max_step=2, d_max_step=2)
    renorm = bnlab.BatchRenorm1d(3, warmup=warm, dtype=F64)
    with torch.no_grad():
        renorm.running_mean.fill_(5.0)
    batches = [torch.randn(6, 3, dtype=F64) for _ in range(3)]
    bnlab.precise_bn(renorm, batches, num_batches=3)
    expected = torch.stack([x.mean(0) for x in batches]).mean(0)
    assert_close("running_mean", renorm.running_mean, expected, **TIGHT)
    assert (renorm.r_max, renorm.d_max, renorm.warmup) == (3.0, 5.0, warm)
    assert int(renorm.num_batches_tracked) == 0


# --- momentum conventions ------------------------------------------------------------------


def test_momentum_conversions_reproduce_each_frameworks_update():
    torch.manual_seed(0)
    bn = nn.BatchNorm1d(3, momentum=0.1)
    keras_momentum = bnlab.torch_to_keras(0.1)
    moving_mean = torch.zeros(3)
    for _ in range(4):
        x = torch.randn(16, 3) + 2
        bn(x)
        # Keras/TF and Flax: moving = momentum * moving + (1 - momentum) * batch
        moving_mean = keras_momentum * moving_mean + (1 - keras_momentum) * x.mean(0)
    assert_close("running_mean", bn.running_mean, moving_mean, rtol=1e-5, atol=1e-6)
    assert keras_momentum == pytest.approx(0.9)
    assert bnlab.keras_to_torch(0.99) == pytest.approx(0.01)  # Keras's default
    assert bnlab.torch_to_flax(0.1) == pytest.approx(0.9)
    assert bnlab.flax_to_torch(bnlab.torch_to_flax(0.3)) == pytest.approx(0.3)
    with pytest.raises(TypeError, match="cumulative average"):
        bnlab.torch_to_keras(None)
    with pytest.raises(ValueError, match=r"keras_to_torch: momentum must be in \[0, 1\], got 1.5"):
        bnlab.keras_to_torch(1.5)
