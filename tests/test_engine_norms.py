"""The engine's norm layers other than BN against independent references, member by member
(float64): torch.nn's LayerNorm / GroupNorm / InstanceNorm2d / BatchNorm, and Batch Renorm's
Algorithm 1 (Ioffe 2017) written out below with autograd."""

import pickle
from dataclasses import replace

import pytest
import torch
from torch import nn

from bnlab.engine.config import ConfigError, ModelConfig, TrainConfig, validate
from bnlab.engine.models import build_model
from bnlab.engine.norms import NORM_LAYERS
from bnlab.engine.norms_batch import StackedBatchRenorm, StackedGhostBatchNorm
from bnlab.engine.norms_group import StackedGroupNorm
from bnlab.engine.stacked import from_groups, to_groups

K, C = 3, 4
TOL = {"rtol": 1e-10, "atol": 1e-12}
F64 = torch.float64


def _randomize(layer):
    with torch.no_grad():
        layer.weight.uniform_(0.5, 1.5)
        layer.bias.normal_()
    return layer


def _input(conv: bool, batch: int = 6, channels_last: bool = True) -> torch.Tensor:
    shape = (K, batch, C, 3, 3) if conv else (K, batch, C)
    x = torch.randn(shape, dtype=F64) * 2 + 1
    if conv and channels_last:  # the engine's layout: a view of a (B, H, W, K, C) buffer
        x = from_groups(to_groups(x).contiguous(memory_format=torch.channels_last), K)
    return x.detach().requires_grad_()


def _weights(y: torch.Tensor) -> torch.Tensor:
    """A fixed, non-uniform upstream gradient (a plain sum would hide errors in dx)."""
    return torch.arange(y.numel(), dtype=F64).view(y.shape).sin()


def _copy_affine(ref: nn.Module, layer: nn.Module, k: int) -> nn.Module:
    with torch.no_grad():
        ref.weight.copy_(layer.weight[k])
        ref.bias.copy_(layer.bias[k])
    return ref


def _check_member(y, x, layer, k, ref, xk_in):
    """Member k of the stacked output and gradients equals `ref` applied to x[k] alone."""
    xk = xk_in.detach().requires_grad_()
    yk = ref(xk)
    (yk * _weights(y)[k]).sum().backward()
    torch.testing.assert_close(y[k], yk, **TOL)
    torch.testing.assert_close(x.grad[k], xk.grad, **TOL)
    torch.testing.assert_close(layer.weight.grad[k], ref.weight.grad, **TOL)
    torch.testing.assert_close(layer.bias.grad[k], ref.bias.grad, **TOL)


GROUP_CASES = [
    # (norm, groups, conv, torch reference for one member)
    ("layer", 1, False, lambda: nn.LayerNorm(C, dtype=F64)),
    ("layer", 1, True, lambda: nn.GroupNorm(1, C, dtype=F64)),  # per-channel gamma, as Wu & He
    ("group", 2, False, lambda: nn.GroupNorm(2, C, dtype=F64)),
    ("group", 2, True, lambda: nn.GroupNorm(2, C, dtype=F64)),
    ("instance", C, True, lambda: nn.InstanceNorm2d(C, affine=True, dtype=F64)),
]


@pytest.mark.parametrize("norm, groups, conv, make_ref", GROUP_CASES)
def test_group_family_matches_torch_per_member(norm, groups, conv, make_ref):
    cfg = ModelConfig(norm_groups=groups)
    layer = _randomize(NORM_LAYERS[norm].make(K, C, cfg, F64))
    assert isinstance(layer, StackedGroupNorm) and layer.groups == groups
    x = _input(conv)
    y = layer(x)
    (y * _weights(y)).sum().backward()
    for k in range(K):
        _check_member(y, x, layer, k, _copy_affine(make_ref(), layer, k), x[k])
    layer.eval()  # no running statistics: evaluation computes the same map
    torch.testing.assert_close(layer(x), y, **TOL)


