"""The Santurkar experiments are registered like every other, their configs (full and quick)
are runnable, and each runs --quick through the runner into figures and claims."""

import shutil

import numpy as np
import pytest
from helpers import QUIET

from bnlab.engine import validate
from bnlab.report import CLAIMS_BY_ID, Verdict
from bnlab.reproduce import experiments, santurkar2018_sections
from bnlab.reproduce.common import Results
from bnlab.reproduce.runner import run_experiment
from bnlab.reproduce.santurkar2018 import NOISE_SCALES, SETTINGS, setting_config
from bnlab.reproduce.santurkar2018_sections import accuracy_at, both_train


@pytest.mark.parametrize("quick", [False, True])
def test_every_setting_is_registered_and_its_config_is_valid(quick):
    registry = experiments()  # what `bnlab reproduce` resolves names against
    for name, settings in SETTINGS.items():
        assert registry[name].name == name and registry[name].default_seeds == 5
        for setting in settings:
            cfg, probe = setting_config(setting, seeds=2, quick=quick)
            validate(cfg, check_data=False)  # widths, hook layers and units agree
            assert cfg.seeds == 2
            assert probe is None or probe.every <= cfg.steps, (name, setting.name)


def test_deep_linear_quick_run_and_analysis(tmp_path, monkeypatch):
    out = run_experiment("santurkar2018-deep-linear", tmp_path, seeds=2, quick=True, ctx=QUIET)
    # 12 quick steps teach the linear network nothing: every claim keeps its row, not
    # measurable, and each setting's notes say why
    result = experiments()["santurkar2018-deep-linear"].analyze(out)
    assert result.scorecard and all(row.effect.n == 0 for row in result.scorecard)
    for section in result.sections[:-1]:
        assert any("no probed step where both networks train" in n for n in section.notes)
    # with the training rule waived, the same runs are scored on both seeds
    monkeypatch.setattr(santurkar2018_sections, "TRAINS_ABOVE_CHANCE_PP", -100.0)
    result = experiments()["santurkar2018-deep-linear"].analyze(out)
    assert result.quick and result.wall_time_s > 0
    claims = {row.claim.id for row in result.scorecard}
    assert claims <= {
        "santurkar-loss-variation",
        "santurkar-gradient-predictiveness",
        "santurkar-gradient-predictiveness-relative",
        "santurkar-beta-smoothness",
        "santurkar-ics-not-reduced",
        "santurkar-ics-cosine-not-reduced",
    }
    assert all(c in CLAIMS_BY_ID for c in claims)
    *per_lr, sweep = result.sections
    assert len(per_lr) == len(SETTINGS["santurkar2018-deep-linear"])
    for section in per_lr:  # the last layer's cosine, which a mean over layers can hide
        assert any("cos(G, G') in the last layer (out)" in n for n in section.notes)
    for section in per_lr:  # Fig. 4a, 4b, 4c, the scale-free change, ICS l2 and cosine
        assert len(section.figures) == 6 and all(f.png.exists() for f in section.figures)
        assert section.tables[0].title.startswith("Test accuracy (%) at the probed steps")
    assert "learning-rate sweep" in sweep.title and sweep.figures[0].png.exists()
    lrs = [row[0] for row in sweep.tables[0].rows]
    assert lrs == sorted(lrs, key=float) and len(lrs) == len(per_lr)
    assert any("How a learning rate is chosen" in n for n in sweep.notes)
    assert all(row.effect.n == 2 for row in result.scorecard)


@pytest.mark.parametrize(
    "name", ["santurkar2018-landscape", "santurkar2018-ics", "santurkar2018-noisy-bn"]
)
def test_quick_run_end_to_end(name, tmp_path, fastpath_off):
    """Every Santurkar experiment runs --quick through the same runner as `bnlab reproduce`."""
    out = run_experiment(name, tmp_path, seeds=2, quick=True, ctx=QUIET)
    result = experiments()[name].analyze(out)
    assert result.name == name and result.quick and result.wall_time_s > 0
    assert result.sections
    # A quick run is too short for the networks to learn: a setting scores claims only at
    # probed steps where both train; every claim keeps its row, and an unmeasured one is
    # explained in its section's notes.
    for row in result.scorecard:
        if row.effect.n == 0 and "noisy" not in name:
            setting = row.experiment.split("/", 1)[1]
            (section,) = [s for s in result.sections if f" — {setting} — " in s.title]
            assert any("no probed step where both networks train" in n for n in section.notes)
    for section in result.sections:
        assert "QUICK" in section.title
        assert len({f.png for f in section.figures}) == len(section.figures)  # no overwrites
        if "sweep" not in section.title:  # every difference from the paper, one row each
            assert any(k.startswith("vs. Santurkar et al. 2018") for k in section.protocol)
        assert all(f.png.is_file() and f.svg.is_file() for f in section.figures)
    assert all(row.claim.id in CLAIMS_BY_ID for row in result.scorecard)
    assert all(not row.why or row.verdict is Verdict.NOT_REPRODUCED for row in result.scorecard)
    if name == "santurkar2018-noisy-bn":  # the final training loss: the noisy-BN reason's evidence
        columns = [c for s in result.sections for t in s.tables for c in t.columns]
        assert "training loss (last 100 steps)" in columns
        _check_noise_sweep(out, result)


