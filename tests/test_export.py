"""`bnlab export` / `to_dataframe`: every stored value, read back through pandas, pyarrow and
TensorBoard's own reader, equals what SQLite holds (the gradient-norm blobs decoded)."""

from __future__ import annotations

import json
import sqlite3
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from bnlab.cli import main
from bnlab.engine import RunContext, get_preset, to_dataframe, train
from bnlab.engine.export import COLUMNS
from bnlab.errors import BnlabError

STEPS = 12


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    cfg = replace(get_preset("smoke"), seeds=2, steps=STEPS, eval_every=6, checkpoint_every=6)
    train(cfg, out, RunContext(threads=1, progress=False))
    return out


def _sqlite(run_dir) -> dict[tuple, float]:
    """{(run, member, step, metric): value} straight from the database, blobs decoded here."""
    db = sqlite3.connect(run_dir / "bnlab.sqlite")
    layers = {
        rid: json.loads(names) for rid, names in db.execute("SELECT run_id, layers FROM runs")
    }
    found = {}
    sql = "SELECT run_id, member, step, train_loss, train_accuracy, grad_norm, lr, "
    for rid, m, step, loss, acc, gnorm, lr, blob in db.execute(
        sql + "layer_grad_norms FROM train_metrics"
    ):
        for name, value in zip(
            ("train_loss", "train_accuracy", "grad_norm", "lr"), (loss, acc, gnorm, lr), strict=True
        ):
            found[rid, m, step, name] = value
        for layer, value in zip(layers[rid], np.frombuffer(blob, "<f8"), strict=True):
            found[rid, m, step, f"grad_norm/{layer}"] = value
    for rid, m, step, name, value in db.execute("SELECT * FROM metrics"):
        found[rid, m, step, name] = value
    db.close()
    return found


def test_the_long_table_holds_every_stored_value(run_dir):
    frame = to_dataframe(run_dir)
    assert tuple(frame.columns) == COLUMNS
    exported = {(r.run, r.member, r.step, r.metric): r.value for r in frame.itertuples(index=False)}
    assert exported == _sqlite(run_dir)  # same keys, values bit for bit
    assert {"grad_norm/fc1", "grad_norm/out", "test_accuracy"} <= set(frame.metric)
    one = frame[(frame.run == "smoke/batch") & (frame.member == 1)]
    assert set(one.seed) == {1} and set(one.lr) == {0.5} and set(one.norm) == {"batch"}


def test_csv_and_parquet_read_back_equal(run_dir, tmp_path):
    frame = to_dataframe(run_dir)
    assert main(["export", str(run_dir), "--format", "csv", "--out", str(tmp_path / "x.csv")]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "x.csv"), frame, check_dtype=False)
    assert main(["export", str(run_dir), "--format", "parquet"]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(run_dir / "export.parquet"), frame)


def test_tensorboard_event_files_hold_every_scalar(run_dir, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logdir = tmp_path / "tb"
    assert main(["export", str(run_dir), "--format", "tensorboard", "--out", str(logdir)]) == 0
    events = EventAccumulator(str(logdir / "smoke" / "none" / "m0-seed0-lr0.5"))
    events.Reload()
    frame = to_dataframe(run_dir)
    member = frame[(frame.run == "smoke/none") & (frame.member == 0)]
    assert set(events.Tags()["scalars"]) == set(member.metric)
    loss = member[member.metric == "train_loss"]
    read = events.Scalars("train_loss")
    assert [e.step for e in read] == list(loss.step)
    np.testing.assert_allclose([e.value for e in read], loss.value, rtol=1e-6)  # float32 in TB


@pytest.mark.parametrize("fmt, missing", [("csv", "pandas"), ("parquet", "pyarrow")])
def test_without_the_extra_the_error_names_pip(run_dir, monkeypatch, fmt, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # `import missing` raises ImportError
    with pytest.raises(BnlabError, match=r"pip install 'bnlab\[export\]'"):
        from bnlab.engine.export import export

        export(run_dir, fmt)
