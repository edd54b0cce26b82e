"""A study's claims as pre-registered rules: verdicts on synthetic per-seed numbers that must
come out reproduced / not reproduced / not measurable, the p-value shown checked against
scipy and Holm's step-down written out by hand, a changed rule shown as exploratory, and the
control check that flags a variant stuck at chance."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
from scipy import stats

from bnlab.report import Role, Scale, Verdict, registration
from bnlab.study.analyze import StudyResults, VariantResults
from bnlab.study.controls import control
from bnlab.study.decide import decide
from bnlab.study.rules import register, study_rules
from bnlab.study.spec import Claim

K, T, E = 8, 40, 4  # seeds, logged training steps, evaluations


def _variant(name: str, test_acc: float, final_loss: float, seed: int, learns=True):
    """K seeds whose final test accuracy is about `test_acc` and whose training loss falls
    from 2.3 to about `final_loss` (or stays at 2.3 and chance accuracy: `learns=False`)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, T)  # (T,)
    end = final_loss if learns else 2.3
    loss = 2.3 + (end - 2.3) * t[None, :] + rng.normal(0, 0.01, (K, T))  # (K, T)
    acc_end = 0.98 if learns else 0.1
    train_acc = 0.1 + (acc_end - 0.1) * t[None, :] + rng.normal(0, 0.005, (K, T))
    test = np.full((K, E), np.nan)
    test[:, -1] = test_acc + rng.normal(0, 0.004, K)
    return VariantResults(
        name,
        tuple(range(K)),
        np.arange(1, T + 1),
        {"train_loss": loss, "train_accuracy": train_acc, "grad_norm": np.ones((K, T))},
        np.arange(1, E + 1) * 10,
        {"test_accuracy": test, "test_loss": np.ones((K, E))},
        "done",
        "test",
    )


CLAIMS = [
    Claim("test_accuracy", "bn", than="plain", margin=0.01),  # +5 pp: reproduced
    Claim("test_accuracy", "bn", than="better"),  # -2 pp: not reproduced
    Claim("train_loss", "bn", than="plain", direction="lower"),  # 0.1 vs 0.4: log2 ratio -2
    Claim("test_accuracy", "bn", than="frozen"),  # frozen stays at chance: not measurable
]


def _results(claims=CLAIMS) -> StudyResults:
    variants = {
        "bn": _variant("bn", 0.95, 0.1, 0),
        "plain": _variant("plain", 0.90, 0.4, 1),
        "better": _variant("better", 0.97, 0.1, 2),
        "frozen": _variant("frozen", 0.10, 2.3, 3, learns=False),
    }
    decl = {
        "study": "synth",
        "seeds": K,
        "data": {"classes": 10},
        "claims": [{**asdict(c), "text": c.text} for c in claims],
    }
    return StudyResults({"declaration": decl, "registered": ""}, variants)


