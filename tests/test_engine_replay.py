"""`bnlab replay`: a stored run re-trained by the same code matches bit for bit, and any
change to what the code computes, or to the stored rows, is reported as a difference."""

from __future__ import annotations

import importlib
import json
import sqlite3
from dataclasses import replace

import pytest

from bnlab.cli import main
from bnlab.engine import replay as rp
from bnlab.engine.presets import get_preset
from bnlab.errors import BnlabError
from bnlab.reproduce.runner import with_replay

train_module = importlib.import_module("bnlab.engine.train")  # the package exports the function
STEPS, REPLAYED = 12, 8


@pytest.fixture
def stored(tmp_path, fastpath_off):
    """A finished two-variant smoke run (BN and no BN, 2 seeds) in tmp_path/run."""
    cfg = get_preset("smoke")
    cfg = replace(cfg, steps=STEPS, epochs=0, seeds=2, eval_every=4, checkpoint_every=STEPS)
    out = tmp_path / "run"
    train_module.train(cfg, out, rp.REPLAY_CONTEXT)  # one thread, as the full runs train
    return out


def test_the_same_code_replays_every_row_bit_for_bit(stored):
    records = rp.replay(stored, steps=REPLAYED)
    assert [r.run_id.split("/")[-1] for r in records] == ["batch", "none"]
    for r in records:
        assert r.identical, r.difference
        assert r.train_rows == r.members * REPLAYED
        assert r.metric_rows > 0  # the evaluations at steps 4 and 8 are compared too
    assert "bit-identical" in rp.summary(records)


def test_a_changed_computation_is_caught(stored, monkeypatch):
    original = train_module.train_step

    def nudged(model, optimizer, xb, yb):  # one ulp-scale change to every parameter
        out = original(model, optimizer, xb, yb)
        model.flat.mul_(1 + 2**-20)
        return out

    monkeypatch.setattr(train_module, "train_step", nudged)
    records = rp.replay(stored, steps=REPLAYED)
    assert not any(r.identical for r in records)
    assert "step" in records[0].difference or "(0, 2)" in records[0].difference
    assert "DIFFER" in rp.summary(records)


def test_a_tampered_stored_value_is_caught(stored):
    db = sqlite3.connect(stored / "bnlab.sqlite")
    db.execute(
        "UPDATE train_metrics SET train_loss = train_loss * (1 + 1e-15) "
        "WHERE member = 1 AND step = 5 AND run_id LIKE '%/none'"
    )
    db.commit()
    db.close()
    batch, none = rp.replay(stored, steps=REPLAYED)
    assert batch.identical
    assert not none.identical and none.difference.startswith("(1, 5)")


def test_steps_beyond_the_run_are_capped(stored):
    records = rp.replay(stored, steps=10 * STEPS)
    assert all(r.identical and r.steps == STEPS for r in records)


def test_cli_writes_records_the_report_reads(stored, capsys):
    assert main(["replay", str(stored.parent), "--steps", "3"]) == 0
    assert "bit-identical" in capsys.readouterr().out
    records = rp.read_records(stored)
    assert len(records) == 2 and all(r.steps == 3 for r in records)
    assert json.loads((stored / rp.REPLAY_FILE).read_text())[0]["train_rows"] == 6
    protocol = with_replay({"code version": "from the manifest"}, stored.parent)
    assert "replayed by" in protocol["replay"]
    assert rp.trained_versions(stored) == [records[0].trained_by]
    assert protocol["code version"] == records[0].trained_by


def test_errors_name_the_argument(tmp_path, stored):
    with pytest.raises(BnlabError, match="DIR"):
        rp.replay(tmp_path)
    with pytest.raises(BnlabError, match="--steps"):
        rp.replay(stored, steps=0)
    assert main(["replay", str(tmp_path / "nothing")]) == 2
