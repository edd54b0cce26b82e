"""The normalization family: Batch Normalization's relatives, one file per layer.

| file                | layer                                  | statistics over                 |
|---------------------|----------------------------------------|---------------------------------|
| `layernorm.py`      | `LayerNorm` (Ba et al. 2016)           | each sample's features          |
| `groupnorm.py`      | `GroupNorm` (Wu & He 2018)             | each sample's group of channels |
| `instancenorm.py`   | `InstanceNorm1d/2d/3d` (Ulyanov 2016)  | each sample's channel           |
| `batchrenorm.py`    | `BatchRenorm1d/2d` (Ioffe 2017)        | the batch, corrected to running |
| `ghostbatchnorm.py` | `GhostBatchNorm1d/2d` (Hoffer 2017)    | chunks of the batch             |
| `noisy.py`          | `NoisyBatchNorm1d/2d` (Santurkar 2018) | the batch, then per-step noise  |
| `precisebn.py`      | `precise_bn` (Wu & Johnson 2021)       | the population, after training  |
| `momentum.py`       | torch <-> Keras/TF <-> Flax `momentum` |                                 |

Why this layout. Every layer is "standardize over some axes, then scale and shift"; the
layers differ only in which axes, where gamma lives and what they keep between calls. So a
file per layer holds exactly that difference, readable top to bottom: its equations in the
docstring, its functional form and module (the torch.nn ones subclass torch's class, so
arguments, defaults, state_dicts and errors are torch's and only the math is bnlab's), and a
NumPy reference with its hand-derived backward. What they share is written once:

- the chain rule through the standardization is BN's (`bnlab.functional`, Ioffe & Szegedy
  2015, Alg. 1) and the NumPy one is `bnlab.reference`'s: `_core.py` applies them to any
  axes, and adds the one Function BN's fused backward cannot serve (gamma varying inside a
  normalized group: LayerNorm, GroupNorm);
- InstanceNorm and GhostBatchNorm *are* BN on another view of the input, so they call BN's
  `normalize` and its Function as they are; BatchRenorm has its own Function, because its
  r and d change the backward (they are constants to it).

Each layer's math is its functional form (`layer_norm`, `group_norm`, `instance_norm`,
`batch_renorm`, `ghost_normalize`, `channel_noise`; BN's `normalize` and
`update_running_stats`), written over reduction dims or a channel axis that a stack of K
models can share: the engine's stacked layers (`bnlab.engine`) call these same functions with
statistics per member, and only lay the member axis out. `precise_bn` serves both.

BN itself stays at the top of the package (`bnlab.reference`, `functional`, `modules`), as
the core this family is built on; this package imports it and nothing above it (data,
engine, analysis, report, reproduce).
"""

from bnlab.norms.batchrenorm import BatchRenorm1d, BatchRenorm2d, RenormWarmup, batch_renorm
from bnlab.norms.ghostbatchnorm import GhostBatchNorm1d, GhostBatchNorm2d, ghost_normalize
from bnlab.norms.groupnorm import GroupNorm, group_norm
from bnlab.norms.instancenorm import InstanceNorm1d, InstanceNorm2d, InstanceNorm3d, instance_norm
from bnlab.norms.layernorm import LayerNorm, layer_norm
from bnlab.norms.momentum import flax_to_torch, keras_to_torch, torch_to_flax, torch_to_keras
from bnlab.norms.noisy import NoiseParams, NoisyBatchNorm1d, NoisyBatchNorm2d, channel_noise
from bnlab.norms.precisebn import precise_bn

__all__ = [
    "BatchRenorm1d",
    "BatchRenorm2d",
    "GhostBatchNorm1d",
    "GhostBatchNorm2d",
    "GroupNorm",
    "InstanceNorm1d",
    "InstanceNorm2d",
    "InstanceNorm3d",
    "LayerNorm",
    "NoiseParams",
    "NoisyBatchNorm1d",
    "NoisyBatchNorm2d",
    "RenormWarmup",
    "batch_renorm",
    "channel_noise",
    "flax_to_torch",
    "ghost_normalize",
    "group_norm",
    "instance_norm",
    "keras_to_torch",
    "layer_norm",
    "precise_bn",
    "torch_to_flax",
    "torch_to_keras",
]
