"""Divergence is a result: a member trained at a huge learning rate diverges on purpose, and
the analysis counts it, shows it in the scorecard and the report, and never crashes, drops a
claim or averages over the survivors: a diverged seed makes its rows not measurable, with the
counts and their Clopper-Pearson intervals as the outcome. Needs the CIFAR-10 subset (always
present in the project's data set-up)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from helpers import QUIET

from bnlab.analysis import AnalysisProbe
from bnlab.report import Verdict, check_symmetric, write_report
from bnlab.report.pages import ExperimentPage, experiment_page
from bnlab.reproduce import santurkar2018_steps
from bnlab.reproduce.common import Results, train_variants
from bnlab.reproduce.publish import print_scorecard
from bnlab.reproduce.santurkar2018_sections import setting_part
from bnlab.reproduce.santurkar2018_settings import SETTINGS, TITLES, setting_config
from bnlab.reproduce.scoring import diverged

NAME = "santurkar2018-landscape"
LRS = (0.05, 0.03, 1e4)  # the third member diverges, with and without BN


@pytest.fixture(scope="module")
def diverging_run(tmp_path_factory):
    """The quick landscape setting with members at LRS (one seed each): 3 members per
    network, the last of which diverges."""
    setting = SETTINGS[NAME][0]
    cfg, probe = setting_config(setting, seeds=1, quick=True)
    cfg = replace(cfg, optim=replace(cfg.optim, lrs=LRS))
    out = tmp_path_factory.mktemp("diverging") / setting.name
    train_variants(NAME, cfg, out, ctx=QUIET, parallel=False, probes=[AnalysisProbe(probe)])
    return out


@pytest.mark.usefixtures("fastpath_off")
def test_a_diverged_member_is_counted_shown_and_never_averaged_over(
    diverging_run, tmp_path, capsys, monkeypatch
):
    # a quick run is too short to pass the "both networks train" rule; waive it, so the
    # diverged member is what makes the rows not measurable
    monkeypatch.setattr(santurkar2018_steps, "TRAINS_ABOVE_CHANCE_PP", -100.0)
    setting = SETTINGS[NAME][0]
    with Results(diverging_run) as res:
        flags = {n: diverged(res, n) for n in ("batch", "none")}
        section, rows = setting_part(TITLES[NAME], NAME, setting, res, diverging_run, seeds=3)
    for norm, f in flags.items():
        assert f.tolist() == [False, False, True], norm  # the lr 1e4 member, and only it
    claims = {r.claim.id for r in rows}
    assert claims == {
        "santurkar-loss-variation",
        "santurkar-gradient-predictiveness",
        "santurkar-beta-smoothness",
    }  # every claim keeps its rows, declared and exploratory
    for row in rows:
        assert dict(row.diverged) == {"BN": 1, "no BN": 1} and row.seeds == 3
        assert row.verdict is Verdict.NOT_MEASURABLE  # never a mean over the 2 survivors
        assert "no BN diverged in 1/3 seeds (95% CI 1%–91%, Clopper-Pearson)" in row.gate_failed
        assert "BN diverged in 1/3 seeds" in row.divergence_text
    check_symmetric(rows)
    page = experiment_page(ExperimentPage(NAME, NAME, (section,), tuple(rows), 1.0, quick=True))
    (md, _) = write_report(tmp_path, [page])
    assert md.read_text().count("diverged in 1/3 seeds") >= len(rows)
    print_scorecard(rows)
    printed = [x for x in capsys.readouterr().out.splitlines() if "not measurable" in x]
    assert len(printed) == len(rows) and all("diverged in 1/3 seeds" in x for x in printed)
