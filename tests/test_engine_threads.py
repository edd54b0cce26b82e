"""bnlab.engine.threads: the size of a stack's step, and the thread count chosen from it."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from bnlab.engine.presets import PRESETS, get_preset
from bnlab.engine.threads import (
    MULTI_THREAD_FLOPS,
    choose_threads,
    free_cores,
    input_shape,
    model_flops,
    stack_flops,
)


def _torch_nn_model(cfg) -> nn.Sequential:
    """The preset's network as plain torch.nn layers (no norm: FLOPs of convs and matmuls)."""
    (c, h, w), layers = input_shape(cfg), []
    for i, c_out in enumerate(cfg.model.conv_channels, start=1):
        layers += [nn.Conv2d(c, c_out, 3, padding=1), nn.ReLU()]
        c = c_out
        if i % cfg.model.pool_every == 0:
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
    layers.append(nn.Flatten())
    fan_in = c * h * w
    for fan_out in (*cfg.model.hidden, cfg.model.num_classes):
        layers.append(nn.Linear(fan_in, fan_out))
        fan_in = fan_out
    return nn.Sequential(*layers)


@pytest.mark.parametrize("preset", ["smoke", "optstudy-convmlp", "santurkar2018-vgg"])
def test_flops_equal_torchs_flop_counter(preset):
    """The count is torch's FlopCounterMode's on the same network, forward + backward."""
    cfg = replace(get_preset(preset), batch_size=4)
    model = _torch_nn_model(cfg)
    x = torch.randn(cfg.batch_size, *input_shape(cfg))
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    assert model_flops(cfg) == counter.get_total_flops()
    assert stack_flops(replace(cfg, seeds=3)) == 3 * counter.get_total_flops()


def test_only_big_steps_on_two_free_cores_get_two_threads():
    chosen = {name: choose_threads(replace(get_preset(name), seeds=5), cores=2) for name in PRESETS}
    for name, threads in chosen.items():
        big = stack_flops(replace(get_preset(name), seeds=5)) >= MULTI_THREAD_FLOPS
        assert threads == (2 if big else 1), name
    assert chosen["smoke"] == chosen["ioffe2015-mnist"] == chosen["optstudy-mlp"] == 1
    assert chosen["cifar10-cnn"] == chosen["optstudy-convmlp"] == 2


def test_a_busy_machine_and_one_core_get_one_thread():
    conv = replace(get_preset("cifar10-cnn"), seeds=5)
    assert choose_threads(conv, cores=2, load=1.0) == 1  # another process holds a core
    assert choose_threads(conv, cores=2, load=0.3) == 2  # background noise
    assert choose_threads(conv, cores=1) == 1
    assert choose_threads(conv, cores=16) == 2  # measured up to 2
    cores, load = free_cores()
    assert cores >= 1 and load >= 0.0
