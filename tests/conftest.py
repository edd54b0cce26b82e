"""Fixtures every test file may use, and the one rule that keeps the default suite fast;
shared plain helpers are in helpers.py."""

from __future__ import annotations

import pytest

from bnlab import _fastpath


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="also run the tests marked slow")


def pytest_collection_modifyitems(config, items):
    """Tests marked slow (minutes of training, notebooks, compilers) run only when asked for:
    `-m slow` (`make test-slow`) or `--runslow`. Decided here, for every test file alike."""
    if config.getoption("--runslow") or "slow" in (config.option.markexpr or ""):
        return  # -m decides (`-m "not slow"` still drops them)
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]


@pytest.fixture
def fastpath_off(monkeypatch):
    """The eager BN kernels only: torch.compile costs tens of seconds per new shape, far more
    than a quick run trains. The fast path's state is restored after the test."""
    monkeypatch.setattr(_fastpath, "_disabled_reason", _fastpath._disabled_reason)
    _fastpath.disable("tests: quick runs")


@pytest.fixture
def fastpath_on(monkeypatch):
    """The compiled BN kernels, from an empty cache (even if BNLAB_COMPILE=0); restored after."""
    monkeypatch.setattr(_fastpath, "_disabled_reason", _fastpath._disabled_reason)
    monkeypatch.setattr(_fastpath, "_compiled", {})
    _fastpath.enable()
