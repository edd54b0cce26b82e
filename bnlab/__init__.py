"""bnlab: the Batch Normalization lab.

Public API (everything else may change):

- `bnlab.reference`: NumPy Batch Normalization, forward and hand-derived backward.
- `batch_norm`: `torch.nn.functional.batch_norm`'s contract on a hand-written autograd.Function.
- `normalize`, `update_running_stats`: the two halves of it, for stacked (K-member) models.
- `BatchNorm1d`, `BatchNorm2d`, `BatchNorm3d`: drop-in replacements for `torch.nn`'s.
- `fold_batchnorm`, `FoldReport`, `FoldTraceError`: fold BN into the layer before it, in any
  model (traced with torch.fx), for inference.
- `convert`: swap torch.nn's BatchNorm{1,2,3}d for bnlab's in any model, and back.

Subpackages, each with its own small API in its `__init__`:

- `bnlab.data`: verified datasets (`load`, `fetch`, `to_tensor`, `StackedBatches`).
- `bnlab.engine`: K models trained as one stacked computation (`get_preset`, `train`, `Store`).
- `bnlab.report`: CIs over seeds, claims and verdicts, figures, `write_report`.
- `bnlab.reproduce`: the experiments behind `bnlab reproduce`.
- `bnlab.analysis`: Santurkar et al. 2018 measurements (`landscape`, `ics`, `hvp`, noisy BN).
"""

__version__ = "0.1.0"

from bnlab import reference
from bnlab._checks import BatchNormShapeError
from bnlab.convert import convert
from bnlab.fold import FoldReport, FoldTraceError, fold_batchnorm
from bnlab.functional import batch_norm, normalize, update_running_stats
from bnlab.modules import BatchNorm1d, BatchNorm2d, BatchNorm3d

__all__ = [
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNorm3d",
    "BatchNormShapeError",
    "FoldReport",
    "FoldTraceError",
    "__version__",
    "batch_norm",
    "convert",
    "fold_batchnorm",
    "normalize",
    "reference",
    "update_running_stats",
]