def test_layer_norm_on_conv_equals_layer_norm_over_c_h_w_with_unit_affine():
    layer = NORM_LAYERS["layer"].make(K, C, ModelConfig(), F64)
    x = _input(conv=True)
    for k in range(K):
        ref = nn.functional.layer_norm(x[k], x.shape[2:], eps=layer.eps)  # over (C, H, W)
        torch.testing.assert_close(layer(x)[k], ref, **TOL)


def _bn_refs(layer, conv: bool, momentum=0.1):
    bn = nn.BatchNorm2d if conv else nn.BatchNorm1d
    return [_copy_affine(bn(C, momentum=momentum, dtype=F64), layer, k) for k in range(K)]


@pytest.mark.parametrize("conv", [False, True])
def test_renorm_without_clipping_room_is_batchnorm(conv):
    """r_max = 1, d_max = 0: r = 1 and d = 0, so training is BN's (Ioffe 2017, Sec. 3)."""
    layer = _randomize(StackedBatchRenorm(K, C, 1e-5, 0.1, r_max=1.0, d_max=0.0, dtype=F64))
    refs = _bn_refs(layer, conv)
    for _ in range(3):  # running statistics move, and must keep matching
        layer.zero_grad()
        for ref in refs:
            ref.zero_grad()
        x = _input(conv)
        y = layer(x)
        (y * _weights(y)).sum().backward()
        for k, ref in enumerate(refs):
            _check_member(y, x, layer, k, ref, x[k])
            torch.testing.assert_close(layer.running_mean[k], ref.running_mean, **TOL)
            torch.testing.assert_close(layer.running_var[k], ref.running_var, **TOL)
    layer.eval()
    x = _input(conv)
    for k, ref in enumerate(refs):
        torch.testing.assert_close(layer(x)[k], ref.eval()(x[k]), **TOL)


def _renorm_reference(x, gamma, beta, mu, var, eps, r_max, d_max, momentum):
    """Ioffe 2017, Alg. 1 for one member, x (B, C) or (B, C, H, W); returns y and the new
    running statistics (BN's update of the unbiased variance, see StackedBatchRenorm)."""
    dims = [0, *range(2, x.dim())]
    shape = (1, -1) + (1,) * (x.dim() - 2)
    m = x.numel() // x.shape[1]
    mu_B = x.mean(dims)
    sigma_B = torch.sqrt(((x - mu_B.view(shape)) ** 2).mean(dims) + eps)
    sigma = torch.sqrt(var + eps)
    r = (sigma_B / sigma).clamp(1 / r_max, r_max).detach()  # stop_gradient
    d = ((mu_B - mu) / sigma).clamp(-d_max, d_max).detach()  # stop_gradient
    x_hat = (x - mu_B.view(shape)) / sigma_B.view(shape) * r.view(shape) + d.view(shape)
    y = gamma.view(shape) * x_hat + beta.view(shape)
    var_unbiased = (sigma_B**2 - eps) * m / (m - 1)
    new_mu = mu + momentum * (mu_B.detach() - mu)
    new_var = var + momentum * (var_unbiased.detach() - var)
    return y, new_mu, new_var, r, d


