"""Records (`bnlab.reproduce.records`): an experiment's analysis read back from the published
report decides and renders exactly as the analysis of its runs did, so a report published in
parts equals the report published at once."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

from bnlab import data
from bnlab.cli import main
from bnlab.errors import BnlabError
from bnlab.report import (
    Diagnostic,
    Estimate,
    Measure,
    ReportFigure,
    Rule,
    Scale,
    Section,
    Table,
    curve_band,
    decide_families,
    measure_rule,
    registration,
)
from bnlab.report import claims as C
from bnlab.report.pages import ExperimentPage, experiment_page
from bnlab.reproduce import records
from bnlab.reproduce.experiment import ExperimentResult

PRESENT = {s.name for s in data.available() if s.present}
PP = Measure("acc", "final test accuracy (%)", " pp", low=0, high=100)


def _result(dest, name="exp", shift=0.0) -> ExperimentResult:
    """An analysis with a figure under `dest`, a table, notes, a NaN and primary rows with a
    diagnostic and a registration status, as `bnlab report` builds them."""
    steps = np.arange(10)
    files = curve_band(
        dest / "figures" / name / "curve",
        steps,
        {"BN": np.ones((3, 10)), "no BN": np.zeros((3, 10))},
        xlabel="training step (updates)",
        ylabel="test accuracy (%)",
        title="t",
    )
    section = Section(
        f"{name}: a section",
        {"steps": "10", "lr": 0.5},
        "MNIST",
        figures=[ReportFigure.from_files(files, "caption")],
        tables=[Table("t", ["a", "b"], [["1 pp", "nan"]])],
        notes=["a note"],
        wall_time_s=12.5,
        configs=[{"seeds": 5, "norms": ["batch", "none"]}],
    )
    status = registration.Registration("before", "abc1234", "2026-01-01 00:00:00 UTC")
    diag = Diagnostic("spread", Estimate(0.1, float("nan"), float("nan"), 1, ""), " log2")
    rows = []
    for i, mean in enumerate((1.6 + shift, 0.2 + shift)):
        rule = Rule(C.BN_FINAL_ACCURACY, f"{name}/s{i}", PP, Scale.DIFFERENCE, 0.5, 5)
        d = mean + np.linspace(-1, 1, 5)
        row = measure_rule(rule, d, np.zeros(5), diverged=[("no BN", 1)])
        rows.append(replace(row, diagnostics=(diag,), why="a reason", registration=status))
    return ExperimentResult(name, (section,), tuple(rows), 12.5, False, ("n",))


def _page(record: records.Record) -> str:
    from bnlab.report._markdown import render_markdown

    r = record.result
    rows = decide_families(r.scorecard)
    page = ExperimentPage(r.name, r.name, r.sections, tuple(rows), r.wall_time_s, False, "line")
    return render_markdown(experiment_page(page), record.result.sections[0].figures[0].png.parent)


def test_a_record_reads_back_to_the_same_analysis(tmp_path):
    record = records.Record(_result(tmp_path), "3 rules at abc1234", ("0.1.0+git.abc1234",))
    path = records.write(tmp_path, record)
    text = path.read_text()
    assert str(tmp_path) not in text, "figure paths are stored relative to DEST"
    back = records.read(path, tmp_path)
    assert back.name == "exp" and back.versions == record.versions
    assert back.result.sections[0].figures[0].png.is_file()
    assert records.write(tmp_path, back).read_text() == text  # NaNs included
    decided = [decide_families(r.result.scorecard) for r in (record, back)]
    assert [(r.verdict, r.p_holm, r.q_bh) for r in decided[0]] == [
        (r.verdict, r.p_holm, r.q_bh) for r in decided[1]
    ]
    assert _page(back) == _page(record)
    # read from another place, the figures are found under that DEST
    moved = tmp_path / "moved"
    shutil.copytree(tmp_path, moved, ignore=shutil.ignore_patterns("moved"))
    assert records.read_all(moved)[0].result.sections[0].figures[0].png.is_file()


def test_records_refuse_foreign_classes_files_outside_dest_and_other_formats(tmp_path):
    outside = replace(_result(tmp_path / "a"), name="x")
    with pytest.raises(ValueError, match="lie under its DEST"):
        records.write(tmp_path / "b", records.Record(outside, "", ()))
    path = records.write(tmp_path, records.Record(_result(tmp_path), "", ()))
    body = json.loads(path.read_text())
    body["record"]["fields"]["result"]["type"] = "os:system"
    path.write_text(json.dumps(body))
    with pytest.raises(BnlabError, match="not one bnlab reads back"):
        records.read(path, tmp_path)
    body["record"]["fields"]["result"]["type"] = "bnlab.reproduce.experiment:ExperimentResult"
    body["record"]["fields"]["result"]["fields"]["renamed"] = 1
    path.write_text(json.dumps(body))
    with pytest.raises(BnlabError, match="does not fit this code's report classes"):
        records.read(path, tmp_path)
    path.write_text(json.dumps({"format": 0, "record": {}}))
    with pytest.raises(BnlabError, match="format 0, expected 1"):
        records.read_all(tmp_path)


@pytest.mark.skipif("mnist" not in PRESENT, reason="mnist not present")
def test_a_report_published_in_two_parts_equals_the_report_published_at_once(
    tmp_path, fastpath_off
):
    # two experiments of one family, trained into two results directories (two machines)
    for name, root in (("mnist-notebook", "a"), ("init-sensitivity", "b")):
        argv = ["reproduce", name, "--quick", "--out", str(tmp_path / root), "--quiet"]
        assert main(argv) == 0
    parts, whole = tmp_path / "parts", tmp_path / "whole"
    assert main(["report", str(tmp_path / "a"), "--publish", str(parts)]) == 0
    assert main(["report", str(tmp_path / "b"), "--publish", str(parts)]) == 0
    both = tmp_path / "both"
    shutil.copytree(tmp_path / "a" / "mnist-notebook", both / "mnist-notebook")
    shutil.copytree(tmp_path / "b" / "init-sensitivity", both / "init-sensitivity")
    calls = [json.loads((tmp_path / r / "wall_clock.json").read_text()) for r in ("a", "b")]
    (both / "wall_clock.json").write_text(json.dumps(calls[0] + calls[1]))
    assert main(["report", str(both), "--publish", str(whole)]) == 0

    assert sorted(p.name for p in (parts / "records").iterdir()) == [
        "init-sensitivity.json",
        "mnist-notebook.json",
    ]
    for page in ("mnist-notebook.md", "init-sensitivity.md", "appendix.md", "verdicts.json"):
        assert (parts / page).read_text() == (whole / page).read_text(), page
    summary = (parts / "report.md").read_text()
    machine = json.loads((tmp_path / "a" / "mnist-notebook" / "manifest.json").read_text())
    assert f"**Machine:** {machine['machine']}\n" in summary and " kernels)" in summary
    assert "1 experiment(s) read back from their records" in summary
    # the read-back experiment brings its own end-to-end time: the sum is the same
    wall = [line for line in (whole / "report.md").read_text().splitlines() if "Wall time" in line]
    assert wall and wall[0].removesuffix(", measured end to end") in summary
    assert "Partial report: 2 of" in summary
    # runs present again replace the record; the carried one stays
    assert main(["report", str(tmp_path / "b"), "--publish", str(parts)]) == 0
    assert (parts / "mnist-notebook.md").read_text() == (whole / "mnist-notebook.md").read_text()


def test_the_header_names_each_machine_with_its_experiments(tmp_path):
    from bnlab.reproduce.publish import _machines

    result = _result(tmp_path)
    one = [records.Record(replace(result, name=n), "", (), "EPYC (AVX512 kernels)") for n in "ab"]
    assert _machines(one) == "EPYC (AVX512 kernels)"
    other = records.Record(replace(result, name="c"), "", (), "EPYC (AVX2 kernels)")
    assert _machines([*one, other]) == "EPYC (AVX512 kernels) (a, b); EPYC (AVX2 kernels) (c)"
