"""The Santurkar experiments: their settings, seed plan and pre-registered rules; the step
selections the rows read; the noise-free test pass; and each experiment run --quick through
the runner, every row one of its registered rules with symmetric diagnostics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import QUIET

from bnlab.engine import ModelConfig, build_model, validate
from bnlab.engine.norms_bn import StackedNoisyBatchNorm
from bnlab.norms import precise_bn
from bnlab.report import (
    Measure,
    Role,
    Rule,
    Scale,
    Verdict,
    check_margin,
    check_symmetric,
    claims,
    measure_rule,
    proportion_ci,
    registration,
)
from bnlab.report.verdicts import run_tests
from bnlab.reproduce import experiments, santurkar2018_noisy_bn, santurkar2018_steps
from bnlab.reproduce import preregistered as pre
from bnlab.reproduce.common import Results, check_protocol
from bnlab.reproduce.runner import run_experiment
from bnlab.reproduce.santurkar2018 import NOISE_SCALES, SETTINGS, setting_config
from bnlab.reproduce.santurkar2018_noise_free import METRIC, reestimate_without_noise
from bnlab.reproduce.santurkar2018_rules import ics_rules
from bnlab.reproduce.santurkar2018_settings import setting_rules
from bnlab.reproduce.santurkar2018_steps import (
    accuracy_at,
    both_train_steps,
    divergence_gate,
    matched_loss,
    trained_mask,
)
from bnlab.reproduce.santurkar2018_why import GRADIENT_SCALE, NOISE_SWEEP, TWIN_GRADIENT, TWIN_ICS

CONV, MLP = pre.CONV_SEEDS, pre.MLP_SEEDS
PRIMARY = {
    "santurkar2018-landscape/vgg-lr0.1",
    "santurkar2018-landscape/mnist",
    "santurkar2018-ics/vgg",
    "santurkar2018-ics/mnist",
    "santurkar2018-deep-linear/dln-lr0.003",
    "santurkar2018-noisy-bn/vgg",
}


@pytest.mark.parametrize("quick", [False, True])
def test_every_setting_is_registered_with_its_seed_plan_and_a_valid_config(quick):
    registry = experiments()  # what `bnlab reproduce` resolves names against
    for name, settings in SETTINGS.items():
        plan = registry[name].default_seeds
        for setting in settings:
            tag = f"{name}/{setting.name}"
            conv = setting.preset in ("santurkar2018-vgg", "santurkar2018-noisy-bn")
            # the noise sweep pairs with vgg; the confirmatory replication has its own plan
            confirmed = pre.confirmation(tag)
            assert plan[tag] == (confirmed or (CONV if conv else MLP)), tag
            cfg, probe = setting_config(setting, seeds=plan[tag], quick=quick)
            validate(cfg, check_data=False)  # widths, hook layers and units agree
            assert cfg.seeds == plan[tag]
            assert cfg.seed == (pre.CONFIRMATION_FIRST_SEED if confirmed else 0), tag
            for rule in setting_rules(name, setting, plan).all():
                assert rule.first_seed == cfg.seed, rule.id
            assert probe is None or probe.every <= cfg.steps, tag


def test_one_rate_per_sweep_is_primary_and_every_rule_is_declared_once():
    rules = [
        r for name in SETTINGS for r in experiments()[name].rules(experiments()[name].default_seeds)
    ]
    assert len({r.id for r in rules}) == len(rules)  # the registration record's keys
    assert {r.setting for r in rules if r.role is Role.PRIMARY} == PRIMARY
    secondary = {r.setting for r in rules if r.role is Role.SECONDARY}
    assert secondary == {
        "santurkar2018-landscape/vgg-lr0.5",
        "santurkar2018-landscape/vgg-lr0.05",
        "santurkar2018-deep-linear/dln-lr0.001",
        "santurkar2018-deep-linear/dln-lr0.01",
        "santurkar2018-noisy-bn/vgg/noise-free-test",
    }
    for r in rules:
        if r.role is Role.EXPLORATORY:  # shown beside every landscape setting, never counted
            assert r.setting.rsplit("/", 1)[1] in ("all-steps", "matched-loss", "per-loss")
        if r.claim.family == claims.SANTURKAR and r.measure is not pre.FINAL_TRAIN_ACCURACY:
            assert r.scale is Scale.LOG2_RATIO or r.measure.unit == " pp", r.id
    by_id = {r.id: r for r in rules}
    cosine = by_id["santurkar-ics-cosine-not-reduced@santurkar2018-deep-linear/dln-lr0.003"]
    assert cosine.scale is Scale.LOG2_RATIO and cosine.margin == pytest.approx(np.log2(1.25))
    assert cosine.seeds == MLP and cosine.role is Role.PRIMARY
    like = by_id["santurkar-noisy-bn-like-bn@santurkar2018-noisy-bn/vgg"]
    assert like.measure is pre.FINAL_TRAIN_ACCURACY
    assert like.seeds == pre.CONFIRMATION["santurkar2018-noisy-bn"] and like.first_seed == 1000
    assert like.effect_text.endswith("BN + noise − BN")
    # --seeds N applies to every setting
    assert {r.seeds for r in experiments()["santurkar2018-landscape"].rules(3)} == {3}


def test_the_ics_cosine_rule_refuses_an_absolute_margin():
    # the pilot's rule: 1 − cos on the difference scale with margin 0.05, more than the
    # deep linear baseline's whole 1 − cos (about 0.04)
    with pytest.raises(ValueError, match="scale-dependent"):
        Rule(
            claims.SANTURKAR_ICS_COSINE_NOT_REDUCED, "x", pre.ICS_COSINE, Scale.DIFFERENCE, 0.05, 20
        )
    absolute = Measure("ics-cosine-abs", "1 − cos, taken as absolute")  # not scale-dependent
    rule = Rule(claims.SANTURKAR_ICS_COSINE_NOT_REDUCED, "x", absolute, Scale.DIFFERENCE, 0.05, 20)
    with pytest.raises(ValueError, match="at least the no BN network's own value"):
        check_margin(rule, np.full(20, 0.04))


def test_the_ics_cosine_rule_decides_not_reproduced_on_the_deep_linear_pilot_values():
    """BN brought 1 − cos from about 0.04 to about 0: "BN does not reduce ICS" is refuted."""
    gen = np.random.default_rng(0)
    bn = 0.001 * (1.0 + 0.2 * gen.standard_normal(MLP))  # BN ≈ 0
    base = 0.04 * (1.0 + 0.2 * gen.standard_normal(MLP))  # no BN ≈ 0.04
    cosine = ics_rules("santurkar2018-deep-linear/dln-lr0.003", MLP, Role.PRIMARY).cosine
    row = measure_rule(cosine, bn, base)
    assert row.verdict is Verdict.NOT_REPRODUCED
    assert row.effect.mean == pytest.approx(np.log2(0.001 / 0.04), abs=0.3)
    assert row.effect.high < -cosine.margin  # far below the non-inferiority margin
    # the old absolute rule would have passed it: |BN − no BN| = 0.039 < 0.05
    absolute = Measure("ics-cosine-abs", "1 − cos, taken as absolute")
    old = Rule(cosine.claim, "x", absolute, Scale.DIFFERENCE, 0.05, MLP)
    assert measure_rule(old, bn, base).verdict is Verdict.REPRODUCED


class _FakeResults:
    """Test accuracy evaluated every 100 steps; BN learns from the start, the baseline as
    given (a 0.098 accuracy marks a diverged member: its test loss is NaN)."""

    def __init__(self, base_acc):
        self.acc = {"batch": np.full((2, 4), 0.5), "none": np.array([base_acc, base_acc])}

    def metric(self, norm, name):
        steps, acc = np.array([100, 200, 300, 400]), self.acc[norm]
        if name == "test_loss":
            return steps, np.where(acc == 0.098, np.nan, 1.0)
        assert name == "test_accuracy"
        return steps, acc

    def config(self, norm):
        return {"model": {"num_classes": 10}}


def test_the_declared_steps_are_those_where_both_train_and_need_half_of_the_probed_steps():
    res = _FakeResults([0.11, 0.15, 0.35, 0.098])  # chance 10%: trains from step 300
    probed = np.array([150, 300, 350, 400])
    acc = accuracy_at(res, "none", probed)  # the last evaluation at or before each step
    np.testing.assert_array_equal(acc[0], [11.0, 35.0, 35.0, np.nan])
    np.testing.assert_array_equal(trained_mask(res, probed), [False, True, True, False])
    steps = both_train_steps(res, probed)
    assert steps.gate_failed == "" and "left out: steps 150, 400" in steps.label
    values = np.arange(8.0).reshape(2, 4)
    np.testing.assert_array_equal(steps.means(values, values)[0], [1.5, 5.5])  # steps 300, 350
    one = both_train_steps(res, np.array([150, 200, 300]))  # 1 of 3 qualifies: fewer than half
    assert "at 1 of 3 probed steps, fewer than half" in one.gate_failed


def test_matched_loss_pairs_nearest_losses_within_ten_percent_and_a_seed_without_is_missing():
    loss_bn = np.array([[2.0, 1.0, 0.5], [2.0, 1.5, 1.2]])  # (seeds, T)
    loss_base = np.array([[2.1, 1.95, 1.04], [0.4, 0.3, 0.2]])  # seed 1: never within 10%
    steps = matched_loss(loss_bn, loss_base)
    np.testing.assert_array_equal(steps.bn[0], [0, 1])  # 0.5 has no partner within 10%
    np.testing.assert_array_equal(steps.base[0], [1, 2])  # 2.0 -> 1.95 (nearest), 1.0 -> 1.04
    assert steps.bn[1].size == 0 and "1 of 2 seeds have no matched pair" == steps.gate_failed
    bn, base = steps.means(np.array([[1.0, 3.0, 9.0]] * 2), np.array([[5.0, 7.0, 11.0]] * 2))
    np.testing.assert_array_equal(bn, [2.0, np.nan])
    np.testing.assert_array_equal(base, [9.0, np.nan])
    rule = Rule(claims.SANTURKAR_LOSS_VARIATION, "x", pre.LOSS_VARIATION, Scale.LOG2_RATIO, 0.32, 2)
    row = measure_rule(rule, bn, base, gate_failed=steps.gate_failed)
    assert row.verdict is Verdict.NOT_MEASURABLE and "no matched pair" in row.gate_failed


def test_divergence_is_the_outcome_with_its_clopper_pearson_interval():
    low, high = proportion_ci(3, 5)
    flags = {"BN": np.zeros(5, bool), "no BN": np.array([1, 1, 1, 0, 0], bool)}
    said = divergence_gate(flags)
    assert said.startswith(f"no BN diverged in 3/5 seeds (95% CI {low:.0%}–{high:.0%}")
    assert "BN diverged in 0" not in said and divergence_gate({"BN": np.zeros(5, bool)}) == ""


def test_noise_off_reestimates_the_statistics_as_precise_bn_does_on_plain_bn():
    """With the noise off, noisy BN's re-estimated statistics equal precise BN's on the same
    network without the noise layer (same init, same batches); the noise is restored."""
    cfg = ModelConfig(hidden=(6, 5), activation="relu")
    models = {}
    for norm in ("batch", "batch-noisy"):
        models[norm] = build_model(cfg, norm, 2, (1, 3, 3), torch.float64)
        models[norm].init_members([11, 12], "gaussian", 0.3)
    x = torch.randn(4, 2, 16, 1, 3, 3, dtype=torch.float64)  # 4 batches of (K, B, C, H, W)
    noisy = [m for m in models["batch-noisy"].modules() if isinstance(m, StackedNoisyBatchNorm)]
    before = [(m.noise, m.get_extra_state()["generators"]) for m in noisy]
    reestimate_without_noise(models["batch-noisy"], iter(x), 4)
    precise_bn(models["batch"], iter(x), 4)
    plain = [b for n, b in models["batch"].named_buffers() if "running" in n]
    for got, want in zip(
        [b for n, b in models["batch-noisy"].named_buffers() if "running" in n], plain, strict=True
    ):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    for m, (noise, gens) in zip(noisy, before, strict=True):
        assert m.noise == noise and m.noise.std_max > 0
        assert all(
            torch.equal(a, b) for a, b in zip(m.get_extra_state()["generators"], gens, strict=True)
        )


NAMES = [
    "santurkar2018-deep-linear",
    "santurkar2018-landscape",
    "santurkar2018-ics",
    "santurkar2018-noisy-bn",
]


@pytest.mark.parametrize("name", NAMES)
def test_quick_run_end_to_end(name, tmp_path, fastpath_off, monkeypatch):
    """Every Santurkar experiment runs --quick through the same runner as `bnlab reproduce`:
    every row is one of the rules registered before the run, and every ℓ2 row carries the
    same diagnostics whatever its verdict."""
    out = run_experiment(name, tmp_path, seeds=2, quick=True, ctx=QUIET)
    declared = experiments()[name].rules(2)
    if name == "santurkar2018-deep-linear":  # 12 quick steps teach nothing: no row measurable
        rows = experiments()[name].analyze(out).scorecard
        assert [r.rule for r in rows] == list(declared)
        for row in rows:
            if row.rule.role is not Role.EXPLORATORY or row.rule.setting.endswith("per-loss"):
                assert (
                    row.verdict is Verdict.NOT_MEASURABLE and "fewer than half" in row.gate_failed
                )
    # waive "both networks train" and TRAINS, so the same runs are scored on both seeds
    monkeypatch.setattr(santurkar2018_steps, "TRAINS_ABOVE_CHANCE_PP", -100.0)
    monkeypatch.setattr(santurkar2018_noisy_bn, "trains_gate", lambda *a: "")
    result = experiments()[name].analyze(out)
    assert result.quick and [r.rule for r in result.scorecard] == list(declared)
    record = registration.read(out)  # every rule recorded before the first training step
    check_symmetric(result.scorecard)
    _check_diagnostics(name, result.scorecard)
    for row in result.scorecard:
        assert record[row.rule.id]["fingerprint"] == row.rule.fingerprint() and row.seeds == 2
        if row.tests is not None:  # the tests shown are the rule's on the effects shown
            assert run_tests(row.rule, row.effects) == row.tests
    for section in result.sections:
        assert "QUICK" in section.title and section.configs
        check_protocol(section)  # its protocol table is the configs its runs stored
        assert len({f.png for f in section.figures}) == len(section.figures)  # no overwrites
        assert all(f.png.is_file() and f.svg.is_file() for f in section.figures)
        if "sweep" not in section.title:  # every difference from the paper, one row each
            assert any(k.startswith("vs. Santurkar et al. 2018") for k in section.protocol)
    if name == "santurkar2018-noisy-bn":
        _check_noisy(out, result)
    if name == "santurkar2018-deep-linear":
        _check_deep_linear(result)


def _check_diagnostics(name: str, rows) -> None:
    expected = {
        "santurkar-gradient-predictiveness": {TWIN_GRADIENT, GRADIENT_SCALE},
        "santurkar-beta-smoothness": {TWIN_GRADIENT, GRADIENT_SCALE},
        "santurkar-ics-not-reduced": {TWIN_ICS, GRADIENT_SCALE},
        "santurkar-noisy-bn-like-bn": {NOISE_SWEEP},
        "santurkar-noisy-bn-beats-none": {NOISE_SWEEP},
        "santurkar-noisy-bn-less-stable": {NOISE_SWEEP},
    }
    for row in rows:
        names = {d.name for d in row.diagnostics}
        assert names == expected.get(row.claim.id, set()), (name, row.rule.id)
        assert all(d.post_hoc for d in row.diagnostics)
    assert sum(r.tests is not None for r in rows) >= len(rows) // 2, name


def _check_noisy(out, result) -> None:
    for directory in (out / "vgg", *(out / f"vgg-noise{s:g}" for s in NOISE_SCALES)):
        with Results(directory) as res:
            for norm in res.runs:  # the noise-free pass ran for every network trained
                steps, acc = res.metric(norm, METRIC)
                assert steps.tolist() == [12] and np.all((acc >= 0) & (acc <= 1))
    (section,) = result.sections
    assert "absorbed the noise" in section.protocol["test time"]
    columns = [c for t in section.tables for c in t.columns]
    assert "training accuracy (%, last 100 steps, as trained)" in columns
    assert "test accuracy (%, EMA statistics)" in columns
    (sweep,) = [t for t in section.tables if t.title.startswith("Noise-strength sweep")]
    labels = [row[0] for row in sweep.rows]
    assert labels == [*(f"BN + noise, scale {s:g}" for s in (*NOISE_SCALES, 1)), "BN", "no BN"]


def _check_deep_linear(result) -> None:
    *per_lr, sweep = result.sections
    primary = [s for s in per_lr if s.protocol["role"].startswith("primary")]
    assert [s.title.split(" — ")[1] for s in primary] == ["dln-lr0.003"]
    # the grid row says what the probe did: 0.5-4 x this setting's rate
    assert "(at lr 0.003: 0.0015, 0.003, 0.0045" in primary[0].protocol["landscape grid"]
    assert any("edge of stability" in n and "2/η = 667" in n for n in primary[0].notes)
    assert sweep.tables[0].columns[4:6] == ("BN diverged", "no BN diverged")
    assert all("Clopper-Pearson" in row[5] for row in sweep.tables[0].rows)


class _Curvature:
    """g^T H g / ||g||^2 at 3 probed steps of 2 seeds at lr 0.1 (2/η = 20): BN at 25, then 30,
    then 10 (at or above the edge at 2 of 3 steps); no BN at 2 throughout."""

    runs = ("batch", "none")  # `in` and iteration, as Results.runs

    def metric(self, norm, name):
        assert name == "curvature"
        values = [[25.0, 30.0, 10.0]] * 2 if norm == "batch" else [[2.0] * 3] * 2
        return np.array([100, 200, 300]), np.array(values)

    def members(self, norm):
        return [(0, 0, 0.1), (1, 1, 0.1)]


def test_the_curvature_table_reads_each_network_against_two_over_its_rate():
    from bnlab.reproduce.santurkar2018_curvature import curvature_part

    table, note = curvature_part(_Curvature(), "s/x")
    bn, base = table.rows
    assert bn[0] == "BN" and bn[3] == "20" and bn[4].startswith("1.08") and bn[6] == "2 of 3"
    assert base[4].startswith("0.10") and base[6] == "0 of 3"
    assert "BN averages 21.7 along g, 1.08 × 2/η (2/η = 20; a seed's largest 30 = 1.50" in note
    assert "(BN at 2 of 3 probed steps, no BN at 0 of 3 probed steps)" in note
    assert "BN is there at most probed steps" in note and "no BN is there" not in note
    assert "With BN the mean curvature along g is higher: log2(BN / no BN) 3.4" in note
    assert "holds for steps of that length, not for the local curvature" in note


class _FlatCurvature(_Curvature):
    """BN at 10 and 12 (seeds 0, 1), no BN at 11 and 9: below 2/η = 20, no paired difference."""

    def metric(self, norm, name):
        values = [[10.0] * 3, [12.0] * 3] if norm == "batch" else [[11.0] * 3, [9.0] * 3]
        return np.array([100, 200, 300]), np.array(values)


def test_the_curvature_reading_says_what_a_lower_bound_below_the_edge_cannot_tell():
    from bnlab.reproduce.santurkar2018_curvature import curvature_part

    _, note = curvature_part(_FlatCurvature(), "s/x")
    assert "(BN at 0 of 3 probed steps, no BN at 0 of 3 probed steps)" in note
    assert "this measure cannot tell" in note and "at most probed steps" not in note
    assert "is not different (the CI includes 0)" in note and "local curvature" not in note
