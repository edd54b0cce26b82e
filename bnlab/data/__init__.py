"""bnlab.data: real datasets, verified and cached, served as in-memory tensors.

    ds = load("mnist", "train")                       # uint8 (N, 1, 28, 28), verified
    x, y = to_tensor(ds, "binarize", first_n(5000))   # float32 (N, C, H, W), int64 (N,)
    batches = StackedBatches(x, y, seeds=range(16), batch_size=60)
    xb, yb = batches.next()                           # (16, 60, 1, 28, 28), (16, 60)

`load` reads only local copies (explicit dir / BNLAB_DATA_DIR, user cache, system copies,
the shared CIFAR-10 subset); `fetch` (or `bnlab data fetch NAME`) obtains missing data.
"""

from bnlab._lazy import attach

# Imported on first use (bnlab._lazy): `bnlab data --help` needs only the registry.
__all__ = attach(
    __name__,
    {
        "Augment": "bnlab.data.augment",
        "crop_flip": "bnlab.data.augment",
        "StackedBatches": "bnlab.data.batches",
        "ChecksumError": "bnlab.data.errors",
        "DataError": "bnlab.data.errors",
        "MissingDataError": "bnlab.data.errors",
        "FetchReport": "bnlab.data.fetch",
        "fetch": "bnlab.data.fetch",
        "Dataset": "bnlab.data.load",
        "DatasetStatus": "bnlab.data.load",
        "available": "bnlab.data.load",
        "load": "bnlab.data.load",
        "status": "bnlab.data.load",
        "Subset": "bnlab.data.pipeline",
        "first_n": "bnlab.data.pipeline",
        "per_class": "bnlab.data.pipeline",
        "pixel_zero": "bnlab.data.pipeline",
        "to_tensor": "bnlab.data.pipeline",
        "DATASETS": "bnlab.data.registry",
        "SPLITS": "bnlab.data.registry",
        "DatasetSpec": "bnlab.data.registry",
    },
)