@pytest.mark.parametrize("conv", [False, True])
def test_renorm_clipping_matches_algorithm_1(conv):
    r_max, d_max, eps, momentum = 1.5, 0.5, 1e-5, 0.1
    layer = _randomize(StackedBatchRenorm(K, C, eps, momentum, r_max, d_max, dtype=F64))
    with torch.no_grad():  # running statistics far from the batch's: r and d both clip
        layer.running_mean.uniform_(-3.0, 3.0)
        layer.running_var.uniform_(0.05, 20.0)
    mu0, var0 = layer.running_mean.clone(), layer.running_var.clone()
    x = _input(conv)
    y = layer(x)
    (y * _weights(y)).sum().backward()
    clipped = 0
    for k in range(K):
        xk = x[k].detach().requires_grad_()
        gamma = layer.weight[k].detach().clone().requires_grad_()
        beta = layer.bias[k].detach().clone().requires_grad_()
        yk, mu, var, r, d = _renorm_reference(
            xk, gamma, beta, mu0[k], var0[k], eps, r_max, d_max, momentum
        )
        (yk * _weights(y)[k]).sum().backward()
        clipped += int((r == r_max).sum() + (r == 1 / r_max).sum() + (d.abs() == d_max).sum())
        torch.testing.assert_close(y[k], yk, **TOL)
        torch.testing.assert_close(x.grad[k], xk.grad, **TOL)
        torch.testing.assert_close(layer.weight.grad[k], gamma.grad, **TOL)
        torch.testing.assert_close(layer.bias.grad[k], beta.grad, **TOL)
        torch.testing.assert_close(layer.running_mean[k], mu, **TOL)
        torch.testing.assert_close(layer.running_var[k], var, **TOL)
    assert clipped >= K, "the test must exercise the clipping"


def test_renorm_warmup_schedule():
    layer = StackedBatchRenorm(1, 2, 1e-5, 0.1, 3.0, 5.0, warmup=10, r_ramp=20, d_ramp=10)
    assert layer.limits(0) == layer.limits(9) == (1.0, 0.0)  # plain BN during warm-up
    assert layer.limits(10) == (1.0, 0.0)
    assert layer.limits(15) == pytest.approx((1.5, 2.5))
    assert layer.limits(20) == pytest.approx((2.0, 5.0))  # d_max reached first, as Sec. 4
    assert layer.limits(30) == layer.limits(10**6) == pytest.approx((3.0, 5.0))


@pytest.mark.parametrize("norm", ["batch", "renorm", "ghost"])
def test_bn_layers_count_batches_on_the_host(norm, monkeypatch):
    """A training step reads no step count back from the device (a sync on a GPU), yet the
    count follows every other write: a loaded checkpoint, precise BN's restore."""
    cfg = ModelConfig(
        bn_momentum=None, renorm_warmup=2, renorm_r_ramp=2, renorm_d_ramp=2, ghost_batch_size=4
    )
    layer = NORM_LAYERS[norm].make(2, 3, cfg, torch.float64)
    host_reads = []
    real_int, real_float = torch.Tensor.__int__, torch.Tensor.__float__

    def counted(real):
        def read(t):
            host_reads.append(tuple(t.shape))
            return real(t)

        return read

    monkeypatch.setattr(torch.Tensor, "__int__", counted(real_int))
    monkeypatch.setattr(torch.Tensor, "__float__", counted(real_float))
    x = torch.randn(2, 8, 3, dtype=torch.float64)
    layer(x)  # the first step reads the count once
    host_reads.clear()
    for _ in range(4):
        layer(x)
    assert host_reads == []
    assert layer.batches_seen() == real_int(layer.num_batches_tracked) == 5
    layer.load_state_dict({**layer.state_dict(), "num_batches_tracked": torch.tensor(40)})
    assert layer.batches_seen() == 40
    layer.num_batches_tracked.copy_(torch.tensor(7))  # as precise_bn restores it
    layer(x)
    assert layer.batches_seen() == real_int(layer.num_batches_tracked) == 8
    copied = pickle.loads(pickle.dumps(layer))  # whole modules pickle (torch.save, spawn)
    copied(x)
    assert copied.batches_seen() == layer.batches_seen() + 1 == 9


