"""bnlab: the Batch Normalization lab.

Public API (everything else may change):

- `bnlab.reference`: NumPy Batch Normalization, forward and hand-derived backward.
- `batch_norm`: `torch.nn.functional.batch_norm`'s contract on a hand-written autograd.Function.
- `normalize`, `update_running_stats`: the two halves of it, for stacked (K-member) models.
- `BatchNorm1d`, `BatchNorm2d`, `BatchNorm3d`: drop-in replacements for `torch.nn`'s.
- `SyncBatchNorm`: BN over the global batch of a `torch.distributed` process group.
- `fold_batchnorm`, `FoldReport`, `FoldTraceError`: fold BN into the layer before it, in any
  model (traced with torch.fx), for inference.
- `convert`: swap torch.nn's BatchNorm{1,2,3}d for bnlab's in any model, and back.
- The normalization family, in `bnlab.norms` (one file per layer): `LayerNorm`, `GroupNorm`,
  `InstanceNorm1d/2d/3d` (drop-in for torch.nn's), `BatchRenorm1d/2d`, `GhostBatchNorm1d/2d`,
  `NoisyBatchNorm1d/2d`, `precise_bn` (population statistics after training, for a model or
  an engine stack), and the momentum conversions
  `torch_to_keras`, `keras_to_torch`, `torch_to_flax`, `flax_to_torch`.
- `bnlab.exercises`: self-checking exercises for the tutorial notebook (`check_backward`, ...).

Subpackages, each with its own small API in its `__init__`, listed in import order: each
imports only the ones above it, and the core (the modules above, `bnlab.norms` included)
imports none of them:

- `bnlab.data`: verified datasets (`load`, `fetch`, `to_tensor`, `StackedBatches`).
- `bnlab.engine`: K models trained as one stacked computation (`get_preset`, `train`, `Store`,
  the norm-layer table: adapters over `bnlab.norms`'s functional forms).
- `bnlab.analysis`: Santurkar et al. 2018 measurement tools (`landscape`, `ics`, `hvp`, probes).
- `bnlab.report`: CIs over seeds, claims and verdicts, figures, `write_report`.
- `bnlab.study`: your own question (any `nn.Module`, variants, data, claims declared before
  the run) with the lab's store, statistics and report (`Study`, `Variant`, `Claim`, `run`).
- `bnlab.reproduce`: the experiments behind `bnlab reproduce` (Ioffe & Szegedy 2015,
  Santurkar et al. 2018, ...).

Imports run one way, core <- data <- engine <- analysis <- report <- study <- reproduce <- cli.
The core is the BN modules above and `bnlab.norms`, which imports only them (and `bnlab`
re-exports it); cli is `bnlab.cli` and each subcommand's module (`bnlab.verify`,
`bnlab.<subpackage>.cli`): library code never imports the command line, and there is no
import circle (tests/test_import_order.py).
`BnlabError` (`bnlab.errors`) is the error for a user's mistake that every layer may raise.
"""

__version__ = "0.1.0"

from bnlab._lazy import attach

# Imported on first use (bnlab._lazy), so that `bnlab --help` starts without torch.
_EXPORTS = {
    "BatchNormShapeError": "bnlab._checks",
    "convert": "bnlab.convert",
    "FoldReport": "bnlab.fold",
    "FoldTraceError": "bnlab.fold",
    "fold_batchnorm": "bnlab.fold",
    "batch_norm": "bnlab.functional",
    "normalize": "bnlab.functional",
    "update_running_stats": "bnlab.functional",
    "BatchNorm1d": "bnlab.modules",
    "BatchNorm2d": "bnlab.modules",
    "BatchNorm3d": "bnlab.modules",
    **dict.fromkeys(
        (
            "BatchRenorm1d",
            "BatchRenorm2d",
            "GhostBatchNorm1d",
            "GhostBatchNorm2d",
            "GroupNorm",
            "InstanceNorm1d",
            "InstanceNorm2d",
            "InstanceNorm3d",
            "LayerNorm",
            "NoisyBatchNorm1d",
            "NoisyBatchNorm2d",
            "RenormWarmup",
            "flax_to_torch",
            "keras_to_torch",
            "precise_bn",
            "torch_to_flax",
            "torch_to_keras",
        ),
        "bnlab.norms",
    ),
    "SyncBatchNorm": "bnlab.sync",
}
__all__ = [
    *attach(__name__, _EXPORTS, submodules=("exercises", "norms", "reference")),
    "__version__",
]
