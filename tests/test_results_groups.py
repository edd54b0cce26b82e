"""`bnlab results`: members grouped by every setting that differs, never pooling an lr grid's
rates or one seed twice, each metric a mean ± 95% t interval that scipy computes too."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from bnlab.cli import main
from bnlab.engine.records import member_records
from bnlab.report.groups import group_records


def _record(seed, norm="batch", lr=0.1, acc=0.5, **settings):
    base = {"preset": "p", "dir": ".", "norm": norm, "lr": lr, "batch_size": 32}
    return {
        "run_id": f"{settings.get('preset', 'p')}/{norm}",
        "seed": seed,
        "steps": 10,
        "test_accuracy": acc,
        "test_loss": 1.0,
        "train_loss": 1.0,
        "settings": {**base, **settings},
    }


def test_an_lr_grid_is_grouped_by_rate_and_the_interval_is_scipys():
    accs = {0.1: [0.50, 0.55, 0.61], 0.5: [0.80, 0.82, 0.79]}
    records = [_record(s, lr=lr, acc=a) for lr, vals in accs.items() for s, a in enumerate(vals)]
    keys, groups = group_records(records)
    assert keys == ["norm", "lr"]
    assert [(g.settings["lr"], g.n) for g in groups] == [(0.1, 3), (0.5, 3)]
    for g in groups:
        values = accs[g.settings["lr"]]
        est = g.estimates["test_accuracy"]
        low, high = stats.t.interval(0.95, len(values) - 1, np.mean(values), stats.sem(values))
        assert est.mean == pytest.approx(np.mean(values))
        assert (est.low, est.high) == pytest.approx((low, high))


def test_constant_settings_are_not_keys_and_a_repeated_seed_adds_the_preset():
    records = [_record(s, batch_size=b) for b in (8, 32) for s in range(2)]
    assert group_records(records)[0] == ["norm", "batch_size"]
    renamed = [_record(s, preset=p) for p in ("a", "b") for s in range(2)]  # same config
    keys, groups = group_records(renamed)
    assert keys == ["norm", "preset"] and [g.n for g in groups] == [2, 2]


def test_a_diverged_member_is_counted_not_averaged():
    records = [_record(0, acc=0.5), _record(1, acc=float("nan")), _record(2, acc=0.7)]
    _, [group] = group_records(records)
    assert group.n == 3 and group.missing["test_accuracy"] == 1
    assert group.estimates["test_accuracy"].n == 2
    assert group.estimates["test_accuracy"].mean == pytest.approx(0.6)


def test_cli_groups_a_real_run_by_norm_and_rate(tmp_path, capsys):
    """Trained through the CLI: 2 seeds x 2 rates x (BN, no BN); the printed means are the
    stored members' means, one row per (norm, rate)."""
    out = tmp_path / "grid"
    argv = ["train", "--preset", "smoke", "--seeds", "2", "--steps", "20", "--quiet"]
    assert main([*argv, "--set", "optim.lr=0.1,0.5", "--threads", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["results", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header, rows = lines[0].split(), [line.split() for line in lines[1:5]]
    assert header[:5] == ["norm", "lr", "n", "steps", "test_accuracy"]
    records = member_records(out)
    for norm, lr, n, steps, mean, *_ in rows:
        members = [r for r in records if r["norm"] == norm and r["lr"] == float(lr)]
        assert int(n) == len(members) == 2 and int(steps) == 20
        expected = np.mean([r["test_accuracy"] for r in members])
        assert float(mean) == pytest.approx(expected, rel=1e-3)
    assert main(["results", str(out), "--json"]) == 0
    members = json.loads(capsys.readouterr().out)
    assert len(members) == 8 and all(m["settings"]["lr"] == m["lr"] for m in members)


def test_a_tree_of_results_directories(tmp_path, capsys):
    for batch in (8, 16):
        argv = ["train", "--preset", "smoke", "--steps", "5", "--quiet", "--set", "norms=none"]
        assert (
            main([*argv, "--set", f"batch_size={batch}", "--out", str(tmp_path / f"B{batch}")]) == 0
        )
    capsys.readouterr()
    assert main(["results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.split()[:3] == ["norm", "batch_size", "n"]
    assert main(["results", str(tmp_path / "nothing")]) == 2
    assert "bnlab.sqlite" in capsys.readouterr().err
