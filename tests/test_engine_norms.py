"""The engine's norm layers beyond their equality with the library's layers
(test_engine_norm_parity.py): LayerNorm on conv activations against torch's over (C, H, W),
both GroupNorm kernels against torch.nn, step counts kept on the host, and folding."""

import pickle

import pytest
import torch
from torch import nn

import bnlab
from bnlab.engine.config import ModelConfig
from bnlab.engine.models import build_model
from bnlab.engine.norms import NORM_KERNELS, NORM_LAYERS, NormParams
from bnlab.engine.norms_batch import StackedBatchRenorm, StackedGhostBatchNorm
from bnlab.engine.norms_bn import StackedBatchNorm
from bnlab.engine.norms_group import GroupParams, StackedGroupNorm
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


def _copy_affine(ref: nn.Module, layer: nn.Module, k: int) -> nn.Module:
    with torch.no_grad():
        ref.weight.copy_(layer.weight[k])
        ref.bias.copy_(layer.bias[k])
    return ref


def test_layer_norm_on_conv_equals_layer_norm_over_c_h_w_with_unit_affine():
    layer = NORM_LAYERS["layer"].make(K, C, NormParams(), F64)
    x = _input(conv=True)
    for k in range(K):
        ref = nn.functional.layer_norm(x[k], x.shape[2:], eps=layer.eps)  # over (C, H, W)
        torch.testing.assert_close(layer(x)[k], ref, **TOL)


def test_group_norm_kernels_agree_with_torch_on_a_member():
    """The "aten" and "bnlab" kernels are two computations of one GroupNorm: each against
    torch.nn.GroupNorm on member k (the library's equality is test_engine_norm_parity.py)."""
    x = _input(conv=True)
    for kernel in NORM_KERNELS:
        layer = _randomize(StackedGroupNorm(K, C, 2, 1e-5, F64, kernel))
        y = layer(x)
        for k in range(K):
            ref = _copy_affine(nn.GroupNorm(2, C, dtype=F64), layer, k)
            torch.testing.assert_close(y[k], ref(x[k]), **TOL)


@pytest.mark.parametrize("norm", ["batch", "renorm", "ghost"])
def test_bn_layers_count_batches_on_the_host(norm, monkeypatch):
    """A training step reads no step count back from the device (a sync on a GPU), yet the
    count follows every other write: a loaded checkpoint, precise BN's restore."""
    layer = {
        "batch": lambda: StackedBatchNorm(2, 3, 1e-5, None, torch.float64),
        "renorm": lambda: StackedBatchRenorm(
            2, 3, 1e-5, None, 3.0, 5.0, bnlab.RenormWarmup(2, 4, 4), torch.float64
        ),
        "ghost": lambda: StackedGhostBatchNorm(2, 3, 1e-5, None, 4, torch.float64),
    }[norm]()  # momentum None: the cumulative average reads the count
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


@pytest.mark.parametrize("norm", ["renorm", "ghost", "group"])
def test_fold_folds_bn_variants_and_leaves_per_example_norms(norm):
    """Renorm and Ghost BN evaluate as BN, so bnlab.fold folds them; GroupNorm it must not."""
    norm_params = NormParams(group=GroupParams(groups=2))
    cfg = ModelConfig(conv_channels=(4,), hidden=(6,), activation="relu", norm=norm_params)
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
