"""bnlab.analysis: why BN helps, measured (Santurkar, Tsipras, Ilyas, Madry 2018).

Tools that work on any bnlab stack, for every member at once:

- `landscape`, `along_gradient`, `LandscapeConfig`: loss variation, gradient predictiveness
  and effective beta-smoothness along the gradient (Sec. 3.1, Fig. 4);
- `ics`: internal covariate shift as ||G - G'|| and cos(G, G') per layer (Def. 2.1, Fig. 5);
- `hvp`, `gradient_curvature`: g^T H g / ||g||^2 by double backward through BN;
- `AnalysisProbe`, `ProbeConfig`: run them during `bnlab.engine.train` without disturbing it;
- `preserved`: save and restore everything a measurement could change;
- `module_landscape`, `module_ics`, `module_curvature`, `module_activation_stats`: the same
  measurements on any `nn.Module` with a loss function and a batch (`any_module`);
- `LayerHealth`, `saturation`: per-layer health over training (makemore part 4): saturated
  activations, grad:data and update:data ratios, on any `nn.Module` (`health`).

The experiments that use them are `bnlab.reproduce.santurkar2018`; the "batch-noisy" norm
layer they train (Sec. 2.1, Fig. 2) is `bnlab.engine.StackedNoisyBatchNorm`.
"""

from bnlab.analysis._state import loss_and_grad, member_losses, preserved
from bnlab.analysis.any_module import (
    module_activation_stats,
    module_curvature,
    module_ics,
    module_landscape,
)
from bnlab.analysis.curvature import gradient_curvature, hvp
from bnlab.analysis.health import LayerHealth, saturation
from bnlab.analysis.ics import ics
from bnlab.analysis.landscape import LandscapeConfig, along_gradient, landscape
from bnlab.analysis.probes import AnalysisProbe, ProbeConfig

__all__ = [
    "AnalysisProbe",
    "LandscapeConfig",
    "LayerHealth",
    "ProbeConfig",
    "along_gradient",
    "gradient_curvature",
    "hvp",
    "ics",
    "landscape",
    "loss_and_grad",
    "member_losses",
    "module_activation_stats",
    "module_curvature",
    "module_ics",
    "module_landscape",
    "preserved",
    "saturation",
]
