"""The Santurkar experiments are registered like every other, their configs (full and quick)
are runnable, and each runs --quick through the runner into figures and claims."""

import pytest

from bnlab.engine import validate
from bnlab.report import CLAIMS_BY_ID
from bnlab.reproduce import experiments
from bnlab.reproduce.runner import run_experiment
from bnlab.reproduce.santurkar2018 import SETTINGS, setting_config


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


def test_deep_linear_quick_run_and_analysis(tmp_path):
    out = run_experiment("santurkar2018-deep-linear", tmp_path, seeds=2, quick=True, progress=False)
    result = experiments()["santurkar2018-deep-linear"].analyze(out)
    assert result.quick and result.wall_time_s > 0
    claims = {row.claim.id for row in result.scorecard}
    assert claims == {
        "santurkar-loss-variation",
        "santurkar-gradient-predictiveness",
        "santurkar-beta-smoothness",
        "santurkar-ics-not-reduced",
    }
    assert all(c in CLAIMS_BY_ID for c in claims)
    (section,) = result.sections
    assert len(section.figures) == 5 and all(f.png.exists() for f in section.figures)
    assert all(row.effect.n == 2 for row in result.scorecard)


@pytest.mark.parametrize(
    "name", ["santurkar2018-landscape", "santurkar2018-ics", "santurkar2018-noisy-bn"]
)
def test_quick_run_end_to_end(name, tmp_path, fastpath_off):
    """Every Santurkar experiment runs --quick through the same runner as `bnlab reproduce`."""
    out = run_experiment(name, tmp_path, seeds=2, quick=True, progress=False)
    result = experiments()[name].analyze(out)
    assert result.name == name and result.quick and result.wall_time_s > 0
    assert result.sections and result.scorecard
    for section in result.sections:
        assert "QUICK" in section.title
        assert all(f.png.is_file() and f.svg.is_file() for f in section.figures)
    assert all(row.claim.id in CLAIMS_BY_ID for row in result.scorecard)