@pytest.mark.parametrize("conv", [False, True])
def test_ghost_batchnorm_is_batchnorm_per_chunk(conv):
    virtual, chunks, momentum = 3, 2, 0.1
    layer = _randomize(StackedGhostBatchNorm(K, C, 1e-5, momentum, virtual, dtype=F64))
    x = _input(conv, batch=virtual * chunks)
    y = layer(x)
    (y * _weights(y)).sum().backward()
    dims = [0, *range(2, x.dim() - 1)]  # a member's (B, C[, H, W]): all but C
    for k in range(K):
        refs = [_copy_affine(_bn_refs(layer, conv)[k], layer, k) for _ in range(chunks)]
        xk = x[k].detach().requires_grad_()
        yk = torch.cat([ref(c) for ref, c in zip(refs, xk.split(virtual), strict=True)])
        (yk * _weights(y)[k]).sum().backward()
        torch.testing.assert_close(y[k], yk, **TOL)
        torch.testing.assert_close(x.grad[k], xk.grad, **TOL)
        torch.testing.assert_close(layer.weight.grad[k], sum(r.weight.grad for r in refs), **TOL)
        torch.testing.assert_close(layer.bias.grad[k], sum(r.bias.grad for r in refs), **TOL)
        # Keras: one update with the chunk-averaged mean and biased variance
        parts = x[k].detach().split(virtual)
        mu = torch.stack([p.mean(dims) for p in parts]).mean(0)
        var = torch.stack([p.var(dims, unbiased=False) for p in parts]).mean(0)
        torch.testing.assert_close(layer.running_mean[k], momentum * mu, **TOL)
        torch.testing.assert_close(layer.running_var[k], (1 - momentum) + momentum * var, **TOL)
    layer.eval()
    refs = _bn_refs(layer, conv)
    for k, ref in enumerate(refs):
        with torch.no_grad():
            ref.running_mean.copy_(layer.running_mean[k])
            ref.running_var.copy_(layer.running_var[k])
        torch.testing.assert_close(layer(x)[k], ref.eval()(x[k]), **TOL)


def _cfg(norm: str, **model) -> TrainConfig:
    base = ModelConfig(conv_channels=(8,), hidden=(12,))
    return TrainConfig(norms=(norm,), batch_size=32, model=replace(base, **model))


@pytest.mark.parametrize(
    "cfg, field",
    [
        (_cfg("group", norm_groups=5), "model.norm_groups"),
        (_cfg("group", norm_groups=0), "model.norm_groups"),
        (_cfg("ghost", ghost_batch_size=5), "model.ghost_batch_size"),
        (_cfg("instance"), "model.hidden"),
        (_cfg("renorm", renorm_r_max=0.5), "model.renorm_r_max"),
        (_cfg("renorm", renorm_d_max=-1.0), "model.renorm_d_max"),
        (_cfg("renorm", renorm_warmup=-1), "model.renorm_warmup"),
    ],
)
def test_bad_norm_parameters_are_refused_naming_the_field(cfg, field):
    with pytest.raises(ConfigError, match=field):
        validate(cfg, check_data=False)


def test_good_norm_parameters_validate():
    for cfg in (_cfg("group", norm_groups=4), _cfg("ghost", ghost_batch_size=8), _cfg("layer")):
        validate(cfg, check_data=False)
    validate(_cfg("instance", hidden=()), check_data=False)


@pytest.mark.parametrize("norm", ["renorm", "ghost", "group"])
def test_fold_folds_bn_variants_and_leaves_per_example_norms(norm):
    """Renorm and Ghost BN evaluate as BN, so bnlab.fold folds them; GroupNorm it must not."""
    import bnlab

    cfg = ModelConfig(conv_channels=(4,), hidden=(6,), activation="relu", norm_groups=2)
    model = build_model(cfg, norm, K, (1, 4, 4), F64)
    model.init_members([0, 1, 2], "torch-default", 0.1)
    x = torch.randn(K, 16, 1, 4, 4, dtype=F64)
    with torch.no_grad():
        for _ in range(3):  # move the running statistics away from their start
            model(x * 2 + 1)
    # GroupNorm's forward branches on x.dim(): torch.fx cannot trace it (auto would warn)
    method = "sequential" if norm == "group" else "auto"
    folded, report = bnlab.fold_batchnorm(model, method=method, return_report=True)
    assert len(report.folded) == (0 if norm == "group" else 2)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-9, atol=1e-10)
