"""bnlab.data: real datasets, verified and cached, served as in-memory tensors.

    ds = load("mnist", "train")                       # uint8 (N, 1, 28, 28), verified
    x, y = to_tensor(ds, "binarize", first_n(5000))   # float32 (N, C, H, W), int64 (N,)
    batches = StackedBatches(x, y, seeds=range(16), batch_size=60)
    xb, yb = batches.next()                           # (16, 60, 1, 28, 28), (16, 60)

`load` reads only local copies (explicit dir / BNLAB_DATA_DIR, user cache, system copies,
the shared CIFAR-10 subset); `fetch` (or `bnlab data fetch NAME`) obtains missing data.
"""

from bnlab.data.augment import Augment, crop_flip
from bnlab.data.batches import StackedBatches
from bnlab.data.errors import ChecksumError, DataError, MissingDataError
from bnlab.data.fetch import FetchReport, fetch
from bnlab.data.load import Dataset, DatasetStatus, available, load, status
from bnlab.data.pipeline import Subset, first_n, per_class, pixel_zero, to_tensor
from bnlab.data.registry import DATASETS, SPLITS, DatasetSpec

__all__ = [
    "DATASETS",
    "SPLITS",
    "Augment",
    "ChecksumError",
    "DataError",
    "Dataset",
    "DatasetSpec",
    "DatasetStatus",
    "FetchReport",
    "MissingDataError",
    "StackedBatches",
    "Subset",
    "available",
    "crop_flip",
    "fetch",
    "first_n",
    "load",
    "per_class",
    "pixel_zero",
    "status",
    "to_tensor",
]