def _check_noise_sweep(out, result):
    """The noise sweep trains BN + noise only, its noise scaled, beside `vgg`; the report shows
    it as a table and a figure, and results without it (older runs) still analyze."""
    with Results(out / "vgg") as res:
        full = res.config("batch-noisy")["model"]["norm"]["batch_noisy"]
    for scale in NOISE_SCALES:
        with Results(out / f"vgg-noise{scale:g}") as res:
            assert list(res.runs) == ["batch-noisy"]
            noise = res.config("batch-noisy")["model"]["norm"]["batch_noisy"]
        for key in ("mean_max", "std_min", "std_max"):
            assert noise[key] == pytest.approx(scale * full[key])
    (section,) = result.sections
    (table,) = [t for t in section.tables if t.title.startswith("Noise-strength sweep")]
    labels = [row[0] for row in table.rows]
    assert labels == [*(f"BN + noise, scale {s:g}" for s in (*NOISE_SCALES, 1)), "BN", "no BN"]
    assert any("against the noise strength" in f.caption for f in section.figures)
    assert section.protocol["noise sweep"].startswith("vgg-noise0.25, vgg-noise0.5: BN + noise")
    for scale in NOISE_SCALES:
        shutil.rmtree(out / f"vgg-noise{scale:g}")
    (section,) = experiments()["santurkar2018-noisy-bn"].analyze(out).sections
    assert not [t for t in section.tables if t.title.startswith("Noise-strength sweep")]
    assert "noise sweep" not in section.protocol


class _FakeResults:
    """Test accuracy evaluated every 100 steps, as the VGG preset does; BN learns from the
    start, the baseline only from step 300 on."""

    def __init__(self, base_acc):
        self.acc = {"batch": np.full((2, 4), 0.5), "none": np.array([base_acc, base_acc])}

    def metric(self, norm, name):
        steps, acc = np.array([100, 200, 300, 400]), self.acc[norm]
        if name == "test_loss":  # a diverged member: NaN loss, a constant-guess accuracy
            return steps, np.where(acc == 0.098, np.nan, 1.0)
        assert name == "test_accuracy"
        return steps, acc

    def config(self, norm):
        return {"model": {"num_classes": 10}}


def test_a_verdict_uses_only_steps_where_both_networks_train():
    res = _FakeResults([0.11, 0.15, 0.35, 0.098])  # chance 10%: trains from step 300
    probed = np.array([150, 300, 350, 400])
    acc = accuracy_at(res, "none", probed)  # the last evaluation at or before each step
    np.testing.assert_array_equal(acc[0], [11.0, 35.0, 35.0, np.nan])
    notes = []
    used = both_train(res, probed, notes, "x")
    np.testing.assert_array_equal(used, [False, True, True, False])  # NaN: diverged, not used
    assert "probed steps 150, 400 are left out" in notes[0]
    notes = []
    assert not both_train(_FakeResults([0.1] * 4), probed, notes, "x").any()
    assert "no probed step where both networks train" in notes[-1]


def test_the_sweep_reads_the_largest_rate_where_the_baseline_neither_diverges_nor_stalls():
    from bnlab.reproduce.santurkar2018_sections import chosen_lr

    lrs = [0.05, 0.1, 0.5]
    # lr 0.5: no divergence, but the baseline never trains (the full VGG run): not chosen
    assert chosen_lr(lrs, [0, 0, 0], [True, True, False]) == 0.1
    assert chosen_lr(lrs, [0, 2, 0], [True, True, True]) == 0.5
    assert chosen_lr(lrs, [0, 3, 5], [True, True, True]) == 0.05
    assert chosen_lr(lrs, [1, 0, 0], [True, False, False]) is None
