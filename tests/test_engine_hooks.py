"""Recorded activation statistics: the inputs of the activation (after BN) and of the BN layer
(before it), checked against the same tensors computed by hand and against NumPy."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from bnlab.engine.config import HookConfig
from bnlab.engine.data import load_data
from bnlab.engine.hooks import ActivationRecorder, histogram_edges
from bnlab.engine.presets import get_preset
from bnlab.engine.train import build_stack


def _stack(conv: tuple[int, ...], norm: str):
    cfg = replace(get_preset("smoke"), dtype="float64", seeds=2)
    cfg = replace(cfg, model=replace(cfg.model, conv_channels=conv))
    data = load_data(cfg.data)
    return build_stack(cfg, norm, data), data


@pytest.mark.parametrize("conv", [(), (3,)], ids=["mlp", "conv"])
def test_norm_inputs_are_the_layer_before_bn_and_histograms_match_numpy(conv):
    stack, data = _stack(conv, "batch")
    model = stack.model
    layer = "act1"
    hooks = HookConfig(
        layers=(layer,), units=(0, 1), histogram_bins=16, hist_range=3.0, norm_inputs=True
    )
    recorder = ActivationRecorder(model, hooks)
    x = data.x_train[:32].double().expand(2, 32, *data.input_shape)  # (K, B, C, H, W)
    recorder.active = True
    model(x)
    rows = {(k, name): v for k, _, name, v in recorder.take_rows(step=5)}
    h = x
    for name, module in model.layers.named_children():  # the same forward, by hand
        if name == "norm1":
            before = h.detach()
        if name == layer:
            after = h.detach()
            break
        h = module(h)
    edges = histogram_edges(hooks).numpy()
    for k in range(2):
        for prefix, ref in (("norm_in", before[k]), ("act", after[k])):
            flat = ref.numpy().ravel()
            assert rows[k, f"{prefix}/{layer}/mean"] == pytest.approx(flat.mean(), rel=1e-9)
            assert rows[k, f"{prefix}/{layer}/std"] == pytest.approx(flat.std(ddof=1), rel=1e-9)
            counts, _ = np.histogram(flat, bins=edges)
            ours = [rows[k, f"{prefix}/{layer}/hist/{b}"] for b in range(16)]
            np.testing.assert_allclose(ours, counts / flat.size, atol=1e-12)
    # after BN (gamma 1, beta 0 at init) each unit is standardized; before it, not
    assert rows[0, f"act/{layer}/std"] == pytest.approx(1.0, abs=0.02)
    assert abs(rows[0, f"norm_in/{layer}/std"] - 1.0) > 0.05


def test_norm_inputs_are_recorded_only_where_a_norm_exists_and_only_when_active():
    stack, data = _stack((), "none")
    hooks = HookConfig(layers=("act1", "act2"), norm_inputs=True)
    recorder = ActivationRecorder(stack.model, hooks)
    x = data.x_train[:16].double().expand(2, 16, *data.input_shape)
    stack.model(x)  # not a recording step
    assert recorder.take_rows(step=1) == []
    recorder.active = True
    stack.model(x)
    names = {name for _, _, name, _ in recorder.take_rows(step=2)}
    assert {"act/act1/mean", "act/act2/std"} <= names
    assert not any(n.startswith("norm_in/") for n in names)  # the baseline has no BN layer
    bn, _ = _stack((), "batch")
    assert len(ActivationRecorder(bn.model, hooks).handles) == 4  # 2 activations + 2 norms
    assert len(ActivationRecorder(bn.model, replace(hooks, norm_inputs=False)).handles) == 2


def test_histogram_edges_span_the_range():
    edges = histogram_edges(HookConfig(histogram_bins=4, hist_range=2.0))
    torch.testing.assert_close(edges, torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0]))
