"""Fixtures every test file may use; shared plain helpers are in helpers.py."""

from __future__ import annotations

import pytest

from bnlab import _fastpath


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
