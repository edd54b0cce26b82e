"""The registered Santurkar experiments run in quick mode and produce figures and claims."""

from bnlab.analysis.experiments import EXPERIMENTS, SETTINGS
from bnlab.report import CLAIMS_BY_ID


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
    exp = EXPERIMENTS["santurkar2018-deep-linear"]
    exp.run(tmp_path, 2, True, False)
    result = exp.analyze(tmp_path)
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
