"""examples/residual_cnn.py in its quick form: it trains, measures, folds every BN, and the
folded model's test accuracy equals the unfolded one's. Needs the CIFAR-10 data (skipped,
saying so, when it is not on this machine)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from torch.nn.modules.batchnorm import _BatchNorm

from bnlab import data

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "residual_cnn.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("residual_cnn", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_residual_cnn_quick_run_folds_without_changing_accuracy(capsys):
    try:
        data.load("cifar10", "test")
    except data.MissingDataError:
        pytest.skip("cifar10 is not on this machine; run `bnlab data fetch cifar10`")
    out = _load_example().main(["--quick"])
    assert [p["step"] for p in out["probes"]] == [0, 5]
    for probe in out["probes"]:
        assert probe["loss_variation"] >= 0 and probe["beta_smoothness"] > 0
        assert probe["ics_l2/stem"] == 0.0 and probe["ics_l2/fc"] > 0  # nothing before stem
    assert out["report"].left == () and len(out["report"].folded) == 9
    assert not any(isinstance(m, _BatchNorm) for m in out["folded"].modules())
    assert out["accuracy_folded"] == out["accuracy"]
    assert out["max_logit_diff"] < 1e-4
    assert "folded: 9 BN folded, 0 left" in capsys.readouterr().out