def _holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment, written out: the i-th smallest p times (m - i), made
    monotone, at most 1."""
    order = np.argsort(p)
    m = p.size
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def test_rules_scales_and_margins():
    accuracy, _, loss, _ = study_rules(_results().declaration)
    assert (accuracy.scale, accuracy.margin, accuracy.seeds) == (Scale.DIFFERENCE, 1.0, K)
    assert loss.scale is Scale.LOG2_RATIO and loss.margin == pytest.approx(np.log2(1.25))
    assert {r.claim.family for r in study_rules(_results().declaration)} == {"study synth"}
    assert all(r.gates[0].id == "study-trains" for r in study_rules(_results().declaration))


def test_verdicts_on_synthetic_runs(tmp_path):
    results = _results()
    register(tmp_path, results.declaration, "abc1234")  # clean commit, no run yet: "before"
    rows = decide(results, tmp_path).rows
    assert [r.verdict for r in rows] == [
        Verdict.REPRODUCED,
        Verdict.NOT_REPRODUCED,
        Verdict.REPRODUCED,
        Verdict.NOT_MEASURABLE,
    ]
    assert all(r.role is Role.PRIMARY and r.registration.predates for r in rows)
    v = results.variants
    d = 100 * (v["bn"].final("test_accuracy") - v["plain"].final("test_accuracy"))
    assert rows[0].effect.mean == pytest.approx(d.mean())
    # the p shown is the test of the verdict shown: H0 mu <= 0, one-sided, for "reproduced"
    assert rows[0].p_shown == pytest.approx(stats.ttest_1samp(d, 0, alternative="greater").pvalue)
    ratio = np.log2(v["bn"].final("train_loss") / v["plain"].final("train_loss"))
    assert rows[2].effect.mean == pytest.approx(ratio.mean())
    measured = np.array([r.p_shown for r in rows[:3]])
    assert [r.p_holm for r in rows[:3]] == pytest.approx(_holm(measured).tolist())
    assert "frozen does not train" in rows[3].gate_failed and rows[3].tests is None


def test_the_control_flags_a_variant_at_chance():
    results = _results()
    flagged = control(results.variants["frozen"], classes=10)
    assert not flagged.trains
    assert flagged.reason.startswith("mean final training accuracy 10.0% is within 5 points")
    rising = control(_variant("rising", 0.9, 2.6, 4), classes=10)  # accurate, loss grew
    assert rising.reason.startswith("mean final training loss 2.5") and "not below" in rising.reason
    assert control(results.variants["plain"], classes=10).trains


def test_a_rule_changed_after_registration_is_exploratory(tmp_path):
    changed = [Claim("test_accuracy", "bn", than="plain", margin=0.02), *CLAIMS[1:]]
    register(tmp_path, _results(changed).declaration, "abc1234")  # the margin on record: 2 pp
    rows = decide(_results(), tmp_path).rows  # judged with 1 pp
    assert rows[0].registration.state == "changed" and rows[0].role is Role.EXPLORATORY
    assert np.isnan(rows[0].p_holm)  # not counted, so outside Holm's family
    assert rows[0].verdict is Verdict.REPRODUCED  # still shown, unadjusted
    assert all(r.counted for r in rows[1:])


def test_unregistered_rules_are_exploratory(tmp_path):
    rows = decide(_results(), tmp_path).rows
    assert all(r.registration.state == "missing" and not r.counted for r in rows)
    assert registration.read(tmp_path) == {}


def test_a_real_study_registers_before_training_and_reports(tmp_path, monkeypatch, capsys):
    """Three variants on digits, one of them frozen (lr 0): the rules are on record before
    the first training step, the frozen variant is flagged by the control, the claim against
    it is not measurable, and the report's pages are written."""
    import importlib
    import sqlite3

    from torch import nn

    import bnlab
    from bnlab.engine import RunContext
    from bnlab.engine.store import first_run_time
    from bnlab.study import Optimizer, Study, Variant, replace_norm, run
    from bnlab.study.cli import print_verdicts
    from bnlab.study.declaration import read_manifest
    from bnlab.study.report import build_report

    def mlp():
        return nn.Sequential(
            nn.Flatten(), nn.Linear(64, 32, bias=False), bnlab.BatchNorm1d(32), nn.ReLU(),
            nn.Linear(32, 10),
        )  # fmt: skip

    claims = [
        Claim("test_accuracy", "bn", than="frozen"),
        Claim("test_accuracy", "bn", than="none", direction="similar or higher", margin=0.05),
    ]
    study = Study(
        "verdicts",
        mlp,
        "digits",
        {"bn": Variant(), "none": Variant(model=replace_norm("none")), "frozen": Variant(lr=0.0)},
        claims=claims,
        optimizer=Optimizer("sgd", lr=0.05, momentum=0.9),
        batch_size=32,
        steps=60,
        seeds=2,
        eval_every=30,
        checkpoint_every=60,
    )
    out = tmp_path / "out"
    module = importlib.import_module("bnlab.study.run")
    seen = []

    def train_variant(study, name, *args, **kw):
        db = sqlite3.connect(out / "bnlab.sqlite")
        (logged,) = db.execute("SELECT COUNT(*) FROM train_metrics").fetchone()
        db.close()
        seen.append((name, registration.read(out), logged))
        return original(study, name, *args, **kw)

    original = module.train_variant
    monkeypatch.setattr(module, "train_variant", train_variant)
    run(study, out, RunContext(progress=False, threads=1))
    name, record, logged = seen[0]
    assert name == "bn" and logged == 0  # before the first step of the first variant...
    rules = study_rules(read_manifest(out)["declaration"])
    assert {r.id: r.fingerprint() for r in rules} == {
        k: e["fingerprint"] for k, e in record.items()
    }  # ...every rule was on record, as the report rebuilds it
    first = registration.format_time(first_run_time(out))
    assert all(e["registered"] <= first for e in record.values())
    run(study, out, RunContext(progress=False, threads=1), resume=True)
    assert registration.read(out) == record  # a resume keeps the record as it was

    written, rows = build_report(out)
    assert [p.name for p in written[:2]] == ["report.md", "report.html"]
    assert {p.name for p in written} >= {"study.md", "appendix.md"}
    assert rows[0].verdict is Verdict.NOT_MEASURABLE
    assert rows[0].gate_failed.startswith("frozen does not train")
    assert rows[1].tests is not None  # bn and none both train: measured
    summary = (out / "report.md").read_text()
    assert "FLAGGED, does not train" in summary and "Rules recorded:" in summary
    assert claims[1].text in summary
    page = (out / "study.md").read_text()
    assert "Pre-registered rules" in page and rows[1].rule.fingerprint() in page
    print_verdicts(rows)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["not", "measurable"] and rows[0].rule.id in lines[0]
