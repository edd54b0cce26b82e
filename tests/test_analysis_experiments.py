"""The registered Santurkar experiments run in quick mode and produce figures and claims."""

import pytest

from bnlab import _fastpath
from bnlab.analysis.experiments import EXPERIMENTS, SETTINGS
from bnlab.report import CLAIMS_BY_ID
from bnlab.reproduce import experiments
from bnlab.reproduce.runner import run_experiment


def test_all_experiments_registered_with_known_claims():
    assert (
        set(EXPERIMENTS)
        == set(SETTINGS)
        == {
            "santurkar2018-landscape",
            "santurkar2018-ics",
            "santurkar2018-deep-linear",
            "santurkar2018-noisy-bn",
        }
    )


def test_deep_linear_quick_run_and_analysis(tmp_path):
    out = run_experiment("santurkar2018-deep-linear", tmp_path, seeds=2, quick=True, progress=False)
    result = EXPERIMENTS["santurkar2018-deep-linear"].analyze(out)
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
def test_quick_run_end_to_end(name, tmp_path, monkeypatch):
    """Every Santurkar experiment runs --quick through the same runner as `bnlab reproduce`."""
    # torch.compile costs tens of seconds per new shape: far more than a quick run trains
    monkeypatch.setattr(_fastpath, "_disabled_reason", "tests: quick runs")
    out = run_experiment(name, tmp_path, seeds=2, quick=True, progress=False)
    result = experiments()[name].analyze(out)
    assert result.name == name and result.quick and result.wall_time_s > 0
    assert result.sections and result.scorecard
    for section in result.sections:
        assert "QUICK" in section.title
        assert all(f.png.is_file() and f.svg.is_file() for f in section.figures)
    assert all(row.claim.id in CLAIMS_BY_ID for row in result.scorecard)
