"""Engine `Probe` adapters: run the analyses between training steps and store their rows.

A probe sees the batch the coming step will train on, measures, and leaves the stack bit for
bit as it found it: every analysis runs inside `_state.preserved` (parameters, gradients,
buffers, noise generators, optimizer state, global RNG), and the activation recorder is paused
so that probe forwards are not logged as training statistics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from bnlab.analysis._state import preserved
from bnlab.analysis.curvature import gradient_curvature
from bnlab.analysis.ics import ics
from bnlab.analysis.landscape import LandscapeConfig, landscape
from bnlab.engine.train import Probe, Stack


@dataclass(frozen=True)
class ProbeConfig:
    """Which analyses run, and how often (steps between probes)."""

    every: int = 100  # the default probing interval (cost: benchmarks/analysis.py)
    landscape: bool = True  # loss variation, gradient predictiveness, beta-smoothness
    ics: bool = False  # Santurkar Def. 2.1, one forward/backward per weight layer
    curvature: bool = False  # g^T H g / ||g||^2 (one double backward)
    grid: LandscapeConfig = field(default_factory=LandscapeConfig)

    def __post_init__(self):
        if not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"every: got {self.every!r}, expected an integer >= 1 (steps)")


class AnalysisProbe(Probe):
    """Runs the analyses chosen in `cfg` every `cfg.every` steps; rows named like
    'landscape/loss_variation', 'ics_l2/fc2', 'curvature'."""

    def __init__(self, cfg: ProbeConfig = ProbeConfig()):
        self.cfg = cfg
        self.every = cfg.every

    def measure(self, stack: Stack, xb: Tensor, yb: Tensor) -> dict[str, Tensor]:
        model, cfg, values = stack.model, self.cfg, {}
        if cfg.landscape:
            lrs = torch.tensor([stack.cfg.member_lr(k) for k in range(model.members)])
            found = landscape(model, xb, yb, lrs.to(model.flat), cfg.grid)
            values.update({f"landscape/{k}": v for k, v in found.items()})
        if cfg.ics:
            values.update(ics(model, stack.optimizer, xb, yb))
        if cfg.curvature:
            values["curvature"] = gradient_curvature(model, xb, yb)["curvature"]
        return values

    def __call__(self, stack: Stack, step: int, xb: Tensor, yb: Tensor) -> list[tuple]:
        recorder = stack.recorder
        active = recorder.active if recorder is not None else False
        if recorder is not None:
            recorder.active = False
        try:
            with preserved(stack.model, stack.optimizer):  # belt and braces around all three
                values = self.measure(stack, xb, yb)
        finally:
            if recorder is not None:
                recorder.active = active
        return [(k, step, name, v) for name, t in values.items() for k, v in enumerate(t.tolist())]
