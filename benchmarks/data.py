"""Batches per second: StackedBatches vs torch.utils.data.DataLoader, same data, same run;
and start-up: what loading a split costs, and what checking the kept copy's bytes adds.

    .venv/bin/python benchmarks/data.py [--seconds 1.0]

Start-up loads MNIST train (60,000 images) three ways, in this process, files in the page
cache, median of 7 round-robin repetitions: from the kept copy as `load` does it (sha256 of
the two `.npy` files, then a memory map), from the kept copy trusting its stamp alone (sizes
and times: what the cache did before it checked content), and from the source files (sha256
of the decompressed bytes, headers: a first load, or `bnlab data verify`). Each load is
followed by a full read of the images (a sum), as training reads them.

MNIST train (binarized float32 in memory; falls back to digits when MNIST is absent).
For K = 1 and 16 models and batch 60 (Ioffe & Szegedy's MNIST batch) and 128: the
StackedBatches rate counts one (K, B) batch as one step; the DataLoader baseline is a
TensorDataset with shuffle=True at the same B, and serves one model. Ratio = ours/DataLoader
at K = 1 (target: >= 20x); at K = 16 the "per-model" ratio multiplies by K because one
stacked step feeds 16 models.
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import statistics
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

from bnlab.data import StackedBatches, load, prepared, to_tensor
from bnlab.data.errors import MissingDataError
from bnlab.data.locate import find


def rate(step, seconds: float) -> tuple[float, int]:
    """Calls per second of `step`, after a short warm-up, over at least `seconds`."""
    for _ in range(20):
        step()
    n, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        for _ in range(50):
            step()
        n += 50
    return n / elapsed, n


def dataloader_rate(x, y, batch: int, seconds: float) -> float:
    loader = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=True, drop_last=True)
    it = iter(loader)

    def step():
        nonlocal it
        try:
            next(it)
        except StopIteration:
            it = iter(loader)
            next(it)

    return rate(step, seconds)[0]


def startup(name: str, repeats: int = 7) -> None:
    """Milliseconds to load `name`'s train split and read it once, three ways (docstring)."""
    load(name, "train")  # the kept copy exists and is current
    found = find(name, "train")

    def kept_checked():
        prepared._digests.clear()  # as a new process: nothing hashed yet
        return load(name, "train").images

    def kept_stamp_only():
        return prepared.read(found, check_content=False)[0]

    def sources():
        return load(name, "train", verify_sources=True).images

    ways = {
        "kept copy, content checked (default)": kept_checked,
        "kept copy, stamp only": kept_stamp_only,
        "source files verified, kept again": sources,
    }
    times = {label: [] for label in ways}
    for _ in range(repeats):
        for label, way in ways.items():
            t0 = time.perf_counter()
            int(way().sum(dtype="int64"))  # read every byte, as training does
            times[label].append(time.perf_counter() - t0)
    base = statistics.median(times["kept copy, stamp only"])
    print(f"start-up, {name} train: load + one full read, median of {repeats}")
    for label, ts in times.items():
        ms = statistics.median(ts) * 1e3
        print(f"  {label:<38} {ms:8.1f} ms  ({ms / 1e3 / base:.2f}x stamp only)")
    hashes(prepared._paths(found)[0], repeats)


def hashes(path, repeats: int) -> None:
    """The content check's hash (sha256) against blake2b, over the kept images file."""
    data = path.read_bytes()
    print(f"hashing {path.name} ({len(data) / 2**20:.0f} MiB), median of {repeats}")
    for name in ("sha256", "blake2b"):
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            hashlib.new(name, data).hexdigest()
            ts.append(time.perf_counter() - t0)
        ms = statistics.median(ts) * 1e3
        print(f"  {name:<8} {ms:7.1f} ms  ({len(data) / 2**30 / (ms / 1e3):.2f} GiB/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    try:
        ds = load("mnist", "train")
        startup("mnist")
    except MissingDataError:
        ds = load("digits", "train")
    x, y = to_tensor(ds, "binarize")
    torch.manual_seed(0)
    # One intra-op thread for both contenders: on a small shared machine a 2-thread gather
    # of 188 KB spends more time synchronizing than copying (measured 10x slower here).
    torch.set_num_threads(args.threads)
    print(f"data: {ds.name} train, x {tuple(x.shape)} float32 -- {ds.source}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor()}")
    header = f"{'K':>3} {'B':>4} {'StackedBatches/s':>17} {'DataLoader/s':>13} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    for batch in (60, 128):
        base = dataloader_rate(x, y, batch, args.seconds)
        for k in (1, 16):
            sb = StackedBatches(x, y, seeds=range(k), batch_size=batch)
            ours = rate(sb.next, args.seconds)[0]
            note = "" if k == 1 else f"  ({ours * k / base:.0f}x per model)"
            print(f"{k:>3} {batch:>4} {ours:>17,.0f} {base:>13,.0f} {ours / base:>6.1f}x{note}")
    print("ratio = StackedBatches (K, B) batches/s / DataLoader (B,) batches/s")
    print("target: >= 20x at K = 1")


if __name__ == "__main__":
    main()
